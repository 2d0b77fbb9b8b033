"""Tasks: what the engine needs to know about images versus videos, behind one small interface.

A :class:`Task` builds the model, the data sets and the batch-level mixing, loads initial weights, and
names the fields of a batch. The engine never imports ``rs_video`` itself: :class:`VideoTask` imports it
inside its methods, so ``rs_image`` stays usable without it.

Batch items are dicts (see the data builders): the input tensor under :attr:`Task.input_key`, ``label``,
a per-sample id under :attr:`Task.index_key` (the video or image index, used to aggregate test views),
optionally ``view_index``, ``failed`` (test mode: the sample could not be loaded) and ``failed_reads``
(train/val: how many unreadable files were replaced on the way to this item).

The input tensor is float (already normalised) or uint8 (``DATA.OUTPUT_DTYPE uint8``: raw pixels, a
quarter of the bytes through the DataLoader). :meth:`Task.prepare_input` is the one place where the
engine turns a batch into model input, for training, precise BN, validation and the multi-view test: it
copies the tensor to the device and there converts and normalises uint8 with ``DATA.MEAN``/``DATA.STD``
(:func:`normalize_uint8`, the same arithmetic as the video data set's float32 output), so both dtypes give
the same model input. MixUp/CutMix come after it, on floats.

Register another task with :func:`register_task` (the config key ``TASK`` selects it).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple, Type

import torch
from torch import nn
from torch.utils.data import Dataset

from rs_image.data.transforms import normalize_uint8
from rs_image.recipe import BatchMixup, model_kwargs_from_cfg

from .config import ConfigError, register_choices

__all__ = ["Task", "ImageTask", "VideoTask", "register_task", "get_task", "TASKS"]

Mixup = Callable[[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]


class Task:
    """Interface between the engine and a kind of data. Subclasses override the ``build_*`` methods."""

    name: str = ""
    #: key of the input tensor in a batch
    input_key: str = "input"
    #: key of the per-sample id (video index / image index) in a batch
    index_key: str = "index"
    #: memory format for ``MODEL.CHANNELS_LAST``
    channels_last_format: torch.memory_format = torch.channels_last

    def create_model(self, cfg: Any) -> nn.Module:
        """A randomly initialised model for ``cfg`` (``MODEL.*``)."""
        raise NotImplementedError

    def collate_fn(self) -> Optional[Callable[[list], Any]]:
        """The DataLoader ``collate_fn`` for this task's items (None: torch's ``default_collate``)."""
        return None

    def prepare_input(
        self, batch: Dict[str, Any], cfg: Any, device: torch.device,
        memory_format: Optional[torch.memory_format] = None,
    ) -> torch.Tensor:
        """The model input of ``batch`` on ``device`` (see the module docstring).

        A float input is moved as it is; a uint8 input is moved first (a quarter of the bytes) and then
        normalised with ``cfg.DATA.MEAN``/``cfg.DATA.STD`` on the device. ``memory_format`` (e.g.
        ``channels_last_3d`` for ``MODEL.CHANNELS_LAST``) is applied on the device.
        """
        x = batch[self.input_key]
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"batch[{self.input_key!r}] is a {type(x).__name__}, expected a tensor")
        x = x.to(device, non_blocking=True)
        if x.dtype == torch.uint8:
            layout = memory_format or torch.contiguous_format
            return normalize_uint8(x, cfg.DATA.MEAN, cfg.DATA.STD, memory_format=layout)
        if not x.is_floating_point():
            raise TypeError(f"batch[{self.input_key!r}] has dtype {x.dtype}; expected floating point or uint8")
        return x if memory_format is None else x.contiguous(memory_format=memory_format)

    def build_dataset(self, cfg: Any, split: str) -> Dataset:
        """The data set of ``split`` in {"train", "val", "test"}."""
        raise NotImplementedError

    def build_mixup(self, cfg: Any) -> Optional[Mixup]:
        """Batch-level MixUp/CutMix (``MIXUP.*``) or None when disabled."""
        return None

    def load_initial_weights(self, model: nn.Module, cfg: Any) -> None:
        """Initialise ``model`` from ``TRAIN.CHECKPOINT_FILE_PATH`` (any supported format)."""
        from rs_image.models import load_pretrained

        load_pretrained(model, cfg.TRAIN.CHECKPOINT_FILE_PATH, prefer_ema=True)

    def load_weights_for_test(self, model: nn.Module, path: str, prefer_ema: bool) -> None:
        """Load evaluation weights (our checkpoint: EMA or raw; or any supported weight file)."""
        from rs_image.models import load_pretrained

        load_pretrained(model, path, prefer_ema=prefer_ema)

    def num_test_samples(self, dataset: Dataset) -> int:
        """Number of distinct samples (videos / images) that test views are aggregated into."""
        return int(getattr(dataset, "num_videos", len(dataset)))  # type: ignore[arg-type]

    def views_per_sample(self, dataset: Dataset) -> int:
        return int(getattr(dataset, "num_views", 1))

    def sample_name(self, dataset: Dataset, index: int) -> str:
        """A readable name (file path) of sample ``index`` for the predictions file ("" if unknown)."""
        return ""


class ImageTask(Task):
    """``rs_image`` models on image folders (``rs_image.data.build_image_dataset``)."""

    name = "image"
    input_key = "image"
    index_key = "index"
    channels_last_format = torch.channels_last

    def create_model(self, cfg: Any) -> nn.Module:
        import rs_image

        return rs_image.create_model(cfg.MODEL.NAME, num_classes=cfg.MODEL.NUM_CLASSES, **model_kwargs_from_cfg(cfg))

    def build_dataset(self, cfg: Any, split: str) -> Dataset:
        from rs_image.data import build_image_dataset

        return build_image_dataset(cfg, split)

    def build_mixup(self, cfg: Any) -> Optional[Mixup]:
        return BatchMixup.from_cfg(cfg)

    def sample_name(self, dataset: Dataset, index: int) -> str:
        samples = getattr(dataset, "samples", None)
        return str(samples[index][0]) if samples is not None and index < len(samples) else ""


class VideoTask(Task):
    """``rs_video`` models on Kinetics-style video data (``rs_video.data.build_video_dataset``)."""

    name = "video"
    input_key = "video"
    index_key = "video_index"
    channels_last_format = torch.channels_last_3d

    def create_model(self, cfg: Any) -> nn.Module:
        import rs_video

        return rs_video.create_model(cfg.MODEL.NAME, num_classes=cfg.MODEL.NUM_CLASSES, **model_kwargs_from_cfg(cfg))

    def build_dataset(self, cfg: Any, split: str) -> Dataset:
        if cfg.DATA.BACKEND == "pytorchvideo":
            from rs_video.benchmark import build_pytorchvideo_dataset

            return build_pytorchvideo_dataset(cfg, split)
        from rs_video.data import build_video_dataset

        return build_video_dataset(cfg, split)

    def collate_fn(self) -> Optional[Callable[[list], Any]]:
        """``rs_video.data.collate_clips``: uint8 clips stay channels-last (RGB de-interleaved on the device)."""
        from rs_video.data import collate_clips

        return collate_clips

    def build_mixup(self, cfg: Any) -> Optional[Mixup]:
        return BatchMixup.from_cfg(cfg)

    def load_initial_weights(self, model: nn.Module, cfg: Any) -> None:
        path = cfg.TRAIN.CHECKPOINT_FILE_PATH
        if cfg.TRAIN.CHECKPOINT_INFLATE:
            import rs_video

            rs_video.inflate(path, model, method=cfg.TRAIN.CHECKPOINT_INFLATE)  # logs its report
            return
        import rs_video  # noqa: F401  (registers the PyTorchVideo weight converter)

        super().load_initial_weights(model, cfg)

    def load_weights_for_test(self, model: nn.Module, path: str, prefer_ema: bool) -> None:
        import rs_video  # noqa: F401  (registers the PyTorchVideo weight converter)

        super().load_weights_for_test(model, path, prefer_ema)

    def sample_name(self, dataset: Dataset, index: int) -> str:
        name_of = getattr(dataset, "path", None)
        if callable(name_of):
            try:
                return str(name_of(index))
            except (IndexError, KeyError):
                return ""
        return ""


TASKS: Dict[str, Type[Task]] = {"image": ImageTask, "video": VideoTask}


def register_task(name: str, task_cls: Type[Task]) -> None:
    """Make ``TASK <name>`` select ``task_cls``."""
    TASKS[name] = task_cls
    register_choices("TASK", name)


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f"unknown TASK {name!r}; registered: {sorted(TASKS)}")
    return TASKS[name]()

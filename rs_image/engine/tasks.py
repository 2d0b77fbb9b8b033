"""Tasks: what the engine needs to know about a kind of data, behind one small interface, and their registry.

A :class:`Task` builds the model, the data sets, the collate function and the batch-level mixing, loads
initial and test weights, names the fields of a batch, and brings its own config keys. The engine knows
no task by name: tasks register themselves (:func:`register_task`), the image task below when this module
is imported, the video task when ``rs_video.task`` is.

Batch items are dicts (see the data builders): the input tensor under :attr:`Task.input_key`, ``label``,
a per-sample id under :attr:`Task.index_key` (used to aggregate test views), optionally ``view_index``,
``failed`` (test mode: the sample could not be loaded), ``failed_reads`` (train/val: how many
unreadable files were replaced on the way to this item) and ``fallback_reads`` (how many samples were read
by a fallback decoder; summed into the epoch and test summaries, counted apart from failures).

The input tensor is float (already normalised) or uint8 (raw pixels, a quarter of the bytes through the
DataLoader). :meth:`Task.prepare_input` is the one place where the engine turns a batch into model input,
for training, precise BN, validation and the multi-view test: it copies the tensor to the device and there
converts and normalises uint8 with ``DATA.MEAN``/``DATA.STD`` (:func:`rs_image.data.normalize_uint8`, the
same arithmetic as a data set's float32 output), so both dtypes give the same model input. MixUp/CutMix
come after it, on floats.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type

import torch
from torch import nn
from torch.utils.data import Dataset

from rs_image.data import build_image_dataset, normalize_uint8
from rs_image.models import create_model, load_pretrained
from rs_image.recipe import BatchMixup, build_loss, model_kwargs_from_cfg

from .class_metrics import class_names_for
from .config import CfgNode, ConfigError, Rule, add_config_extension, register_choices
from .evaluator import evaluate_single_view

__all__ = ["Task", "ImageTask", "register_task", "get_task", "TASKS"]

Mixup = Callable[[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]


class Task:
    """Interface between the engine and a kind of data. Subclasses override the ``build_*`` methods and
    may add config keys (:meth:`add_config`, :attr:`config_choices`, :attr:`config_rules`)."""

    name: ClassVar[str] = ""
    #: key of the input tensor in a batch
    input_key: ClassVar[str] = "input"
    #: key of the per-sample id (video index / image index) in a batch
    index_key: ClassVar[str] = "index"
    #: memory format for ``MODEL.CHANNELS_LAST``
    channels_last_format: ClassVar[torch.memory_format] = torch.channels_last
    #: loggers that the engine sends to the console and ``OUTPUT_DIR/log.txt`` for this task
    logger_names: ClassVar[Tuple[str, ...]] = ("rs_image",)
    #: allowed values of the task's string keys
    config_choices: ClassVar[Mapping[str, Sequence[str]]] = {}
    #: checks of the task's keys
    config_rules: ClassVar[Sequence[Rule]] = ()

    @staticmethod
    def add_config(cfg: CfgNode) -> None:
        """Add the task's keys, with their defaults, to the engine's defaults."""

    def create_model(self, cfg: Any) -> nn.Module:
        """A randomly initialised model for ``cfg`` (``MODEL.*``)."""
        raise NotImplementedError

    def build_dataset(self, cfg: Any, split: str) -> Dataset:
        """The data set of ``split`` in {"train", "val", "test"}."""
        raise NotImplementedError

    def collate_fn(self) -> Optional[Callable[[list], Any]]:
        """The DataLoader ``collate_fn`` for this task's items (None: torch's ``default_collate``)."""
        return None

    def samples_per_item(self, cfg: Any) -> int:
        """Training samples in one item of the training set (repeated augmentation: several augmented copies
        of one decoded file); :meth:`collate_fn` lays them out as rows of the batch. The global batch, and
        with it the learning rate, counts samples."""
        return 1

    def build_mixup(self, cfg: Any) -> Optional[Mixup]:
        """Batch-level MixUp/CutMix (``MIXUP.*``) or None when disabled."""
        return BatchMixup.from_cfg(cfg)

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

    def targets(self, batch: Dict[str, Any], device: torch.device) -> torch.Tensor:
        """The training targets of ``batch`` on ``device``: class indices (B,), or multi-hot float rows (B, C)
        with ``DATA.MULTI_LABEL``; a task with other targets (e.g. multi-hot (K, C) per box) overrides it, with
        :meth:`build_criterion` and :meth:`forward`. Rows count the samples of the loss statistics; 1-D targets
        also give the training accuracy."""
        labels = torch.as_tensor(batch["label"]).to(device, non_blocking=True)
        return labels.float() if labels.dim() > 1 else labels.long()

    def build_criterion(self, cfg: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The training loss of ``(float32 model output, targets)``: cross-entropy with ``SOLVER.LABEL_SMOOTHING``,
        or sigmoid BCE with ``DATA.MULTI_LABEL``."""
        return build_loss(cfg.SOLVER.LABEL_SMOOTHING, multi_label=cfg.DATA.MULTI_LABEL)

    def forward(self, model: nn.Module, x: torch.Tensor, batch: Dict[str, Any]) -> torch.Tensor:
        """The model output for input ``x`` of ``batch`` (a detector also takes the batch's boxes)."""
        return model(x)

    def evaluate(
        self, model: nn.Module, loader: Any, prepare_input: Callable[[Dict[str, Any]], torch.Tensor], *, cfg: Any,
        device: torch.device, autocast: Any, progress: bool = False, desc: str = "val",
    ) -> Dict[str, Any]:
        """Validation metrics of ``model`` on ``loader`` (every sample on one process, reduced over processes):
        single-view top-1 / top-5 / loss, or mAP / loss with ``DATA.MULTI_LABEL``
        (:func:`~rs_image.engine.evaluator.evaluate_single_view`)."""
        return evaluate_single_view(model, loader, prepare_input, device=device, autocast=autocast,
                                    progress=progress, desc=desc, multi_label=cfg.DATA.MULTI_LABEL)

    def format_metrics(self, metrics: Dict[str, Any]) -> str:
        """One log line of :meth:`evaluate`'s metrics."""
        if "mAP" in metrics:  # multi-label
            return f"mAP {metrics['mAP']:.2f}% loss {metrics['loss']:.4f}"
        return f"top-1 {metrics['top1']:.2f}% top-5 {metrics['top5']:.2f}% loss {metrics['loss']:.4f}"

    def run_test(self, cfg: Any) -> Optional[Any]:
        """A task with its own test protocol runs it here and returns its summary (with ``as_dict()``);
        None (the default): the engine's multi-view classification test (:func:`rs_image.engine.run_test`)."""
        return None

    def load_initial_weights(self, model: nn.Module, cfg: Any) -> None:
        """Initialise ``model`` from ``TRAIN.CHECKPOINT_FILE_PATH`` (any supported format, EMA preferred)."""
        load_pretrained(model, cfg.TRAIN.CHECKPOINT_FILE_PATH, prefer_ema=True)

    def load_weights_for_test(self, model: nn.Module, path: str, prefer_ema: bool) -> None:
        """Load evaluation weights (our checkpoint: EMA or raw; or any supported weight file)."""
        load_pretrained(model, path, prefer_ema=prefer_ema)

    def num_test_samples(self, dataset: Dataset) -> int:
        """Number of distinct samples (videos / images) that test views are aggregated into."""
        return int(getattr(dataset, "num_videos", len(dataset)))  # type: ignore[arg-type]

    def views_per_sample(self, dataset: Dataset) -> int:
        return int(getattr(dataset, "num_views", 1))

    def class_names(self, dataset: Dataset, num_classes: int) -> List[str]:
        """``num_classes`` class names in index order, for the test report: the data set's ``class_names``
        where it has them (the video data set reads ``classids.json``), the index as a string otherwise."""
        return class_names_for(getattr(dataset, "class_names", None), num_classes)

    def sample_name(self, dataset: Dataset, index: int) -> str:
        """A readable name (file path) of sample ``index`` for the predictions file ("" if unknown)."""
        name_of = getattr(dataset, "path", None)
        if callable(name_of):
            try:
                return str(name_of(index))
            except (IndexError, KeyError):
                return ""
        return ""


class ImageTask(Task):
    """``rs_image`` models on image folders (:func:`rs_image.data.build_image_dataset`)."""

    name = "image"
    input_key = "image"
    index_key = "index"
    channels_last_format = torch.channels_last
    config_rules = (Rule("DATA.CROP_PCT", lambda v, c: v == -1 or 0 < v <= 1, "in (0, 1] or -1 (model default)"),
                    Rule("DATA.MULTI_LABEL", lambda v, c: not v, "False for image folders (one class per image)"))

    @staticmethod
    def add_config(cfg: CfgNode) -> None:
        # Eval crop fraction: resize to size / CROP_PCT, then centre crop; -1 = the model's crop_pct.
        cfg.DATA.CROP_PCT = -1.0

    def create_model(self, cfg: Any) -> nn.Module:
        return create_model(cfg.MODEL.NAME, num_classes=cfg.MODEL.NUM_CLASSES, **model_kwargs_from_cfg(cfg))

    def build_dataset(self, cfg: Any, split: str) -> Dataset:
        return build_image_dataset(cfg, split)

    def class_names(self, dataset: Dataset, num_classes: int) -> List[str]:
        """The class folder names (torchvision's ``classes``)."""
        return class_names_for(getattr(dataset, "classes", None), num_classes)


TASKS: Dict[str, Type[Task]] = {}


def register_task(task_cls: Type[Task]) -> Type[Task]:
    """Make ``TASK <task_cls.name>`` select ``task_cls`` and add its config keys (usable as a decorator)."""
    if not task_cls.name:
        raise ValueError(f"{task_cls.__name__} has no name")
    if TASKS.get(task_cls.name, task_cls) is not task_cls:
        raise ValueError(f"TASK {task_cls.name!r} is registered twice ({TASKS[task_cls.name].__name__})")
    TASKS[task_cls.name] = task_cls
    register_choices("TASK", task_cls.name)
    # A task's rules hold for its own runs (an image config need not fit the video crop rules).
    rules = [Rule(r.key, lambda v, c, r=r: c.TASK != task_cls.name or r.check(v, c), r.requirement)
             for r in task_cls.config_rules]
    add_config_extension(f"task:{task_cls.name}", task_cls.add_config, choices=task_cls.config_choices, rules=rules)
    return task_cls


def get_task(name: str) -> Task:
    """An instance of the task registered as ``name``."""
    if name not in TASKS:
        registered: List[str] = sorted(TASKS)
        raise ConfigError(f"TASK {name!r} is not registered; registered tasks: {', '.join(registered)}")
    return TASKS[name]()


register_task(ImageTask)

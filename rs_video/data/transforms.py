"""Clip transforms on ``torchvision.transforms.v2`` (never ``pytorchvideo.transforms``).

Clips come from the decoders as ``uint8`` (T, C, H, W) and stay ``uint8`` through resize, crop, flip and
RandAugment; conversion to float and normalisation come last, on the cropped clip (4x less memory traffic
than normalising full-size float frames first, as PyTorchVideo's recipe does). The output is (C, T, H, W),
the layout of PyTorchVideo/SlowFast and of the models, in one of two dtypes (``DATA.OUTPUT_DTYPE``):

* ``"float32"`` (default): normalised with ``DATA.MEAN``/``DATA.STD``;
* ``"uint8"``: the cropped clip as it is, not normalised. The consumer converts and normalises it after
  the host-to-device copy (the engine does, in :meth:`rs_image.engine.Task.prepare_input`): a quarter of
  the bytes through the DataLoader's shared memory and the pinned copy, and no float work in the workers.

Every random parameter is drawn once per clip and applied to all its frames (the clip is wrapped as a
:class:`torchvision.tv_tensors.Video`, whose leading dimensions share one set of parameters), so a crop,
flip or RandAugment op never differs between frames.

Modes:

* train, ``DATA.TRAIN_CROP_MODE = "jitter"`` (SlowFast): short side resized to a random size in
  ``DATA.TRAIN_JITTER_SCALES`` (inclusive), random ``TRAIN_CROP_SIZE`` square crop;
  ``"inception"`` (TF Model Garden 3D ResNet-RS): random crop of area fraction ``DATA.INCEPTION_AREA`` and
  aspect ratio ``DATA.INCEPTION_ASPECT``, resized to ``TRAIN_CROP_SIZE``. Then horizontal flip
  (``DATA.RANDOM_FLIP``) and, with ``AUG.RAND_AUGMENT``, RandAugment on the TF level scale
  (:class:`rs_image.data.transforms.RandAugmentTF`, ``AUG.RA_NUM_OPS`` ops at ``AUG.RA_MAGNITUDE``).
* val: short side to ``TEST_CROP_SIZE``, centre ``TEST_CROP_SIZE`` crop.
* test: short side to ``TEST_CROP_SIZE``, then ``TEST.NUM_SPATIAL_CROPS`` square crops spaced uniformly
  along the long side (see :class:`UniformSpatialCrop`; 3 crops = left/centre/right for landscape
  frames, top/centre/bottom for portrait ones).

MixUp/CutMix act on whole batches in the training loop: :class:`rs_image.recipe.BatchMixup`.
"""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence, Tuple

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from rs_image.data.transforms import RandAugmentTF, interpolation_mode, normalize_uint8

__all__ = [
    "DEFAULT_RA_MAGNITUDE",
    "OUTPUT_DTYPES",
    "RandomShortSideScaleCrop",
    "UniformSpatialCrop",
    "ClipTransform",
    "build_clip_transform",
    "gather_frames",
]

logger = logging.getLogger(__name__)

DEFAULT_RA_MAGNITUDE = 10
"""RandAugment level used when ``AUG.RA_MAGNITUDE`` is still -1 (the ResNet-RS-50 recipe value)."""

OUTPUT_DTYPES = ("float32", "uint8")
"""Values of ``DATA.OUTPUT_DTYPE``: normalised float32 clips, or uint8 clips normalised by the consumer."""


class RandomShortSideScaleCrop(v2.Transform):
    """Scale jitter + random square crop (SlowFast's train crop), computed as one resized crop.

    Equivalent to resizing the short side to ``s ~ U{min_size..max_size}`` and cropping ``size`` x ``size``
    at a uniformly random position, but the crop box is mapped back to the input and only the box is
    resized (``resized_crop``): half the resize work, because the full resized frame is never made. The
    box is rounded to whole input pixels (a scale error below 0.5 / box side).

    Args:
        min_size, max_size: short-side range (inclusive), ``DATA.TRAIN_JITTER_SCALES``.
        size: crop side, ``DATA.TRAIN_CROP_SIZE`` (at most ``min_size``).
        interpolation: resize kernel.
    """

    def __init__(self, min_size: int, max_size: int, size: int,
                 interpolation: v2.InterpolationMode = v2.InterpolationMode.BILINEAR) -> None:
        super().__init__()
        if not 0 < size <= min_size <= max_size:
            raise ValueError(f"need 0 < size <= min_size <= max_size, got {size}, {min_size}, {max_size}")
        self.min_size, self.max_size, self.size, self.interpolation = int(min_size), int(max_size), int(size), interpolation

    def make_params(self, flat_inputs: List) -> dict:
        height, width = TF.get_size(next(i for i in flat_inputs if isinstance(i, torch.Tensor)))
        short = int(torch.randint(self.min_size, self.max_size + 1, ()))
        factor = short / min(height, width)
        resized_h, resized_w = (short, int(width * factor)) if height <= width else (int(height * factor), short)
        top = int(torch.randint(0, resized_h - self.size + 1, ()))
        left = int(torch.randint(0, resized_w - self.size + 1, ()))
        side = max(1, min(round(self.size / factor), height, width))
        box_top = min(round(top / factor), height - side)
        box_left = min(round(left / factor), width - side)
        return {"top": box_top, "left": box_left, "side": side}

    def transform(self, inpt, params: dict):
        return TF.resized_crop(
            inpt, params["top"], params["left"], params["side"], params["side"], [self.size, self.size],
            interpolation=self.interpolation, antialias=True,
        )

    def extra_repr(self) -> str:
        return f"scales=[{self.min_size}, {self.max_size}], size={self.size}, interpolation={self.interpolation.value}"


class UniformSpatialCrop:
    """The ``index``-th of ``num_crops`` square crops spaced uniformly along the long side.

    The clip's short side should already equal ``size``. Crop ``i`` starts at
    ``round((long - size) * i / (num_crops - 1))`` along the long side (a single crop is centred) and is
    centred along the short side. For three crops of a landscape clip that is left, centre and right
    (SlowFast's and PyTorchVideo's ``uniform_crop``); for a portrait clip top, centre and bottom.

    Args:
        size: crop side.
        num_crops: number of crops (``TEST.NUM_SPATIAL_CROPS``).
    """

    def __init__(self, size: int, num_crops: int = 3) -> None:
        if num_crops < 1:
            raise ValueError(f"num_crops must be >= 1, got {num_crops}")
        self.size, self.num_crops = int(size), int(num_crops)

    def box(self, height: int, width: int, index: int) -> Tuple[int, int]:
        """Top-left corner (top, left) of crop ``index`` in a (height, width) frame."""
        if not 0 <= index < self.num_crops:
            raise ValueError(f"spatial crop index {index} out of range for {self.num_crops} crops")
        if height < self.size or width < self.size:
            raise ValueError(f"frame {height}x{width} is smaller than the crop {self.size}")

        def along(length: int, uniform: bool) -> int:
            if not uniform or self.num_crops == 1:
                return (length - self.size) // 2
            return int(round((length - self.size) * index / (self.num_crops - 1)))

        landscape = width >= height
        return along(height, not landscape), along(width, landscape)

    def __call__(self, clip: torch.Tensor, index: int) -> torch.Tensor:
        top, left = self.box(clip.shape[-2], clip.shape[-1], index)
        return TF.crop(clip, top, left, self.size, self.size)

    def __repr__(self) -> str:
        return f"UniformSpatialCrop(size={self.size}, num_crops={self.num_crops})"


class ClipTransform:
    """uint8 (T, C, H, W) clip -> (C, T, h, w) clip, normalised float32 or uint8, in two stages.

    :meth:`prepare` does everything that can stay ``uint8`` and is shared by all spatial crops (all of the
    train/val pipeline; the resize in test mode), :meth:`finalize` takes the spatial crop (test mode) and,
    for float32 output, converts and normalises. In test mode the data set prepares the frames of all
    temporal views of a video at once, so ``prepare`` must then act on each frame alone and
    deterministically (a resize, as :func:`build_clip_transform` builds it).

    Args:
        spatial: v2 transform applied to the uint8 clip (as a ``tv_tensors.Video``).
        mean, std: per-channel normalisation on the [0, 1] scale.
        crops: the test-mode spatial crops, or None.
        output_dtype: "float32" (normalised) or "uint8" (not normalised; see the module docstring).
    """

    def __init__(
        self, spatial: v2.Transform, mean: Sequence[float], std: Sequence[float],
        crops: Optional[UniformSpatialCrop] = None, output_dtype: str = "float32",
    ) -> None:
        if output_dtype not in OUTPUT_DTYPES:
            raise ValueError(f"DATA.OUTPUT_DTYPE must be one of {OUTPUT_DTYPES}, got {output_dtype!r}")
        self.spatial = spatial
        self.crops = crops
        self.output_dtype = output_dtype
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]

    @property
    def num_crops(self) -> int:
        return self.crops.num_crops if self.crops is not None else 1

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the clips :meth:`finalize` returns."""
        return torch.uint8 if self.output_dtype == "uint8" else torch.float32

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        """Random/shared spatial stage on the uint8 clip; returns uint8 (T, C, h, w)."""
        if clip.dtype != torch.uint8 or clip.ndim != 4 or clip.shape[1] != 3:
            raise ValueError(f"expected a uint8 (T, 3, H, W) clip, got {tuple(clip.shape)} {clip.dtype}")
        return self.spatial(tv_tensors.Video(clip)).as_subclass(torch.Tensor)

    def finalize(self, clip: torch.Tensor, spatial_index: int = 0,
                 frame_positions: Optional[torch.Tensor] = None, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Spatial crop ``spatial_index`` (test mode), then -> (C, T, h, w) in :attr:`dtype`.

        Args:
            clip: prepared uint8 (N, C, H, W) frames.
            spatial_index: which test crop.
            frame_positions: the T rows of ``clip`` that make the clip (test mode, where ``clip`` holds
                all temporal views of a video), taken after the crop so that only the crop is copied.
                None: all N rows, in order.
            out: a (C, T, h, w) tensor of :attr:`dtype` to write the clip into (one row of the K clips
                of a repeated-augmentation item), saving a copy; returned.

        A float32 result is contiguous. A uint8 result keeps the memory order of the frames, which is
        (T, H, W, C) for decoded frames (RGB interleaved): a (C, T, H, W) view with channels-last-3d strides.
        Making it planar is a strided byte copy that costs more than the rest of the uint8 path after
        decoding; :func:`rs_video.data.collate_clips` stacks such clips without it and the device does it
        while normalising.
        """
        if self.crops is not None:
            clip = self.crops(clip, spatial_index)
        elif spatial_index != 0:
            raise ValueError(f"spatial index {spatial_index} given to a transform without test crops")
        clip = gather_frames(clip, frame_positions)
        video = clip.permute(1, 0, 2, 3)
        if self.output_dtype == "uint8":
            return video if out is None else out.copy_(video)
        # Convert straight into a contiguous (C, T, h, w) float tensor (the RGB de-interleave rides on the
        # conversion, the cheapest place for it on the CPU: measured against de-interleaving the uint8 bytes
        # first) and normalise it in place: the engine's on-device normalisation of uint8 batches.
        return normalize_uint8(video[None], self.mean, self.std, out=None if out is None else out[None])[0]

    def __call__(self, clip: torch.Tensor, spatial_index: int = 0) -> torch.Tensor:
        return self.finalize(self.prepare(clip), spatial_index)

    def __repr__(self) -> str:
        return (
            f"ClipTransform(spatial={self.spatial}, crops={self.crops}, mean={self.mean}, std={self.std}, "
            f"output_dtype={self.output_dtype})"
        )


def gather_frames(frames: torch.Tensor, positions: Optional[torch.Tensor]) -> torch.Tensor:
    """Rows ``positions`` of uint8 (N, C, H, W) ``frames`` (all of them, uncopied, when None).

    Whole frames are copied in their own memory order ((N, H, W, C) for decoded frames): row copies, not
    the strided byte copy that gathering the (N, C, H, W) view would make.
    """
    if positions is None:
        return frames
    return frames.permute(0, 2, 3, 1).index_select(0, positions).permute(0, 3, 1, 2)


def _ra_magnitude(cfg) -> int:
    magnitude = cfg.AUG.RA_MAGNITUDE
    if magnitude is None or magnitude < 0:
        logger.info("AUG.RA_MAGNITUDE is -1 and was not resolved to a model default; using %d", DEFAULT_RA_MAGNITUDE)
        return DEFAULT_RA_MAGNITUDE
    return int(magnitude)


def build_clip_transform(cfg, mode: str) -> ClipTransform:
    """The clip transform for ``mode`` ("train", "val" or "test") from the ``DATA``/``AUG``/``TEST`` keys."""
    data = cfg.DATA
    interpolation = interpolation_mode(data.INTERPOLATION)
    steps: List[v2.Transform] = []
    crops = None
    if mode == "train":
        if data.TRAIN_CROP_MODE == "jitter":
            low, high = (int(s) for s in data.TRAIN_JITTER_SCALES)  # checked with the config (rs_video.task)
            steps.append(RandomShortSideScaleCrop(low, high, int(data.TRAIN_CROP_SIZE), interpolation))
        elif data.TRAIN_CROP_MODE == "inception":
            steps.append(
                v2.RandomResizedCrop(
                    int(data.TRAIN_CROP_SIZE), scale=tuple(data.INCEPTION_AREA), ratio=tuple(data.INCEPTION_ASPECT),
                    interpolation=interpolation, antialias=True,
                )
            )
        else:
            raise ValueError(f"DATA.TRAIN_CROP_MODE must be 'jitter' or 'inception', got {data.TRAIN_CROP_MODE!r}")
        if data.RANDOM_FLIP:
            steps.append(v2.RandomHorizontalFlip())
        if cfg.AUG.RAND_AUGMENT:
            steps.append(RandAugmentTF(int(cfg.AUG.RA_NUM_OPS), _ra_magnitude(cfg), interpolation=interpolation))
    elif mode in ("val", "test"):
        steps.append(v2.Resize(int(data.TEST_CROP_SIZE), interpolation=interpolation, antialias=True))
        if mode == "val":
            steps.append(v2.CenterCrop(int(data.TEST_CROP_SIZE)))
        else:
            crops = UniformSpatialCrop(int(data.TEST_CROP_SIZE), int(cfg.TEST.NUM_SPATIAL_CROPS))
    else:
        raise ValueError(f"mode must be 'train', 'val' or 'test', got {mode!r}")
    return ClipTransform(v2.Compose(steps), data.MEAN, data.STD, crops, output_dtype=data.OUTPUT_DTYPE)

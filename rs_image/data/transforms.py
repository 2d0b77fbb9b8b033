"""ResNet-RS image transforms, built from ``torchvision.transforms.v2``.

Train (TF ``resnet_preprocessing`` semantics): Inception-style random-resized crop (area 0.08-1, aspect
3/4-4/3), bicubic resize to the train resolution, random horizontal flip, RandAugment (2 ops, per-model
magnitude), float conversion and mean/std normalisation. Eval: resize the short side to
``size / crop_pct`` and take the central ``size`` x ``size`` crop (the TF centre crop of 87.5 % of the
image, resized to the train resolution, up to the order of crop and resize).

All transforms take uint8 tensors (C, H, W) as decoded by :func:`torchvision.io.decode_image` (leading
dimensions, e.g. the frames of a clip, share one set of random parameters) and return float32.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from torchvision.transforms import v2

__all__ = [
    "RandAugmentTF", "build_train_transform", "build_eval_transform", "eval_resize_size", "interpolation_mode",
    "normalize_uint8",
]


def _levels(num_bins: int, value_at_level_10: float) -> torch.Tensor:
    """Op strength at the TF levels 0, 1, ..., num_bins - 1 (linear, ``value_at_level_10`` at level 10)."""
    return torch.arange(num_bins, dtype=torch.float32) * (value_at_level_10 / 10.0)


class RandAugmentTF(v2.RandAugment):
    """RandAugment with magnitudes on the TF/timm *level* scale, where the ResNet-RS configs' 10 and 15 live.

    torchvision's :class:`~torchvision.transforms.v2.RandAugment` spreads ``num_magnitude_bins`` between 0
    and its maximum strength and cannot express a level above that maximum; the TF implementation used by
    ResNet-RS scales every op linearly with ``level / 10`` and does not stop at 10 (RS-101 and larger use
    15, i.e. 1.5x the level-10 strength). This subclass keeps torchvision's ops, sampling and
    level-10 strengths (shear 0.3, translate 45 % of the side, rotate 30 degrees, colour/contrast/
    brightness/sharpness factors 1 +- 0.9, posterize to 4 bits, solarize everything) and only replaces the
    magnitude table with that linear scale, clamped where an op would stop being valid (enhance factors
    stay above 0, at least 1 bit is kept, the solarize threshold does not go below 0).

    Args:
        num_ops: ops applied in sequence (ResNet-RS: 2).
        magnitude: TF level (integer >= 0; ResNet-RS: 10 or 15).
        interpolation: interpolation of the geometric ops.
        fill: fill value of the geometric ops (TF fills with grey 128).
    """

    _AUGMENTATION_SPACE = {
        "Identity": (lambda num_bins, height, width: None, False),
        "ShearX": (lambda num_bins, height, width: _levels(num_bins, 0.3), True),
        "ShearY": (lambda num_bins, height, width: _levels(num_bins, 0.3), True),
        "TranslateX": (lambda num_bins, height, width: _levels(num_bins, 150.0 / 331.0 * width), True),
        "TranslateY": (lambda num_bins, height, width: _levels(num_bins, 150.0 / 331.0 * height), True),
        "Rotate": (lambda num_bins, height, width: _levels(num_bins, 30.0), True),
        "Brightness": (lambda num_bins, height, width: _levels(num_bins, 0.9).clamp(max=0.99), True),
        "Color": (lambda num_bins, height, width: _levels(num_bins, 0.9).clamp(max=0.99), True),
        "Contrast": (lambda num_bins, height, width: _levels(num_bins, 0.9).clamp(max=0.99), True),
        "Sharpness": (lambda num_bins, height, width: _levels(num_bins, 0.9).clamp(max=0.99), True),
        "Posterize": (lambda num_bins, height, width: (8 - _levels(num_bins, 4.0)).round().clamp(min=1).int(), False),
        "Solarize": (lambda num_bins, height, width: (1.0 - _levels(num_bins, 1.0)).clamp(min=0.0), False),
        "AutoContrast": (lambda num_bins, height, width: None, False),
        "Equalize": (lambda num_bins, height, width: None, False),
    }

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: int = 10,
        interpolation: Union[str, v2.InterpolationMode] = v2.InterpolationMode.BILINEAR,
        fill: int = 128,
    ) -> None:
        if isinstance(magnitude, bool) or not isinstance(magnitude, int) or magnitude < 0:
            raise ValueError(f"RandAugment magnitude must be an integer level >= 0, got {magnitude!r}")
        # One bin per level 0..magnitude, so that bin `magnitude` holds the strength of that level.
        super().__init__(
            num_ops=num_ops, magnitude=magnitude, num_magnitude_bins=magnitude + 1, interpolation=interpolation, fill=fill
        )


def interpolation_mode(name: str) -> v2.InterpolationMode:
    """torchvision's interpolation mode for a name such as ``"bilinear"`` / ``"bicubic"`` (``DATA.INTERPOLATION``)."""
    try:
        return v2.InterpolationMode(name.lower())
    except ValueError:
        valid = [m.value for m in v2.InterpolationMode]
        raise ValueError(f"unknown interpolation {name!r}; expected one of {valid}") from None


def build_train_transform(
    size: int,
    *,
    area: Tuple[float, float] = (0.08, 1.0),
    aspect: Tuple[float, float] = (3 / 4, 4 / 3),
    interpolation: str = "bicubic",
    flip: bool = True,
    randaugment_magnitude: Union[int, None] = 10,
    randaugment_ops: int = 2,
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
) -> v2.Compose:
    """The ResNet-RS train transform: uint8 (C, H, W) -> normalised float32 (C, size, size).

    Args:
        size: train resolution.
        area: range of the crop area as a fraction of the image area.
        aspect: range of the crop aspect ratio (width / height).
        interpolation: resize kernel name ("bicubic" for ResNet-RS).
        flip: random horizontal flip with probability 0.5.
        randaugment_magnitude: TF RandAugment level (see :class:`RandAugmentTF`); None disables RandAugment.
        randaugment_ops: RandAugment ops per image.
        mean, std: per-channel normalisation on the [0, 1] scale.
    """
    mode = interpolation_mode(interpolation)
    steps = [v2.RandomResizedCrop(size, scale=tuple(area), ratio=tuple(aspect), interpolation=mode, antialias=True)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    if randaugment_magnitude is not None:
        steps.append(RandAugmentTF(randaugment_ops, randaugment_magnitude, interpolation=v2.InterpolationMode.BILINEAR))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


def eval_resize_size(size: int, crop_pct: float) -> int:
    """Short side to resize to before a ``size`` centre crop covering ``crop_pct`` of it (floor, as timm)."""
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
    return int(size / crop_pct)


def build_eval_transform(
    size: int,
    *,
    crop_pct: float = 0.875,
    interpolation: str = "bicubic",
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
) -> v2.Compose:
    """The ResNet-RS eval transform: resize the short side to ``size / crop_pct``, centre-crop ``size``,
    convert to float32 and normalise."""
    return v2.Compose(
        [
            v2.Resize(eval_resize_size(size, crop_pct), interpolation=interpolation_mode(interpolation), antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )


def normalize_uint8(
    x: torch.Tensor, mean: Sequence[float], std: Sequence[float], *,
    memory_format: torch.memory_format = torch.contiguous_format, out: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``(x / 255 - mean) / std`` of a uint8 (B, C, ...) batch as float32, on ``x``'s device.

    Computed as ``(float(x) - 255 mean) / (255 std)``: one conversion into ``memory_format`` (whatever the
    layout of ``x``, e.g. channels-last clips from :func:`rs_video.data.collate_clips`), then an in-place
    subtraction and division. The video data set's float32 output (``rs_video.data.ClipTransform``) and the
    engine's on-device normalisation of uint8 batches (``rs_image.engine.Task.prepare_input``) both call it,
    so ``DATA.OUTPUT_DTYPE`` uint8 and float32 give the same model input.

    Args:
        x: uint8 tensor with channels in dimension 1 (any strides, e.g. channels-last clips).
        mean, std: per-channel values on the [0, 1] scale (``DATA.MEAN``, ``DATA.STD``).
        memory_format: layout of the result (e.g. ``torch.channels_last_3d``).
        out: a float32 tensor of ``x``'s shape to write the result into (e.g. one clip's row of a batch),
            instead of a new one in ``memory_format``; the values are the same.
    """
    if x.dtype != torch.uint8 or x.ndim < 2:
        raise ValueError(f"expected a uint8 (B, C, ...) tensor, got {x.dtype} of shape {tuple(x.shape)}")
    channels = x.shape[1]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"DATA.MEAN / DATA.STD have {len(mean)} / {len(std)} values for {channels} channels")
    shape = (1, channels) + (1,) * (x.ndim - 2)
    mean_255 = torch.tensor([255.0 * float(m) for m in mean], device=x.device).view(shape)
    std_255 = torch.tensor([255.0 * float(s) for s in std], device=x.device).view(shape)
    if out is None:
        out = x.to(torch.float32, memory_format=memory_format)
    elif out.dtype != torch.float32 or out.shape != x.shape:
        raise ValueError(f"out must be float32 of shape {tuple(x.shape)}, got {out.dtype} {tuple(out.shape)}")
    else:
        out.copy_(x)
    return out.sub_(mean_255).div_(std_255)

"""Batch-level MixUp / CutMix for image and video batches, from ``torchvision.transforms.v2``.

Not part of the ResNet-RS recipes (which use RandAugment or scale jitter, label smoothing, dropout and
stochastic depth); offered for fine-tuning experiments with the SlowFast/timm ``MIXUP.*`` keys.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch.nn import functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

__all__ = ["BatchMixup"]


class BatchMixup:
    """With probability ``prob`` apply CutMix (probability ``switch_prob``) or MixUp to a batch.

    ``__call__(x, labels (B,)) -> (x, soft targets (B, num_classes))`` for images (B, C, H, W) and clips
    (B, C, T, H, W); a clip batch is handed to torchvision as a ``tv_tensors.Video`` so that CutMix cuts
    the same box out of every frame and MixUp mixes whole clips. A batch left unmixed gets one-hot
    targets, so the loss always sees the same target type.
    """

    def __init__(
        self, num_classes: int, mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0, prob: float = 1.0,
        switch_prob: float = 0.5,
    ) -> None:
        if mixup_alpha <= 0 and cutmix_alpha <= 0:
            raise ValueError("MixUp needs MIXUP.ALPHA > 0 or MIXUP.CUTMIX_ALPHA > 0")
        self.num_classes = num_classes
        self.mixup: Optional[v2.MixUp] = v2.MixUp(alpha=mixup_alpha, num_classes=num_classes) if mixup_alpha > 0 else None
        self.cutmix: Optional[v2.CutMix] = (
            v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes) if cutmix_alpha > 0 else None
        )
        self.prob = prob
        self.switch_prob = switch_prob

    @classmethod
    def from_cfg(cls, cfg) -> Optional["BatchMixup"]:
        """From the ``MIXUP`` keys and ``MODEL.NUM_CLASSES``; None when ``MIXUP.ENABLE`` is off."""
        if not cfg.MIXUP.ENABLE:
            return None
        m = cfg.MIXUP
        return cls(
            num_classes=int(cfg.MODEL.NUM_CLASSES), mixup_alpha=float(m.ALPHA), cutmix_alpha=float(m.CUTMIX_ALPHA),
            prob=float(m.PROB), switch_prob=float(m.SWITCH_PROB),
        )

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if x.ndim not in (4, 5):
            raise ValueError(f"expected images (B, C, H, W) or clips (B, C, T, H, W), got shape {tuple(x.shape)}")
        if torch.rand(()) >= self.prob:
            return x, F.one_hot(labels, self.num_classes).to(x.dtype)
        use_cutmix = self.cutmix is not None and (self.mixup is None or torch.rand(()) < self.switch_prob)
        op = self.cutmix if use_cutmix else self.mixup
        assert op is not None
        if x.ndim == 4:
            return op(x, labels)
        mixed, targets = op(tv_tensors.Video(x.transpose(1, 2)), labels)  # torchvision's Video is (B, T, C, H, W)
        return mixed.as_subclass(torch.Tensor).transpose(1, 2), targets

"""Learning-rate schedule of the ResNet-RS recipe: linear warm-up, then cosine decay, per step.

The cosine runs over the whole training (as in TF Model Garden, ``decay_steps = train_steps``, and in
SlowFast): ``lr(s) = end + (peak - end) * (1 + cos(pi * s / total)) / 2``. During the first
``warmup_steps`` the rate rises linearly from ``warmup_start_lr`` to the cosine value at the end of the
warm-up. The schedule is a :class:`torch.optim.lr_scheduler.LambdaLR`, stepped once per optimizer step,
so it is saved and restored with the scheduler's ``state_dict``.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["cosine_warmup_lr", "build_cosine_warmup_scheduler"]


def cosine_warmup_lr(
    step: int, *, total_steps: int, warmup_steps: int, peak_lr: float, warmup_start_lr: float = 0.0, end_lr: float = 0.0
) -> float:
    """Learning rate at optimizer step ``step`` (0-based)."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")

    def cosine(s: float) -> float:
        return end_lr + (peak_lr - end_lr) * 0.5 * (1.0 + math.cos(math.pi * min(s, total_steps) / total_steps))

    if warmup_steps > 0 and step < warmup_steps:
        target = cosine(warmup_steps)
        return warmup_start_lr + (target - warmup_start_lr) * step / warmup_steps
    return cosine(step)


def build_cosine_warmup_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    warmup_steps: int,
    warmup_start_lr: float = 0.0,
    end_lr: float = 0.0,
) -> LambdaLR:
    """A per-step :class:`LambdaLR`; the optimizer's default ``lr`` is the peak rate.

    Each group's own initial rate is multiplied by the same factor, so a group built at ``peak * scale``
    (layer decay) follows the schedule scaled by ``scale``.
    """
    peak = optimizer.defaults["lr"]
    if peak <= 0:
        raise ValueError(f"the optimizer's peak learning rate must be > 0, got {peak}")

    def factor(step: int) -> float:
        return cosine_warmup_lr(
            step, total_steps=total_steps, warmup_steps=warmup_steps, peak_lr=peak,
            warmup_start_lr=warmup_start_lr, end_lr=end_lr,
        ) / peak

    return LambdaLR(optimizer, factor)

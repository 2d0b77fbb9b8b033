"""Classification loss of the ResNet-RS recipe: cross-entropy with label smoothing (0.1).

``torch.nn.CrossEntropyLoss`` already implements label smoothing for class-index targets and for soft
(probability) targets, so the recipe only fixes its settings. With MixUp/CutMix the targets are soft and
the smoothing is applied on top of them, ``(1 - eps) * target + eps / num_classes`` (timm's convention).
"""

from __future__ import annotations

from torch import nn

__all__ = ["build_loss"]


def build_loss(label_smoothing: float = 0.1) -> nn.CrossEntropyLoss:
    """Cross-entropy over logits, mean over the batch, with ``label_smoothing`` (paper/TF: 0.1).

    Accepts ``(B,)`` integer labels or ``(B, num_classes)`` soft targets.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)

"""Classification loss of the ResNet-RS recipe: cross-entropy with label smoothing (0.1); multi-label: binary
cross-entropy on the logits (sigmoid), mean over samples and classes (SlowFast's Charades ``bce_logit``).

``torch.nn.CrossEntropyLoss`` already implements label smoothing for class-index targets and for soft
(probability) targets, so the recipe only fixes its settings. With MixUp/CutMix the targets are soft and
the smoothing is applied on top of them, ``(1 - eps) * target + eps / num_classes`` (timm's convention).
"""

from __future__ import annotations

from torch import nn

__all__ = ["build_loss"]


def build_loss(label_smoothing: float = 0.1, multi_label: bool = False) -> nn.Module:
    """Cross-entropy over logits, mean over the batch, with ``label_smoothing`` (paper/TF: 0.1).

    Accepts ``(B,)`` integer labels or ``(B, num_classes)`` soft targets. With ``multi_label``:
    ``BCEWithLogitsLoss`` on ``(B, num_classes)`` multi-hot targets; label smoothing is refused there
    (``SOLVER.LABEL_SMOOTHING`` must be 0).
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if multi_label:
        if label_smoothing:
            raise ValueError("label smoothing is not defined here for multi-label targets; set SOLVER.LABEL_SMOOTHING 0")
        return nn.BCEWithLogitsLoss()
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)

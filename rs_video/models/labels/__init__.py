"""Class lists of released weights, as package data: ``<name>.txt``, one class name a line, in output order.

``kinetics400.txt`` holds the 400 Kinetics-400 classes in the order of the official class list's sorted names,
the order of the PyTorchVideo / SlowFast hub checkpoints (``slow_r50``, ``i3d_r50``, ``c2d_r50``) and of the TF
Model Garden ones (checked against torchvision's ``Kinetics400`` categories and GluonCV/decord's list). A
registered model names its list in ``pretrained_cfg.label_set``.
"""

from __future__ import annotations

from importlib import resources
from typing import List

from rs_image.errors import UserError

__all__ = ["LABEL_SETS", "load_label_set"]

LABEL_SETS = ("kinetics400",)


def load_label_set(name: str) -> List[str]:
    """The class names of the label set ``name`` (one of :data:`LABEL_SETS`), in output order."""
    if name not in LABEL_SETS:
        raise UserError(f"unknown label set {name!r}; shipped: {', '.join(LABEL_SETS)}")
    text = resources.files(__package__).joinpath(f"{name}.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line]

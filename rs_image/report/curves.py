"""Training curves from ``OUTPUT_DIR/metrics.jsonl`` as one PNG, without TensorBoard.

Three panels over the global step: loss (train per logged step, train mean per epoch, validation raw and
EMA per epoch), learning rate (per logged step) and top-1 (train per logged step when there is no MixUp,
validation raw and EMA per epoch); the epochs are marked on a second axis on top. A resumed run appends to
the same file and may log a step twice; the last record of a step wins.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from rs_image.errors import DataError, DataNotFoundError

from .figure import new_figure, save_png

__all__ = ["METRICS_FILE", "CURVES_FILE", "read_metrics", "curve", "training_curves_figure", "write_training_curves"]

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "training_curves.png"
_TRAINING_TYPES = ("train", "train_epoch", "val")


def read_metrics(path: os.PathLike | str) -> List[Dict[str, Any]]:
    """The records of a ``metrics.jsonl``.

    Raises:
        DataNotFoundError: the file does not exist.
        DataError: a line is not a JSON object (the message names file and line), or the file holds no
            training record (``train``, ``train_epoch`` or ``val``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such file (is it a training OUTPUT_DIR?)")
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: not a JSON line ({error.msg})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            records.append(record)
    if not any(r.get("type") in _TRAINING_TYPES for r in records):
        raise DataError(f"{path}: no training records (train, train_epoch or val) to plot")
    return records


def curve(records: Sequence[Dict[str, Any]], kind: str, key: str) -> Tuple[List[int], List[float]]:
    """``(global steps, values)`` of ``key`` in the records of type ``kind``, by step, the last record of a
    step winning; records without the key or without a finite value are left out."""
    by_step: Dict[int, float] = {}
    for r in records:
        value = r.get(key)
        if r.get("type") == kind and "global_step" in r and isinstance(value, (int, float)) and math.isfinite(value):
            by_step[int(r["global_step"])] = float(value)
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def _steps_per_epoch(records: Sequence[Dict[str, Any]]) -> Optional[int]:
    """The steps of an epoch when every ``train_epoch`` record says the same (else None: no epoch axis)."""
    ratios = {int(r["global_step"]) / int(r["epoch"]) for r in records
              if r.get("type") == "train_epoch" and r.get("epoch") and "global_step" in r}
    if len(ratios) != 1:
        return None
    ratio = ratios.pop()
    return int(ratio) if ratio == int(ratio) and ratio > 0 else None


def training_curves_figure(records: Sequence[Dict[str, Any]], title: Optional[str] = None) -> Any:
    """The curves of :func:`read_metrics` records as a ``matplotlib.figure.Figure`` (not saved).

    Axes in order: loss, learning rate, top-1 (mAP when the validation records have it: multi-label); every line is labelled (``train (per step)``, ``train (epoch
    mean)``, ``val``, ``val EMA``) and its data is the records' (see :func:`curve`).
    """
    figure = new_figure((9.0, 9.0))
    ax_loss, ax_lr, ax_top1 = figure.subplots(3, 1, sharex=True)
    per_step, epoch_mean = dict(lw=1, alpha=0.8, color="tab:blue"), dict(marker="o", color="tab:orange")
    val, val_ema = dict(marker="s", ls="--", color="tab:green"), dict(marker="^", ls="--", color="tab:red")
    multi_label = any(r.get("type") == "val" and "mAP" in r for r in records)
    metric, metric_label = ("mAP", "mAP (%)") if multi_label else ("top1", "top-1 (%)")
    series = [  # one colour per series in every panel
        (ax_loss, "train", "loss", "train (per step)", per_step),
        (ax_loss, "train_epoch", "loss", "train (epoch mean)", epoch_mean),
        (ax_loss, "val", "loss", "val", val),
        (ax_loss, "val", "ema_loss", "val EMA", val_ema),
        (ax_lr, "train", "lr", "learning rate (per step)", dict(lw=1.5, color="tab:purple")),
        (ax_top1, "train", "top1", "train (per step)", per_step),
        (ax_top1, "val", metric, "val", val),
        (ax_top1, "val", f"ema_{metric}", "val EMA", val_ema),
    ]
    for ax, kind, key, label, style in series:
        steps, values = curve(records, kind, key)
        if steps:
            ax.plot(steps, values, label=label, **style)
    for ax, ylabel in ((ax_loss, "loss"), (ax_lr, "learning rate"), (ax_top1, metric_label)):
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(loc="best", fontsize=8)
    ax_top1.set_xlabel("global step (optimizer steps)")
    steps_per_epoch = _steps_per_epoch(records)
    if steps_per_epoch:
        top = ax_loss.secondary_xaxis("top", functions=(lambda s: s / steps_per_epoch, lambda e: e * steps_per_epoch))
        top.set_xlabel("epoch")
    ax_loss.set_title(title or "Training curves (metrics.jsonl)")
    return figure


def write_training_curves(output_dir: os.PathLike | str, path: os.PathLike | str | None = None) -> Path:
    """Draw ``output_dir/metrics.jsonl`` to ``path`` (default ``output_dir/training_curves.png``), atomically;
    returns the path. Raises as :func:`read_metrics`."""
    output_dir = Path(output_dir)
    records = read_metrics(output_dir / METRICS_FILE)
    figure = training_curves_figure(records, title=f"Training curves: {output_dir.resolve().name}")
    return save_png(figure, path if path is not None else output_dir / CURVES_FILE)

"""Per-class results of a test: per-class top-1 / top-k / support, mean class accuracy, confusion counts.

Computed once, from the per-video ensemble scores that :class:`~rs_image.engine.evaluator.MultiViewAggregator`
gathered (every video counted once over processes), over the evaluated videos only: a failed video is in
no class's support and not in the confusion matrix (it is counted as failed in the summary).

Mean class accuracy is the mean of the per-class top-1 over the classes that have test videos; a class
without test videos has support 0, no accuracy (NaN here, ``null`` in JSON, empty in CSV) and is left out of
the mean. mmaction2's ``mean_class_accuracy`` gives the same number except in one case: it averages over the
classes that occur among the labels *or the predictions*, so a class without test videos that the model
predicts enters its mean with accuracy 0.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import torch

from rs_image.fileio import atomic_write

__all__ = ["PerClassResults", "ClassStats", "class_stats", "class_names_for", "write_per_class_csv", "write_confusion_csv"]


def class_names_for(names: Optional[Sequence[str]], num_classes: int) -> List[str]:
    """``num_classes`` names: the given ones first, the index as a string for classes without one."""
    names = [str(n) for n in (names or [])][:num_classes]
    return names + [str(i) for i in range(len(names), num_classes)]


@dataclass
class PerClassResults:
    """What every per-class result has: class names and per-class support (a count per class)."""

    names: List[str]
    support: torch.Tensor

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def num_classes_with_support(self) -> int:
        return int((self.support > 0).sum())

    def mean_over_supported(self, values: torch.Tensor) -> float:
        """Mean of per-class ``values`` over the classes with support (NaN when there is none)."""
        present = self.support > 0
        return float(values[present].mean()) if bool(present.any()) else float("nan")


@dataclass
class ClassStats(PerClassResults):
    """Per-class results over the evaluated samples (see the module docstring).

    Attributes:
        names: class names, index order.
        support: (C,) evaluated samples per true class.
        top1, topk: (C,) accuracy in % per true class (NaN without support).
        confusion: (C, C) counts, row = true class, column = predicted class (top-1 of the ensemble).
        k: the k of ``topk``.
        num_unlabeled: evaluated samples without a label in ``0 .. C - 1`` (e.g. an unlabelled test CSV);
            they are in no class.
    """

    top1: torch.Tensor
    topk: torch.Tensor
    confusion: torch.Tensor
    k: int
    num_unlabeled: int = 0

    @property
    def mean_class_accuracy(self) -> float:
        """Mean per-class top-1 (%) over the classes with test samples (NaN when there is none)."""
        return self.mean_over_supported(self.top1)

    def rows(self) -> List[Dict[str, Any]]:
        """One dict per class: ``class``, ``name``, ``support``, ``top1``, ``top<k>`` (None without support)."""
        out = []
        for c, name in enumerate(self.names):
            n = int(self.support[c])
            out.append({"class": c, "name": name, "support": n, "top1": float(self.top1[c]) if n else None,
                        f"top{self.k}": float(self.topk[c]) if n else None})
        return out


def class_stats(
    scores: torch.Tensor, labels: torch.Tensor, k: int, names: Optional[Sequence[str]] = None
) -> ClassStats:
    """Per-class results of the samples' ensemble ``scores`` (N, C) against ``labels`` (N,).

    ``k`` is clamped to C; the top-k predictions are ``scores.topk(k)``, as for the overall accuracy, so
    the support-weighted mean of the per-class top-1 is the overall top-1 (when every sample is labelled).
    """
    num_classes = scores.shape[1]
    k = min(k, num_classes)
    labelled = (labels >= 0) & (labels < num_classes)
    scores, labels = scores[labelled], labels[labelled].long()
    pred = scores.topk(k, dim=1).indices if labels.numel() else torch.zeros(0, k, dtype=torch.long)
    hits = pred == labels[:, None]
    support = torch.bincount(labels, minlength=num_classes)
    top1_hits = torch.bincount(labels, weights=hits[:, 0].double(), minlength=num_classes)
    topk_hits = torch.bincount(labels, weights=hits.any(dim=1).double(), minlength=num_classes)
    denominator = support.double().where(support > 0, torch.tensor(float("nan"), dtype=torch.float64))
    confusion = torch.bincount(labels * num_classes + pred[:, 0], minlength=num_classes * num_classes)
    return ClassStats(
        names=class_names_for(names, num_classes), support=support, top1=100.0 * top1_hits / denominator,
        topk=100.0 * topk_hits / denominator, confusion=confusion.reshape(num_classes, num_classes), k=k,
        num_unlabeled=int((~labelled).sum()),
    )


def _percent(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.2f}"


def write_per_class_csv(path: os.PathLike | str, stats: ClassStats) -> None:
    """``class,name,support,top1,top<k>`` (accuracies in %, empty without support), atomically."""
    with atomic_write(path, newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", "name", "support", "top1", f"top{stats.k}"])
        for c, name in enumerate(stats.names):
            w.writerow([c, name, int(stats.support[c]), _percent(float(stats.top1[c])), _percent(float(stats.topk[c]))])


def write_confusion_csv(path: os.PathLike | str, stats: ClassStats) -> None:
    """The confusion counts with class names: a header row of predicted classes, then one row per true
    class starting with its name. Written atomically."""
    with atomic_write(path, newline="") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *stats.names])
        for name, row in zip(stats.names, stats.confusion.tolist()):
            w.writerow([name, *row])

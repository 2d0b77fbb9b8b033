"""Multi-label classification results (``DATA.MULTI_LABEL``, e.g. Charades): per-class AP and mAP, video level.

The protocol is SlowFast's Charades evaluation (``slowfast/utils/meters.py``, ``get_map``): the scores of a
video are the ensemble of its views' sigmoid probabilities (``TEST.ENSEMBLE_METHOD max`` by default for
multi-label), the AP of each class is scikit-learn's ``average_precision_score`` over the evaluated videos
(the step-wise area under the precision-recall curve, no interpolation), and mAP is the mean AP over the
classes that have at least one positive video (a class without positives has no AP: NaN here, empty in
``per_class.csv``, and is left out of the mean, as SlowFast drops it). AP values are in %.

This is video-level classification mAP; AVA's frame-level detection AP (boxes matched at an IoU) is a different
protocol and is not computed here.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import torch

from rs_image.fileio import atomic_write

from .class_metrics import PerClassResults, class_names_for

__all__ = ["MultiLabelStats", "multilabel_stats", "write_multilabel_per_class_csv"]


@dataclass
class MultiLabelStats(PerClassResults):
    """Per-class AP over the evaluated samples.

    Attributes:
        names: class names, index order.
        support: (C,) evaluated samples in which the class is present (positives).
        ap: (C,) average precision in % (NaN without positives).
    """

    ap: torch.Tensor

    @property
    def mean_ap(self) -> float:
        """mAP (%) over the classes with positives (NaN when there is none)."""
        return self.mean_over_supported(self.ap)

    def rows(self) -> List[Dict[str, Any]]:
        """One dict per class: ``class``, ``name``, ``support``, ``ap`` (None without positives)."""
        return [{"class": c, "name": name, "support": int(self.support[c]),
                 "ap": float(self.ap[c]) if int(self.support[c]) else None} for c, name in enumerate(self.names)]


def multilabel_stats(scores: torch.Tensor, targets: torch.Tensor, names: Optional[Sequence[str]] = None) -> MultiLabelStats:
    """Per-class AP of ``scores`` (N, C) against multi-hot ``targets`` (N, C) (scikit-learn, SlowFast's rule)."""
    try:
        from sklearn.metrics import average_precision_score
    except ImportError as e:  # pragma: no cover - the [multilabel] extra
        raise ImportError("multi-label mAP needs scikit-learn: pip install 'rs-video[multilabel]'") from e
    num_classes = scores.shape[1]
    targets = (targets > 0.5).to(torch.int64).cpu()
    scores = scores.detach().to("cpu", torch.float64)
    support = targets.sum(dim=0)
    ap = torch.full((num_classes,), float("nan"), dtype=torch.float64)
    present = torch.nonzero(support > 0).flatten()
    if present.numel():
        values = average_precision_score(targets[:, present].numpy(), scores[:, present].numpy(), average=None)
        ap[present] = 100.0 * torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    return MultiLabelStats(class_names_for(names, num_classes), support, ap)


def write_multilabel_per_class_csv(path: os.PathLike | str, stats: MultiLabelStats) -> None:
    """``class,name,support,ap`` (AP in %, empty without positives), atomically."""
    with atomic_write(path, newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", "name", "support", "ap"])
        for c, name in enumerate(stats.names):
            value = float(stats.ap[c])
            w.writerow([c, name, int(stats.support[c]), "" if math.isnan(value) else f"{value:.2f}"])

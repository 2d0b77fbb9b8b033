"""Frame-level AVA evaluation: PASCAL VOC AP at IoU 0.5 per class and their mean, the official protocol.

This is the protocol of the ActivityNet ``ava_evaluation`` code (TF Object Detection API's
``PascalDetectionEvaluator``, run by SlowFast's ``ava_eval_helper``), reproduced step by step:

* keys are keyframes ``(video, timestamp)``; keyframes in the excluded-timestamps file are skipped in the
  ground truth and in the detections; actions not in the label map (the 60 of the ActivityNet 2019 list)
  are skipped on both sides;
* per keyframe only the ``MAX_DETECTIONS_PER_KEYFRAME`` (50) highest-scored detections (box, action) are
  kept, then, per class and in descending score, each detection is matched to the ground-truth box it
  overlaps most (IoU as ``torchvision.ops.box_iou``, areas without +1): a true positive when that IoU is
  >= 0.5 and the box was not matched before, otherwise a false positive (also when its best box was taken
  and another one would overlap enough); detections on keyframes without ground truth are false positives;
* per class, all detections sorted by score (descending; ties as ``np.argsort(scores)[::-1]`` with a stable
  sort), precision and recall (over the class's ground-truth boxes) accumulated, and AP the area under the
  precision envelope (VOC 2010+ "all points": precision made non-increasing, summed over recall steps);
* a class without ground-truth boxes has AP NaN and is left out of the mean (``nanmean``), as there.

No package on the registries carries this code (checked: no ``ava``/``activitynet`` evaluation package on
PyPI besides the TF Object Detection API itself), so the tests check it against APs computed by hand.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from torchvision.ops import box_iou

from rs_image.fileio import atomic_write

from .data.ava import AvaBox, KeyframeKey

__all__ = [
    "MAX_DETECTIONS_PER_KEYFRAME", "Detection", "AvaEvaluation", "voc_average_precision", "evaluate_ava",
    "write_detections_csv", "write_per_class_ap_csv",
]

MAX_DETECTIONS_PER_KEYFRAME = 50
"""Detections kept per keyframe (ActivityNet's ``read_csv(..., capacity=50)`` for the detections)."""


@dataclass(frozen=True)
class Detection:
    """One scored action of one box: normalised (x1, y1, x2, y2), action id (1-based) and score."""

    box: Tuple[float, float, float, float]
    action: int
    score: float


def voc_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """PASCAL VOC AP (all points) of a precision/recall curve in descending-score order: precision is made
    non-increasing from the right, then summed over the points where recall changes."""
    if precision.size == 0:
        return 0.0
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.where(recall[1:] != recall[:-1])[0] + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


@dataclass
class AvaEvaluation:
    """Per-class AP (NaN for classes without ground truth), their mean, and the counts behind them."""

    ap: Dict[int, float]
    names: Dict[int, str]
    num_groundtruth: Dict[int, int]
    num_detections: Dict[int, int]
    num_keyframes: int
    num_excluded: int
    extra: Dict[str, object] = field(default_factory=dict)

    @property
    def mean_ap(self) -> float:
        values = [v for v in self.ap.values() if not math.isnan(v)]
        return float(np.mean(values)) if values else float("nan")

    def as_dict(self) -> Dict[str, object]:
        return {
            "mAP": 100.0 * self.mean_ap,
            "num_classes_with_groundtruth": sum(1 for v in self.ap.values() if not math.isnan(v)),
            "num_keyframes": self.num_keyframes, "num_excluded_keyframes": self.num_excluded,
            "per_class": [
                {"id": c, "name": self.names[c], "ap": 100.0 * self.ap[c], "groundtruth": self.num_groundtruth[c],
                 "detections": self.num_detections[c]} for c in self.ap
            ],
            **self.extra,
        }

    def format(self) -> str:
        return (f"frame mAP@0.5 {100.0 * self.mean_ap:.2f}% over {self.as_dict()['num_classes_with_groundtruth']} "
                f"classes with ground truth, {self.num_keyframes} keyframes ({self.num_excluded} excluded)")


def _matches(detections: List[Detection], truths: List[Tuple[float, ...]], threshold: float) -> List[bool]:
    """True/false positive of each detection (in the given, descending-score order) against ``truths``."""
    if not truths:
        return [False] * len(detections)
    iou = box_iou(torch.tensor([d.box for d in detections], dtype=torch.float64),
                  torch.tensor(truths, dtype=torch.float64))
    best = iou.argmax(dim=1).tolist()
    taken = [False] * len(truths)
    hits = []
    for i, g in enumerate(best):
        hit = bool(iou[i, g] >= threshold) and not taken[g]
        if hit:
            taken[g] = True
        hits.append(hit)
    return hits


def evaluate_ava(
    groundtruth: Mapping[KeyframeKey, Sequence[AvaBox]],
    detections: Mapping[KeyframeKey, Sequence[Detection]],
    label_map: Mapping[int, str],
    excluded: Iterable[KeyframeKey] = (),
    iou_threshold: float = 0.5,
    max_detections_per_keyframe: int = MAX_DETECTIONS_PER_KEYFRAME,
) -> AvaEvaluation:
    """Frame-level AP per class of ``label_map`` and the mAP (module docstring for the protocol)."""
    excluded_keys: Set[KeyframeKey] = set(excluded)
    classes = list(label_map)
    truths: Dict[KeyframeKey, Dict[int, List[Tuple[float, ...]]]] = {}
    num_gt = {c: 0 for c in classes}
    for key, boxes in groundtruth.items():
        if key in excluded_keys:
            continue
        for b in boxes:
            for a in b.actions:
                if a in num_gt:
                    truths.setdefault(key, {}).setdefault(a, []).append(tuple(b.box))
                    num_gt[a] += 1
    scores: Dict[int, List[float]] = {c: [] for c in classes}
    hits: Dict[int, List[bool]] = {c: [] for c in classes}
    for key, dets in detections.items():
        if key in excluded_keys:
            continue
        kept = sorted((d for d in dets if d.action in num_gt), key=lambda d: -d.score)[:max_detections_per_keyframe]
        for c in classes:
            of_class = [d for d in kept if d.action == c]
            if of_class:
                scores[c] += [d.score for d in of_class]
                hits[c] += _matches(of_class, truths.get(key, {}).get(c, []), iou_threshold)
    ap: Dict[int, float] = {}
    for c in classes:
        if num_gt[c] == 0:
            ap[c] = float("nan")
            continue
        order = np.argsort(np.asarray(scores[c], dtype=np.float64), kind="stable")[::-1]
        tp = np.asarray(hits[c], dtype=np.float64)[order]
        cum_tp, cum_fp = np.cumsum(tp), np.cumsum(1.0 - tp)
        precision = cum_tp / np.maximum(cum_tp + cum_fp, 1e-12)
        ap[c] = voc_average_precision(precision, cum_tp / num_gt[c])
    keys = {k for k in groundtruth} | {k for k in detections}
    return AvaEvaluation(
        ap=ap, names=dict(label_map), num_groundtruth=num_gt, num_detections={c: len(scores[c]) for c in classes},
        num_keyframes=len(keys - excluded_keys), num_excluded=len(keys & excluded_keys),
    )


def write_detections_csv(path: str, detections: Mapping[KeyframeKey, Sequence[Detection]],
                         label_map: Optional[Mapping[int, str]] = None) -> None:
    """AVA's detection format: ``video_id,timestamp,x1,y1,x2,y2,action_id,score``, one row per scored
    action of a box (only label-map actions with ``label_map``), keyframes in sorted order."""
    with atomic_write(path) as f:
        writer = csv.writer(f, lineterminator="\n")
        for (video, timestamp) in sorted(detections):
            for d in detections[(video, timestamp)]:
                if label_map is None or d.action in label_map:
                    writer.writerow([video, f"{int(timestamp):04d}", *(f"{v:.3f}" for v in d.box), d.action,
                                     f"{d.score:.6f}"])


def write_per_class_ap_csv(path: str, evaluation: AvaEvaluation) -> None:
    """``id,name,ap,groundtruth,detections`` per class (AP in %, empty when the class has no ground truth)."""
    with atomic_write(path) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "name", "ap", "groundtruth", "detections"])
        for c, value in evaluation.ap.items():
            writer.writerow([c, evaluation.names[c], "" if math.isnan(value) else f"{100.0 * value:.4f}",
                             evaluation.num_groundtruth[c], evaluation.num_detections[c]])

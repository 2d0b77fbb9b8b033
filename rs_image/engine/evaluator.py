"""Evaluation: single-view validation during training and the multi-view test of ``tools/test_net.py``.

Multi-view test (SlowFast protocol): every video is seen as ``TEST.NUM_ENSEMBLE_VIEWS`` temporal clips x
``TEST.NUM_SPATIAL_CROPS`` spatial crops; the scores of its views (softmax probabilities, or logits with
``TEST.ENSEMBLE_SCORES logit``: :func:`view_scores`) are summed (or, with ``TEST.ENSEMBLE_METHOD max``,
maximised per class) and top-1/top-5 are computed on the aggregate (video level). Each view's own top-1 /
top-5 hit is counted as it arrives, which gives the single-view (clip level) accuracy of the same videos;
per-class results and the confusion counts come from the aggregate (:mod:`~rs_image.engine.class_metrics`).
Multi-label (``DATA.MULTI_LABEL``): the views' sigmoid probabilities are ensembled and the result is the
per-class AP and mAP of :mod:`~rs_image.engine.multilabel` instead of top-k accuracies.

Counting every video exactly once with several processes: the test set is split with
:class:`~rs_image.engine.samplers.ShardedEvalSampler` (process ``r`` takes the ``r``-th contiguous block of
items, no padding, no duplicates; contiguous so that the views of a video stay together and the video data
set decodes it once); inside a process :class:`MultiViewAggregator` ignores a repeated ``(video_index,
view_index)`` pair; the per-video sums (or maxima) and view counts are then reduced over processes, after
checking that no view was scored by two processes (a sampler that pads its shards, such as
``torch.utils.data.DistributedSampler``, is refused with an error). A view whose item reports ``failed``
is left out; a video that lost any view counts as failed and is not scored (the accuracy is always over
complete ``views x crops`` ensembles).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence, Set, Tuple

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from rs_image.fileio import atomic_write

from . import distributed as du
from .class_metrics import ClassStats, class_stats
from .multilabel import MultiLabelStats, multilabel_stats

__all__ = [
    "ENSEMBLE_SCORES",
    "view_scores",
    "MultiViewAggregator",
    "MultiViewSummary",
    "failed_mask",
    "evaluate_single_view",
    "write_predictions",
]

logger = logging.getLogger(__name__)

#: what the views of a sample are ensembled on (``TEST.ENSEMBLE_SCORES``)
ENSEMBLE_SCORES = ("prob", "logit")
_SCORE_WORDS = {"prob": "softmax probabilities", "logit": "logits"}


def view_scores(logits: torch.Tensor, kind: str = "prob", multi_label: bool = False) -> torch.Tensor:
    """The per-view class scores that are ensembled: float32 softmax probabilities (``"prob"``, mmaction2's
    ``average_clips='prob'``; sigmoid probabilities with ``multi_label``, SlowFast's Charades head) or the
    float32 logits themselves (``"logit"``, ``average_clips='score'``)."""
    if kind == "prob":
        return torch.sigmoid(logits.float()) if multi_label else F.softmax(logits.float(), dim=1)
    if kind == "logit":
        return logits.float()
    raise ValueError(f"ensemble scores must be one of {ENSEMBLE_SCORES}, got {kind!r}")


def failed_mask(batch: Dict[str, Any], batch_size: int) -> torch.Tensor:
    """Boolean (B,) mask of items the data set marked as failed (all False when the key is absent)."""
    failed = batch.get("failed")
    if failed is None:
        return torch.zeros(batch_size, dtype=torch.bool)
    return torch.as_tensor(failed, dtype=torch.bool).reshape(batch_size).cpu()


@dataclass
class MultiViewSummary:
    """Result of a multi-view evaluation (accuracies in %, over the evaluated samples).

    ``top1`` / ``top5`` are video level (the ensemble of all views), ``clip_top1`` / ``clip_top5`` single
    view (every view of the same videos scored alone), ``per_class`` the per-class results and confusion
    counts (:class:`~rs_image.engine.class_metrics.ClassStats`).
    """

    top1: float
    top5: float
    num_samples: int
    num_evaluated: int
    num_failed: int
    num_failed_views: int
    num_incomplete: int
    views_per_sample: int
    method: str
    topk: int = 5
    scores: str = "prob"
    clip_top1: float = float("nan")
    clip_top5: float = float("nan")
    mean_class_accuracy: float = float("nan")
    num_classes_with_support: int = 0
    per_class: Optional[ClassStats] = None
    extra: Dict[str, Any] = field(default_factory=dict)
    #: multi-label: mAP (%) and the per-class AP (:mod:`~rs_image.engine.multilabel`); top-k fields are NaN
    mAP: float = float("nan")
    multi_label: bool = False
    per_class_ap: Optional[MultiLabelStats] = None

    def as_dict(self, per_class: bool = True) -> Dict[str, Any]:
        """The flat fields, ``extra``, and with ``per_class`` one dict per class (see :meth:`ClassStats.rows`)."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("extra", "per_class", "per_class_ap")}
        if per_class and self.per_class is not None:
            d["per_class"] = self.per_class.rows()
        if per_class and self.per_class_ap is not None:
            d["per_class"] = self.per_class_ap.rows()
        d.update(self.extra)
        return d

    def format(self) -> str:
        if self.multi_label:
            return (
                f"mAP {self.mAP:.2f}%  ({self.method} of the {'sigmoid probabilities' if self.scores == 'prob' else 'logits'}"
                f" of {self.views_per_sample} views)  evaluated {self.num_evaluated} / {self.num_samples}, failed "
                f"{self.num_failed} (failed views {self.num_failed_views}; {self.num_incomplete} of the failed had some "
                f"usable views)"
            )
        return (
            f"top-1 {self.top1:.2f}%  top-{self.topk} {self.top5:.2f}%  ({self.method} of the "
            f"{_SCORE_WORDS.get(self.scores, self.scores)} of {self.views_per_sample} views)  evaluated "
            f"{self.num_evaluated} / {self.num_samples}, failed {self.num_failed} (failed views "
            f"{self.num_failed_views}; {self.num_incomplete} of the failed had some usable views)"
        )

    def format_details(self) -> List[str]:
        """Lines that follow :meth:`format`: single view vs ensemble (with several views), and the mean class
        accuracy."""
        lines = []
        if self.per_class_ap is not None:
            return [f"mAP over the {self.per_class_ap.num_classes_with_support} classes with positive test samples "
                    f"(of {self.per_class_ap.num_classes})"]
        if self.views_per_sample > 1:
            lines.append(
                f"single view (clip level) top-1 {self.clip_top1:.2f}%  top-{self.topk} {self.clip_top5:.2f}%; "
                f"ensemble of {self.views_per_sample} views (video level) top-1 {self.top1:.2f}%  "
                f"top-{self.topk} {self.top5:.2f}% ({self.top1 - self.clip_top1:+.2f} top-1 points from the ensemble)"
            )
        if self.per_class is not None:
            lines.append(
                f"mean class accuracy {self.mean_class_accuracy:.2f}% over the {self.num_classes_with_support} "
                f"classes with test samples (of {self.per_class.num_classes})"
            )
        return lines


class MultiViewAggregator:
    """Accumulate per-view class scores into per-sample scores, counting each ``(sample, view)`` once.

    Inside a process a repeated ``(sample_index, view_index)`` pair is ignored (first copy wins).
    :meth:`synchronize` then combines the processes. It gathers every process's ``(sample, view)`` keys
    first: a key scored on two processes (a padding ``DistributedSampler`` repeats some indices) is an error,
    since the per-sample sums can no longer be corrected; the engine's
    :class:`~rs_image.engine.samplers.ShardedEvalSampler` never repeats an index.

    Besides the per-sample ensemble it counts, per sample, the views whose own top-1 / top-k was right
    (:attr:`view_hits`), so that the single-view accuracy needs no per-view scores kept.

    Usage (every process)::

        agg = MultiViewAggregator(dataset.num_videos, num_classes, "sum", "prob")
        for batch in loader:
            agg.update(view_scores(model(x), "prob"), batch["label"], batch["video_index"],
                       batch["view_index"], batch["failed"])
        agg.synchronize()                              # collective; every process ends with the total
        summary = agg.summarize(views_per_sample=dataset.num_views, class_names=names)

    Args:
        num_samples: number of videos (or images); sample ids are ``0 .. num_samples - 1``.
        num_classes: score width.
        method: ``"sum"`` (sum of scores) or ``"max"`` (element-wise maximum over views).
        scores: what the caller passes to :meth:`update` (:func:`view_scores`): ``"prob"`` or ``"logit"``;
            it names the ensemble in the summary.
        topk: the k of the top-k accuracies (clamped to ``num_classes``).
        multi_label: labels are multi-hot (N, C) rows; :meth:`summarize` gives mAP instead of top-k.
    """

    _VIEW_BITS = 20  # a (sample, view) key is sample << 20 | view

    def __init__(self, num_samples: int, num_classes: int, method: str = "sum", scores: str = "prob",
                 topk: int = 5, multi_label: bool = False) -> None:
        if method not in ("sum", "max"):
            raise ValueError(f"ensemble method must be 'sum' or 'max', got {method!r}")
        if scores not in ENSEMBLE_SCORES:
            raise ValueError(f"ensemble scores must be one of {ENSEMBLE_SCORES}, got {scores!r}")
        self.num_samples, self.num_classes, self.method = num_samples, num_classes, method
        self.score_kind = scores
        self.topk = min(topk, num_classes)
        fill = 0.0 if method == "sum" else -math.inf
        self.scores = torch.full((num_samples, num_classes), fill, dtype=torch.float64)
        self.multi_label = multi_label
        # -1 = not seen yet (the processes' labels are combined with a maximum)
        self.labels = torch.full((num_samples, num_classes) if multi_label else (num_samples,), -1,
                                 dtype=torch.float32 if multi_label else torch.long)
        self.view_counts = torch.zeros(num_samples, dtype=torch.long)
        self.failed_views = torch.zeros(num_samples, dtype=torch.long)
        #: (num_samples, 2): views of the sample whose own top-1 (column 0) / top-k (column 1) was right
        self.view_hits = torch.zeros(num_samples, 2, dtype=torch.long)
        self._seen: Set[int] = set()

    def update(
        self,
        scores: torch.Tensor,
        labels: torch.Tensor,
        sample_index: torch.Tensor,
        view_index: Optional[torch.Tensor] = None,
        failed: Optional[torch.Tensor] = None,
    ) -> None:
        """Add a batch of views. ``scores`` (B, C) are per-view class scores (e.g. softmax)."""
        scores = scores.detach().to("cpu", torch.float64)
        sample_index = torch.as_tensor(sample_index).reshape(-1).cpu().long()
        b = sample_index.numel()
        labels = torch.as_tensor(labels).cpu()
        labels = labels.reshape(b, self.num_classes).float() if self.multi_label else labels.reshape(-1).long()
        view_index = torch.zeros(b, dtype=torch.long) if view_index is None else torch.as_tensor(view_index).reshape(-1).cpu().long()
        failed = torch.zeros(b, dtype=torch.bool) if failed is None else torch.as_tensor(failed).reshape(-1).cpu().bool()
        if scores.shape != (b, self.num_classes):
            raise ValueError(f"scores of shape {tuple(scores.shape)}, expected ({b}, {self.num_classes})")
        if b and (sample_index.min() < 0 or sample_index.max() >= self.num_samples):
            raise IndexError(f"sample index out of range [0, {self.num_samples}): {sample_index.tolist()}")
        if b and (view_index.min() < 0 or view_index.max() >= 1 << self._VIEW_BITS):
            raise IndexError(f"view index out of range [0, {1 << self._VIEW_BITS}): {view_index.tolist()}")
        keys = (sample_index << self._VIEW_BITS) | view_index
        first = []
        for i, key in enumerate(keys.tolist()):
            if key not in self._seen:  # a padded / repeated view is counted once
                self._seen.add(key)
                first.append(i)
        if not first:
            return
        idx = torch.tensor(first, dtype=torch.long)
        self._fold(sample_index[idx], scores[idx], labels[idx], failed[idx])

    def _fold(self, samples: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, failed: torch.Tensor) -> None:
        """Add views (each counted once) to the per-sample totals."""
        self.labels[samples] = labels
        self.failed_views.index_add_(0, samples[failed], torch.ones_like(samples[failed]))
        rows, sel = samples[~failed], scores[~failed].to(torch.float64)
        if self.method == "sum":
            self.scores.index_add_(0, rows, sel)
        else:
            self.scores.scatter_reduce_(0, rows[:, None].expand_as(sel), sel, "amax", include_self=True)
        self.view_counts.index_add_(0, rows, torch.ones_like(rows))
        if rows.numel() and not self.multi_label:
            hits = sel.topk(self.topk, dim=1).indices == labels[~failed][:, None]
            self.view_hits.index_add_(0, rows, torch.stack([hits[:, 0], hits.any(dim=1)], dim=1).long())

    def _gather_keys(self, device: torch.device) -> List[torch.Tensor]:
        """Every process's (sample, view) keys (collective)."""
        local = torch.tensor(sorted(self._seen), dtype=torch.long, device=device)
        sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(du.get_world_size())]
        torch.distributed.all_gather(sizes, torch.tensor([local.numel()], device=device))
        longest = max(int(s.item()) for s in sizes)
        padded = torch.full((longest,), -1, dtype=torch.long, device=device)
        padded[: local.numel()] = local
        gathered = [torch.empty_like(padded) for _ in sizes]
        torch.distributed.all_gather(gathered, padded)
        return [g[: int(s.item())].cpu() for g, s in zip(gathered, sizes)]

    def synchronize(self) -> None:
        """Combine the partial aggregates of all processes (every process ends with the total).

        A collective call under torch.distributed. Raises RuntimeError (on every process) when a view was
        scored on two processes.
        """
        if not du.is_distributed():
            return
        backend_device = torch.device("cuda", torch.cuda.current_device()) if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
        per_rank = self._gather_keys(backend_device)
        every_key = torch.cat(per_rank)
        repeated = every_key.numel() - torch.unique(every_key).numel()  # the same number on every process
        if repeated:
            raise RuntimeError(
                f"{repeated} (sample, view) pairs were scored on more than one process (a sampler that pads its "
                f"shards, e.g. DistributedSampler); their per-sample sums cannot be corrected. Use "
                f"rs_image.engine.samplers.ShardedEvalSampler (rs_image.engine.runtime.build_eval_loader)."
            )
        scores = self.scores.to(backend_device)
        (du.all_reduce_sum if self.method == "sum" else du.all_reduce_max)(scores)
        self.scores = scores.cpu()
        for name, reduce in (("labels", du.all_reduce_max), ("view_counts", du.all_reduce_sum), ("failed_views", du.all_reduce_sum),
                             ("view_hits", du.all_reduce_sum)):
            t = getattr(self, name).to(backend_device)
            reduce(t)
            setattr(self, name, t.cpu())

    def check_complete(self, views_per_sample: int) -> None:
        """Raises RuntimeError when a sample did not get exactly ``views_per_sample`` views, counted or
        failed: views missing or counted twice, i.e. a sampler that does not cover the data set once."""
        covered = self.view_counts + self.failed_views
        wrong = torch.nonzero(covered != views_per_sample).flatten()
        if wrong.numel():
            examples = ", ".join(f"sample {int(i)}: {int(covered[i])}" for i in wrong[:5])
            raise RuntimeError(f"{wrong.numel()} samples did not get exactly {views_per_sample} views ({examples})")

    def complete_mask(self, views_per_sample: int = 1) -> torch.Tensor:
        """Samples whose views were all scored (none failed or missing): the ones that are evaluated."""
        return (self.view_counts >= views_per_sample) & (self.failed_views == 0) & (self.view_counts > 0)

    def summarize(self, views_per_sample: int = 1, class_names: Optional[Sequence[str]] = None) -> MultiViewSummary:
        """Accuracies (in %) over the samples whose ``views_per_sample`` views were all scored.

        A sample with a failed or missing view counts as failed (the data set marks a broken file's
        remaining views failed, so its few decoded views would give it a different, easier protocol);
        ``num_incomplete`` says how many of the failed samples had some usable views. Video level
        (``top1``, ``top5``: the ensemble), clip level (``clip_top1``, ``clip_top5``: every view of the
        same samples alone), per class and the confusion counts (named by ``class_names``; indices where
        missing), and the mean class accuracy.
        """
        ok = self.complete_mask(views_per_sample)
        n_ok = int(ok.sum())
        if self.multi_label:
            return self._summarize_multi_label(ok, views_per_sample, class_names)
        k = self.topk
        top1 = topk_acc = clip_top1 = clip_topk = float("nan")
        s, y = self.scores[ok], self.labels[ok]
        if n_ok:
            pred = s.topk(k, dim=1).indices
            hits = pred == y[:, None]
            top1 = 100.0 * hits[:, 0].double().mean().item()
            topk_acc = 100.0 * hits.any(dim=1).double().mean().item()
            clip_hits, clip_views = self.view_hits[ok].sum(dim=0), int(self.view_counts[ok].sum())
            clip_top1, clip_topk = (100.0 * clip_hits.double() / clip_views).tolist()
        per_class = class_stats(s, y, k, class_names)
        failed_views, incomplete = self._failure_counts(ok, views_per_sample)
        return MultiViewSummary(
            top1=top1, top5=topk_acc, num_samples=self.num_samples, num_evaluated=n_ok,
            num_failed=self.num_samples - n_ok, num_failed_views=failed_views,
            num_incomplete=incomplete, views_per_sample=views_per_sample, method=self.method, topk=k,
            scores=self.score_kind, clip_top1=clip_top1, clip_top5=clip_topk,
            mean_class_accuracy=per_class.mean_class_accuracy,
            num_classes_with_support=per_class.num_classes_with_support, per_class=per_class,
        )

    def _failure_counts(self, ok: torch.Tensor, views_per_sample: int) -> Tuple[int, int]:
        # A view is failed when its item said so or when it never arrived (a collate that drops items).
        expected = torch.maximum(torch.full_like(self.view_counts, views_per_sample), self.view_counts)
        return int((expected - self.view_counts).sum()), int((~ok & (self.view_counts > 0)).sum())

    def _summarize_multi_label(self, ok: torch.Tensor, views_per_sample: int,
                               class_names: Optional[Sequence[str]]) -> MultiViewSummary:
        stats = multilabel_stats(self.scores[ok], self.labels[ok], class_names)
        failed_views, incomplete = self._failure_counts(ok, views_per_sample)
        n_ok = int(ok.sum())
        nan = float("nan")
        return MultiViewSummary(
            top1=nan, top5=nan, num_samples=self.num_samples, num_evaluated=n_ok, num_failed=self.num_samples - n_ok,
            num_failed_views=failed_views, num_incomplete=incomplete, views_per_sample=views_per_sample,
            method=self.method, topk=self.topk, scores=self.score_kind, mAP=stats.mean_ap, multi_label=True,
            num_classes_with_support=stats.num_classes_with_support, per_class_ap=stats,
        )

    def mean_scores(self) -> torch.Tensor:
        """Per-sample scores normalised per view for ``sum`` (mean probability or logit); raw for ``max``."""
        if self.method == "sum":
            return self.scores / self.view_counts.clamp(min=1).to(self.scores.dtype)[:, None]
        return self.scores


def write_predictions(
    path: os.PathLike | str,
    aggregator: MultiViewAggregator,
    names: Optional[List[str]] = None,
    topk: int = 5,
    views_per_sample: int = 1,
) -> None:
    """Write one CSV row per sample: index, name, label, views used, failed views (failed or missing),
    top-k classes and scores (space separated; the mean probability or logit for ``sum``), top-1 correct.
    Failed samples have empty predictions. Written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    k = min(topk, aggregator.num_classes)
    scores = aggregator.mean_scores()
    top = scores.topk(k, dim=1)
    with atomic_write(path, newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "name", "label", "views", "failed_views", f"top{k}_classes", f"top{k}_scores", "correct"])
        for i in range(aggregator.num_samples):
            views = int(aggregator.view_counts[i])
            failed = max(int(aggregator.failed_views[i]), views_per_sample - views)
            name = names[i] if names is not None else ""
            if aggregator.multi_label:  # the label is the classes present; correct: the top-1 is one of them
                positives = torch.nonzero(aggregator.labels[i] > 0.5).flatten().tolist()
                label: Any = " ".join(map(str, positives))
            else:
                label = int(aggregator.labels[i])
            if views == 0:
                w.writerow([i, name, label, 0, failed, "", "", ""])
                continue
            classes = top.indices[i].tolist()
            correct = classes[0] in positives if aggregator.multi_label else classes[0] == label
            w.writerow([
                i, name, label, views, failed, " ".join(map(str, classes)),
                " ".join(f"{v:.5f}" for v in top.values[i].tolist()), int(correct),
            ])


@torch.no_grad()
def evaluate_single_view(
    model: nn.Module,
    loader: DataLoader,
    prepare_input: Callable[[Dict[str, Any]], torch.Tensor],
    *,
    device: torch.device,
    autocast: ContextManager = contextlib.nullcontext(),
    progress: bool = False,
    desc: str = "val",
    multi_label: bool = False,
) -> Dict[str, float]:
    """Top-1 / top-5 (in %) and cross-entropy of ``model`` on ``loader``, reduced over processes; with
    ``multi_label`` mAP (%, :mod:`~rs_image.engine.multilabel`) and the binary cross-entropy instead.

    ``prepare_input(batch)`` gives the model input on ``device`` (the task's
    :meth:`~rs_image.engine.tasks.Task.prepare_input`, bound to the config, device and memory format).
    The loader must give every sample to exactly one process (:class:`ShardedEvalSampler`); items marked
    ``failed`` are left out and counted.
    """
    was_training = model.training
    model.eval()
    totals = torch.zeros(5, dtype=torch.float64, device=device)  # n, top1, top5, loss_sum, failed
    num_classes = None
    scores: List[torch.Tensor] = []  # multi-label: (sigmoid scores, targets) of this process's samples
    targets: List[torch.Tensor] = []
    try:
        for batch in tqdm(loader, desc=desc, disable=not progress, leave=False, dynamic_ncols=True):
            x = prepare_input(batch)
            y = torch.as_tensor(batch["label"]).to(device)
            y = y.float() if multi_label else y.long()
            bad = failed_mask(batch, y.shape[0]).to(device)
            with autocast:
                logits = model(x)
            logits = logits.float()
            num_classes = logits.shape[1]
            k = min(5, num_classes)
            good = ~bad
            logits, y = logits[good], y[good]
            if multi_label:
                scores.append(torch.sigmoid(logits).cpu())
                targets.append(y.cpu())
                totals += torch.stack([
                    torch.tensor(float(y.shape[0]), device=device, dtype=torch.float64), torch.zeros((), device=device,
                    dtype=torch.float64), torch.zeros((), device=device, dtype=torch.float64),
                    F.binary_cross_entropy_with_logits(logits, y, reduction="sum").double() / max(num_classes, 1),
                    bad.sum().double(),
                ])
                continue
            pred = logits.topk(k, dim=1).indices
            hits = pred == y[:, None]
            totals += torch.stack([
                torch.tensor(float(y.numel()), device=device, dtype=torch.float64),
                hits[:, 0].sum().double(),
                hits.any(dim=1).sum().double(),
                F.cross_entropy(logits, y, reduction="sum").double() if y.numel() else torch.zeros((), device=device, dtype=torch.float64),
                bad.sum().double(),
            ])
    finally:
        model.train(was_training)
    du.all_reduce_sum(totals)
    n, top1, top5, loss, failed = totals.tolist()
    if multi_label:
        gathered = du.all_gather_object((torch.cat(scores) if scores else None, torch.cat(targets) if targets else None))
        parts = [g for g in gathered if g[0] is not None]
        m_ap = multilabel_stats(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])).mean_ap if parts else float("nan")
        return {"mAP": m_ap, "loss": loss / n if n else float("nan"), "num_samples": int(n), "num_failed": int(failed)}
    return {
        "top1": 100.0 * top1 / n if n else float("nan"),
        "top5": 100.0 * top5 / n if n else float("nan"),
        "loss": loss / n if n else float("nan"),
        "num_samples": int(n),
        "num_failed": int(failed),
    }


def summary_to_json(path: os.PathLike | str, record: Dict[str, Any]) -> None:
    with atomic_write(path) as f:
        json.dump(record, f, indent=2, default=str)

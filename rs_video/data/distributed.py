"""Multi-view test aggregation that counts every video view exactly once, on one or many processes.

``torch.utils.data.DistributedSampler`` pads the index list with repeats so that every rank gets the same
number of items; in a test run some (video, view) pairs are therefore predicted twice. Summing them would
weight those videos' views unevenly (SlowFast and PyTorchVideo leave this bias in).
:class:`MultiViewAccumulator` keys every prediction by ``(video_index, view_index)``, keeps the first
copy of a key (lowest rank, first seen), and only then ensembles the views of each video and reduces
across ranks. Memory per rank: the rank's own view scores until :meth:`~MultiViewAccumulator.synchronize`,
then ``num_videos x num_classes``.

Usage in a test loop (every rank)::

    acc = MultiViewAccumulator(dataset.num_videos, dataset.num_views, num_classes, ensemble="sum")
    for batch in loader:                       # loader with DistributedSampler(dataset, shuffle=False)
        probs = model(batch["video"]).softmax(-1)
        acc.update(probs, batch["video_index"], batch["view_index"], batch["label"], batch.get("failed"))
    result = acc.synchronize()                 # collective: all ranks call it
    result.check_complete()                    # every video got all its views (or is marked failed)
    top1 = result.accuracy(valid_only=True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.distributed as dist

__all__ = ["MultiViewAccumulator", "VideoPredictions"]


@dataclass
class VideoPredictions:
    """Per-video ensembled predictions.

    Attributes:
        scores: (num_videos, num_classes) sum or max of the video's counted view scores (0 where none).
        labels: (num_videos,) label, -1 where no view of the video was seen.
        num_views: (num_videos,) views counted (each (video, view) once, failed views excluded).
        num_failed_views: (num_videos,) views reported failed.
        expected_views: views per video.
    """

    scores: torch.Tensor
    labels: torch.Tensor
    num_views: torch.Tensor
    num_failed_views: torch.Tensor
    expected_views: int

    @property
    def valid(self) -> torch.Tensor:
        """Videos with all views counted and none failed."""
        return (self.num_views == self.expected_views) & (self.num_failed_views == 0)

    def check_complete(self) -> None:
        """Raises when a video's views were neither all counted nor reported failed (a sampler bug)."""
        covered = self.num_views + self.num_failed_views
        wrong = torch.nonzero(covered != self.expected_views).flatten()
        if wrong.numel():
            examples = ", ".join(f"video {int(i)}: {int(covered[i])}" for i in wrong[:5])
            raise RuntimeError(
                f"{wrong.numel()} videos did not get exactly {self.expected_views} views ({examples})"
            )

    def accuracy(self, k: int = 1, valid_only: bool = True) -> float:
        """Top-k accuracy (percent) over valid videos (or all seen videos)."""
        mask = self.valid if valid_only else self.labels >= 0
        if not bool(mask.any()):
            return float("nan")
        top = self.scores[mask].topk(min(k, self.scores.shape[1]), dim=1).indices
        hits = (top == self.labels[mask, None]).any(dim=1)
        return 100.0 * hits.float().mean().item()


class MultiViewAccumulator:
    """Collects view scores and ensembles them per video, deduplicating ``(video_index, view_index)``.

    Args:
        num_videos: videos in the test set (``dataset.num_videos``).
        num_views: views per video (``dataset.num_views``).
        num_classes: score width.
        ensemble: "sum" or "max" (``TEST.ENSEMBLE_METHOD``).
    """

    def __init__(self, num_videos: int, num_views: int, num_classes: int, ensemble: str = "sum") -> None:
        if ensemble not in ("sum", "max"):
            raise ValueError(f"ensemble must be 'sum' or 'max', got {ensemble!r}")
        self.num_videos, self.num_views, self.num_classes = int(num_videos), int(num_views), int(num_classes)
        self.ensemble = ensemble
        self._keys: List[torch.Tensor] = []
        self._scores: List[torch.Tensor] = []
        self._labels: List[torch.Tensor] = []
        self._failed: List[torch.Tensor] = []

    def update(
        self,
        scores: torch.Tensor,
        video_index: torch.Tensor,
        view_index: torch.Tensor,
        labels: torch.Tensor,
        failed: Optional[torch.Tensor] = None,
    ) -> None:
        """Adds a batch of view predictions (scores of failed views are ignored)."""
        video_index = torch.as_tensor(video_index).long().cpu()
        view_index = torch.as_tensor(view_index).long().cpu()
        if video_index.numel() and (int(video_index.min()) < 0 or int(video_index.max()) >= self.num_videos):
            raise ValueError(f"video_index outside [0, {self.num_videos})")
        if view_index.numel() and (int(view_index.min()) < 0 or int(view_index.max()) >= self.num_views):
            raise ValueError(f"view_index outside [0, {self.num_views})")
        batch = video_index.numel()
        self._keys.append(video_index * self.num_views + view_index)
        self._scores.append(scores.detach().float().cpu().reshape(batch, self.num_classes))
        self._labels.append(torch.as_tensor(labels).long().cpu().reshape(batch))
        fail = torch.zeros(batch, dtype=torch.bool) if failed is None else torch.as_tensor(failed).bool().cpu()
        self._failed.append(fail.reshape(batch))

    def _local(self):
        if self._keys:
            return (torch.cat(self._keys), torch.cat(self._scores), torch.cat(self._labels), torch.cat(self._failed))
        return (torch.zeros(0, dtype=torch.long), torch.zeros(0, self.num_classes), torch.zeros(0, dtype=torch.long),
                torch.zeros(0, dtype=torch.bool))

    @staticmethod
    def _first_occurrence(keys: torch.Tensor) -> torch.Tensor:
        """Mask keeping the first occurrence of every key."""
        if keys.numel() == 0:
            return torch.zeros(0, dtype=torch.bool)
        order = torch.argsort(keys, stable=True)
        sorted_keys = keys[order]
        first_sorted = torch.ones_like(sorted_keys, dtype=torch.bool)
        first_sorted[1:] = sorted_keys[1:] != sorted_keys[:-1]
        keep = torch.zeros_like(first_sorted)
        keep[order] = first_sorted
        return keep

    @staticmethod
    def _device() -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def _drop_keys_of_lower_ranks(self, keys: torch.Tensor) -> torch.Tensor:
        """Mask of local keys that no lower rank holds (collective)."""
        device = self._device()
        world, rank = dist.get_world_size(), dist.get_rank()
        size = torch.tensor([keys.numel()], device=device)
        sizes = [torch.zeros_like(size) for _ in range(world)]
        dist.all_gather(sizes, size)
        longest = int(max(s.item() for s in sizes))
        padded = torch.full((longest,), -1, dtype=torch.long, device=device)
        padded[: keys.numel()] = keys.to(device)
        gathered = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(gathered, padded)
        lower = [g[: int(s.item())].cpu() for g, s in zip(gathered[:rank], sizes[:rank])]
        if not lower:
            return torch.ones(keys.numel(), dtype=torch.bool)
        return ~torch.isin(keys, torch.cat(lower))

    def synchronize(self) -> VideoPredictions:
        """Deduplicates, ensembles per video and (under torch.distributed) reduces over all ranks.

        A collective when a process group is initialised: every rank must call it. The result is the
        same on every rank.
        """
        keys, scores, labels, failed = self._local()
        keep = self._first_occurrence(keys)
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if distributed:
            keep &= self._drop_keys_of_lower_ranks(keys)
        keys, scores, labels, failed = keys[keep], scores[keep], labels[keep], failed[keep]
        videos = keys // self.num_views
        counted = ~failed
        n, k = self.num_videos, self.num_classes
        if self.ensemble == "sum":
            video_scores = torch.zeros(n, k).index_add_(0, videos[counted], scores[counted])
        else:
            video_scores = torch.full((n, k), float("-inf"))
            index = videos[counted, None].expand(-1, k)
            video_scores.scatter_reduce_(0, index, scores[counted], reduce="amax")
        num_views = torch.bincount(videos[counted], minlength=n)
        num_failed = torch.bincount(videos[failed], minlength=n)
        video_labels = torch.full((n,), -1, dtype=torch.long).scatter_reduce_(0, videos, labels, reduce="amax")
        if distributed:
            device = self._device()
            tensors = [video_scores.to(device), num_views.to(device), num_failed.to(device), video_labels.to(device)]
            ops = [dist.ReduceOp.SUM if self.ensemble == "sum" else dist.ReduceOp.MAX, dist.ReduceOp.SUM,
                   dist.ReduceOp.SUM, dist.ReduceOp.MAX]
            for tensor, op in zip(tensors, ops):
                dist.all_reduce(tensor, op=op)
            video_scores, num_views, num_failed, video_labels = (t.cpu() for t in tensors)
        if self.ensemble == "max":
            video_scores[num_views == 0] = 0.0
        return VideoPredictions(video_scores, video_labels, num_views, num_failed, self.num_views)

    def reset(self) -> None:
        self._keys, self._scores, self._labels, self._failed = [], [], [], []

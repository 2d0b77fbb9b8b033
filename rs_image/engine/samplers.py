"""The samplers of the engine: the resumable training order and the exact evaluation shards."""

from __future__ import annotations

import itertools
from typing import Any, Iterator

from torch.utils.data import Dataset, DistributedSampler, Sampler

from rs_image.data.randomness import EpochIndex

__all__ = ["ResumableDistributedSampler", "ShardedEvalSampler"]


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` that can start part-way through an epoch (for mid-epoch resume).

    The order of an epoch depends only on ``seed`` and the epoch (``set_epoch``); ``set_start_index(n)``
    skips the first ``n`` indices of this rank's share. Indices are
    :class:`~rs_image.data.randomness.EpochIndex` (ints that carry the epoch), so a data set draws each
    sample's randomness from ``(seed, epoch, index)`` in whichever worker loads it.
    """

    def __init__(self, dataset: Dataset, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.start_index = 0

    def set_start_index(self, start_index: int) -> None:
        self.start_index = max(0, int(start_index))

    def __iter__(self) -> Iterator[int]:
        indices = itertools.islice(super().__iter__(), self.start_index, None)
        return (EpochIndex(i, self.epoch) for i in indices)

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start_index)


class ShardedEvalSampler(Sampler[int]):
    """The ``rank``-th of ``world_size`` contiguous blocks of ``range(length)``: every index on exactly one
    process, in order. The first ``length % world_size`` blocks are one longer.

    Contiguous (not strided) so that the consecutive test views of a video land on one process, where the
    video data set decodes the video once for all of them.
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.length, self.rank, self.world_size = length, rank, world_size
        base, extra = divmod(length, world_size)
        self.start = rank * base + min(rank, extra)
        self.stop = self.start + base + (1 if rank < extra else 0)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start

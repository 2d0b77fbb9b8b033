"""Randomness that belongs to the sample, not to the process that happens to load it.

Every random choice about one training sample (the temporal window, crop box, scale, flip, RandAugment ops,
which file replaces a broken one) is drawn inside :func:`sample_rng`, which seeds the process's torch,
NumPy and Python generators from ``(seed, epoch, sample index, attempt)`` for the duration of the load and
then puts the previous states back. A sample is therefore the same whichever DataLoader worker loads it,
however many workers there are, whether they persist across epochs, and whether the run was resumed:
resuming needs no worker RNG state, because there is none that matters.

The epoch reaches the data set through the index itself: the training sampler yields :class:`EpochIndex`,
an ``int`` that also carries its epoch (plain ``int`` indices mean epoch 0), so any data set that indexes
with it keeps working and persistent workers need no ``set_epoch`` call.
"""

from __future__ import annotations

import contextlib
import random
from typing import Iterator, Tuple

import numpy as np
import torch

__all__ = ["EpochIndex", "split_index", "sample_seed", "sample_rng"]


class EpochIndex(int):
    """A sample index that also says which epoch asks for it (``index.epoch``)."""

    epoch: int

    def __new__(cls, index: int, epoch: int = 0) -> "EpochIndex":
        obj = super().__new__(cls, index)
        obj.epoch = int(epoch)
        return obj

    def __reduce__(self):  # keep the epoch on the way to a DataLoader worker
        return (EpochIndex, (int(self), self.epoch))

    def __repr__(self) -> str:
        return f"EpochIndex({int(self)}, epoch={self.epoch})"


def split_index(index: int) -> Tuple[int, int]:
    """``(index, epoch)`` of a plain ``int`` (epoch 0) or an :class:`EpochIndex`."""
    return int(index), int(getattr(index, "epoch", 0))


def sample_seed(seed: int, epoch: int, index: int, attempt: int = 0) -> int:
    """A 64-bit seed that depends on every argument (NumPy's ``SeedSequence`` mixing, platform independent)."""
    words = np.random.SeedSequence([seed % 2**63, epoch, index, attempt]).generate_state(2, np.uint32)
    return int(words[0]) << 32 | int(words[1])


@contextlib.contextmanager
def sample_rng(seed: int, epoch: int, index: int, attempt: int = 0) -> Iterator[int]:
    """Seed torch (CPU), NumPy and Python from the sample's identity for the enclosed block; restore after.

    torchvision's v2 transforms draw from torch's global generator, so seeding it is what makes their crops,
    flips and RandAugment ops a property of the sample. Yields the seed.
    """
    value = sample_seed(seed, epoch, index, attempt)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        # The CPU generator only: torch.manual_seed would also queue the seed for every accelerator not yet
        # initialised (a stack trace formatted for each, about 1 ms per sample), and CUDA would later start
        # from the last sample's seed instead of RNG_SEED.
        torch.default_generator.manual_seed(value)
        random.seed(value)
        np.random.seed(value >> 32)
        try:
            yield value
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)

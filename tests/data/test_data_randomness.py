"""rs_image.data.randomness: a sample's draws depend on (seed, epoch, index, attempt) only, and the process's
generators are left as they were."""

from __future__ import annotations

import random

import numpy as np
import torch

from rs_image.data.randomness import EpochIndex, sample_rng, sample_seed, split_index


def _draws():
    return torch.rand(3).tolist(), random.random(), float(np.random.rand())


def test_draws_are_those_of_the_sample_seed_and_the_process_state_is_restored():
    seed = sample_seed(7, 2, 11, 1)
    expected_torch = torch.rand(3, generator=torch.Generator().manual_seed(seed)).tolist()
    torch.manual_seed(123), random.seed(123), np.random.seed(123)
    before = _draws()
    torch.manual_seed(123), random.seed(123), np.random.seed(123)
    with sample_rng(7, 2, 11, 1) as value:
        inside = _draws()
    after = _draws()
    assert value == seed and inside[0] == expected_torch
    assert after == before  # the enclosing process's torch, Python and NumPy streams go on untouched
    with sample_rng(7, 2, 11, 1):
        assert _draws() == inside  # the same sample, the same draws
    for other in ((8, 2, 11, 1), (7, 3, 11, 1), (7, 2, 12, 1), (7, 2, 11, 0)):
        with sample_rng(*other):
            assert _draws()[0] != inside[0]


def test_only_the_cpu_generator_is_seeded():
    # torch.manual_seed would also queue the sample's seed for CUDA until it initialises (formatting a stack
    # trace each time, about 1 ms per sample), and CUDA would then start from the last sample's seed.
    from torch.cuda import _lazy_seed_tracker

    queued = [None if call is None else call[0] for call in _lazy_seed_tracker.get_calls()]
    with sample_rng(0, 0, 0):
        torch.rand(1)
    assert [None if call is None else call[0] for call in _lazy_seed_tracker.get_calls()] == queued


def test_epoch_index_carries_its_epoch_through_pickling():
    import pickle

    index = pickle.loads(pickle.dumps(EpochIndex(5, epoch=3)))
    assert split_index(index) == (5, 3) and split_index(5) == (5, 0)

"""Checkpoint files: atomic writes, weights_only loading, newest-good discovery, RNG state round trip."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import pytest
import torch

from rs_image.fileio import atomic_write, remove_stale_temporaries
from rs_image.engine.checkpoint import (
    CheckpointError,
    atomic_torch_save,
    capture_rng_state,
    checkpoint_candidates,
    epoch_checkpoint_name,
    find_resume_checkpoint,
    load_checkpoint,
    restore_rng_state,
)


def _ckpt(epoch: int) -> dict:
    return {"model_state": {"w": torch.full((3,), float(epoch))}, "epoch": epoch, "step_in_epoch": 0,
            "global_step": 10 * epoch, "rng_states": [capture_rng_state()]}


def test_atomic_save_and_weights_only_load(tmp_path):
    path = tmp_path / "c" / "last.pyth"
    atomic_torch_save(_ckpt(3), path)
    assert [p.name for p in path.parent.iterdir()] == ["last.pyth"]  # no temporary left behind
    state = load_checkpoint(path)
    assert state["epoch"] == 3 and torch.equal(state["model_state"]["w"], torch.full((3,), 3.0))
    restore_rng_state(state["rng_states"][0])  # RNG states survive weights_only=True


def test_rng_state_round_trip():
    state = capture_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(5)
    restore_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_truncated_checkpoint_is_skipped_with_warning(tmp_path, caplog):
    for e in (1, 2):
        atomic_torch_save(_ckpt(e), tmp_path / epoch_checkpoint_name(e))
    atomic_torch_save(_ckpt(3), tmp_path / "last.pyth")
    assert [p.name for p in checkpoint_candidates(tmp_path)] == [
        "last.pyth", "checkpoint_epoch_00002.pyth", "checkpoint_epoch_00001.pyth"]
    assert find_resume_checkpoint(tmp_path)[1]["epoch"] == 3

    for name in ("last.pyth", epoch_checkpoint_name(2)):
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        path, state = find_resume_checkpoint(tmp_path)
    assert path.name == "checkpoint_epoch_00001.pyth" and state["epoch"] == 1
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "last.pyth" in warned and "checkpoint_epoch_00002.pyth" in warned


def test_nothing_usable(tmp_path):
    assert find_resume_checkpoint(tmp_path / "missing") is None
    (tmp_path / "last.pyth").write_bytes(b"")
    assert find_resume_checkpoint(tmp_path) is None
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pyth")
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "other.pyth")


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / ".last.tmp-999999999.pyth").write_bytes(b"partial")  # its writer is gone
    live = tmp_path / f".other.tmp-{os.getpid()}.pyth"  # a writer that is still running
    live.write_bytes(b"partial")
    atomic_torch_save(_ckpt(1), tmp_path / "last.pyth")
    removed = remove_stale_temporaries(tmp_path)
    assert [p.name for p in removed] == [".last.tmp-999999999.pyth"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "last.pyth"]


def test_a_failed_write_leaves_the_old_file(tmp_path):
    atomic_torch_save(_ckpt(1), tmp_path / "last.pyth")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(tmp_path / "last.pyth", "wb") as f:
            f.write(b"half a checkpoint")
            raise RuntimeError("disk full")
    assert load_checkpoint(tmp_path / "last.pyth")["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pyth"]

"""Exact resume and worker-count independence, for both tasks, on real files with broken ones among them.

Every run is ``rs-train`` (``-m rs_video.cli.train_net``) in a subprocess with a shipped config (Kinetics: uint8 clips, bf16,
persistent workers; ImageNet: RandAugment, bf16, persistent workers) shrunk to a tiny model, 2 loader
workers, and a checkpoint every 3 steps. A run killed with SIGKILL mid-epoch right after a step checkpoint,
or after an epoch checkpoint (both at a fixed step, from inside the run), and resumed must end with the very weights, EMA and optimizer state of the uninterrupted run;
so must a run with 1 worker instead of 2.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
import torch

from rs_image.engine.checkpoint import load_checkpoint
from tests.helpers import TINY_ARCH, subprocess_env as _env
from tests.images import jpeg_folder
from tests.videos import list_dataset

ROOT = Path(__file__).resolve().parents[2]

COMMON = [
    "MODEL.OVERRIDES", TINY_ARCH, "DEVICE", "cpu", "PROGRESS_BAR", "False", "TENSORBOARD", "False",
    "DATA_LOADER.NUM_WORKERS", "2", "DATA_LOADER.PERSISTENT_WORKERS", "True", "TRAIN.BATCH_SIZE", "2",
    "SOLVER.MAX_EPOCH", "2", "SOLVER.WARMUP_EPOCHS", "0.5", "TRAIN.CHECKPOINT_STEP_PERIOD", "3",
    "TRAIN.CHECKPOINT_PERIOD", "1", "TRAIN.EVAL_PERIOD", "1", "TEST.ENABLE", "False", "LOG_PERIOD", "4",
    "MODEL.DROP_PATH_RATE", "0.2", "MODEL.DROPOUT_RATE", "0.2", "AUG.RAND_AUGMENT", "True", "AUG.RA_MAGNITUDE", "9",
]


def _video_data(root: Path) -> List[str]:
    # 12 good videos and 2 broken ones per split: 14 items, 7 steps per epoch of batch 2.
    data = list_dataset(root, splits=("train", "val"), num_videos=12, broken=("truncated", "garbage"),
                        width=48, height=40, num_frames=20)
    return ["--cfg", str(ROOT / "configs/kinetics/rs3d_50.yaml"), "DATA.PATH_TO_DATA_DIR", str(data),
            "MODEL.NUM_CLASSES", "2", "DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "2",
            "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "40"]


def _image_data(root: Path) -> List[str]:
    data = jpeg_folder(root, {"train": 3, "val": 1})  # 12 good images, 7 steps per epoch with the 2 broken
    (data / "train" / "class1" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)))
    (data / "train" / "class2" / "empty.jpg").write_bytes(b"")
    return ["--cfg", str(ROOT / "configs/imagenet/resnetrs50_i160.yaml"), "DATA.PATH_TO_DATA_DIR", str(data),
            "MODEL.NUM_CLASSES", "4", "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32"]


def _cmd(data_opts: List[str], out: Path, *extra: str) -> List[str]:
    return [sys.executable, "-m", "rs_video.cli.train_net", *data_opts, *COMMON, "OUTPUT_DIR", str(out), *extra]


def _run(cmd: List[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def _killed_after_step(data_opts: List[str], out: Path, step: int) -> None:
    """Run the training and SIGKILL it right after the hooks of global step ``step`` (the checkpoint of that
    step included), from inside the run (tests/fault_injection.py): the same point on every machine, at any load."""
    cmd = [sys.executable, str(ROOT / "tests" / "fault_injection.py"), *_cmd(data_opts, out)[3:]]
    env = dict(_env(), RS_FAULT="KILL", RS_FAULT_STEP=str(step))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {done.stderr[-2000:]}"


def _final(out: Path) -> dict:
    return load_checkpoint(out / "checkpoints" / "last.pyth")


def _assert_same_training(a: dict, b: dict, what: str) -> None:
    assert a["global_step"] == b["global_step"] == 14, what
    diffs = {}
    for part in ("model_state", "ema_state"):
        for key, value in a[part].items():
            if value.is_floating_point():
                diffs[f"{part}.{key}"] = float((value - b[part][key]).abs().max())
            else:
                assert torch.equal(value, b[part][key]), f"{what}: {part}.{key}"
    for pid, state in a["optimizer_state"]["state"].items():
        diffs[f"momentum.{pid}"] = float((state["momentum_buffer"] - b["optimizer_state"]["state"][pid]["momentum_buffer"]).abs().max())
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] == 0.0, f"{what}: max |diff| {diffs[worst]} at {worst}"


def _epoch_failed_reads(out: Path) -> List[int]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["failed_reads"] for r in records if r["type"] == "train_epoch"]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["video", "image"])
def test_sigkill_resume_and_worker_count_are_exact(task, tmp_path):
    data_opts = (_video_data if task == "video" else _image_data)(tmp_path / "data")
    _run(_cmd(data_opts, tmp_path / "reference"))
    reference = _final(tmp_path / "reference")
    assert sum(r for r in _epoch_failed_reads(tmp_path / "reference")) > 0  # the broken files were hit

    # Killed mid-epoch, right after the first step checkpoint (epoch 1, step 3).
    mid = tmp_path / "killed_mid_epoch"
    _killed_after_step(data_opts, mid, 3)
    state = _final(mid)
    assert (state["epoch"], state["step_in_epoch"]) == (0, 3)
    _run(_cmd(data_opts, mid))
    _assert_same_training(reference, _final(mid), "resumed mid-epoch")

    # Killed in epoch 2 after its first step, before its first step checkpoint: the newest checkpoint is the
    # one of epoch 1 (7 steps per epoch).
    boundary = tmp_path / "killed_after_epoch"
    _killed_after_step(data_opts, boundary, 8)
    state = _final(boundary)
    assert (state["epoch"], state["step_in_epoch"]) == (1, 0)
    _run(_cmd(data_opts, boundary))
    _assert_same_training(reference, _final(boundary), "resumed after an epoch checkpoint")
    assert _epoch_failed_reads(boundary) == _epoch_failed_reads(tmp_path / "reference")  # epoch 1 + resumed 2

    # One worker instead of two.
    one = tmp_path / "one_worker"
    _run(_cmd(data_opts, one, "DATA_LOADER.NUM_WORKERS", "1"))
    _assert_same_training(reference, _final(one), "1 worker vs 2")
    assert _epoch_failed_reads(one) == _epoch_failed_reads(tmp_path / "reference")

"""Cluster faults lose nothing: stop signals (one rank or all), time-based checkpoints, a disk that fills up
while a checkpoint is written, non-finite losses in fp32 / bf16 / fp16, and a rank SIGKILLed under
``torchrun --max-restarts 1``.

Every interrupted run is resumed and compared with an uninterrupted one: weights, BN statistics, EMA and
momentum buffers must be bit-identical (max |diff| 0).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch

from rs_image.engine import Preempted, PREEMPTED_EXIT_CODE, NonFiniteLossError, Trainer, load_config, run_cli
from rs_image.engine import checkpoint as checkpoint_module
from rs_image.engine.checkpoint import load_checkpoint
from rs_image.engine.hooks import Hook
from tests.distributed import spawn_two_ranks
from tests.fault_injection import SignalAt, disk_full_on_write, signal_when
from tests.helpers import max_diff as max_float_diff
from tests.helpers import trainer_state as _state
from tests.helpers import subprocess_env as resume_env
from tests.helpers import TINY_ARCH, TensorImageTask, tiny_opts

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks


def _opts(out: Path, *extra: str) -> List[str]:
    # 12 images, 6 steps per epoch of 2 (3 with 2 processes), 2 epochs; BN momentum 0.1 and EMA with buffers,
    # dropout and drop-path: every piece of state a resume must restore.
    return tiny_opts(out, "image", "SOLVER.MAX_EPOCH", "2", "TRAIN.EVAL_PERIOD", "0", "SOLVER.BASE_LR", "0.4",
                     "EMA.DECAY", "0.9", "MODEL.DROPOUT_RATE", "0.2", "MODEL.DROP_PATH_RATE", "0.2", "LOG_PERIOD", "3",
                     *extra)


def _trainer(out: Path, *extra: str) -> Trainer:
    return Trainer(load_config(None, _opts(out, *extra)), TensorImageTask())


def _max_diff(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> float:
    """The largest |difference| of the floating-point entries; the integer ones (BN counts) must be equal."""
    for k in a:
        if not a[k].is_floating_point():
            assert torch.equal(a[k], b[k]), k
    return max_float_diff(a, b)


def _step_files(out: Path) -> List[str]:
    return sorted(p.name for p in (out / "checkpoints").glob("*_step_*.pyth"))


class _SignalDuringWrite:
    """Sends ``sig`` to this process once, in the middle of the first checkpoint write while ``when()``."""

    def __init__(self, sig: signal.Signals, when) -> None:
        self.sig, self.when, self.sent = sig, when, 0

    def __enter__(self):
        original = self.original = checkpoint_module.atomic_write
        outer = self

        class Writer:
            def __init__(self, handle):
                self.handle, self.written = handle, 0

            def write(self, data):
                self.written += len(data)
                if self.written > 2000 and not outer.sent and outer.when():
                    outer.sent += 1
                    os.kill(os.getpid(), outer.sig)
                return self.handle.write(data)

            def __getattr__(self, name):
                return getattr(self.handle, name)

        @contextlib.contextmanager
        def signalling(path, mode="w", **kwargs):
            with original(path, mode, **kwargs) as handle:
                yield Writer(handle)

        checkpoint_module.atomic_write = signalling
        return self

    def __exit__(self, *exc):
        checkpoint_module.atomic_write = self.original


# ------------------------------------------------------------------------------------------------------
# One process
# ------------------------------------------------------------------------------------------------------
def test_stop_signal_finishes_the_step_writes_it_and_resumes_exactly(tmp_path):
    reference = _trainer(tmp_path / "reference")
    reference.train()
    assert reference.global_step == 12 and _step_files(tmp_path / "reference") == []

    out = tmp_path / "stopped"
    handler_before = signal.getsignal(signal.SIGTERM)
    stopped = _trainer(out)
    stopped.hooks.append(SignalAt(signal.SIGTERM, step=8))  # arrives after global step 8 (epoch 2, step 2)
    with _SignalDuringWrite(signal.SIGUSR1, lambda: stopped.stop_requested) as second, \
            pytest.raises(Preempted) as info:
        stopped.train()
    # The flag is read in the next step, which is finished and saved: epoch 2, step 3 (global step 9).
    assert "stopped by SIGTERM after epoch 2, step 3/6 (global step 9)" in str(info.value)
    assert second.sent == 1 and stopped.stop_signals.count == 2  # the second signal came during the write
    assert signal.getsignal(signal.SIGTERM) is handler_before  # handlers restored by close()
    state = load_checkpoint(out / "checkpoints" / "last.pyth")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 3, 9)
    assert _step_files(out) == ["checkpoint_epoch_00001_step_000003.pyth"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")) == []
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["signal"] for e in events if e.get("event") == "preempted"] == ["SIGTERM"]
    del stopped

    resumed = _trainer(out)
    assert (resumed.start_epoch, resumed.start_step, resumed.global_step) == (1, 3, 9)
    resumed.train()
    assert _max_diff(_state(resumed), _state(reference)) == 0.0  # 0 steps redone, bit-identical


def test_a_stop_under_slurm_requeues_the_job_when_asked(tmp_path, monkeypatch, caplog):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol_calls"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    for job, requeue in ((None, "True"), ("4242", "False"), ("4242", "True")):
        if job:
            monkeypatch.setenv("SLURM_JOB_ID", job)
        trainer = _trainer(tmp_path / f"{job}_{requeue}", "SOLVER.MAX_EPOCH", "1", "TRAIN.REQUEUE_ON_PREEMPT", requeue,
                           "TRAIN.PREEMPT_SIGNAL", "SIGUSR2")
        trainer.hooks.append(SignalAt(signal.SIGUSR2, step=1))
        with caplog.at_level("WARNING"), pytest.raises(Preempted, match="stopped by SIGUSR2 after epoch 1, step 2/6"):
            trainer.train()
    assert "not a SLURM job (no SLURM_JOB_ID); nothing requeued" in caplog.text
    assert calls.read_text() == "requeue 4242\n"  # only with SLURM_JOB_ID and TRAIN.REQUEUE_ON_PREEMPT


def test_time_based_checkpoints_with_an_injected_clock_keep_the_newest_steps(tmp_path):
    class Minutes(Hook):  # every optimizer step takes 4 minutes of the fake clock
        now = 0.0

        def after_step(self, epoch, step):
            Minutes.now += 4.0

    trainer = _trainer(tmp_path, "TRAIN.CHECKPOINT_MINUTES", "6", "TRAIN.CHECKPOINT_KEEP_STEPS", "2")
    trainer.clock = lambda: Minutes.now * 60
    trainer.hooks.append(Minutes())
    saved = []
    save = trainer.save_checkpoint
    trainer.save_checkpoint = lambda e, s, keep=False: saved.append((e, s)) or save(e, s, keep)
    trainer.train()
    # By hand: a step checks "now - last save >= 6 min" before its hooks advance the clock. Saves at t=12
    # (after step 3), 20 (step 5), the epoch end at 24, then 32 (step 3), 40 (step 5) and the end at 48.
    assert saved == [(0, 3), (0, 5), (1, 0), (1, 3), (1, 5), (2, 0)]
    assert _step_files(tmp_path) == ["checkpoint_epoch_00001_step_000003.pyth", "checkpoint_epoch_00001_step_000005.pyth"]
    assert (tmp_path / "checkpoints" / "checkpoint_epoch_00002.pyth").is_file()  # epoch checkpoints stay
    assert [p.name for p in checkpoint_module.checkpoint_candidates(tmp_path / "checkpoints")][:3] == [
        "last.pyth", "checkpoint_epoch_00002.pyth", "checkpoint_epoch_00001_step_000005.pyth"]


def test_a_checkpoint_write_failing_half_way_keeps_the_previous_one_and_says_why_in_one_line(tmp_path, capsys):
    trainer = _trainer(tmp_path, "TRAIN.CHECKPOINT_STEP_PERIOD", "2")
    with disk_full_on_write(number=2, room=20_000) as written, pytest.raises(SystemExit) as exit_info:
        run_cli(trainer.train, "train_net")
    assert exit_info.value.code == 2 and len(written) == 2
    err = capsys.readouterr().err.strip()
    last = tmp_path / "checkpoints" / "last.pyth"
    assert err == (f"train_net: error: cannot write checkpoint {last}: No space left on device "
                   f"(the previous checkpoint is intact)")
    state = load_checkpoint(last)  # the step-2 checkpoint, whole
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (0, 2, 2)
    size = last.stat().st_size
    assert size > 20_000  # the failed write really stopped half-way
    assert sorted(p.name for p in last.parent.iterdir()) == ["checkpoint_epoch_00000_step_000002.pyth", "last.pyth"]


@pytest.mark.parametrize("precision", ["none", "bf16", "fp16"])
def test_nonfinite_losses_are_skipped_and_counted_then_stop_after_n_in_a_row(tmp_path, precision):
    trainer = _trainer(tmp_path, "TRAIN.NONFINITE_LOSS", "skip", "TRAIN.MAX_NONFINITE_STEPS", "3",
                       "TRAIN.MIXED_PRECISION", "bf16" if precision == "bf16" else "none")
    if precision == "fp16":  # what a GPU run does (fp16 autocast and a GradScaler), on the CPU
        trainer.train_step.autocast = functools.partial(torch.autocast, "cpu", dtype=torch.float16)
        trainer.train_step.scaler = torch.amp.GradScaler("cpu")
    trainer.train_set.nan_labels = {0, 1, 2, 3}  # every input is NaN
    before = _state(trainer)
    with pytest.raises(NonFiniteLossError, match=r"3 optimizer steps in a row had a non-finite loss "
                       r"\(TRAIN.MAX_NONFINITE_STEPS 3\), the last \(nan\) at epoch 1, step 3/6 \(global step 3\)"):
        trainer.train()
    assert trainer.num_skipped_steps == 3 and trainer.nonfinite_streak == 3
    assert _max_diff(_state(trainer), before) == 0.0  # nothing applied: weights, BN statistics, EMA, momentum


def test_a_finite_step_resets_the_count_and_the_count_is_checkpointed(tmp_path):
    trainer = _trainer(tmp_path, "TRAIN.NONFINITE_LOSS", "skip", "TRAIN.MAX_NONFINITE_STEPS", "2",
                       "SOLVER.MAX_EPOCH", "1", "TRAIN.CHECKPOINT_STEP_PERIOD", "1")
    streaks = []
    trainer.hooks.append(type("Record", (Hook,), {"after_step": lambda self, e, s: streaks.append(self.trainer.nonfinite_streak)})())
    nan_steps = {1, 3, 4}  # 0-based steps whose batch is NaN: never two in a row... until steps 3 and 4
    forward = trainer.train_step.forward

    def poisoned(batch):
        loss, logits, labels, targets = forward(batch)
        return (loss * float("nan") if len(streaks) in nan_steps else loss), logits, labels, targets

    trainer.train_step.forward = poisoned
    with pytest.raises(NonFiniteLossError, match=r"2 optimizer steps in a row .* step 5/6"):
        trainer.train()
    assert streaks == [0, 1, 0, 1]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pyth")["nonfinite_streak"] == 1


# ------------------------------------------------------------------------------------------------------
# Two processes (gloo): a signal on one rank or on all, rank 0's clock
# ------------------------------------------------------------------------------------------------------
def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from rs_image.engine import distributed as du

    out = Path(out)
    results = {}
    try:
        # Uninterrupted; rank 1's clock says a checkpoint is long due, rank 0's says never: rank 0 decides.
        reference = _trainer(out / "reference", "TRAIN.CHECKPOINT_MINUTES", "1")
        reference.clock = (lambda: 0.0) if rank == 0 else (lambda: 1e12)
        reference.train()
        results["reference"] = _state(reference)
        for name, sig, ranks, step in (("one_rank", signal.SIGTERM, [1], 1), ("all_ranks", signal.SIGUSR1, None, 4)):
            stopped = _trainer(out / name)
            stopped.hooks.append(SignalAt(sig, step, ranks))
            try:
                stopped.train()
            except Preempted as stop:
                results[f"{name}_message"] = str(stop)
            resumed = _trainer(out / name)
            results[f"{name}_start"] = (resumed.start_epoch, resumed.start_step, resumed.global_step)
            resumed.train()
            results[name] = _state(resumed)
        torch.save(results, out / f"rank{rank}.pt")
    finally:
        du.destroy_distributed()


@pytest.mark.slow
def test_two_processes_stop_together_on_a_signal_to_one_rank_or_all_and_resume_exactly(tmp_path):
    r0, r1 = spawn_two_ranks(_ddp_worker, tmp_path)
    assert _step_files(tmp_path / "reference") == []  # rank 1's clock decided nothing
    # One rank signalled after global step 1: both finish step 2 (epoch 1, step 2 of 3) and save it.
    assert r0["one_rank_start"] == r1["one_rank_start"] == (0, 2, 2)
    assert "a stop signal on another process after epoch 1, step 2/3" in r0["one_rank_message"]
    assert "stopped by SIGTERM after epoch 1, step 2/3" in r1["one_rank_message"]
    # Every rank signalled (SIGUSR1) after global step 4: epoch 2, step 2.
    assert r0["all_ranks_start"] == r1["all_ranks_start"] == (1, 2, 5)
    for result in (r0, r1):
        for name in ("one_rank", "all_ranks"):
            assert _max_diff(result[name], result["reference"]) == 0.0, name  # each rank's own BN statistics too
    assert _max_diff(r0["reference"], r1["reference"]) == 0.0  # every rank ends with the same network


# ------------------------------------------------------------------------------------------------------
# Real processes on real video files: tools/train_net.py with the shipped rs3d_50 config, and torchrun
# ------------------------------------------------------------------------------------------------------
def _video_opts(data: Path, out: Path, *extra: str) -> List[str]:
    return ["--cfg", str(ROOT / "configs/kinetics/rs3d_50.yaml"), "DATA.PATH_TO_DATA_DIR", str(data),
            "MODEL.NUM_CLASSES", "2", "DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "2", "DATA.TRAIN_CROP_SIZE", "32",
            "DATA.TEST_CROP_SIZE", "40", "MODEL.OVERRIDES", TINY_ARCH, "DEVICE", "cpu", "PROGRESS_BAR", "False",
            "TENSORBOARD", "False", "DATA_LOADER.NUM_WORKERS", "1", "DATA_LOADER.PERSISTENT_WORKERS", "True",
            "TRAIN.BATCH_SIZE", "1", "SOLVER.MAX_EPOCH", "2", "SOLVER.WARMUP_EPOCHS", "0.5", "TRAIN.EVAL_PERIOD", "0",
            "TEST.ENABLE", "False", "LOG_PERIOD", "1", "TRAIN.MIXED_PRECISION", "none", "OUTPUT_DIR", str(out), *extra]


def _env(**extra: str) -> Dict[str, str]:
    return dict(resume_env(), **extra)


def _final(out: Path) -> Dict[str, torch.Tensor]:
    state = load_checkpoint(out / "checkpoints" / "last.pyth")
    flat = {f"model.{k}": v for k, v in state["model_state"].items()}
    flat.update({f"ema.{k}": v for k, v in state["ema_state"].items()})
    flat.update({f"momentum.{p}": s["momentum_buffer"] for p, s in state["optimizer_state"]["state"].items()})
    return flat


def _train_records(out: Path) -> List[dict]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    return [r for r in (json.loads(line) for line in path.read_text().splitlines() if line.endswith("}"))
            if r["type"] == "train"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from tests.videos import list_dataset

    # 8 videos: 8 steps per epoch of 1 video with one process, 4 with two.
    return list_dataset(tmp_path_factory.mktemp("videos"), splits=("train",), num_videos=8, width=48, height=40,
                        num_frames=20)


@pytest.mark.slow
def test_sigterm_mid_epoch_with_the_shipped_defaults_saves_the_step_and_resumes_exactly(videos, tmp_path):
    train_net = [sys.executable, "-m", "rs_video.cli.train_net"]
    done = subprocess.run(train_net + _video_opts(videos, tmp_path / "reference"), env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "preempted"
    # SIGTERM from outside once epoch 2 has begun (no step checkpoints: the shipped defaults).
    returncode, err = signal_when(train_net + _video_opts(videos, out),
                                  lambda: any(r["epoch"] == 2 for r in _train_records(out)), signal.SIGTERM,
                                  env=_env())
    assert returncode == PREEMPTED_EXIT_CODE, err[-3000:]
    state = load_checkpoint(out / "checkpoints" / "last.pyth")
    assert state["epoch"] == 1 and 0 < state["step_in_epoch"] <= 8
    assert f"train_net: stopped by SIGTERM after epoch 2, step {state['step_in_epoch']}/8" in err
    done = subprocess.run(train_net + _video_opts(videos, out), env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _max_diff(_final(out), _final(tmp_path / "reference")) == 0.0


@pytest.mark.slow
def test_torchrun_restarts_a_group_after_a_rank_is_sigkilled_and_ends_with_the_uninterrupted_weights(videos, tmp_path):
    def torchrun(out: Path, **env: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "--max-restarts", "1", str(ROOT / "tests" / "fault_injection.py"),
               *_video_opts(videos, out, "TRAIN.CHECKPOINT_STEP_PERIOD", "3")]
        return subprocess.run(cmd, env=_env(**env), capture_output=True, text=True, timeout=300)

    reference = torchrun(tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-3000:]
    # Rank 1 SIGKILLed after global step 6 (epoch 2, step 2 of 4), first attempt only; the newest checkpoint
    # is the end of epoch 1 (global step 4): steps 5 and 6 are redone after the restart.
    out = tmp_path / "killed"
    killed = torchrun(out, RS_FAULT="KILL", RS_FAULT_STEP="6", RS_FAULT_RANKS="1")
    assert killed.returncode == 0, killed.stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert "resumed from" in log and "epoch 2, step 0 of 4 (global step 4)" in log
    assert _max_diff(_final(out), _final(tmp_path / "reference")) == 0.0

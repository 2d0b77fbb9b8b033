"""Faults injected into training runs of the tests: a signal or a SIGKILL at a given step, a disk that fills up
half-way through a checkpoint write.

Run as a script, it is ``tools/train_net.py`` with a hook that acts after global optimizer step
``RS_FAULT_STEP`` on the ranks listed in ``RS_FAULT_RANKS`` (default: all), and only in the first attempt
of a torchrun group (``TORCHELASTIC_RESTART_COUNT`` unset or 0), so that a restarted group runs clean::

    RS_FAULT=KILL RS_FAULT_STEP=5 RS_FAULT_RANKS=1 torchrun ... tests/fault_injection.py --cfg ... KEY VALUE
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rs_image.engine import Hook, Trainer  # noqa: E402
from rs_image.engine import checkpoint as checkpoint_module  # noqa: E402
from rs_image.fileio import atomic_write  # noqa: E402


class SignalAt(Hook):
    """Sends ``sig`` to this process after global step ``step`` (on ``ranks``, all when ``None``)."""

    def __init__(self, sig: signal.Signals, step: int, ranks: Sequence[int] | None = None) -> None:
        super().__init__()
        self.sig, self.step, self.ranks = sig, step, ranks

    def after_step(self, epoch: int, step: int) -> None:
        trainer = self.trainer
        if trainer.global_step == self.step and (self.ranks is None or trainer.dist.rank in self.ranks):
            os.kill(os.getpid(), self.sig)


def signal_when(cmd: List[str], ready: Callable[[], bool], sig: int, env: Dict[str, str]) -> Tuple[int, str]:
    """Start a run, send it ``sig`` from outside as soon as ``ready()``, wait for its end: (exit status, stderr).
    For faults that come from outside the process (a scheduler's SIGTERM); a fault at an exact step is
    :class:`SignalAt` instead."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while not ready() and proc.poll() is None:
            time.sleep(0.005)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


class _FillingFile:
    """A file that takes ``room`` bytes, then fails like a full disk."""

    def __init__(self, handle: IO, room: int) -> None:
        self.handle, self.room = handle, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            self.handle.write(bytes(data)[: self.room])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


@contextlib.contextmanager
def disk_full_on_write(number: int, room: int) -> Iterator[list]:
    """Checkpoint writes (``atomic_torch_save``) number ``number`` (1-based) and later fail after ``room``
    bytes with ENOSPC. Yields the list of the paths written so far."""
    written: list = []

    @contextlib.contextmanager
    def filling(path, mode="w", **kwargs):
        written.append(Path(path))
        with atomic_write(path, mode, **kwargs) as handle:
            yield _FillingFile(handle, room) if len(written) >= number else handle

    original = checkpoint_module.atomic_write
    checkpoint_module.atomic_write = filling
    try:
        yield written
    finally:
        checkpoint_module.atomic_write = original


class FaultTrainer(Trainer):
    """The trainer with the fault of the ``RS_FAULT*`` environment variables (first torchrun attempt only)."""

    def build_hooks(self):
        hooks = super().build_hooks()
        fault = os.environ.get("RS_FAULT")
        first_attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) == 0
        if fault and first_attempt:
            ranks = os.environ.get("RS_FAULT_RANKS")
            hooks.append(SignalAt(signal.Signals[f"SIG{fault}"], int(os.environ["RS_FAULT_STEP"]),
                                  [int(r) for r in ranks.split(",")] if ranks else None))
        return hooks


def main(argv: Sequence[str] | None = None) -> None:
    import rs_video.task  # noqa: F401  (TASK video, as tools/train_net.py)
    from rs_image.engine import distributed as du
    from rs_image.engine import load_config, run_cli
    from rs_image.engine.launch import parse_args

    if os.environ.get("RS_FAULT_DUMP"):
        import faulthandler
        faulthandler.register(signal.SIGUSR2, all_threads=True)

    def run() -> None:
        args = parse_args(argv, "train with an injected fault")
        try:
            FaultTrainer(load_config(args.cfg_file, args.opts)).train()
        finally:
            du.destroy_distributed()

    run_cli(run, "train_net")


if __name__ == "__main__":
    main()

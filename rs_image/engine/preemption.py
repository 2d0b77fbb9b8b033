"""Preemption: stop signals that end a run at a step boundary with a checkpoint, and SLURM requeueing.

Cluster schedulers announce the end of a job with a signal and kill it a grace period later: SLURM sends
SIGTERM (or, with ``--signal=USR1@120``, SIGUSR1 two minutes ahead), Kubernetes SIGTERM
(``terminationGracePeriodSeconds``, 30 s by default), ``torchrun`` forwards the signals it receives to its
workers and kills them 30 s later. :class:`StopSignals` turns SIGTERM and ``TRAIN.PREEMPT_SIGNAL`` into a
flag and nothing else (a Python handler runs between two bytecodes of the main thread, possibly in the
middle of a checkpoint write, so it must not do work of its own). The trainer reads the flag once per
optimizer step, agrees on it with the other ranks inside the all-reduce it already does every step, writes
a checkpoint of that step and raises :class:`Preempted`; ``tools/train_net.py`` then exits with
:data:`PREEMPTED_EXIT_CODE`. Further signals only set the flag again: a save in progress completes.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
from types import FrameType
from typing import Dict, Iterable, Optional, Tuple

__all__ = ["PREEMPTED_EXIT_CODE", "Preempted", "StopSignals", "stop_signals", "ignore_signals", "requeue_slurm_job"]

logger = logging.getLogger(__name__)

PREEMPTED_EXIT_CODE = 75
"""Exit status of ``tools/train_net.py`` after a stop signal: a checkpoint of the step reached is written and
the same command resumes from it (75 is ``EX_TEMPFAIL`` of ``sysexits.h``: "try again later")."""


class Preempted(Exception):
    """Training stopped on a signal after writing a checkpoint; run again to resume."""

    def __init__(self, message: str, checkpoint: str, is_main: bool = True) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.is_main = is_main


def stop_signals(second: str) -> Tuple[signal.Signals, ...]:
    """SIGTERM and ``second`` (a name such as ``"SIGUSR1"``; ``"none"`` for SIGTERM alone)."""
    names = ["SIGTERM"] + ([second] if second != "none" and second != "SIGTERM" else [])
    return tuple(signal.Signals[name] for name in names)


class StopSignals:
    """Installs flag-setting handlers for ``signals``; :meth:`restore` puts the previous handlers back.

    Handlers can only be installed from the main thread; elsewhere (a trainer built in a worker thread) the
    signals keep their handlers and :attr:`received` stays ``None``.
    """

    def __init__(self, signals: Iterable[signal.Signals]) -> None:
        self.received: Optional[str] = None
        self.count = 0
        self._previous: Dict[signal.Signals, object] = {}
        if threading.current_thread() is not threading.main_thread():
            logger.debug("stop signals not handled: the trainer was built outside the main thread")
            return
        for sig in signals:
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.received is None:
            self.received = signal.Signals(signum).name
        self.count += 1

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()


def ignore_signals(signals: Iterable[signal.Signals]) -> None:
    """In a data-loader worker: ignore the stop signals. SLURM signals every process of a job step; a
    worker killed by it would fail the step in flight before the main process could save it. The workers
    still end with their main process (the loader stops them, or they notice it is gone)."""
    for sig in signals:
        signal.signal(sig, signal.SIG_IGN)


def requeue_slurm_job() -> bool:
    """``scontrol requeue $SLURM_JOB_ID`` (what Lightning does on SIGUSR1); ``False`` outside SLURM or when
    it fails (logged)."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        logger.warning("TRAIN.REQUEUE_ON_PREEMPT: not a SLURM job (no SLURM_JOB_ID); nothing requeued")
        return False
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        logger.warning("TRAIN.REQUEUE_ON_PREEMPT: scontrol not found on PATH; SLURM job %s not requeued", job)
        return False
    try:
        done = subprocess.run([scontrol, "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        logger.warning("scontrol requeue %s failed: %s", job, error)
        return False
    if done.returncode != 0:
        logger.warning("scontrol requeue %s failed (exit %d): %s", job, done.returncode, done.stderr.strip())
        return False
    logger.info("SLURM job %s requeued", job)
    return True

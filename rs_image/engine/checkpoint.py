"""Training checkpoints: atomic writes, newest-good-checkpoint discovery, RNG state capture.

Layout under ``OUTPUT_DIR/checkpoints``::

    last.pyth                              the newest state (end of every epoch, and every step
                                           checkpoint inside an epoch)
    checkpoint_epoch_00010.pyth            kept every TRAIN.CHECKPOINT_PERIOD epochs (and after the last one)
    checkpoint_epoch_00010_step_000120.pyth   a step checkpoint: 10 epochs and 120 optimizer steps done
                                           (TRAIN.CHECKPOINT_STEP_PERIOD, TRAIN.CHECKPOINT_MINUTES, preemption);
                                           the newest TRAIN.CHECKPOINT_KEEP_STEPS are kept

A checkpoint is a dict of tensors and plain Python values, written atomically with ``torch.save``
(:func:`rs_image.fileio.atomic_write`), so a crash never leaves a half-written file under a checkpoint name. It is read back with ``torch.load(weights_only=True)``
(no pickled code): RNG states are stored as tensors and numbers.

Keys: ``model_state``, ``ema_state`` / ``ema_num_updates`` (when EMA is on), ``optimizer_state``,
``scheduler_state``, ``scaler_state``, ``epoch`` (the epoch to run next, 0-based), ``step_in_epoch``
(optimizer steps already done in that epoch), ``global_step``, ``rng_states`` (one entry per rank),
``sampler`` (seed, epoch, world size, batch size of the data order), ``cfg`` (the resolved YAML),
``class_names`` (the ``MODEL.NUM_CLASSES`` class names in output order, from the training set's class list;
the index as a string where it has none), and ``format_version``; ``nonfinite_streak`` (non-finite steps
skipped in a row) and, with several processes inside an epoch, ``rank_bn_buffers`` (every rank's own BN
running statistics, raw and EMA, which ``model_state`` holds averaged) so that a mid-epoch resume continues
every rank where it stopped.
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from rs_image.errors import UserError
from rs_image.fileio import atomic_write

__all__ = [
    "CHECKPOINT_SUBDIR",
    "LAST_NAME",
    "CheckpointError",
    "checkpoint_dir",
    "epoch_checkpoint_name",
    "step_checkpoint_name",
    "prune_step_checkpoints",
    "atomic_torch_save",
    "load_checkpoint",
    "checkpoint_candidates",
    "find_resume_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
]

logger = logging.getLogger(__name__)

CHECKPOINT_SUBDIR = "checkpoints"
LAST_NAME = "last.pyth"
FORMAT_VERSION = 1
_EPOCH_RE = re.compile(r"^checkpoint_epoch_(\d+)(?:_step_(\d+))?\.pyth$")
_REQUIRED_KEYS = ("model_state", "epoch", "step_in_epoch", "global_step")

PathLike = Union[str, os.PathLike]


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file cannot be read or is not a training checkpoint."""


def checkpoint_dir(output_dir: PathLike) -> Path:
    return Path(output_dir) / CHECKPOINT_SUBDIR


def epoch_checkpoint_name(epochs_done: int) -> str:
    """``checkpoint_epoch_00005.pyth`` after 5 completed epochs (SlowFast's naming)."""
    return f"checkpoint_epoch_{epochs_done:05d}.pyth"


def step_checkpoint_name(epochs_done: int, step_in_epoch: int) -> str:
    """``checkpoint_epoch_00005_step_000120.pyth`` after 5 epochs and 120 optimizer steps of the 6th."""
    return f"checkpoint_epoch_{epochs_done:05d}_step_{step_in_epoch:06d}.pyth"


def _positions(folder: Path) -> List[Tuple[Tuple[int, int], Path]]:
    """``((epochs done, step in epoch), path)`` of the epoch and step checkpoints in ``folder``."""
    found = []
    for p in folder.iterdir():
        m = _EPOCH_RE.match(p.name)
        if m and p.is_file():
            found.append(((int(m.group(1)), int(m.group(2) or 0)), p))
    return found


def prune_step_checkpoints(folder: PathLike, keep: int) -> List[Path]:
    """Delete all but the newest ``keep`` step checkpoints in ``folder`` (epoch checkpoints and ``last.pyth``
    stay); returns the deleted files."""
    folder = Path(folder)
    steps = sorted((pos, p) for pos, p in _positions(folder) if "_step_" in p.name) if folder.is_dir() else []
    removed = [p for _, p in steps[: max(len(steps) - keep, 0)]]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` that never leaves a half-written file at ``path``."""
    with atomic_write(path, "wb") as f:
        try:
            torch.save(obj, f)
        except RuntimeError as error:
            # torch's zip writer reports a failed write (disk full, a vanished mount) as an "enforce fail"
            # RuntimeError; the OSError of the file is its context, and what the user needs to see.
            if isinstance(error.__context__, OSError):
                raise error.__context__ from None
            raise


def load_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Read a training checkpoint (``weights_only=True``); raises :class:`CheckpointError` if unusable."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated / corrupt / not a torch file: all mean "unusable"
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a training checkpoint (a {type(state).__name__}, not a dict)")
    missing = [k for k in _REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a training checkpoint of this library (missing {missing})")
    return state


def checkpoint_candidates(folder: PathLike) -> List[Path]:
    """Checkpoints in ``folder``, newest first: ``last.pyth``, then the epoch and step checkpoints by position."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    last = folder / LAST_NAME
    if last.is_file():
        out.append(last)
    out.extend(p for _, p in sorted(_positions(folder), reverse=True))
    return out


def find_resume_checkpoint(folder: PathLike) -> Optional[Tuple[Path, Dict[str, Any]]]:
    """The newest checkpoint in ``folder`` that loads; unreadable ones are skipped with a warning."""
    for path in checkpoint_candidates(folder):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as exc:
            logger.warning("skipping checkpoint %s (falling back to an older one): %s", path, exc)
    return None


# ----------------------------------------------------------------------------------------------------
# RNG states as tensors and plain values (loadable with weights_only=True)
# ----------------------------------------------------------------------------------------------------
def capture_rng_state() -> Dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states of this process."""
    version, py_state, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss_next": gauss_next},
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), int(n["pos"]), int(n["has_gauss"]), float(n["cached_gaussian"]))
    )
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)

"""Run-time set-up shared by training and testing: seeds, determinism, autocast, RNG scopes, data loaders."""

from __future__ import annotations

import contextlib
import functools
import os
import random
import signal
from typing import Any, Callable, ContextManager, Dict, Iterator, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from . import distributed as du
from .checkpoint import capture_rng_state, restore_rng_state
from .config import CfgNode, ConfigError
from .preemption import ignore_signals, stop_signals
from .samplers import ShardedEvalSampler

__all__ = [
    "seed_everything",
    "configure_cpu_threads",
    "configure_determinism",
    "autocast_context",
    "preserve_rng",
    "loader_kwargs",
    "build_eval_loader",
]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_cpu_threads(threads: int) -> None:
    """``CPU_THREADS``: that many intra-op threads; 0 leaves the process's setting as it is."""
    if threads:
        torch.set_num_threads(threads)


def configure_determinism(deterministic: bool) -> None:
    """Deterministic kernels (bit-exact reruns on GPUs too) or cuDNN autotuning (speed)."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True


def autocast_context(precision: str, device: torch.device) -> ContextManager:
    """``torch.autocast`` for ``"bf16"`` (CPU and CUDA) or ``"fp16"`` (CUDA); a no-op for ``"none"``."""
    if precision == "none":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("TRAIN.MIXED_PRECISION fp16 needs a CUDA device (it uses a GradScaler); use bf16 on CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def preserve_rng() -> Iterator[None]:
    """Run a block without changing the Python/NumPy/torch RNG states seen after it."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


def _init_loader_worker(worker_id: int, ignored_signals: Tuple[signal.Signals, ...] = ()) -> None:
    # torch seeds each worker with base_seed + worker_id; NumPy and Python get the same seed so that workers
    # of data sets that draw outside rs_image.data.randomness do not share their random streams.
    ignore_signals(ignored_signals)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def loader_kwargs(cfg: CfgNode, device: torch.device, collate_fn: Optional[Callable[[list], Any]] = None) -> Dict[str, Any]:
    """DataLoader keywords from ``DATA_LOADER.*`` (pinned memory only for CUDA devices)."""
    workers = cfg.DATA_LOADER.NUM_WORKERS
    kwargs: Dict[str, Any] = dict(
        num_workers=workers,
        pin_memory=cfg.DATA_LOADER.PIN_MEMORY and device.type == "cuda",
        # The stop signals are the main process's to handle (rs_image.engine.preemption).
        worker_init_fn=functools.partial(_init_loader_worker, ignored_signals=stop_signals(cfg.TRAIN.PREEMPT_SIGNAL))
        if workers > 0 else None,
        collate_fn=collate_fn,
    )
    if workers > 0:
        kwargs["persistent_workers"] = cfg.DATA_LOADER.PERSISTENT_WORKERS
        kwargs["prefetch_factor"] = cfg.DATA_LOADER.PREFETCH_FACTOR
    return kwargs


def build_eval_loader(cfg: CfgNode, dataset: Dataset, batch_size: int, device: torch.device,
                      collate_fn: Optional[Callable[[list], Any]] = None) -> DataLoader:
    """A loader that gives every item of ``dataset`` to exactly one process (no padding), in order."""
    sampler = ShardedEvalSampler(len(dataset), du.get_rank(), du.get_world_size())  # type: ignore[arg-type]
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, drop_last=False,
                      **loader_kwargs(cfg, device, collate_fn))

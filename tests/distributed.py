"""Two-process (gloo) runs for the DDP tests: a free local port, and a worker spawned on two ranks."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import torch
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn_two_ranks(worker: Callable[[int, int, int, str], None], out: Path) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Run ``worker(rank, 2, port, str(out))`` on two processes; each saves ``out/rank{rank}.pt``.
    Returns both ranks' saved results."""
    mp.spawn(worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    return tuple(torch.load(Path(out) / f"rank{r}.pt", weights_only=True) for r in (0, 1))  # type: ignore[return-value]

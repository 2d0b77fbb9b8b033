"""Distributed helpers over ``torch.distributed``: the torchrun environment, DDP-ready process group,
metric reduction. Multi-node is torchrun's rendezvous; nothing here is home-made.

``torchrun`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; a plain
``python`` launch has none of them and runs as a single process. The backend is NCCL on CUDA devices and
gloo on CPU. A caller may initialise the default process group itself before the engine starts (e.g. a
one-process NCCL group, which ``tools/gpu_check.py`` uses to run DDP on one GPU); :class:`DistInfo` then
says so and the trainer wraps the model in DDP even at world size 1.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List

import torch
import torch.distributed as dist

from rs_image.recipe import FrozenBatchNorm

from .config import ConfigError

__all__ = [
    "DistInfo",
    "init_distributed",
    "is_distributed",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "barrier",
    "all_reduce_sum",
    "all_reduce_max",
    "all_gather_object",
    "broadcast_object",
    "destroy_distributed",
    "average_bn_buffers",
    "bn_buffers",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process runs: ``rank`` of ``world_size``, ``local_rank`` on its node, and its device;
    ``process_group``: whether a default process group exists (always with ``world_size > 1``)."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    process_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def init_distributed(device: str = "auto") -> DistInfo:
    """Set up this process from the torchrun environment (idempotent).

    Args:
        device: ``"auto"`` (``cuda:LOCAL_RANK`` when CUDA is available, else CPU), ``"cpu"`` or ``"cuda"``.

    With ``WORLD_SIZE > 1`` the default process group is initialised (NCCL for CUDA, gloo for CPU); one
    that already exists is kept.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("DEVICE is 'cuda' but CUDA is not available; use DEVICE cpu (or auto)")
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    elif device == "cpu":
        dev = torch.device("cpu")
    else:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs: Dict[str, Any] = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, store=_attempt_store(rank, world_size),
                                **kwargs)
        logger.info("process group: backend %s, rank %d/%d, device %s", backend, rank, world_size, dev)
    group = dist.is_available() and dist.is_initialized()
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=dev, process_group=group)


def _attempt_store(rank: int, world_size: int) -> dist.Store:
    """The rendezvous store of ``env://`` (torchrun's), with the keys of this process group under a prefix of
    its own torchrun attempt (``TORCHELASTIC_RESTART_COUNT``).

    torchrun keeps one store for the whole job. Without the prefix, a group restarted after a failed rank
    (``--max-restarts``) finds the keys that the dead group left there and takes them for its own: the new
    ranks connect to the dead ranks' gloo addresses ("Connection refused", the restart fails) or wait on
    counters that are already past (a hang without a log line).
    """
    store, _, _ = next(dist.rendezvous("env://", rank=rank, world_size=world_size))
    return dist.PrefixStore(f"rs_image/attempt_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over processes (in place) and return it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum over processes (in place)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def all_gather_object(obj: Any) -> List[Any]:
    """Gather a picklable object from every process (the list is ordered by rank)."""
    if not is_distributed():
        return [obj]
    out: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """The ``src`` process's ``obj`` on every process."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def destroy_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def bn_buffers(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The BN running means and variances of ``model`` by qualified name (the live tensors): what differs
    between the ranks of a DDP run, whose parameters are the same everywhere."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, FrozenBatchNorm):  # the same on every rank: nothing to average or keep per rank
            continue
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            out[f"{name}.running_mean"], out[f"{name}.running_var"] = m.running_mean, m.running_var
    return out


def average_bn_buffers(model: torch.nn.Module) -> None:
    """Average BN running statistics over processes (each rank updates them from its own batches)."""
    if not is_distributed():
        return
    world = get_world_size()
    for buf in bn_buffers(model).values():
        all_reduce_sum(buf)
        buf.div_(world)

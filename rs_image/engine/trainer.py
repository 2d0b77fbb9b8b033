"""The training loop: ResNet-RS recipe, checkpoints with exact resume, DDP, validation, metrics.

:class:`Trainer` is generic over a :class:`~rs_image.engine.tasks.Task` (image or video). One optimizer
step per batch; the learning rate follows the per-step cosine schedule; the EMA is updated after every
step; at the end of an epoch come precise BN (optional), the checkpoint, then single-view validation of
the raw and the EMA weights.

Exact resume. ``last.pyth`` holds everything that decides the rest of the run: weights, EMA, optimizer,
scheduler, grad scaler, the position in the data order (epoch and step; the order itself is a function
of ``RNG_SEED`` and the epoch, ``DistributedSampler``'s rule) and the Python/NumPy/torch RNG states of
every rank (dropout, drop-path, MixUp). The data pipeline holds no state worth saving: every random choice
about a sample is drawn from ``(RNG_SEED, epoch, sample index, attempt)`` (:mod:`rs_image.data.randomness`),
whichever worker loads it. Written every ``TRAIN.CHECKPOINT_STEP_PERIOD`` steps, it makes a run killed at
any point and resumed bit-identical to an uninterrupted one on the CPU, with any number of loader
workers, persistent or not; the number of workers does not change the result either. Validation runs
with saved-and-restored RNG states so it never changes the training randomness.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import os
import random
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, Iterator, Optional

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from rs_image.data.randomness import EpochIndex
from rs_image.errors import DataError
from rs_image.fileio import atomic_path, remove_stale_temporaries
from rs_image.recipe import (
    ModelEma,
    build_cosine_warmup_scheduler,
    build_loss,
    build_sgd,
    check_bn_ema_convention,
    ema_decay_at,
    convert_sync_batchnorm,
    scaled_lr,
    set_bn_momentum,
    stochastic_depth_rates,
    update_precise_bn,
)

from . import distributed as du
from .checkpoint import (
    FORMAT_VERSION,
    LAST_NAME,
    atomic_torch_save,
    capture_rng_state,
    checkpoint_dir,
    epoch_checkpoint_name,
    find_resume_checkpoint,
    load_checkpoint,
    restore_rng_state,
)
from .config import CfgNode, ConfigError, save_config
from .evaluator import ShardedEvalSampler, evaluate_single_view
from .logger import MeanMeter, MetricWriter, setup_logging
from .tasks import Task, get_task

__all__ = [
    "Trainer",
    "NonFiniteLossError",
    "ResumableDistributedSampler",
    "seed_everything",
    "configure_determinism",
    "autocast_context",
    "preserve_rng",
    "build_eval_loader",
]

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite and ``TRAIN.NONFINITE_LOSS`` is ``"stop"``."""


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` that can start part-way through an epoch (for mid-epoch resume).

    The order of an epoch depends only on ``seed`` and the epoch (``set_epoch``); ``set_start_index(n)``
    skips the first ``n`` indices of this rank's share. Indices are
    :class:`~rs_image.data.randomness.EpochIndex` (ints that carry the epoch), so a data set draws each
    sample's randomness from ``(seed, epoch, index)`` in whichever worker loads it.
    """

    def __init__(self, dataset: Dataset, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.start_index = 0

    def set_start_index(self, start_index: int) -> None:
        self.start_index = max(0, int(start_index))

    def __iter__(self) -> Iterator[int]:
        indices = itertools.islice(super().__iter__(), self.start_index, None)
        return (EpochIndex(i, self.epoch) for i in indices)

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start_index)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_determinism(deterministic: bool) -> None:
    """Deterministic kernels (bit-exact reruns) or cuDNN autotuning (speed)."""
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


def _seed_loader_worker(worker_id: int) -> None:
    # torch seeds each worker with base_seed + worker_id; give NumPy and Python the same seed so that
    # workers do not share their random streams.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _loader_kwargs(
    cfg: CfgNode, device: torch.device, collate_fn: Optional[Callable[[list], Any]] = None
) -> Dict[str, Any]:
    workers = cfg.DATA_LOADER.NUM_WORKERS
    kwargs: Dict[str, Any] = dict(
        num_workers=workers,
        pin_memory=cfg.DATA_LOADER.PIN_MEMORY and device.type == "cuda",
        worker_init_fn=_seed_loader_worker if workers > 0 else None,
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
                      **_loader_kwargs(cfg, device, collate_fn))


def _average_bn_buffers(model: nn.Module) -> None:
    """Average BN running statistics over processes (after precise BN on per-rank data)."""
    if not du.is_distributed():
        return
    world = du.get_world_size()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            for buf in (m.running_mean, m.running_var):
                du.all_reduce_sum(buf)
                buf.div_(world)


class Trainer:
    """Train a model of ``cfg.TASK`` with the ResNet-RS recipe.

    Args:
        cfg: a validated configuration (:func:`rs_image.engine.load_config`).
        task: the task; default ``get_task(cfg.TASK)``. Pass your own :class:`Task` to train on other data.

    Run with :meth:`train`; it returns the last validation metrics (or the last training metrics).
    """

    def __init__(self, cfg: CfgNode, task: Optional[Task] = None) -> None:
        self.cfg = cfg
        self.task = task if task is not None else get_task(cfg.TASK)
        self.dist = du.init_distributed(cfg.DEVICE)
        self.device = self.dist.device
        self.is_main = self.dist.is_main
        self.output_dir = Path(cfg.OUTPUT_DIR)
        self.ckpt_dir = checkpoint_dir(self.output_dir)
        setup_logging(self.output_dir, self.dist.rank)
        self.precision = cfg.TRAIN.MIXED_PRECISION
        self.autocast = lambda: autocast_context(self.precision, self.device)
        self.autocast()  # fail early on fp16 without CUDA
        check_bn_ema_convention(cfg.BN.MOMENTUM, cfg.EMA.ENABLE, cfg.EMA.INCLUDE_BUFFERS)
        if self.is_main:
            save_config(cfg, self.output_dir / "config.yaml")
            remove_stale_temporaries(self.ckpt_dir)
        configure_determinism(cfg.DETERMINISTIC)
        seed_everything(cfg.RNG_SEED)  # the same initial weights on every rank

        # ---------------------------------------------------------------- data
        world, rank = self.dist.world_size, self.dist.rank
        self.batch_size = cfg.TRAIN.BATCH_SIZE
        self.train_set = self.task.build_dataset(cfg, "train")
        self.sampler = ResumableDistributedSampler(
            self.train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.RNG_SEED, drop_last=True
        )
        full_steps = self.sampler.num_samples // self.batch_size
        if full_steps == 0:
            raise DataError(
                f"the training set has {len(self.train_set)} samples, fewer than one global batch "  # type: ignore[arg-type]
                f"(TRAIN.BATCH_SIZE {self.batch_size} x {world} processes)"
            )
        max_steps = cfg.TRAIN.MAX_STEPS_PER_EPOCH
        self.steps_per_epoch = min(full_steps, max_steps) if max_steps > 0 else full_steps
        self.max_epoch = cfg.SOLVER.MAX_EPOCH
        self.total_steps = self.steps_per_epoch * self.max_epoch
        self.loader_generator = torch.Generator()
        self.train_loader = DataLoader(
            self.train_set,
            batch_sampler=BatchSampler(self.sampler, self.batch_size, drop_last=True),
            generator=self.loader_generator,
            **_loader_kwargs(cfg, self.device, self.task.collate_fn()),
        )
        self.val_loader: Optional[DataLoader] = None
        if cfg.TRAIN.EVAL_PERIOD > 0:
            self.val_loader = build_eval_loader(cfg, self.task.build_dataset(cfg, "val"), self.batch_size, self.device,
                                                self.task.collate_fn())

        # ---------------------------------------------------------------- resume point
        resume: Optional[Dict[str, Any]] = None
        self.resumed_from: Optional[Path] = None
        if cfg.TRAIN.AUTO_RESUME:
            found = find_resume_checkpoint(self.ckpt_dir) if self.is_main else None
            path = du.broadcast_object(str(found[0]) if found else None)
            if path is not None:
                resume = found[1] if found else load_checkpoint(path)  # shared file system assumed
                self.resumed_from = Path(path)

        # ---------------------------------------------------------------- model
        model = self.task.create_model(cfg)
        set_bn_momentum(model, cfg.BN.MOMENTUM)
        if resume is None and cfg.TRAIN.CHECKPOINT_FILE_PATH:
            self.task.load_initial_weights(model, cfg)
            logger.info("initial weights: %s", cfg.TRAIN.CHECKPOINT_FILE_PATH)
        if cfg.MODEL.ACT_CHECKPOINT:
            model.set_grad_checkpointing(True)
        model.to(self.device)
        self.memory_format = self.task.channels_last_format if cfg.MODEL.CHANNELS_LAST else None
        if self.memory_format is not None:
            model.to(memory_format=self.memory_format)
        # Batch -> model input on the device (uint8 clips are normalised there), for every path below.
        self.prepare_input = functools.partial(
            self.task.prepare_input, cfg=cfg, device=self.device, memory_format=self.memory_format
        )
        if cfg.BN.SYNC and self.dist.process_group:
            if self.device.type == "cuda":
                model = convert_sync_batchnorm(model)
            else:
                logger.warning("BN.SYNC ignored: SyncBatchNorm needs CUDA (running on %s)", self.device)
        self.model = model
        self.ema: Optional[ModelEma] = (
            ModelEma(model, cfg.EMA.DECAY, cfg.EMA.TF_WARMUP, cfg.EMA.INCLUDE_BUFFERS) if cfg.EMA.ENABLE else None
        )

        # ---------------------------------------------------------------- optimisation
        self.global_batch = self.batch_size * world
        scale = self.global_batch / cfg.SOLVER.BASE_BATCH_SIZE
        self.peak_lr = scaled_lr(cfg.SOLVER.BASE_LR, self.global_batch, cfg.SOLVER.BASE_BATCH_SIZE)
        self.optimizer = build_sgd(
            model, self.peak_lr, momentum=cfg.SOLVER.MOMENTUM, nesterov=cfg.SOLVER.NESTEROV,
            weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        )
        self.warmup_steps = int(round(cfg.SOLVER.WARMUP_EPOCHS * self.steps_per_epoch))
        self.scheduler = build_cosine_warmup_scheduler(
            self.optimizer, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
            warmup_start_lr=cfg.SOLVER.WARMUP_START_LR * scale, end_lr=cfg.SOLVER.COSINE_END_LR * scale,
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.criterion = build_loss(cfg.SOLVER.LABEL_SMOOTHING)
        self.mixup = self.task.build_mixup(cfg)

        # ---------------------------------------------------------------- progress
        self.start_epoch = 0
        self.start_step = 0
        self.global_step = 0
        self.num_skipped_steps = 0
        if resume is not None:
            self._restore(resume)

        # ---------------------------------------------------------------- wrappers
        self.train_model: nn.Module = model
        if self.dist.process_group:  # also a one-process group set up by the caller (tools/gpu_check.py)
            self.train_model = DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if cfg.TRAIN.COMPILE:
            self.train_model = torch.compile(self.train_model, backend=cfg.TRAIN.COMPILE_BACKEND)  # type: ignore[assignment]
        self.writer = MetricWriter(self.output_dir, enabled=self.is_main, tensorboard=cfg.TENSORBOARD)
        self.last_metrics: Dict[str, Any] = {}
        self._log_setup()

        # Training randomness (augmentation, dropout, drop-path): per rank, or exactly where it stopped.
        if resume is not None and len(resume.get("rng_states") or []) == world:
            restore_rng_state(resume["rng_states"][rank])
        else:
            if resume is not None:
                logger.warning("checkpoint RNG states are for another number of processes; reseeding")
            seed_everything(cfg.RNG_SEED + rank + 7919 * self.global_step)

    # ------------------------------------------------------------------------------------------------
    def _log_setup(self) -> None:
        cfg = self.cfg
        n_params = sum(p.numel() for p in self.model.parameters())
        rates = stochastic_depth_rates(self.model)
        sd = f"{min(rates.values()):.3f}..{max(rates.values()):.3f} over {len(rates)} blocks" if rates else "off"
        logger.info(
            "task %s, model %s (%.2fM params), device %s x %d process(es), precision %s",
            cfg.TASK, cfg.MODEL.NAME, n_params / 1e6, self.device, self.dist.world_size, self.precision,
        )
        logger.info(
            "global batch %d -> peak LR %.5g (SOLVER.BASE_LR %g per %d), %d steps/epoch x %d epochs, warm-up %d steps, "
            "stochastic depth %s, EMA %s",
            self.global_batch, self.peak_lr, cfg.SOLVER.BASE_LR, cfg.SOLVER.BASE_BATCH_SIZE, self.steps_per_epoch,
            self.max_epoch, self.warmup_steps, sd, f"{cfg.EMA.DECAY}" if self.ema is not None else "off",
        )
        if self.resumed_from is not None:
            logger.info(
                "resumed from %s: epoch %d, step %d of %d (global step %d)", self.resumed_from,
                self.start_epoch + 1, self.start_step, self.steps_per_epoch, self.global_step,
            )
            self.writer.write("event", {
                "event": "resume", "checkpoint": str(self.resumed_from), "epoch": self.start_epoch,
                "step_in_epoch": self.start_step,
            }, self.global_step)

    # ------------------------------------------------------------------------------------------------
    # Checkpoints
    # ------------------------------------------------------------------------------------------------
    def state_dict(self, next_epoch: int, step_in_epoch: int, rng_states: list) -> Dict[str, Any]:
        """The checkpoint dict (see :mod:`rs_image.engine.checkpoint`)."""
        state: Dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict(),
            "scaler_state": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": next_epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": self.global_step,
            "num_skipped_steps": self.num_skipped_steps,
            "rng_states": rng_states,
            "sampler": {
                "seed": self.cfg.RNG_SEED, "epoch": next_epoch, "world_size": self.dist.world_size,
                "batch_size": self.batch_size, "consumed_batches": step_in_epoch,
            },
            "cfg": self.cfg.dump(),
        }
        if self.ema is not None:
            state["ema_state"] = self.ema.module.state_dict()
            state["ema_num_updates"] = self.ema.num_updates
        return state

    def synchronize_bn_statistics(self) -> None:
        """Average the BN running statistics (raw and EMA) over processes. Collective call.

        Under DDP every rank updates them from its own batch (DDP re-broadcasts rank 0's before each
        forward), so after a step they differ; the average is the statistic of the global batch and makes
        the saved and evaluated networks identical on all ranks.
        """
        _average_bn_buffers(self.model)
        if self.ema is not None:
            _average_bn_buffers(self.ema.module)

    def save_checkpoint(self, next_epoch: int, step_in_epoch: int, keep: bool = False) -> None:
        """Write ``last.pyth`` (and ``checkpoint_epoch_XXXXX.pyth`` when ``keep``). Collective call."""
        self.synchronize_bn_statistics()
        rng_states = du.all_gather_object(capture_rng_state())
        if self.is_main:
            last = self.ckpt_dir / LAST_NAME
            atomic_torch_save(self.state_dict(next_epoch, step_in_epoch, rng_states), last)
            if keep:
                target = self.ckpt_dir / epoch_checkpoint_name(next_epoch)
                with atomic_path(target) as tmp:
                    shutil.copyfile(last, tmp)
        du.barrier()

    def _restore(self, state: Dict[str, Any]) -> None:
        self.model.load_state_dict(state["model_state"])
        if self.ema is not None:
            if state.get("ema_state") is not None:
                self.ema.module.load_state_dict(state["ema_state"])
                self.ema.set_num_updates(int(state.get("ema_num_updates", state["global_step"])))
            else:
                logger.warning("the checkpoint has no EMA weights; the EMA restarts from the restored weights")
                self.ema = ModelEma(self.model, self.cfg.EMA.DECAY, self.cfg.EMA.TF_WARMUP, self.cfg.EMA.INCLUDE_BUFFERS)
        if state.get("optimizer_state") is not None:
            self.optimizer.load_state_dict(state["optimizer_state"])
        if state.get("scheduler_state") is not None:
            self.scheduler.load_state_dict(state["scheduler_state"])
        if state.get("scaler_state") is not None and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler_state"])
        self.start_epoch = int(state["epoch"])
        self.start_step = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.num_skipped_steps = int(state.get("num_skipped_steps", 0))
        sampler = state.get("sampler") or {}
        if self.start_step and (
            sampler.get("world_size") != self.dist.world_size or sampler.get("batch_size") != self.batch_size
        ):
            logger.warning(
                "resuming mid-epoch with another world size / batch size (%s x %s before, %d x %d now): the rest "
                "of epoch %d uses a different data order", sampler.get("world_size"), sampler.get("batch_size"),
                self.dist.world_size, self.batch_size, self.start_epoch + 1,
            )
        if self.start_step > self.steps_per_epoch:
            self.start_step = self.steps_per_epoch

    # ------------------------------------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------------------------------------
    def train(self) -> Dict[str, Any]:
        """Run the remaining epochs; returns the last metrics."""
        try:
            if self.start_epoch >= self.max_epoch:
                logger.info("training already complete (%d epochs) in %s", self.max_epoch, self.ckpt_dir)
            for epoch in range(self.start_epoch, self.max_epoch):
                self._train_epoch(epoch, self.start_step if epoch == self.start_epoch else 0)
                self._end_of_epoch(epoch)
            self.writer.write("event", {"event": "done", **self.last_metrics}, self.global_step)
        finally:
            self.writer.close()
        return self.last_metrics

    def _loader_seed(self, epoch: int) -> int:
        # Seeds the loader workers' base seed; independent of the global RNG so resuming is exact.
        return (self.cfg.RNG_SEED * 1_000_003 + epoch * 1_009 + self.dist.rank) % 2**63

    def _train_epoch(self, epoch: int, first_step: int) -> None:
        cfg = self.cfg
        self.train_model.train()
        self.sampler.set_epoch(epoch)
        self.sampler.set_start_index(first_step * self.batch_size)
        self.loader_generator.manual_seed(self._loader_seed(epoch))
        loss_meter, acc_meter = MeanMeter(), MeanMeter()
        epoch_loss, epoch_failed_reads = MeanMeter(), 0
        step_time, data_time = MeanMeter(), MeanMeter()
        bar = tqdm(
            total=self.steps_per_epoch, initial=first_step, desc=f"epoch {epoch + 1}/{self.max_epoch}",
            disable=not (self.is_main and cfg.PROGRESS_BAR), dynamic_ncols=True, unit="step",
        )
        tic = time.perf_counter()
        iterator = iter(self.train_loader)
        try:
            for step in range(first_step, self.steps_per_epoch):
                batch = next(iterator)
                data_time.update(time.perf_counter() - tic)
                loss, correct = self._train_step(batch, epoch, step)
                n = int(torch.as_tensor(batch["label"]).numel())
                if loss is not None:
                    loss_meter.update(loss, n)
                    epoch_loss.update(loss, n)
                if correct is not None:
                    acc_meter.update(100.0 * correct / n, n)
                if "failed_reads" in batch:
                    epoch_failed_reads += int(torch.as_tensor(batch["failed_reads"]).sum())
                step_time.update(time.perf_counter() - tic)
                bar.update(1)
                done = step + 1
                if done % cfg.LOG_PERIOD == 0 or done == self.steps_per_epoch:
                    self._log_train(epoch, done, loss_meter, acc_meter, step_time, data_time, bar)
                    loss_meter.reset(), acc_meter.reset()
                period = cfg.TRAIN.CHECKPOINT_STEP_PERIOD
                if period > 0 and done % period == 0 and done < self.steps_per_epoch:
                    self.save_checkpoint(epoch, done)
                tic = time.perf_counter()
        finally:
            bar.close()
            del iterator
        totals = du.all_reduce_sum(torch.tensor(
            [epoch_loss.total, epoch_loss.count, float(epoch_failed_reads)], dtype=torch.float64, device=self.device
        ))
        record = {
            "epoch": epoch + 1,
            "loss": (totals[0] / totals[1]).item() if totals[1] > 0 else float("nan"),
            "failed_reads": int(totals[2].item()),
            "skipped_steps": self.num_skipped_steps,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        self.writer.write("train_epoch", record, self.global_step)
        logger.info("epoch %d/%d done: train loss %.4f, lr %.4g, global step %d", epoch + 1, self.max_epoch,
                    record["loss"], record["lr"], self.global_step)
        if record["failed_reads"]:
            logger.warning("epoch %d: %d unreadable samples were replaced by others (see the log above for the files)",
                           epoch + 1, record["failed_reads"])
        self.last_metrics = {f"train_{k}": v for k, v in record.items()}

    def _train_step(self, batch: Dict[str, Any], epoch: int, step: int):
        """One optimizer step. Returns (loss value or None if skipped, correct count or None)."""
        x = self.prepare_input(batch)
        labels = torch.as_tensor(batch["label"]).to(self.device, non_blocking=True).long()
        targets: torch.Tensor = labels
        if self.mixup is not None:  # on normalised floats, whatever DATA.OUTPUT_DTYPE is
            x, targets = self.mixup(x, labels)
        skip_policy = self.cfg.TRAIN.NONFINITE_LOSS == "skip"
        # A skipped step must also undo what its forward pass did to the BN running statistics.
        saved_buffers = [b.detach().clone() for b in self.model.buffers()] if skip_policy else None
        with self.autocast():
            logits = self.train_model(x)
        loss = self.criterion(logits.float(), targets)

        # Every rank must take the same decision, or DDP's gradient all-reduce would hang.
        bad = du.all_reduce_sum((~torch.isfinite(loss.detach())).float().reshape(1))
        if bad.item() > 0:
            where = (
                f"epoch {epoch + 1}, step {step + 1}/{self.steps_per_epoch} (global step {self.global_step + 1}), "
                f"learning rate {self.optimizer.param_groups[0]['lr']:.4g}"
            )
            if self.cfg.TRAIN.NONFINITE_LOSS == "stop":
                raise NonFiniteLossError(
                    f"non-finite loss ({loss.item()}) at {where}. Training stopped before applying it; the last "
                    f"checkpoint is intact. Try a lower SOLVER.BASE_LR, SOLVER.CLIP_GRAD_L2NORM, a longer "
                    f"SOLVER.WARMUP_EPOCHS, or TRAIN.NONFINITE_LOSS skip."
                )
            logger.warning("non-finite loss at %s: step skipped (TRAIN.NONFINITE_LOSS skip)", where)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                for buf, saved in zip(self.model.buffers(), saved_buffers or []):
                    buf.copy_(saved)
            self.num_skipped_steps += 1
            with warnings.catch_warnings():  # the schedule advances although no optimizer step was taken
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)`")
                self.scheduler.step()
            self.global_step += 1
            return None, None

        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.SOLVER.CLIP_GRAD_L2NORM > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.SOLVER.CLIP_GRAD_L2NORM)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.global_step += 1
        correct = None
        if targets.dim() == 1:
            correct = int((logits.detach().argmax(dim=1) == labels).sum())
        return loss.item(), correct

    def _log_train(self, epoch: int, done: int, loss_meter: MeanMeter, acc_meter: MeanMeter,
                   step_time: MeanMeter, data_time: MeanMeter, bar: tqdm) -> None:
        t = du.all_reduce_sum(torch.tensor(
            [loss_meter.total, loss_meter.count, acc_meter.total, acc_meter.count], dtype=torch.float64, device=self.device
        )).tolist()
        remaining = self.total_steps - self.global_step
        record: Dict[str, Any] = {
            "epoch": epoch + 1,
            "step": done,
            "loss": t[0] / t[1] if t[1] else float("nan"),
            "lr": self.optimizer.param_groups[0]["lr"],
            "samples_per_s": self.global_batch / step_time.mean if step_time.count else float("nan"),
            "data_time": data_time.mean,
            "step_time": step_time.mean,
            "eta_s": remaining * step_time.mean if step_time.count else float("nan"),
        }
        if t[3]:
            record["top1"] = t[2] / t[3]
        if self.ema is not None:
            record["ema_decay"] = ema_decay_at(self.global_step, self.cfg.EMA.DECAY, self.cfg.EMA.TF_WARMUP)
        self.writer.write("train", record, self.global_step)
        bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.3g}")
        if not (self.is_main and self.cfg.PROGRESS_BAR):
            logger.info(
                "epoch %d step %d/%d  loss %.4f  lr %.4g  %.1f samples/s  eta %s",
                epoch + 1, done, self.steps_per_epoch, record["loss"], record["lr"], record["samples_per_s"],
                _format_eta(record["eta_s"]),
            )
        step_time.reset(), data_time.reset()

    # ------------------------------------------------------------------------------------------------
    def _end_of_epoch(self, epoch: int) -> None:
        cfg = self.cfg
        done = epoch + 1
        last = done == self.max_epoch
        if cfg.BN.USE_PRECISE_STATS:
            self.update_precise_bn(epoch)
        self.save_checkpoint(done, 0, keep=(done % cfg.TRAIN.CHECKPOINT_PERIOD == 0) or last)
        if self.val_loader is not None and (done % cfg.TRAIN.EVAL_PERIOD == 0 or last):
            self.validate(epoch)

    def update_precise_bn(self, epoch: int) -> None:
        """Recompute BN statistics of the raw and EMA networks on training batches (fvcore precise BN)."""
        sampler = ResumableDistributedSampler(
            self.train_set, num_replicas=self.dist.world_size, rank=self.dist.rank, shuffle=True,
            seed=self.cfg.RNG_SEED + 1, drop_last=True,
        )
        sampler.set_epoch(epoch)
        loader = DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, drop_last=True,
                            **_loader_kwargs(self.cfg, self.device, self.task.collate_fn()))
        num = min(self.cfg.BN.NUM_BATCHES_PRECISE, len(loader))

        def inputs() -> Iterator[torch.Tensor]:
            for batch in loader:
                yield self.prepare_input(batch)

        nets = [self.model] + ([self.ema.module] if self.ema is not None else [])
        for net in nets:
            with self.autocast(), torch.no_grad():
                update_precise_bn(net, inputs(), num)
            _average_bn_buffers(net)
        logger.info("precise BN statistics from %d batches", num)

    def validate(self, epoch: int) -> Dict[str, Any]:
        """Single-view validation of the raw and EMA weights; logs and returns the metrics."""
        assert self.val_loader is not None
        progress = self.is_main and self.cfg.PROGRESS_BAR
        with preserve_rng():
            raw = evaluate_single_view(
                self.model, self.val_loader, self.prepare_input, device=self.device, autocast=self.autocast(),
                progress=progress, desc="val",
            )
            ema = None
            if self.ema is not None:
                ema = evaluate_single_view(
                    self.ema.module, self.val_loader, self.prepare_input, device=self.device,
                    autocast=self.autocast(), progress=progress, desc="val ema",
                )
        record: Dict[str, Any] = {"epoch": epoch + 1, **raw}
        if ema is not None:
            record.update({f"ema_{k}": v for k, v in ema.items()})
        self.writer.write("val", record, self.global_step)
        msg = f"epoch {epoch + 1} val: top-1 {raw['top1']:.2f}% top-5 {raw['top5']:.2f}% loss {raw['loss']:.4f}"
        if ema is not None:
            msg += f" | EMA top-1 {ema['top1']:.2f}% top-5 {ema['top5']:.2f}% loss {ema['loss']:.4f}"
        msg += f" ({raw['num_samples']} samples"
        msg += f", {raw['num_failed']} failed)" if raw["num_failed"] else ")"
        logger.info(msg)
        self.last_metrics = {f"val_{k}": v for k, v in record.items()}
        return record


def _format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


"""The training loop: ResNet-RS recipe, checkpoints with exact resume, DDP, validation, metrics.

:class:`Trainer` is generic over a :class:`~rs_image.engine.tasks.Task`. It is assembled from builders that
return what they make (:mod:`rs_image.engine.assembly`; the ``build_*`` methods call them and a subclass may
override any of them without breaking another), with the numbers of the run fixed once in a frozen
:class:`~rs_image.engine.assembly.TrainingPlan` (``trainer.plan``); everything around the loop (metrics,
precise BN, checkpoints, validation, your own) is an ordered list of hooks with their settings
(:mod:`rs_image.engine.hooks`).
One optimizer step per ``TRAIN.GRAD_ACCUM_STEPS`` micro-batches (1: per batch); every count of steps (the
schedule, the EMA, logging, checkpoints, ``TRAIN.MAX_STEPS_PER_EPOCH``) counts optimizer steps, and the
global batch that the learning rate is scaled by counts the samples of one optimizer step over all
processes: ``TRAIN.BATCH_SIZE x`` :meth:`Task.samples_per_item` ``x GRAD_ACCUM_STEPS x processes``. Metrics
stay on the device between log periods; the one host sync per step left is the non-finite-loss check,
which every process must decide together before the optimizer step.

The optimizer step itself, gradient accumulation and the non-finite-loss policy are
:class:`~rs_image.engine.train_step.TrainStep`'s (``trainer.train_step``), which owns everything the step changes;
the loop decides with it, in the step's one all-reduce, whether to stop (a signal) or write a checkpoint (time).
With equal micro-batches the mean of the N micro-batch losses is the loss of their union, so an accumulated step
equals one step on a batch N times larger, except for BatchNorm in train mode. Checkpoints are written between
optimizer steps only, so a resumed run restarts at a step boundary and is exact.

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

import functools
import logging
import time
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader
from tqdm import tqdm

from rs_image.fileio import atomic_copy, remove_stale_temporaries
from rs_image.recipe import (
    ModelEma,
    check_bn_ema_convention,
    convert_sync_batchnorm,
    freeze_batchnorm,
    freeze_stages,
    stochastic_depth_rates,
)

from . import assembly
from . import distributed as du
from .assembly import TrainingPlan
from .checkpoint import (
    FORMAT_VERSION,
    LAST_NAME,
    CheckpointError,
    atomic_torch_save,
    capture_rng_state,
    checkpoint_dir,
    epoch_checkpoint_name,
    find_resume_checkpoint,
    load_checkpoint,
    prune_step_checkpoints,
    restore_rng_state,
    step_checkpoint_name,
)
from .config import CfgNode, require_keys, save_config
from .hooks import Checkpointer, Hook, MetricLogger, PreciseBN, TrainingCurves, Validator
from .logger import MetricWriter, setup_logging
from .preemption import Preempted, StopSignals, requeue_slurm_job, stop_signals
from .runtime import (autocast_context, build_eval_loader, configure_cpu_threads, configure_determinism, loader_kwargs,
                      seed_everything)
from .samplers import ResumableDistributedSampler
from .tasks import Task, get_task
from .train_step import NonFiniteLossError, TrainStep

__all__ = ["Trainer", "NonFiniteLossError"]

logger = logging.getLogger(__name__)


def _end_workers(iterator: Optional[Iterator]) -> None:
    """Stop the worker processes of a DataLoader iterator now (torch offers no public call for it)."""
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


class _PeriodTimer:
    """Mean data-loading and step times since the last :meth:`pop` (host clock)."""

    def __init__(self) -> None:
        self.data = self.step = 0.0
        self.count = 0

    def add(self, data_s: float, step_s: float) -> None:
        self.data, self.step, self.count = self.data + data_s, self.step + step_s, self.count + 1

    def pop(self) -> Dict[str, float]:
        n = max(self.count, 1)
        means = {"data": self.data / n, "step": self.step / n if self.count else 0.0}
        self.__init__()
        return means


class Trainer:
    """Train a model of ``cfg.TASK`` with the ResNet-RS recipe.

    Args:
        cfg: a validated configuration (:func:`rs_image.engine.load_config`).
        task: the task; default ``get_task(cfg.TASK)``. Pass your own :class:`Task` to train on other data.

    Run with :meth:`train`; it returns the last validation metrics (or the last training metrics).
    """

    def __init__(self, cfg: CfgNode, task: Optional[Task] = None) -> None:
        require_keys(cfg, "training")
        self.cfg = cfg
        self.task = task if task is not None else get_task(cfg.TASK)
        self.dist = du.init_distributed(cfg.DEVICE)
        self.device, self.is_main = self.dist.device, self.dist.is_main
        self.output_dir = Path(cfg.OUTPUT_DIR)
        self.ckpt_dir = checkpoint_dir(self.output_dir)
        self._prepare_run()

        self.train_set = self.task.build_dataset(cfg, "train")
        self.train_loader = self.build_train_loader(seed=cfg.RNG_SEED)
        self.sampler: ResumableDistributedSampler = self.train_loader.batch_sampler.sampler  # type: ignore[union-attr]
        self.plan: TrainingPlan = assembly.plan_training(cfg, self.task, len(self.train_set),  # type: ignore[arg-type]
                                                         self.sampler.num_samples, self.dist.world_size)
        self.val_loader = self.build_val_loader()

        self.resumed_from, resume = self.find_resume_state()
        model, self.memory_format = self.build_model(initial_weights=resume is None)
        self.prepare_input = functools.partial(
            self.task.prepare_input, cfg=cfg, device=self.device, memory_format=self.memory_format
        )
        optimizer = self.build_optimizer(model)
        self.train_step = TrainStep(cfg, self.task, self.plan, self.device, model, optimizer,
                                    self.build_scheduler(optimizer), self.build_ema(model), self.prepare_input,
                                    self.autocast)

        self.start_epoch = self.start_step = 0
        if resume is not None:
            self.restore(resume)
        self.train_step.set_train_model(self.wrap_model(model))  # after the restore: DDP broadcasts rank 0's weights
        self.writer = MetricWriter(self.output_dir, enabled=self.is_main, tensorboard=cfg.TENSORBOARD)
        self.hooks: List[Hook] = []
        self.register_hooks(self.build_hooks())
        self.timer = _PeriodTimer()
        # Decisions all ranks take together at every step (run_step): stop on a signal, time checkpoint due.
        self.stop_signals = StopSignals(())  # the handlers are installed by train() and removed by close()
        self.stop_requested = self.checkpoint_due = False
        self.clock: Callable[[], float] = time.monotonic  # rank 0's clock for TRAIN.CHECKPOINT_MINUTES
        self.last_checkpoint_time = self.clock()
        self.progress: Optional[tqdm] = None
        self.last_metrics: Dict[str, Any] = {}
        self._log_setup()
        self._seed_training_randomness(resume)

    # The plan's numbers, read-only (the plan is computed once; nothing can change them half-way).
    batch_size = property(lambda self: self.plan.batch_size, doc="items per micro-batch and process")
    accum_steps = property(lambda self: self.plan.accum_steps, doc="micro-batches per optimizer step")
    global_batch = property(lambda self: self.plan.global_batch, doc="samples per optimizer step, all processes")
    steps_per_epoch = property(lambda self: self.plan.steps_per_epoch, doc="optimizer steps per epoch")
    max_epoch = property(lambda self: self.plan.max_epoch, doc="SOLVER.MAX_EPOCH")
    total_steps = property(lambda self: self.plan.total_steps, doc="optimizer steps of the whole run")

    # What the step owns (rs_image.engine.train_step.TrainStep), as the hooks and checkpoints read it.
    model = property(lambda self: self.train_step.model, doc="the raw model (checkpoints, EMA, validation)")
    train_model = property(lambda self: self.train_step.train_model, doc="the model as trained (DDP / compiled)")
    optimizer = property(lambda self: self.train_step.optimizer)
    scheduler = property(lambda self: self.train_step.scheduler)
    scaler = property(lambda self: self.train_step.scaler)
    ema = property(lambda self: self.train_step.ema)
    global_step = property(lambda self: self.train_step.global_step, doc="optimizer steps taken (skipped ones too)")
    num_skipped_steps = property(lambda self: self.train_step.num_skipped_steps)
    nonfinite_streak = property(lambda self: self.train_step.nonfinite_streak)
    step_stats = property(lambda self: self.train_step.step_stats, doc="sums since the last log period, on the device")
    epoch_stats = property(lambda self: self.train_step.epoch_stats, doc="sums over the epoch, on the device")

    def register_hooks(self, hooks: Sequence[Hook]) -> None:
        """Append ``hooks`` (after the ones there), each bound to this trainer by a weak reference."""
        for hook in hooks:
            hook.bind(self)
            self.hooks.append(hook)

    # ------------------------------------------------------------------------------------------------
    # Set-up: each step an overridable method that returns what it makes
    # ------------------------------------------------------------------------------------------------
    def _prepare_run(self) -> None:
        cfg = self.cfg
        setup_logging(self.output_dir, self.dist.rank, self.task.logger_names)
        self.precision = cfg.TRAIN.MIXED_PRECISION
        # A partial, not a lambda over self: no reference cycle keeps a finished trainer (and its model) alive.
        self.autocast: Callable[[], ContextManager] = functools.partial(autocast_context, self.precision, self.device)
        self.autocast()  # fail early on fp16 without CUDA
        check_bn_ema_convention(cfg.BN.MOMENTUM, cfg.EMA.ENABLE, cfg.EMA.INCLUDE_BUFFERS)
        if self.is_main:
            save_config(cfg, self.output_dir / "config.yaml")
            remove_stale_temporaries(self.ckpt_dir)
        configure_cpu_threads(cfg.CPU_THREADS)
        configure_determinism(cfg.DETERMINISTIC)
        seed_everything(cfg.RNG_SEED)  # the same initial weights on every rank

    def build_train_loader(self, seed: int, epoch: int = 0) -> DataLoader:
        """Shuffled, rank-sharded batches of the training set; the order is a function of ``seed`` and the
        epoch, and every index carries its epoch (:class:`ResumableDistributedSampler`).

        The loader has its own generator (for the workers' base seed), so that starting an epoch never draws
        from the global RNG, whose state a checkpoint restores.
        """
        sampler = ResumableDistributedSampler(
            self.train_set, num_replicas=self.dist.world_size, rank=self.dist.rank, shuffle=True, seed=seed,
            drop_last=True,
        )
        sampler.set_epoch(epoch)
        generator = torch.Generator().manual_seed(self._loader_seed(seed, epoch))
        return DataLoader(self.train_set, batch_sampler=BatchSampler(sampler, self.cfg.TRAIN.BATCH_SIZE, drop_last=True),
                          generator=generator, **loader_kwargs(self.cfg, self.device, self.task.collate_fn()))

    def _loader_seed(self, seed: int, epoch: int) -> int:
        return (seed * 1_000_003 + epoch * 1_009 + self.dist.rank) % 2**63

    def build_val_loader(self) -> Optional[DataLoader]:
        if self.cfg.TRAIN.EVAL_PERIOD <= 0:
            return None
        return build_eval_loader(self.cfg, self.task.build_dataset(self.cfg, "val"), self.cfg.TRAIN.BATCH_SIZE, self.device,
                                 self.task.collate_fn())

    def find_resume_state(self) -> Tuple[Optional[Path], Optional[Dict[str, Any]]]:
        """``(path, state)`` of the newest readable checkpoint of this run (``TRAIN.AUTO_RESUME``), read on every
        rank; ``(None, None)`` when there is none."""
        if not self.cfg.TRAIN.AUTO_RESUME:
            return None, None
        found = find_resume_checkpoint(self.ckpt_dir) if self.is_main else None
        path = du.broadcast_object(str(found[0]) if found else None)
        if path is None:
            return None, None
        return Path(path), (found[1] if found else load_checkpoint(path))  # shared file system assumed

    def build_model(self, initial_weights: bool) -> Tuple[nn.Module, Optional[torch.memory_format]]:
        """``(model, memory_format)``: :func:`rs_image.engine.assembly.build_model` with the initial weights
        (``TRAIN.CHECKPOINT_FILE_PATH``, unless resuming), then SyncBN and the frozen parts."""
        cfg = self.cfg
        load = None
        if initial_weights and cfg.TRAIN.CHECKPOINT_FILE_PATH:
            def load(model: nn.Module) -> None:
                self.task.load_initial_weights(model, cfg)
                logger.info("initial weights: %s", cfg.TRAIN.CHECKPOINT_FILE_PATH)
        model, memory_format = assembly.build_model(cfg, self.task, self.device, load)
        if cfg.BN.SYNC and self.dist.process_group:
            if self.device.type == "cuda":
                model = convert_sync_batchnorm(model)
            else:
                logger.warning("BN.SYNC ignored: SyncBatchNorm needs CUDA (running on %s)", self.device)
        self.freeze(model)
        return model, memory_format

    def freeze(self, model: nn.Module) -> None:
        """Fine-tuning: ``MODEL.FROZEN_STAGES`` and ``BN.FREEZE`` / ``MODEL.FROZEN_BN`` (after SyncBN, which
        would replace a frozen layer by a training one)."""
        cfg = self.cfg
        frozen = freeze_stages(model, cfg.MODEL.FROZEN_STAGES)
        if frozen:
            logger.info("frozen (no gradient, BN statistics fixed): %s", ", ".join(frozen))
        if cfg.BN.FREEZE or cfg.MODEL.FROZEN_BN:
            logger.info("frozen BN: %d layers keep their statistics and affine parameters", freeze_batchnorm(model))

    def build_ema(self, model: nn.Module) -> Optional[ModelEma]:
        return assembly.build_ema(self.cfg, model)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return assembly.build_optimizer(self.cfg, model, self.plan)

    def build_scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return assembly.build_scheduler(self.cfg, optimizer, self.plan)

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """DDP when a process group exists (also a one-process group the caller made), then torch.compile."""
        if self.dist.process_group:
            model = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.cfg.TRAIN.COMPILE:
            model = torch.compile(model, backend=self.cfg.TRAIN.COMPILE_BACKEND)  # type: ignore[assignment]
        return model

    def build_hooks(self) -> List[Hook]:
        """The hooks in the order every event reaches them (see :mod:`rs_image.engine.hooks` for why)."""
        cfg = self.cfg
        hooks: List[Hook] = [MetricLogger(period=cfg.LOG_PERIOD)]
        if cfg.BN.USE_PRECISE_STATS:
            hooks.append(PreciseBN(num_batches=cfg.BN.NUM_BATCHES_PRECISE))
        hooks += [Checkpointer(step_period=cfg.TRAIN.CHECKPOINT_STEP_PERIOD, epoch_period=cfg.TRAIN.CHECKPOINT_PERIOD),
                  Validator(period=cfg.TRAIN.EVAL_PERIOD), TrainingCurves()]
        return hooks

    def _seed_training_randomness(self, resume: Optional[Dict[str, Any]]) -> None:
        # Training randomness of the main process (dropout, drop-path, MixUp): per rank, or where it stopped.
        world, rank = self.dist.world_size, self.dist.rank
        if resume is not None and len(resume.get("rng_states") or []) == world:
            restore_rng_state(resume["rng_states"][rank])
            return
        if resume is not None:
            logger.warning("checkpoint RNG states are for another number of processes; reseeding")
        seed_everything(self.cfg.RNG_SEED + rank + 7919 * self.global_step)

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
            "global batch %d (%d per process x %d samples per item x %d micro-batches x %d processes) -> peak LR "
            "%.5g (SOLVER.BASE_LR %g per %d), %d optimizer steps/epoch x %d epochs, warm-up %d steps, "
            "stochastic depth %s, EMA %s",
            self.plan.global_batch, self.plan.batch_size, self.plan.samples_per_item, self.plan.accum_steps,
            self.plan.world_size, self.plan.peak_lr, cfg.SOLVER.BASE_LR, cfg.SOLVER.BASE_BATCH_SIZE,
            self.plan.steps_per_epoch, self.plan.max_epoch, self.plan.warmup_steps, sd, f"{cfg.EMA.DECAY}" if self.ema is not None else "off",
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
            "nonfinite_streak": self.nonfinite_streak,
            "rng_states": rng_states,
            "sampler": {
                "seed": self.cfg.RNG_SEED, "epoch": next_epoch, "world_size": self.dist.world_size,
                "batch_size": self.batch_size, "grad_accum_steps": self.accum_steps,
                "consumed_batches": step_in_epoch * self.accum_steps,
            },
            "cfg": self.cfg.dump(),
            # The classifier's outputs by name, so that the weights can be used without the data set.
            "class_names": self.task.class_names(self.train_set, self.cfg.MODEL.NUM_CLASSES),
        }
        if self.ema is not None:
            state["ema_state"] = self.ema.module.state_dict()
            state["ema_num_updates"] = self.ema.num_updates
        return state

    def _bn_nets(self) -> Dict[str, nn.Module]:
        return {"model": self.model, **({"ema": self.ema.module} if self.ema is not None else {})}

    def save_checkpoint(self, next_epoch: int, step_in_epoch: int, keep: bool = False) -> Path:
        """Write ``last.pyth``; inside an epoch (``step_in_epoch > 0``) also the step checkpoint
        ``checkpoint_epoch_E_step_S.pyth`` (the newest ``TRAIN.CHECKPOINT_KEEP_STEPS`` kept), after an epoch
        ``checkpoint_epoch_E.pyth`` when ``keep``. Collective call; returns the path of ``last.pyth``.

        BN running statistics (raw and EMA) are averaged over processes: under DDP every rank updates them
        from its own batch, and the average makes the saved network the same on every rank. After an epoch
        every rank continues with the average (validation follows); inside an epoch each rank keeps its own,
        also stored in the checkpoint, so that writing a checkpoint never changes the training and a
        resumed run continues every rank exactly. A failed write (disk full, a vanished mount) raises
        :class:`CheckpointError` on every rank with rank 0's OS error; the previous checkpoint stays.
        """
        mid_epoch = step_in_epoch > 0
        own = None
        if mid_epoch and self.dist.world_size > 1:
            own = {net: {k: v.detach().clone() for k, v in du.bn_buffers(module).items()}
                   for net, module in self._bn_nets().items()}
        for module in self._bn_nets().values():
            du.average_bn_buffers(module)
        rng_states = du.all_gather_object(capture_rng_state())
        rank_bn_buffers = du.all_gather_object(
            {net: {k: v.cpu() for k, v in bufs.items()} for net, bufs in own.items()}) if own is not None else None
        last = self.ckpt_dir / LAST_NAME
        error = None
        if self.is_main:
            state = self.state_dict(next_epoch, step_in_epoch, rng_states)
            if rank_bn_buffers is not None:
                state["rank_bn_buffers"] = rank_bn_buffers
            copy = step_checkpoint_name(next_epoch, step_in_epoch) if mid_epoch else (
                epoch_checkpoint_name(next_epoch) if keep else None)
            target = last
            try:
                atomic_torch_save(state, last)
                if copy is not None:
                    target = self.ckpt_dir / copy
                    atomic_copy(last, target)
                if mid_epoch:
                    prune_step_checkpoints(self.ckpt_dir, self.cfg.TRAIN.CHECKPOINT_KEEP_STEPS)
            except OSError as exc:  # the atomic write removed its temporary file; the old checkpoint is intact
                error = f"cannot write checkpoint {target}: {exc.strerror or exc} (the previous checkpoint is intact)"
        error = du.broadcast_object(error)  # also what keeps the other ranks from running ahead of the write
        if own is not None:
            self._load_bn_buffers(own)
        if error is not None:
            raise CheckpointError(error)
        self.last_checkpoint_time = self.clock()
        return last

    def _load_bn_buffers(self, buffers: Dict[str, Dict[str, torch.Tensor]]) -> None:
        with torch.no_grad():
            for net, module in self._bn_nets().items():
                live = du.bn_buffers(module)
                for key, value in buffers.get(net, {}).items():
                    live[key].copy_(value)

    def stop_after_step(self, epoch: int, step: int) -> None:
        """Every rank agreed to stop (a stop signal): write a checkpoint of step ``step`` of ``epoch`` (1-based
        within the 0-based epoch), requeue the SLURM job when ``TRAIN.REQUEUE_ON_PREEMPT``, raise
        :class:`Preempted`."""
        path = self.save_checkpoint(epoch, step)
        cause = self.stop_signals.received or "a stop signal on another process"
        where = f"epoch {epoch + 1}, step {step}/{self.steps_per_epoch} (global step {self.global_step})"
        logger.warning("%s: stopped after %s; checkpoint written to %s", cause, where, path)
        self.writer.write("event", {"event": "preempted", "signal": cause, "epoch": epoch, "step_in_epoch": step},
                          self.global_step)
        if self.is_main and self.cfg.TRAIN.REQUEUE_ON_PREEMPT:
            requeue_slurm_job()
        raise Preempted(f"stopped by {cause} after {where}; checkpoint {path}; the same command resumes from it",
                        str(path), self.is_main)

    def restore(self, state: Dict[str, Any]) -> None:
        """Continue from a checkpoint of :meth:`state_dict`."""
        self.model.load_state_dict(state["model_state"])
        if self.ema is not None:
            if state.get("ema_state") is not None:
                self.ema.module.load_state_dict(state["ema_state"])
                self.ema.set_num_updates(int(state.get("ema_num_updates", state["global_step"])))
            else:
                logger.warning("the checkpoint has no EMA weights; the EMA restarts from the restored weights")
                self.train_step.ema = self.build_ema(self.model)
        if state.get("optimizer_state") is not None:
            self.optimizer.load_state_dict(state["optimizer_state"])
        if state.get("scheduler_state") is not None:
            self.scheduler.load_state_dict(state["scheduler_state"])
        if state.get("scaler_state") is not None and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler_state"])
        self.start_epoch = int(state["epoch"])
        self.start_step = min(int(state["step_in_epoch"]), self.steps_per_epoch)
        self.train_step.global_step = int(state["global_step"])
        self.train_step.num_skipped_steps = int(state.get("num_skipped_steps", 0))
        self.train_step.nonfinite_streak = int(state.get("nonfinite_streak", 0))
        rank_bn_buffers = state.get("rank_bn_buffers") or []
        if len(rank_bn_buffers) == self.dist.world_size:  # each rank's own BN statistics (a mid-epoch state)
            self._load_bn_buffers(rank_bn_buffers[self.dist.rank])
        sampler = state.get("sampler") or {}
        before = (sampler.get("world_size"), sampler.get("batch_size"), sampler.get("grad_accum_steps", 1))
        now = (self.dist.world_size, self.batch_size, self.accum_steps)
        if self.start_step and before != now:
            logger.warning(
                "resuming mid-epoch with another world size / batch size / TRAIN.GRAD_ACCUM_STEPS (%s x %s x %s "
                "before, %d x %d x %d now): the rest of epoch %d uses a different data order", *before, *now,
                self.start_epoch + 1,
            )

    # ------------------------------------------------------------------------------------------------
    # The loop
    # ------------------------------------------------------------------------------------------------
    def train(self) -> Dict[str, Any]:
        """Run the remaining epochs; returns the last metrics."""
        try:
            self.stop_signals = StopSignals(stop_signals(self.cfg.TRAIN.PREEMPT_SIGNAL))
            self.last_checkpoint_time = self.clock()
            for hook in self.hooks:
                if hook.trainer is None:  # appended to the list directly: bound here
                    hook.bind(self)
                hook.before_train()
            if self.start_epoch >= self.max_epoch:
                logger.info("training already complete (%d epochs) in %s", self.max_epoch, self.ckpt_dir)
            for epoch in range(self.start_epoch, self.max_epoch):
                self.train_epoch(epoch, self.start_step if epoch == self.start_epoch else 0)
                for hook in self.hooks:
                    hook.after_epoch(epoch)
            for hook in self.hooks:
                hook.after_train()
        finally:
            self.close()
        return self.last_metrics

    def close(self) -> None:
        """Ends the loader workers and closes the metric writer (``train`` does it on its way out, also after a
        crash); the trainer cannot train after it."""
        self.stop_signals.restore()
        self.writer.close()
        # Persistent workers live as long as their loader. Ended here, they end now, in this process; left to
        # the garbage collector, a loader may be collected inside a forked worker of a later run, which then
        # prints "AssertionError: can only test a child process", or outlive a crash (the traceback holds the
        # loader) until Python's exit handler waits for them forever: they ignore the stop signals.
        for loader in (self.train_loader, self.val_loader):
            _end_workers(getattr(loader, "_iterator", None))
        self.train_loader = None  # type: ignore[assignment]
        self.val_loader = None

    def train_epoch(self, epoch: int, first_step: int) -> None:
        """Optimizer steps ``first_step + 1 .. steps_per_epoch`` of ``epoch``, with the ``after_step`` hooks."""
        self.train_model.train()
        self.sampler.set_epoch(epoch)
        self.sampler.set_start_index(first_step * self.batch_size * self.accum_steps)
        self.train_loader.generator.manual_seed(self._loader_seed(self.cfg.RNG_SEED, epoch))
        if self.is_main and self.cfg.PROGRESS_BAR:
            self.progress = tqdm(total=self.steps_per_epoch, initial=first_step, dynamic_ncols=True, unit="step",
                                 desc=f"epoch {epoch + 1}/{self.max_epoch}")
        iterator = iter(self.train_loader)
        try:
            for step in range(first_step, self.steps_per_epoch):
                tic = time.perf_counter()
                self._data_time = 0.0
                self.run_step(self._micro_batches(iterator), epoch, step)
                self.timer.add(self._data_time, time.perf_counter() - tic)
                if self.progress is not None:
                    self.progress.update(1)
                for hook in self.hooks:
                    hook.after_step(epoch, step + 1)
        except BaseException:
            _end_workers(iterator)  # a crash or a stop: the traceback would keep the workers alive
            raise
        finally:
            if self.progress is not None:
                self.progress.close()
                self.progress = None
            del iterator

    def _micro_batches(self, iterator: Iterator[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
        """The next ``TRAIN.GRAD_ACCUM_STEPS`` batches of ``iterator``, fetched as they are used (timed)."""
        for _ in range(self.accum_steps):
            tic = time.perf_counter()
            batch = next(iterator)
            self._data_time += time.perf_counter() - tic
            yield batch

    def run_step(self, batches: Iterable[Dict[str, Any]], epoch: int, step: int) -> None:
        """Optimizer step ``step + 1`` of ``epoch`` (:class:`~rs_image.engine.train_step.TrainStep`), with this
        loop's decisions taken in the step's one all-reduce."""
        def where() -> str:
            return (f"epoch {epoch + 1}, step {step + 1}/{self.plan.steps_per_epoch} "
                    f"(global step {self.global_step + 1})")

        self.train_step(batches, self._agree_on_step, where)

    def _agree_on_step(self, losses: torch.Tensor) -> bool:
        """What every rank must decide alike, or the ranks would part ways, in one all-reduce of three numbers
        (the one host sync per step): a non-finite loss on any rank (returned), a stop signal on any rank
        (:attr:`stop_requested`), a time-based checkpoint due on rank 0's clock (:attr:`checkpoint_due`)."""
        flags = torch.zeros(3, device=self.device)
        flags[0] = (~torch.isfinite(losses)).any()
        # Python scalars written into a device tensor travel as kernel arguments: no copy, no sync here.
        if self.stop_signals.received is not None:
            flags[1] = 1.0
        minutes = self.cfg.TRAIN.CHECKPOINT_MINUTES
        if self.is_main and minutes > 0 and self.clock() - self.last_checkpoint_time >= minutes * 60:
            flags[2] = 1.0
        nonfinite, stop, due = (value > 0 for value in du.all_reduce_sum(flags).tolist())
        self.stop_requested, self.checkpoint_due = stop, due
        return nonfinite

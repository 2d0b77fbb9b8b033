"""One optimizer step of the ResNet-RS recipe, and everything it changes.

:class:`TrainStep` owns the model (raw, and as trained: DDP and/or compiled), the optimizer, the grad scaler,
the scheduler, the EMA, the criterion and MixUp, the step counters (global step, skipped steps, the
non-finite streak) and the metric sums of the steps (kept on the device). The loop
(:class:`rs_image.engine.Trainer`) calls it once per optimizer step with the step's micro-batches and an
``agree`` function: the one all-reduce per step in which every rank decides together (a non-finite loss on
any rank; the loop adds its own flags: a stop signal, a time-based checkpoint due).

Gradient accumulation. Each micro-batch's loss is divided by ``N = GRAD_ACCUM_STEPS`` and back-propagated;
under DDP the gradient all-reduce runs only on the last one (``no_sync`` on the others); then one (clipped)
optimizer step, one scheduler step, one EMA update. A non-finite loss in any micro-batch makes the whole step
non-finite: ``TRAIN.NONFINITE_LOSS stop`` raises :class:`NonFiniteLossError` before applying it; ``skip``
drops its gradients, restores the BN buffers its forward passes changed and advances the schedule.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, Callable, ContextManager, Dict, Iterable, Optional, Tuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from rs_image.errors import UserError
from rs_image.recipe import ModelEma, current_lr

from .assembly import TrainingPlan
from .config import CfgNode
from .tasks import Task

__all__ = ["TrainStep", "NonFiniteLossError"]

logger = logging.getLogger(__name__)


class NonFiniteLossError(UserError, RuntimeError):
    """The loss became NaN or infinite and ``TRAIN.NONFINITE_LOSS`` is ``"stop"``, or it stayed so for
    ``TRAIN.MAX_NONFINITE_STEPS`` steps in a row under ``"skip"``."""


class TrainStep:
    """One optimizer step (module docstring).

    Args:
        cfg, task, plan, device: the run.
        model: the raw model (what checkpoints, the EMA and validation see).
        optimizer, scheduler, ema: built for ``model`` (:mod:`rs_image.engine.assembly`).
        prepare_input: batch -> model input on the device (:meth:`Task.prepare_input`, bound).
        autocast: () -> the ``TRAIN.MIXED_PRECISION`` autocast context.
    """

    def __init__(self, cfg: CfgNode, task: Task, plan: TrainingPlan, device: torch.device, model: nn.Module,
                 optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                 ema: Optional[ModelEma], prepare_input: Callable[[Dict[str, Any]], torch.Tensor],
                 autocast: Callable[[], ContextManager]) -> None:
        self.cfg, self.task, self.plan, self.device = cfg, task, plan, device
        self.model, self.optimizer, self.scheduler, self.ema = model, optimizer, scheduler, ema
        self.prepare_input, self.autocast = prepare_input, autocast
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.TRAIN.MIXED_PRECISION == "fp16")
        self.criterion = task.build_criterion(cfg)
        self.mixup = task.build_mixup(cfg)
        self.train_model: nn.Module = model  # set_train_model: DDP / compiled
        self.ddp_model: Optional[DistributedDataParallel] = None
        self.global_step = self.num_skipped_steps = self.nonfinite_streak = 0
        # Sums since the last log period (loss * n, n, correct, labelled n) and over the epoch
        # (loss * n, n, failed reads, fallback reads), kept on the device: reading them is a host sync
        # (MetricLogger does).
        self.step_stats = torch.zeros(4, dtype=torch.float64, device=device)
        self.epoch_stats = torch.zeros(4, dtype=torch.float64, device=device)

    def set_train_model(self, train_model: nn.Module) -> None:
        """The model as trained (DDP and/or ``torch.compile`` around :attr:`model`)."""
        self.train_model = train_model
        self.ddp_model = next((m for m in (train_model, getattr(train_model, "_orig_mod", None))
                               if isinstance(m, DistributedDataParallel)), None)

    def _grad_sync(self, last_micro_batch: bool) -> ContextManager:
        """DDP's ``no_sync`` on all but the last micro-batch of a step (the gradients are all-reduced once)."""
        if last_micro_batch or self.ddp_model is None:
            return contextlib.nullcontext()
        return self.ddp_model.no_sync()

    def __call__(self, batches: Iterable[Dict[str, Any]], agree: Callable[[torch.Tensor], bool],
                 where: Callable[[], str]) -> None:
        """One optimizer step on the ``TRAIN.GRAD_ACCUM_STEPS`` micro-batches of ``batches``; ``agree(losses)``
        is the step's all-reduce (True: a rank had a non-finite loss), ``where()`` names the step in messages.
        The loss and accuracy are added to :attr:`step_stats` on the device."""
        accum = self.plan.accum_steps
        skip_policy = self.cfg.TRAIN.NONFINITE_LOSS == "skip"
        # A skipped step must also undo what its forward passes did to the BN running statistics.
        saved_buffers = [b.detach().clone() for b in self.model.buffers()] if skip_policy else None
        self.optimizer.zero_grad(set_to_none=True)
        stats = torch.zeros(4, dtype=torch.float64, device=self.device)  # loss * n, n, correct, labelled
        losses = []
        for micro, batch in enumerate(batches):
            with self._grad_sync(micro == accum - 1):
                loss, logits, labels, targets = self.forward(batch)
                self.scaler.scale(loss / accum if accum > 1 else loss).backward()
            losses.append(loss.detach())
            n = labels.shape[0]
            stats[0].add_(loss.detach().double() * n)
            stats[1].add_(n)
            if targets.dim() == 1:  # hard labels: accuracy is defined (MixUp gives soft targets)
                stats[2].add_((logits.detach().argmax(dim=1) == labels).sum())
                stats[3].add_(n)

        step_losses = torch.stack(losses)
        if agree(step_losses):
            self._non_finite_loss(step_losses, where(), saved_buffers)
            return
        self.nonfinite_streak = 0

        if self.cfg.SOLVER.CLIP_GRAD_L2NORM > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.SOLVER.CLIP_GRAD_L2NORM)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.global_step += 1
        self.step_stats.add_(stats)
        self.epoch_stats[:2].add_(stats[:2])

    def forward(self, batch: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(loss, logits, labels, targets)`` of one micro-batch (MixUp applied; replaced loads counted)."""
        x = self.prepare_input(batch)
        labels = self.task.targets(batch, self.device)
        for slot, key in ((2, "failed_reads"), (3, "fallback_reads")):
            if key in batch:
                self.epoch_stats[slot].add_(int(torch.as_tensor(batch[key]).sum()))
        targets = labels
        if self.mixup is not None:  # on normalised floats, whatever the input dtype was
            x, targets = self.mixup(x, labels)
        with self.autocast():
            logits = self.task.forward(self.train_model, x, batch)
        return self.criterion(logits.float(), targets), logits, labels, targets

    def _non_finite_loss(self, losses: torch.Tensor, where: str, saved_buffers: Optional[list]) -> None:
        values = losses.tolist()  # this rank's micro-batch losses (another rank may be the one that failed)
        shown = f"{values[0]}" if len(values) == 1 else f"micro-batch losses {values}"
        where = f"{where}, learning rate {current_lr(self.optimizer):.4g}"
        if self.cfg.TRAIN.NONFINITE_LOSS == "stop":
            raise NonFiniteLossError(
                f"non-finite loss ({shown}) at {where}. Training stopped before applying it; the last "
                f"checkpoint is intact. Try a lower SOLVER.BASE_LR, SOLVER.CLIP_GRAD_L2NORM, a longer "
                f"SOLVER.WARMUP_EPOCHS, or TRAIN.NONFINITE_LOSS skip."
            )
        logger.warning("non-finite loss at %s: step skipped (TRAIN.NONFINITE_LOSS skip, %d in a row)", where,
                       self.nonfinite_streak + 1)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for buf, saved in zip(self.model.buffers(), saved_buffers or []):
                buf.copy_(saved)
        self.num_skipped_steps += 1
        self.nonfinite_streak += 1
        with warnings.catch_warnings():  # the schedule advances although no optimizer step was taken
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)`")
            self.scheduler.step()
        self.global_step += 1
        limit = self.cfg.TRAIN.MAX_NONFINITE_STEPS
        if limit and self.nonfinite_streak >= limit:
            raise NonFiniteLossError(
                f"{self.nonfinite_streak} optimizer steps in a row had a non-finite loss "
                f"(TRAIN.MAX_NONFINITE_STEPS {limit}), the last ({shown}) at {where}. Training stopped; the last "
                f"checkpoint is intact. Try a lower SOLVER.BASE_LR, SOLVER.CLIP_GRAD_L2NORM or a longer "
                f"SOLVER.WARMUP_EPOCHS."
            )

"""The trainer's assembly: builders that return what they make, and the training plan computed once.

Each builder is a function of the config (and of what it needs), so that overriding one never breaks another
through hidden state, and the model set-up is written once for training, testing and the video predictor:

* :func:`build_model` ``(cfg, task, device, load=None) -> (model, memory_format)``: the task's model with the
  recipe's BN momentum, weights (``load``, before the move to the device: a new classifier is made on the
  CPU), gradient checkpointing, device and memory format (``MODEL.CHANNELS_LAST``);
* :func:`plan_training` -> :class:`TrainingPlan`: global batch, steps per epoch, total and warm-up steps and
  the peak learning rate, frozen;
* :func:`build_optimizer`, :func:`build_scheduler`, :func:`build_ema`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

import torch
from torch import nn

from rs_image.errors import DataError
from rs_image.recipe import ModelEma, build_cosine_warmup_scheduler, build_sgd, scaled_lr, set_bn_momentum

from .config import CfgNode
from .tasks import Task

__all__ = ["TrainingPlan", "plan_training", "build_model", "build_optimizer", "build_scheduler", "build_ema"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPlan:
    """The numbers of a run, fixed before it starts (every count of steps counts optimizer steps).

    Attributes:
        batch_size: items per micro-batch and process (``TRAIN.BATCH_SIZE``).
        samples_per_item: samples one item holds (:meth:`Task.samples_per_item`, e.g. ``AUG.NUM_SAMPLE`` clips).
        accum_steps: micro-batches per optimizer step (``TRAIN.GRAD_ACCUM_STEPS``).
        world_size: processes.
        global_batch: samples of one optimizer step over all processes (what the learning rate is scaled by).
        steps_per_epoch: optimizer steps per epoch (capped by ``TRAIN.MAX_STEPS_PER_EPOCH``).
        max_epoch: ``SOLVER.MAX_EPOCH``.
        total_steps: ``steps_per_epoch x max_epoch``.
        warmup_steps: ``SOLVER.WARMUP_EPOCHS`` in steps.
        peak_lr: ``SOLVER.BASE_LR`` scaled by ``global_batch / SOLVER.BASE_BATCH_SIZE``.
    """

    batch_size: int
    samples_per_item: int
    accum_steps: int
    world_size: int
    global_batch: int
    steps_per_epoch: int
    max_epoch: int
    total_steps: int
    warmup_steps: int
    peak_lr: float


def plan_training(cfg: CfgNode, task: Task, num_items: int, samples_per_rank: int, world_size: int) -> TrainingPlan:
    """The plan of a run on a training set of ``num_items`` items whose sampler gives each process
    ``samples_per_rank`` of them per epoch.

    Raises:
        DataError: the training set is smaller than one optimizer step.
    """
    batch_size, accum = int(cfg.TRAIN.BATCH_SIZE), int(cfg.TRAIN.GRAD_ACCUM_STEPS)
    samples_per_item = int(task.samples_per_item(cfg))
    full_steps = samples_per_rank // (batch_size * accum)
    if full_steps == 0:
        raise DataError(
            f"the training set has {num_items} items, fewer than one optimizer step "
            f"(TRAIN.BATCH_SIZE {batch_size} x TRAIN.GRAD_ACCUM_STEPS {accum} x {world_size} processes)"
        )
    cap = cfg.TRAIN.MAX_STEPS_PER_EPOCH
    steps_per_epoch = min(full_steps, cap) if cap > 0 else full_steps
    s = cfg.SOLVER
    global_batch = batch_size * samples_per_item * accum * world_size
    return TrainingPlan(
        batch_size=batch_size, samples_per_item=samples_per_item, accum_steps=accum, world_size=world_size,
        global_batch=global_batch, steps_per_epoch=steps_per_epoch, max_epoch=int(s.MAX_EPOCH),
        total_steps=steps_per_epoch * int(s.MAX_EPOCH), warmup_steps=int(round(s.WARMUP_EPOCHS * steps_per_epoch)),
        peak_lr=scaled_lr(s.BASE_LR, global_batch, s.BASE_BATCH_SIZE),
    )


def build_model(cfg: CfgNode, task: Task, device: torch.device, load: Optional[Callable[[nn.Module], Any]] = None
                ) -> Tuple[nn.Module, Optional[torch.memory_format]]:
    """``(model, memory_format)``: ``task.create_model(cfg)`` with ``BN.MOMENTUM``, ``load(model)`` (weights),
    ``MODEL.ACT_CHECKPOINT``, on ``device`` in the task's channels-last format when ``MODEL.CHANNELS_LAST``
    (``memory_format`` None otherwise; the inputs must follow it: :meth:`Task.prepare_input`)."""
    model = task.create_model(cfg)
    set_bn_momentum(model, cfg.BN.MOMENTUM)
    if load is not None:
        load(model)
    if cfg.MODEL.ACT_CHECKPOINT:
        model.set_grad_checkpointing(True)
    model.to(device)
    memory_format = task.channels_last_format if cfg.MODEL.CHANNELS_LAST else None
    if memory_format is not None:
        model.to(memory_format=memory_format)
    return model, memory_format


def build_optimizer(cfg: CfgNode, model: nn.Module, plan: TrainingPlan) -> torch.optim.Optimizer:
    """SGD at the plan's peak learning rate, weight decay on conv/linear weights only, layer-wise LR decay with
    ``SOLVER.LAYER_DECAY < 1``."""
    s = cfg.SOLVER
    optimizer = build_sgd(model, plan.peak_lr, momentum=s.MOMENTUM, nesterov=s.NESTEROV,
                          weight_decay=s.WEIGHT_DECAY, layer_decay=s.LAYER_DECAY)
    scales = sorted({g["lr_scale"] for g in optimizer.param_groups if "lr_scale" in g})
    if scales:
        logger.info("layer decay %g: %d parameter groups, LR multipliers %.4g (lowest trained depth) .. %g (head)",
                    s.LAYER_DECAY, len(optimizer.param_groups), scales[0], scales[-1])
    return optimizer


def build_scheduler(cfg: CfgNode, optimizer: torch.optim.Optimizer, plan: TrainingPlan
                    ) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step cosine decay with linear warm-up (both ends scaled like the learning rate)."""
    s = cfg.SOLVER
    scale = plan.global_batch / s.BASE_BATCH_SIZE
    return build_cosine_warmup_scheduler(
        optimizer, total_steps=plan.total_steps, warmup_steps=plan.warmup_steps,
        warmup_start_lr=s.WARMUP_START_LR * scale, end_lr=s.COSINE_END_LR * scale,
    )


def build_ema(cfg: CfgNode, model: nn.Module) -> Optional[ModelEma]:
    """The EMA of ``model`` (``EMA.*``), or None when ``EMA.ENABLE`` is off."""
    ema = cfg.EMA
    return ModelEma(model, ema.DECAY, ema.TF_WARMUP, ema.INCLUDE_BUFFERS) if ema.ENABLE else None

"""BatchNorm conventions of the ResNet-RS recipe: momentum, "BN momentum 0 + EMA", precise BN, SyncBN.

Momentum conventions. PyTorch updates ``running = (1 - m) * running + m * batch`` (default ``m = 0.1``);
TensorFlow/Keras update ``moving = m_tf * moving + (1 - m_tf) * batch``. So ``m = 1 - m_tf``.

"BN momentum 0 + EMA" (every released ResNet-RS config, TF1 and TF2). TF's ``momentum=0`` (PyTorch
``BN.MOMENTUM 1.0``) makes the stored statistics those of the *last batch*. On their own they would be a
poor estimate; the recipe relies on the weight EMA (decay 0.9999, ``EMA.INCLUDE_BUFFERS True``) which also
averages these per-batch statistics, so the evaluated EMA network carries an average of the batch
statistics over the last ~10k steps, produced by weights close to the EMA weights. The raw network then
evaluates with last-batch statistics, which is why its validation numbers are noisier than the EMA ones.
The default here is PyTorch's 0.1, which works with or without EMA; set ``BN.MOMENTUM 1.0`` to follow
the TF recipe literally (:func:`check_bn_ema_convention` refuses it without a buffer-averaging EMA, like
the TF1 trainer refuses EMA with a non-zero momentum the other way round).

Precise BN (Wu & Johnson, "Rethinking Batch in BatchNorm") recomputes the statistics as the true average
over ``num_batches`` batches with fixed weights: :func:`update_precise_bn` wraps
``fvcore.nn.precise_bn.update_bn_stats``.

SyncBN: :func:`convert_sync_batchnorm` wraps ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` (CUDA and
DDP only).

Frozen BN (``BN.FREEZE``; SlowFast's ``MODEL.FROZEN_BN``, mmaction2's ``norm_eval`` + frozen affine): the
layers normalise with their stored statistics, which never change, and their affine parameters take no
gradient (so they are in no optimizer group). :func:`freeze_batchnorm` changes the class of each BN layer
in place to a :class:`FrozenBatchNorm` subclass of its own class (``BatchNorm1d/2d/3d``, ``SyncBatchNorm``,
any ``_BatchNorm``) whose :meth:`~FrozenBatchNorm.train` always selects eval mode. So the layer stays frozen
after ``model.train()``, in a ``deepcopy`` (the EMA), under DDP (eval-mode BN neither updates nor
synchronises statistics) and in precise BN (fvcore only re-estimates layers in train mode); its parameter
and buffer names are unchanged, so checkpoints load both ways. torchvision's ``FrozenBatchNorm2d`` is 2D
only and renames nothing but drops ``num_batches_tracked``, which is why it is not used here.
"""

from __future__ import annotations

from typing import Dict, Iterable, Type

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from rs_image.upstream import quiet_upstream_import

_precise_bn = quiet_upstream_import("fvcore.nn.precise_bn")
get_bn_modules, update_bn_stats = _precise_bn.get_bn_modules, _precise_bn.update_bn_stats

__all__ = [
    "tf_to_torch_bn_momentum",
    "set_bn_momentum",
    "check_bn_ema_convention",
    "update_precise_bn",
    "convert_sync_batchnorm",
    "FrozenBatchNorm",
    "freeze_batchnorm",
]


def tf_to_torch_bn_momentum(tf_momentum: float) -> float:
    """TensorFlow/Keras BN momentum -> PyTorch momentum (``1 - tf_momentum``)."""
    if not 0.0 <= tf_momentum <= 1.0:
        raise ValueError(f"BN momentum must be in [0, 1], got {tf_momentum}")
    return 1.0 - tf_momentum


def set_bn_momentum(model: nn.Module, momentum: float) -> int:
    """Set ``momentum`` (PyTorch convention) on every BatchNorm layer; returns how many were set."""
    count = 0
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.momentum = momentum
            count += 1
    return count


def check_bn_ema_convention(bn_momentum: float, ema_enabled: bool, ema_include_buffers: bool) -> None:
    """Refuse last-batch BN statistics (``BN.MOMENTUM 1.0``) without an EMA that averages them."""
    if bn_momentum >= 1.0 and not (ema_enabled and ema_include_buffers):
        raise ValueError(
            "BN.MOMENTUM 1.0 (TF momentum 0: running stats = last batch stats) needs EMA.ENABLE True and "
            "EMA.INCLUDE_BUFFERS True, which average those statistics; otherwise evaluation would use the "
            "statistics of a single batch. Use BN.MOMENTUM 0.1 (PyTorch default) or enable the EMA."
        )


def update_precise_bn(model: nn.Module, inputs: Iterable[torch.Tensor], num_batches: int) -> None:
    """Recompute the BN running statistics of ``model`` over ``num_batches`` input batches.

    The BN layers run in train mode for the duration (their statistics are what is being measured);
    everything else keeps its mode, and the model's modes are restored afterwards.
    """
    modes = {m: m.training for m in model.modules()}
    model.eval()
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.train()
    try:
        if get_bn_modules(model):
            # fvcore asserts that exactly num_batches batches arrive: the caller must provide enough.
            update_bn_stats(model, inputs, num_iters=num_batches)
    finally:
        for m, mode in modes.items():
            m.training = mode


def convert_sync_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm by ``torch.nn.SyncBatchNorm`` (statistics over all processes)."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


class FrozenBatchNorm(_BatchNorm):
    """Marker and behaviour of a frozen BN layer: always in eval mode (see the module docstring).

    Not built directly: :func:`freeze_batchnorm` gives a layer the class ``Frozen<its class>``, a subclass of
    this one and of the layer's own class (so ``isinstance(layer, nn.BatchNorm3d)`` still holds).
    """

    def train(self, mode: bool = True) -> "FrozenBatchNorm":
        return super().train(False)


_FROZEN_CLASSES: Dict[type, Type[FrozenBatchNorm]] = {}


def _frozen_class(cls: type) -> Type[FrozenBatchNorm]:
    if cls not in _FROZEN_CLASSES:
        _FROZEN_CLASSES[cls] = type(f"Frozen{cls.__name__}", (FrozenBatchNorm, cls), {"__module__": __name__})
    return _FROZEN_CLASSES[cls]


def freeze_batchnorm(module: nn.Module) -> int:
    """Freeze every BatchNorm layer inside ``module`` (itself included) in place; returns how many.

    The layers keep their statistics and affine parameters (``requires_grad=False``) and stay in eval mode
    whatever ``train()`` is called with. Freezing a frozen layer again changes nothing.
    """
    count = 0
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            if not isinstance(m, FrozenBatchNorm):
                m.__class__ = _frozen_class(type(m))
            m.requires_grad_(False)
            m.train(False)
            count += 1
    return count

"""Optimizer of the ResNet-RS recipe: SGD with momentum 0.9, weight decay on conv/linear weights only,
and the linear learning-rate scaling rule.

Weight decay. The TF recipes add ``wd * sum(w ** 2) / 2`` to the loss (``tf.nn.l2_loss``), whose gradient
``wd * w`` is exactly what ``torch.optim.SGD(weight_decay=wd)`` adds, so ``SOLVER.WEIGHT_DECAY 4e-5`` is
the paper's 4e-5. The decay is applied to the weights of convolutions and fully connected layers
(including the SE convolutions and the classifier) and not to BatchNorm parameters or biases (TF1 also
decays the few biases; their effect is negligible and excluding them is the common PyTorch practice).

Learning rate. ``SOLVER.BASE_LR`` is the rate for ``SOLVER.BASE_BATCH_SIZE`` samples per step; with a
global batch ``B = TRAIN.BATCH_SIZE * WORLD_SIZE`` the rate is ``BASE_LR * B / BASE_BATCH_SIZE``
(Goyal et al. 2017). ResNet-RS ImageNet: 0.1 per 256 -> 1.6 at 4096. 3D ResNet-RS Kinetics: 0.8 at 1024.
"""

from __future__ import annotations

from typing import Any, Dict, List

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

__all__ = ["param_groups_weight_decay", "scaled_lr", "build_sgd"]


def param_groups_weight_decay(model: nn.Module, weight_decay: float) -> List[Dict[str, Any]]:
    """Two parameter groups: conv/linear weights with ``weight_decay``, everything else without.

    Shared parameters are listed once; frozen parameters (``requires_grad=False``) are left out.
    """
    decay: List[nn.Parameter] = []
    decay_ids = set()
    for module in model.modules():
        if isinstance(module, (_ConvNd, nn.Linear)) and module.weight is not None:
            if module.weight.requires_grad and id(module.weight) not in decay_ids:
                decay.append(module.weight)
                decay_ids.add(id(module.weight))
    no_decay: List[nn.Parameter] = []
    seen = set(decay_ids)
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            no_decay.append(p)
            seen.add(id(p))
    groups = [{"params": decay, "weight_decay": weight_decay, "name": "decay"}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "name": "no_decay"})
    return groups


def scaled_lr(base_lr: float, global_batch_size: int, base_batch_size: int) -> float:
    """Linear scaling rule: ``base_lr * global_batch_size / base_batch_size``."""
    if global_batch_size <= 0 or base_batch_size <= 0:
        raise ValueError(f"batch sizes must be positive, got {global_batch_size} and {base_batch_size}")
    return base_lr * global_batch_size / base_batch_size


def build_sgd(
    model: nn.Module, lr: float, *, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 4e-5
) -> torch.optim.SGD:
    """SGD (momentum, optional Nesterov) over :func:`param_groups_weight_decay` groups."""
    return torch.optim.SGD(
        param_groups_weight_decay(model, weight_decay), lr=lr, momentum=momentum, nesterov=nesterov
    )

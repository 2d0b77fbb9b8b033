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

Layer-wise learning-rate decay (``SOLVER.LAYER_DECAY < 1``, for fine-tuning): each weight-decay group is split
by depth (:mod:`rs_image.recipe.finetune`: stem, every block, head); a group's ``lr_scale`` is
``d ** (N + 1 - depth)`` and its ``lr`` is the peak rate times that. The schedule multiplies every group's own
initial rate, so each depth follows the same cosine, scaled.
"""

from __future__ import annotations

from typing import Any, Dict, List

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from .finetune import FineTuneError, num_depths, parameter_depths

__all__ = ["param_groups_weight_decay", "param_groups_layer_decay", "scaled_lr", "build_sgd", "current_lr"]


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


def param_groups_layer_decay(model: nn.Module, weight_decay: float, layer_decay: float) -> List[Dict[str, Any]]:
    """The weight-decay groups split by depth (module docstring), each with its ``lr_scale``.

    Groups go from the stem (depth 0) to the head, ``decay`` before ``no_decay`` at each depth, named
    ``depth<i>_decay`` / ``depth<i>_no_decay``; empty groups (e.g. frozen depths) are left out.
    """
    if not 0.0 < layer_decay <= 1.0:
        raise FineTuneError(f"SOLVER.LAYER_DECAY {layer_decay}: must be in (0, 1] (1 = off)")
    depth_of = parameter_depths(model)
    top = num_depths(model) - 1
    decayed = {id(p) for p in param_groups_weight_decay(model, weight_decay)[0]["params"]}
    buckets: Dict[tuple, List[nn.Parameter]] = {}
    seen = set()
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            buckets.setdefault((depth_of[name], id(p) not in decayed), []).append(p)
    groups = []
    for depth, no_decay in sorted(buckets):
        groups.append({
            "params": buckets[(depth, no_decay)], "weight_decay": 0.0 if no_decay else weight_decay,
            "lr_scale": layer_decay ** (top - depth), "name": f"depth{depth}_{'no_decay' if no_decay else 'decay'}",
        })
    return groups


def scaled_lr(base_lr: float, global_batch_size: int, base_batch_size: int) -> float:
    """Linear scaling rule: ``base_lr * global_batch_size / base_batch_size``."""
    if global_batch_size <= 0 or base_batch_size <= 0:
        raise ValueError(f"batch sizes must be positive, got {global_batch_size} and {base_batch_size}")
    return base_lr * global_batch_size / base_batch_size


def build_sgd(
    model: nn.Module, lr: float, *, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 4e-5,
    layer_decay: float = 1.0,
) -> torch.optim.SGD:
    """SGD (momentum, optional Nesterov) over :func:`param_groups_weight_decay` groups, or with
    ``layer_decay < 1`` over :func:`param_groups_layer_decay` groups at ``lr * lr_scale`` each.

    ``optimizer.defaults["lr"]`` is ``lr`` either way: the schedule's peak.
    """
    if layer_decay == 1.0:
        groups = param_groups_weight_decay(model, weight_decay)
    else:
        groups = param_groups_layer_decay(model, weight_decay, layer_decay)
        for group in groups:
            group["lr"] = lr * group["lr_scale"]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The scheduled rate now: that of the groups without a layer-decay scale (``lr_scale`` 1, the head)."""
    return max(float(g["lr"]) / float(g.get("lr_scale", 1.0)) for g in optimizer.param_groups)

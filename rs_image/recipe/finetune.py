"""Fine-tuning controls: frozen stages and the depth of every parameter for layer-wise learning-rate decay.

Frozen stages (``MODEL.FROZEN_STAGES k``, mmaction2's ``frozen_stages``): ``-1`` freezes nothing, ``0`` the
stem, ``k`` the stem and the first ``k`` stages (``layer1 .. layer<k>``). Their parameters take no gradient
(and so are in no optimizer group) and their BN layers are frozen (:func:`~.batchnorm.freeze_batchnorm`).

Layer decay (``SOLVER.LAYER_DECAY d``; SlowFast's and timm's ``layer_decay``): one depth per *block*, as timm
numbers a ResNet (its ``group_matcher``): the stem is depth 0, the bottleneck blocks of all stages are
depths ``1 .. N`` in forward order, and everything after the last block (the head) is depth ``N + 1``. A
parameter at depth ``i`` learns at ``d ** (N + 1 - i)`` times the scheduled rate: the head at 1.0, the
last block at ``d``, the stem at ``d ** (N + 1)``. :func:`rs_image.recipe.param_groups_layer_decay` makes
the optimizer groups; the multiplier applies to the whole schedule (warm-up start, peak and end).
"""

from __future__ import annotations

from typing import Dict, List

from torch import nn

from rs_image.errors import UserError

from .batchnorm import freeze_batchnorm

__all__ = ["FineTuneError", "freeze_stages", "parameter_depths", "num_depths"]


class FineTuneError(UserError, ValueError):
    """A fine-tuning setting the model cannot take (the message names the key)."""


def _stem_and_stages(model: nn.Module, key: str) -> tuple:
    stem, stages = getattr(model, "stem", None), getattr(model, "stages", None)
    if not isinstance(stem, nn.Module) or not isinstance(stages, (list, tuple)):
        raise FineTuneError(f"{key} needs a ResNet-RS backbone (a model with .stem and .stages); "
                            f"{type(model).__name__} has none")
    return stem, list(stages)


def freeze_stages(model: nn.Module, num_stages: int) -> List[str]:
    """Freeze the stem and the first ``num_stages`` stages (``-1``: nothing); returns the frozen module names.

    Raises:
        FineTuneError: ``num_stages`` is larger than the model's number of stages (``MODEL.FROZEN_STAGES``).
    """
    if num_stages < 0:
        return []
    stem, stages = _stem_and_stages(model, "MODEL.FROZEN_STAGES")
    if num_stages > len(stages):
        raise FineTuneError(f"MODEL.FROZEN_STAGES {num_stages}: the model has only {len(stages)} stages "
                            f"(-1 = none, 0 = the stem, k = the stem and layer1..layer<k>, at most {len(stages)})")
    names = ["stem"] + list(getattr(model, "stage_names", [f"stage{i + 1}" for i in range(len(stages))]))[:num_stages]
    for module in [stem] + stages[:num_stages]:
        module.requires_grad_(False)
        freeze_batchnorm(module)
    return names


def num_depths(model: nn.Module) -> int:
    """``N + 2``: the stem, the N blocks and the head (see the module docstring)."""
    _, stages = _stem_and_stages(model, "SOLVER.LAYER_DECAY")
    return sum(len(stage) for stage in stages) + 2


def parameter_depths(model: nn.Module) -> Dict[str, int]:
    """The layer-decay depth of every parameter, by name: stem 0, blocks ``1 .. N`` in forward order, the
    rest (the head) ``N + 1``."""
    stem, stages = _stem_and_stages(model, "SOLVER.LAYER_DECAY")
    depth_of_module: Dict[int, int] = {id(p): 0 for p in stem.parameters()}
    depth = 0
    for stage in stages:
        for block in stage:
            depth += 1
            for p in block.parameters():
                depth_of_module.setdefault(id(p), depth)
    head = depth + 1
    return {name: depth_of_module.get(id(p), head) for name, p in model.named_parameters()}

"""Model-side regularisation of the recipe: dropout, stochastic depth and its per-block schedule.

The ResNet-RS values live with each registered model (``model.pretrained_cfg``: dropout 0.25, 0.4 at
320 px, 0.5 for video; stochastic-depth base rate 0.0 up to RS-152, 0.1 from RS-200, 0.1 for 3D), and the
model builds its blocks with :func:`rs_image.models.drop_path_rates` (``"stage"``: constant within a stage,
``base * k / 5`` for stages k = 2..5, the ResNet-RS code; ``"linear"``: per block, timm).
:func:`model_kwargs_from_cfg` turns the config into ``create_model`` keywords (``-1`` keeps the model's
value) and :func:`stochastic_depth_rates` reads back what the built network applies, for the log.
"""

from __future__ import annotations

from typing import Any, Dict

from torch import nn
from torchvision.ops import StochasticDepth

__all__ = ["model_kwargs_from_cfg", "stochastic_depth_rates", "dropout_rates"]


def _plain(value: Any) -> Any:
    # YAML gives lists; architecture tables are tuples in the model signatures.
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def model_kwargs_from_cfg(cfg: Any) -> Dict[str, Any]:
    """``create_model`` keywords from ``MODEL.*``: overrides, dropout, drop-path rate and schedule."""
    kwargs: Dict[str, Any] = {str(k): _plain(v) for k, v in dict(cfg.MODEL.OVERRIDES).items()}
    if cfg.MODEL.DROPOUT_RATE >= 0:
        kwargs["dropout"] = float(cfg.MODEL.DROPOUT_RATE)
    if cfg.MODEL.DROP_PATH_RATE >= 0:
        kwargs["drop_path_rate"] = float(cfg.MODEL.DROP_PATH_RATE)
    kwargs.setdefault("drop_path_schedule", cfg.MODEL.DROP_PATH_SCHEDULE)
    return kwargs


def stochastic_depth_rates(model: nn.Module) -> Dict[str, float]:
    """Drop probability of every ``torchvision.ops.StochasticDepth`` layer, by module name."""
    return {name: float(m.p) for name, m in model.named_modules() if isinstance(m, StochasticDepth)}


def dropout_rates(model: nn.Module) -> Dict[str, float]:
    """Probability of every dropout layer, by module name."""
    return {name: float(m.p) for name, m in model.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd)}

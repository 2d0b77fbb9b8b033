"""Exponential moving average (EMA) of the weights *and* BatchNorm statistics, with TF's warm-up.

ResNet-RS evaluates an EMA of the weights (decay 0.9999) that also averages the BN moving mean/variance
(reference ``resnet_rs.md`` §1.6, §2.1). TensorFlow's ``ExponentialMovingAverage(decay, num_updates)``
uses ``min(decay, (1 + t) / (10 + t))`` at update ``t`` so that early averages are not dominated by the
random initialisation; without it a 0.9999 EMA needs ~10k steps to forget the init.

:class:`ModelEma` is a :class:`torch.optim.swa_utils.AveragedModel` (it keeps the copy, the update loop
and the buffer handling) whose averaging function applies that decay. ``t`` counts optimizer steps,
including the current one (TF1 applies the average after the optimizer incremented the global step), so
the first update uses ``min(decay, 2 / 11)``. Integer buffers (``num_batches_tracked``) are copied.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["ModelEma", "ema_decay_at"]


def ema_decay_at(step: int, decay: float, tf_warmup: bool = True) -> float:
    """Decay used at optimizer step ``step`` (1-based): ``min(decay, (1 + step) / (10 + step))``."""
    if not tf_warmup:
        return decay
    return min(decay, (1.0 + step) / (10.0 + step))


class ModelEma(AveragedModel):
    """EMA copy of ``model``; call :meth:`update_parameters` after every optimizer step.

    Args:
        model: the model being trained (unwrapped: not DDP, not compiled).
        decay: the EMA decay (ResNet-RS: 0.9999).
        tf_warmup: use TF's ``min(decay, (1 + t) / (10 + t))`` warm-up.
        include_buffers: average floating-point buffers (BN running statistics) too; when False the
            buffers are copied from ``model`` at every update.

    The averaged network is ``ema.module`` (evaluate it with ``ema.module.eval()``). Its parameters do not
    require gradients. ``ema.num_updates`` is the number of optimizer steps averaged so far.
    """

    def __init__(
        self, model: nn.Module, decay: float = 0.9999, tf_warmup: bool = True, include_buffers: bool = True
    ) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        super().__init__(model, multi_avg_fn=self._average, use_buffers=include_buffers)
        self.decay = decay
        self.tf_warmup = tf_warmup
        self.include_buffers = include_buffers
        self.module.requires_grad_(False)
        self.module.eval()
        self._current_decay = 0.0
        # The first call copies the model (n_averaged 0 -> 1); later calls average.
        super().update_parameters(model)
        self._n_averaged = 1  # mirrors the n_averaged buffer without a device sync per step

    @property
    def num_updates(self) -> int:
        """Optimizer steps averaged so far (TF's ``num_updates``)."""
        return self._n_averaged - 1

    def _average(self, ema_tensors: list, model_tensors: list, _n_averaged: Any) -> None:
        if torch.is_floating_point(ema_tensors[0]) or torch.is_complex(ema_tensors[0]):
            get_ema_multi_avg_fn(self._current_decay)(ema_tensors, model_tensors, _n_averaged)
        else:  # integer buffers (num_batches_tracked): keep the model's value
            for e, m in zip(ema_tensors, model_tensors):
                e.copy_(m)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """Average ``model`` into the EMA with the decay of the next step."""
        self._current_decay = ema_decay_at(self._n_averaged, self.decay, self.tf_warmup)
        super().update_parameters(model)
        self._n_averaged += 1

    def set_num_updates(self, num_updates: int) -> None:
        """Restore the step counter (after loading ``ema.module`` weights from a checkpoint)."""
        self._n_averaged = int(num_updates) + 1
        self.n_averaged.fill_(self._n_averaged)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._n_averaged = int(self.n_averaged.item())
        return result

    def train(self, mode: bool = True) -> "ModelEma":
        # The EMA network is only ever evaluated (its BN statistics are averaged, never updated).
        super().train(False)
        return self

"""Multiply-add counting with fvcore, with BatchNorm stated separately.

Convention: fvcore counts one fused multiply-add as one flop, the PyTorchVideo / SlowFast / torchvision
model-zoo convention ("GFLOPs" in those tables are GMACs). Paper "FLOPs" for ResNet-RS are 2 x MACs.
Never mix with ``torch.utils.flop_counter`` (2 per multiply-add).

fvcore 0.1.5.post20221221 counts BatchNorm by default, and ``set_op_handle("aten::batch_norm", None)``
does not remove it (existing handles win over the ignore list). This module is the one place that works
around it: it counts every operator and reports conv, linear and BN separately, so ``conv_linear`` is the
zoo-comparable number and ``total`` includes BN.
"""

from __future__ import annotations

import logging
import warnings
from typing import Dict, Tuple, Union

import torch
from torch import nn

__all__ = ["count_macs", "count_params"]

_CONV = ("conv",)
_LINEAR = ("linear", "addmm", "matmul", "mm", "bmm", "einsum")
_NORM = ("batch_norm",)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, inputs: Union[torch.Tensor, Tuple[torch.Tensor, ...]]) -> Dict[str, object]:
    """fvcore multiply-adds of one forward pass in eval mode (BN folded as in inference).

    Returns ``dict(total, conv, linear, batch_norm, conv_linear, other, by_operator)``, all in MACs
    (not giga), for the given batch. ``conv_linear`` excludes BN and is what model zoos report.
    """
    from fvcore.nn import FlopCountAnalysis

    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            analysis = FlopCountAnalysis(model, inputs)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            # Silence fvcore's per-op "unsupported operator" log lines (pooling, add, sigmoid: ~0 MACs).
            logging.getLogger("fvcore.nn.jit_analysis").setLevel(logging.ERROR)
            by_op = dict(analysis.by_operator())
            total = int(analysis.total())
    finally:
        model.train(was_training)
    conv = sum(v for k, v in by_op.items() if k.startswith(_CONV))
    linear = sum(v for k, v in by_op.items() if k in _LINEAR)
    norm = sum(v for k, v in by_op.items() if k in _NORM)
    return dict(
        total=total,
        conv=conv,
        linear=linear,
        batch_norm=norm,
        conv_linear=conv + linear,
        other=total - conv - linear - norm,
        by_operator=by_op,
    )

"""Multiply-add and activation counting with fvcore, with BatchNorm stated separately.

Convention: fvcore counts one fused multiply-add as one flop, the PyTorchVideo / SlowFast / torchvision
model-zoo convention ("GFLOPs" in those tables are GMACs). Paper "FLOPs" for ResNet-RS are 2 x MACs.
Never mix with ``torch.utils.flop_counter`` (2 per multiply-add).

fvcore 0.1.5.post20221221 counts BatchNorm by default, and ``set_op_handle("aten::batch_norm", None)``
does not remove it (existing handles win over the ignore list). This module is the one place that works
around it: it counts every operator and reports conv, linear and BN separately, so ``conv_linear`` is the
zoo-comparable number and ``total`` includes BN.

Activations follow fvcore's ``ActivationCountAnalysis`` (output elements of conv and matmul-like ops, the
"Activations" of SlowFast's ``log_model_info``). :func:`count_stats` takes fvcore's own flop and activation
handles and runs them on one shared trace, so a model is traced (and its forward pass run) only once.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from typing import Any, Callable, Dict, List, Tuple, Union

import torch
from torch import nn

__all__ = ["count_macs", "count_params", "count_stats"]

_CONV = ("conv",)
_LINEAR = ("linear", "addmm", "matmul", "mm", "bmm", "einsum")
_NORM = ("batch_norm",)
# Prefixes that keep the two statistics apart inside one fvcore Counter.
_MACS, _ACTS = "macs:", "acts:"

Inputs = Union[torch.Tensor, Tuple[torch.Tensor, ...]]


def count_params(model: nn.Module) -> int:
    """Number of parameters (buffers such as BN running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def _simplify(op_kind: str) -> str:
    # "aten::batch_norm" -> "batch_norm", fvcore's naming of by_operator() keys.
    return op_kind.split("::", 1)[-1]


def _prefixed(prefix: str, kind: str, handle: Callable[[List[Any], List[Any]], Any]) -> Callable:
    def run(inputs: List[Any], outputs: List[Any]) -> Counter:
        value = handle(inputs, outputs)
        if isinstance(value, Counter):
            return Counter({prefix + k: v for k, v in value.items()})
        return Counter({prefix + _simplify(kind): value})

    return run


def _combined_handles() -> Dict[str, Callable]:
    """fvcore's default flop and activation handles, merged so that one trace yields both."""
    # fvcore keeps its default handle tables as module constants; we use them rather than re-deriving
    # the per-operator formulas.
    from fvcore.nn.activation_count import _DEFAULT_SUPPORTED_OPS as ACT_OPS
    from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS as FLOP_OPS

    handles: Dict[str, Callable] = {}
    for kind in set(FLOP_OPS) | set(ACT_OPS):
        parts = []
        if kind in FLOP_OPS:
            parts.append(_prefixed(_MACS, kind, FLOP_OPS[kind]))
        if kind in ACT_OPS:
            parts.append(_prefixed(_ACTS, kind, ACT_OPS[kind]))

        def handle(inputs: List[Any], outputs: List[Any], parts: list = parts) -> Counter:
            out: Counter = Counter()
            for part in parts:
                out.update(part(inputs, outputs))
            return out

        handles[kind] = handle
    return handles


def count_stats(model: nn.Module, inputs: Inputs) -> Dict[str, object]:
    """fvcore multiply-adds and activations of one forward pass in eval mode, from a single trace.

    Returns ``dict(total, conv, linear, batch_norm, conv_linear, other, by_operator, activations,
    activations_by_operator)`` for the given batch; MACs and activations are plain counts (not giga/mega).
    ``conv_linear`` excludes BN and is what model zoos report; ``total`` includes BN (and fvcore's few
    elementwise handles, e.g. 2D adaptive average pooling, under ``other``).
    """
    from fvcore.nn.jit_analysis import JitModelAnalysis

    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            analysis = JitModelAnalysis(model, inputs).set_op_handle(**_combined_handles())
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            # Silence fvcore's per-op "unsupported operator" log lines (pooling, add, sigmoid: ~0 MACs).
            logging.getLogger("fvcore.nn.jit_analysis").setLevel(logging.ERROR)
            counts = dict(analysis.by_operator())
    finally:
        model.train(was_training)
    by_op = {k[len(_MACS):]: int(v) for k, v in counts.items() if k.startswith(_MACS)}
    acts = {k[len(_ACTS):]: int(v) for k, v in counts.items() if k.startswith(_ACTS)}
    total = sum(by_op.values())
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
        activations=sum(acts.values()),
        activations_by_operator=acts,
    )


def count_macs(model: nn.Module, inputs: Inputs) -> Dict[str, object]:
    """fvcore multiply-adds of one forward pass in eval mode (BN folded as in inference).

    Returns ``dict(total, conv, linear, batch_norm, conv_linear, other, by_operator)``, all in MACs
    (not giga), for the given batch. ``conv_linear`` excludes BN and is what model zoos report.
    """
    stats = count_stats(model, inputs)
    keys = ("total", "conv", "linear", "batch_norm", "conv_linear", "other", "by_operator")
    return {k: stats[k] for k in keys}

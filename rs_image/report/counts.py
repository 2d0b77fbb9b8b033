"""Parameters, fvcore multiply-adds and activations of a model, and the pinned counts cache.

Convention: fvcore counts one fused multiply-add as one flop, the PyTorchVideo / SlowFast / torchvision
model-zoo convention ("GFLOPs" in those tables are GMACs). Paper "FLOPs" for ResNet-RS are 2 x MACs.
Never mix with ``torch.utils.flop_counter`` (2 per multiply-add). Counts are for batch 1 in eval mode.

fvcore 0.1.5.post20221221 counts BatchNorm by default, and ``set_op_handle("aten::batch_norm", None)``
does not remove it (existing handles win over the ignore list). This module is the one place that works
around it: it counts every operator and reports conv, linear and BN separately, so ``conv_linear`` is the
zoo-comparable number and ``total`` includes BN.

Activations follow fvcore's ``ActivationCountAnalysis`` (output elements of conv and matmul-like ops, the
"Activations" of SlowFast's ``log_model_info``). :func:`count_stats` takes fvcore's own flop and activation
handles and runs them on one shared trace, so a model is traced (and its forward pass run) only once.

A :class:`CountsCache` (JSON, e.g. ``docs/model_counts.json``) keeps counts keyed by model name, input shape
and an architecture fingerprint (:meth:`~rs_image.report.catalog.ModelSpec.fingerprint`), so that the model
zoo page of big models need not re-run fvcore every time; an entry whose fingerprint no longer matches the
model is never used.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections import Counter
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from rs_image.fileio import atomic_write
from rs_image.upstream import quiet_upstream_import

from .catalog import ModelSpec

__all__ = [
    "count_macs",
    "count_params",
    "count_stats",
    "CountsCache",
    "StaleCountsError",
    "count_spec",
    "shape_str",
    "CONVENTION",
]

logger = logging.getLogger(__name__)

CONVENTION = (
    "fvcore multiply-adds, batch 1, eval mode; 1 fused multiply-add = 1 FLOP (the PyTorchVideo, SlowFast and "
    "torchvision zoo \"GFLOPs\"). GMACs = conv + linear; BatchNorm is listed separately and not included; "
    "ResNet-RS paper FLOPs are 2 x these MACs. Activations = output elements of conv/linear (fvcore). "
    "GMACs x views = test-input GMACs times clips x crops."
)


def shape_str(shape: Sequence[int]) -> str:
    """``(3, 32, 224, 224)`` -> ``"3x32x224x224"``."""
    return "x".join(str(int(s)) for s in shape)


# --------------------------------------------------------------------------------------------------
# fvcore counting
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
    ACT_OPS = quiet_upstream_import("fvcore.nn.activation_count")._DEFAULT_SUPPORTED_OPS
    FLOP_OPS = quiet_upstream_import("fvcore.nn.flop_count")._DEFAULT_SUPPORTED_OPS

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
    JitModelAnalysis = quiet_upstream_import("fvcore.nn.jit_analysis").JitModelAnalysis

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


# --------------------------------------------------------------------------------------------------
# Pinned counts
class CountsCache:
    """Counts kept as JSON: ``{"counts": {"<name>|<shape>": {fingerprint, params, conv, linear, batch_norm,
    total, activations}}}``. Entries are used only when the fingerprint matches the model built now."""

    def __init__(self, path: Optional[str] = None) -> None:
        self.path = path
        self.entries: Dict[str, Dict[str, Any]] = {}
        self.used: set = set()  # keys read or written since loading, see save(prune_unused=True)
        self.dirty = False
        if path and os.path.exists(path):
            try:
                with open(path) as f:
                    self.entries = dict(json.load(f)["counts"])
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}: not a counts cache written by tools/model_report.py ({e})") from None

    @staticmethod
    def key(name: str, shape: Sequence[int]) -> str:
        return f"{name}|{shape_str(shape)}"

    def get(self, name: str, shape: Sequence[int], fingerprint: str) -> Optional[Dict[str, Any]]:
        key = self.key(name, shape)
        entry = self.entries.get(key)
        if entry is None or entry.get("fingerprint") != fingerprint:
            return None
        self.used.add(key)
        return entry

    def put(self, name: str, shape: Sequence[int], fingerprint: str, counts: Mapping[str, Any]) -> None:
        key = self.key(name, shape)
        self.entries[key] = dict(counts, fingerprint=fingerprint)
        self.used.add(key)
        self.dirty = True

    def save(self, path: Optional[str] = None, prune_unused: bool = False) -> None:
        """Write the cache (atomically); ``prune_unused`` keeps only the entries used since loading."""
        path = path or self.path
        if prune_unused:
            self.entries = {k: v for k, v in self.entries.items() if k in self.used}
        if path is None:
            raise ValueError("no path to save the counts cache to")
        data = {
            "about": "fvcore counts (batch 1, eval mode) written by tools/model_report.py; "
                     "see rs_image/report/counts.py. Regenerate, never edit by hand.",
            "counts": {k: self.entries[k] for k in sorted(self.entries)},
        }
        with atomic_write(path) as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        self.dirty = False


class StaleCountsError(RuntimeError):
    """Raised when counts must be computed but the caller allowed only cached ones."""


_COUNT_KEYS = ("params", "conv", "linear", "batch_norm", "total", "activations")


def count_spec(
    spec: ModelSpec,
    shapes: Sequence[Sequence[int]],
    *,
    cache: Optional[CountsCache] = None,
    allow_compute: bool = True,
) -> List[Dict[str, int]]:
    """Counts (``params, conv, linear, batch_norm, total, activations``) of ``spec`` at every input shape.

    With a ``cache``, entries with a matching fingerprint are reused and new counts are stored; with
    ``allow_compute=False`` a missing or stale entry raises :class:`StaleCountsError`.
    """
    fingerprint = spec.fingerprint() if cache is not None else None
    model = None
    results = []
    for shape in shapes:
        hit = cache.get(spec.name, shape, fingerprint) if cache is not None else None
        if hit is not None:
            results.append({k: int(hit[k]) for k in _COUNT_KEYS})
            continue
        if not allow_compute:
            raise StaleCountsError(
                f"no current count for {spec.name} at {shape_str(shape)} in {cache.path if cache else 'the cache'} "
                "(the model changed or is new): run `python tools/model_report.py --zoo MODEL_ZOO.md`"
            )
        logger.info("counting %s at %s with fvcore ...", spec.name, shape_str(shape))
        if model is None:
            model = spec.build()
        stats = count_stats(model, torch.zeros(1, *shape))
        counts = dict(params=count_params(model), **{k: int(stats[k]) for k in _COUNT_KEYS[1:]})
        if cache is not None:
            cache.put(spec.name, shape, fingerprint, counts)
        results.append(counts)
    return results



"""2D -> 3D weight inflation.

A 2D ResNet-RS and its 3D inflation share parameter names, so inflation is one walk over the 3D state
dict:

* a conv whose 3D kernel has one more (temporal) axis is inflated: ``"average"`` repeats the 2D kernel
  over the t taps and divides by t (I3D, Carreira & Zisserman 2017: a static clip gives the 2D
  activations away from the temporal borders); ``"center"`` puts it in the centre tap and zeros the rest
  (the 3D net then equals the 2D net frame by frame, for any clip);
* (2+1)D blocks: the spatial conv ``conv2.conv_s`` takes the 2D 3x3 kernel and its BN ``conv2.bn_s``
  the 2D ``bn2``; the temporal conv ``conv2.conv_t`` starts as the identity (Dirac at the centre tap)
  and the block's ``bn2`` as an identity BN, so the block equals the 2D block (needs
  ``mid_channels="out"``);
* BN, SE and everything else of the same shape is copied;
* self-gating has no 2D counterpart; each such gate is made a pass-through
  (:meth:`rs_image.models.Bottleneck.make_gate_pass_through`: the gate a constant 1/2, the bn3 before it
  doubled), exactly and with the gate's full gradient, so that the 3D net still computes the 2D one
  (training from scratch keeps Model Garden's gate init);
* a classifier of another size (1000 ImageNet -> 400 Kinetics classes) is skipped.

Every 2D weight must be used: a 2D key that finds no place raises, so nothing is dropped silently.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from rs_image.models import Bottleneck, WeightsError, load_state_dict_strict, resolve_weights
from rs_image.models.weights import WeightsSource

__all__ = ["inflate", "InflationReport", "inflate_conv_weight"]

logger = logging.getLogger(__name__)


@dataclass
class InflationReport:
    """What :func:`inflate` did with every key of the 3D model."""

    inflated: List[str] = field(default_factory=list)
    copied: List[str] = field(default_factory=list)
    identity: List[str] = field(default_factory=list)
    new: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    #: Blocks whose self-gate has no 2D counterpart and was made a pass-through (gate 1/2, bn3 x 2).
    pass_through_gates: List[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"inflated {len(self.inflated)} conv kernels, copied {len(self.copied)} tensors, "
            f"set {len(self.identity)} (2+1)D tensors to identity, made {len(self.pass_through_gates)} "
            f"self-gates pass-through, kept {len(self.new)} new tensors initialised, "
            f"skipped {len(self.skipped)} 2D tensors"
        ]
        if self.pass_through_gates:
            lines.append(
                f"  pass-through self-gates (W = 0, b = 0: gate = 1/2; bn3 gamma and beta x 2): "
                f"{self.pass_through_gates}"
            )
        if self.new:
            lines.append(f"  new (no 2D counterpart): {self.new}")
        if self.skipped:
            lines.append(f"  skipped 2D tensors: {self.skipped}")
        return "\n".join(lines)


def inflate_conv_weight(weight_2d: torch.Tensor, temporal_size: int, method: str) -> torch.Tensor:
    """(O, I, k, k) -> (O, I, t, k, k) by ``"average"`` (repeat / t) or ``"center"`` (centre tap)."""
    if method == "average":
        return weight_2d.unsqueeze(2).repeat(1, 1, temporal_size, 1, 1) / temporal_size
    if method == "center":
        out = weight_2d.new_zeros(weight_2d.shape[:2] + (temporal_size,) + weight_2d.shape[2:])
        out[:, :, temporal_size // 2] = weight_2d
        return out
    raise ValueError(f"inflation method must be 'average' or 'center', got {method!r}")


def _dirac(shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    out_ch, in_ch, t = shape[0], shape[1], shape[2]
    if out_ch != in_ch:
        raise WeightsError(f"an identity temporal conv needs in == out channels, got {tuple(shape)}")
    w = torch.zeros(shape, dtype=dtype)
    w[torch.arange(out_ch), torch.arange(in_ch), t // 2] = 1.0
    return w


_FACTORIZED = re.compile(r"^(.*)\.conv2\.(conv_s|bn_s|conv_t)\.(.+)$")
_BN2 = re.compile(r"^(.*)\.bn2\.([a-z_]+)$")


def _plan(key: str, own: Mapping[str, torch.Tensor]) -> Tuple[str, Optional[str]]:
    """How 3D ``key`` is filled: ``("from_2d", src_key)``, ``("identity_conv", None)`` or
    ``("identity_bn", None)`` for the temporal half of a (2+1)D block."""
    m = _FACTORIZED.match(key)
    if m:
        block, part, leaf = m.groups()
        if part == "conv_t":
            return "identity_conv", None
        return "from_2d", f"{block}.conv2.{leaf}" if part == "conv_s" else f"{block}.bn2.{leaf}"
    m = _BN2.match(key)
    if m and f"{m.group(1)}.conv2.conv_t.weight" in own:
        # The BN after the identity temporal conv is an identity too (running_var + eps = 1).
        return "identity_bn", None
    return "from_2d", key


def _value(model_3d: nn.Module, key: str, target: torch.Tensor, kind: str, src: Optional[torch.Tensor],
           src_key: Optional[str], method: str, report: InflationReport) -> torch.Tensor:
    if kind == "identity_conv":
        report.identity.append(key)
        return _dirac(target.shape, target.dtype)
    if kind == "identity_bn":
        report.identity.append(key)
        leaf = key.rsplit(".", 1)[1]
        eps = model_3d.get_submodule(key.rsplit(".", 1)[0]).eps
        fill = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0 - eps}.get(leaf)
        return target.clone() if fill is None else torch.full_like(target, fill)
    assert src is not None
    if src.shape == target.shape:
        report.copied.append(key)
        return src.clone()
    if src.dim() + 1 == target.dim() and target.shape[:2] == src.shape[:2] and target.shape[3:] == src.shape[2:]:
        report.inflated.append(key)
        return inflate_conv_weight(src, target.shape[2], method).to(target.dtype)
    factorized = _FACTORIZED.match(key) is not None
    raise WeightsError(
        f"cannot inflate 2D {src_key} {tuple(src.shape)} into 3D {key} {tuple(target.shape)}"
        + (" (build the (2+1)D model with mid_channels='out' to inflate 2D weights)" if factorized else "")
    )


def _gates_without_source(model_3d: nn.Module, missing: List[str]) -> List[str]:
    """Names of the blocks whose whole self-gate is among the ``missing`` 3D keys."""
    missing_set = set(missing)
    return [
        name for name, block in model_3d.named_modules()
        if isinstance(block, Bottleneck) and block.gate is not None
        and all(f"{name}.gate.{k}" in missing_set for k in block.gate.state_dict())
    ]


def inflate(
    state_dict_2d: WeightsSource,
    model_3d: nn.Module,
    method: str = "average",
    prefer_ema: bool = False,
) -> InflationReport:
    """Inflate 2D ResNet-RS weights into ``model_3d`` in place.

    Args:
        state_dict_2d: native, timm or Keras ``.h5`` weights: any source of
            :func:`rs_image.models.resolve_weights` (a path, URL, state dict, checkpoint or 2D model).
        model_3d: the video model to fill.
        method: ``"average"`` or ``"center"``, see the module docstring.
        prefer_ema: take the EMA weights of a training checkpoint that has them.

    Returns:
        What was inflated, copied, set to identity or pass-through, kept and skipped; the summary is
        also logged at INFO level.
    """
    if method not in ("average", "center"):
        raise ValueError(f"inflation method must be 'average' or 'center', got {method!r}")
    resolved = resolve_weights(state_dict_2d, prefer_ema=prefer_ema)
    sd_2d = resolved.state_dict
    own = model_3d.state_dict()
    report = InflationReport()
    new_sd: Dict[str, torch.Tensor] = {}
    used = set()
    missing: List[str] = []
    head_prefix = "head.fc."
    for key, target in own.items():
        kind, src_key = _plan(key, own)
        src = sd_2d.get(src_key) if src_key else None
        if src_key is not None:
            if src is None or (key.startswith(head_prefix) and src.shape != target.shape):
                if not key.endswith("num_batches_tracked"):
                    missing.append(key)
                new_sd[key] = target
                continue
            used.add(src_key)
        new_sd[key] = _value(model_3d, key, target, kind, src, src_key, method, report)
    unused = sorted(k for k in sd_2d if k not in used)
    head_unused = [k for k in unused if k.startswith(head_prefix)]
    report.skipped.extend(head_unused)
    real_unused = [k for k in unused if k not in head_unused and not k.endswith("num_batches_tracked")]
    if real_unused:
        raise WeightsError(
            f"{len(real_unused)} 2D weights have no place in the 3D model and would be dropped: {real_unused[:30]}"
        )
    report.pass_through_gates = _gates_without_source(model_3d, missing)
    gate_prefixes = tuple(f"{name}.gate." for name in report.pass_through_gates)
    report.new = [k for k in missing if not k.startswith(gate_prefixes)]
    unexpected_new = [k for k in report.new if not k.startswith(head_prefix)]
    if unexpected_new:
        raise WeightsError(
            f"{len(unexpected_new)} 3D weights have no 2D source (architectures differ?): {unexpected_new[:30]}"
        )
    load_state_dict_strict(model_3d, new_sd, "inflated 2D weights")
    for name in report.pass_through_gates:
        model_3d.get_submodule(name).make_gate_pass_through()
    logger.info("2D -> 3D inflation (%s) from %s: %s", method, resolved.describe(), report.summary())
    return report

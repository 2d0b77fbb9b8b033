"""TF Model Garden 3D ResNet-RS checkpoints -> our ``rs3d_*_tf_mg`` state dicts.

The checkpoint is read by :mod:`rs_image.models.weights.tf_checkpoint` (no TensorFlow): variables under
their checkpoint keys, and EMA averages (the ``average`` optimizer slots) as ``ema_state``, so that the
resolver's ``prefer_ema`` picks them. :func:`from_model_garden`, registered as the resolver's
``"model_garden"`` key map, renames the keys of Model Garden's ``resnet_3d_rs`` backbone
(official/vision/modeling/backbones/resnet_3d.py, layers/nn_blocks_3d.py) in a ``VideoClassificationModel``:

* ``backbone/layer_with_weights-{i}/...`` (the trainer's checkpoint, ``tf.train.Checkpoint(model=...,
  backbone=...)``), or ``model/layer_with_weights-0/layer_with_weights-{i}/...`` (``Checkpoint(model=...)``):
  i = 0..5 are the stem's conv / BN pairs (``stem.conv1``, ``stem.bn1`` ... ``stem.bn3``); i >= 6 are the
  blocks in order, a block with a ``_shortcut_conv`` starting the next stage (``layer{s}.{b}``);
* block parts: ``_temporal_conv`` / ``_norm1`` -> ``conv1`` / ``bn1``, ``_spatial_conv`` / ``_norm2`` ->
  ``conv2`` / ``bn2``, ``_expand_conv`` / ``_norm3`` -> ``conv3`` / ``bn3``, ``_shortcut_conv`` / ``_norm0``
  -> ``shortcut.conv`` / ``shortcut.bn``, ``_squeeze_excitation/_se_reduce`` / ``_se_expand`` ->
  ``se.fc1`` / ``se.fc2``, ``_self_gating/_transformer_w`` -> ``gate.fc``;
* ``model/layer_with_weights-1/{kernel,bias}`` (the classifier) -> ``head.fc``;
* tensors: Conv3D kernels ``[t, h, w, in, out]`` -> ``[out, in, t, h, w]``; the SE's Conv2D kernels
  ``[1, 1, in, out]`` -> ``[out, in, 1, 1, 1]``; the dense kernel ``[in, out]`` is transposed; BN ``gamma,
  beta, moving_mean, moving_variance`` -> ``weight, bias, running_mean, running_var``.

``global_step``, ``save_counter`` and ``optimizer/...`` are training bookkeeping and are dropped; any other
key, a tensor of the wrong rank or a key filled twice is reported, all in one :class:`WeightsError`; the
strict load then reports what the model misses. Strides are not in the weights: the ``rs3d_*_tf_mg``
models have those of the K400 config (temporal strides 1, stem conv temporal stride 2, stem pool 1).
"""

from __future__ import annotations

import bisect
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from rs_image.models import WeightsError, load_state_dict_strict, register_key_map, resolve_weights
from rs_image.models.zoo import STAGE_DEPTHS

from .factory import create_model

__all__ = [
    "is_model_garden_state_dict", "from_model_garden", "model_garden_arch", "convert_model_garden_checkpoint",
    "create_model_from_model_garden", "MODEL_GARDEN_MODELS",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Registry names of the Model Garden networks, by depth.
MODEL_GARDEN_MODELS = {depth: f"rs3d_{depth}_tf_mg" for depth in (50, 101, 152, 200)}

_BACKBONE = re.compile(r"^(?:backbone|model/layer_with_weights-0)/layer_with_weights-(\d+)/(.+)$")
_HEAD = re.compile(r"^model/layer_with_weights-1/(kernel|bias)$")
_BOOKKEEPING = re.compile(r"^(?:global_step|save_counter|optimizer/.+)$")
_STEM_LAYERS = 6  # stem 'v1': three Conv3D + BatchNormalization pairs
_CONV, _CONV_BIAS, _SE, _BN, _DENSE = "conv", "conv+bias", "se", "bn", "dense"
_PARTS = {
    "_temporal_conv": ("conv1", _CONV),
    "_norm1": ("bn1", _BN),
    "_spatial_conv": ("conv2", _CONV),
    "_norm2": ("bn2", _BN),
    "_expand_conv": ("conv3", _CONV),
    "_norm3": ("bn3", _BN),
    "_shortcut_conv": ("shortcut.conv", _CONV),
    "_norm0": ("shortcut.bn", _BN),
    "_squeeze_excitation/_se_reduce": ("se.fc1", _SE),
    "_squeeze_excitation/_se_expand": ("se.fc2", _SE),
    "_self_gating/_transformer_w": ("gate.fc", _CONV_BIAS),
}
_BLOCK_PART = re.compile(rf"^({'|'.join(_PARTS)})/(\w+)$")
_BN_NAMES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
_VARIABLES = {_CONV: {"kernel": 5}, _CONV_BIAS: {"kernel": 5, "bias": 1}, _SE: {"kernel": 4, "bias": 1},
              _BN: {n: 1 for n in _BN_NAMES}, _DENSE: {"kernel": 2, "bias": 1}}


def is_model_garden_state_dict(sd: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``sd`` holds a Model Garden backbone (as :func:`rs_image.models.weights.read_tf_checkpoint`
    reads it)."""
    return any(_BACKBONE.match(k) for k in sd)


def _native_tensor(kind: str, variable: str, value: torch.Tensor) -> Tuple[str, torch.Tensor]:
    if kind == _BN:
        return _BN_NAMES[variable], value
    if variable == "bias":
        return "bias", value
    if kind == _DENSE:
        return "weight", value.t().contiguous()
    if kind == _SE:  # Conv2D 1x1 on the (N, 1, 1, 1, C) squeeze: [1, 1, in, out] -> [out, in, 1, 1, 1]
        return "weight", value.permute(3, 2, 0, 1).unsqueeze(-1).contiguous()
    return "weight", value.permute(4, 3, 0, 1, 2).contiguous()  # [t, h, w, in, out] -> [out, in, t, h, w]


def from_model_garden(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename a Model Garden ``resnet_3d_rs`` state dict to our keys (see the module docstring)."""
    problems: List[str] = []
    layers: Dict[int, List[Tuple[str, str, torch.Tensor]]] = {}
    parts: List[Tuple[str, str, str, str, torch.Tensor]] = []  # (native module, kind, variable, key, tensor)
    for key, value in state_dict.items():
        m, head = _BACKBONE.match(key), _HEAD.match(key)
        if m:
            layers.setdefault(int(m.group(1)), []).append((m.group(2), key, value))
        elif head:
            parts.append(("head.fc", _DENSE, head.group(1), key, value))
        elif not _BOOKKEEPING.match(key):
            problems.append(f"{key}: not a Model Garden backbone, classifier or bookkeeping variable")
    stem = sorted(i for i, items in layers.items() if all("/" not in rest for rest, _, _ in items))
    if stem != list(range(_STEM_LAYERS)):
        problems.append(f"stem: weighted layers {stem}; expected {_STEM_LAYERS} (stem 'v1': 3 conv + BN pairs)")
    for i in stem:
        module, kind = (f"stem.conv{i // 2 + 1}", _CONV) if i % 2 == 0 else (f"stem.bn{i // 2 + 1}", _BN)
        parts += [(module, kind, rest, key, value) for rest, key, value in layers[i]]
    blocks = {i - _STEM_LAYERS: items for i, items in layers.items() if i not in stem}
    starts = sorted(j for j, items in blocks.items() if any(r.startswith("_shortcut_conv/") for r, _, _ in items))
    if blocks and (not starts or starts[0] != 0 or sorted(blocks) != list(range(len(blocks)))):
        problems.append(f"blocks {sorted(blocks)} (stage starts {starts}): expected consecutive blocks from "
                        f"layer {_STEM_LAYERS} on, the first one with a _shortcut_conv")
    for j, items in blocks.items():
        stage = bisect.bisect_right(starts, j) - 1
        for rest, key, value in items:
            m = _BLOCK_PART.match(rest)
            if m is None or stage < 0:
                problems.append(f"{key}: no rule for {rest!r} in a bottleneck block")
                continue
            module, kind = _PARTS[m.group(1)]
            parts.append((f"layer{stage + 1}.{j - starts[stage]}.{module}", kind, m.group(2), key, value))
    out: Dict[str, torch.Tensor] = {}
    for module, kind, variable, key, value in parts:
        rank = _VARIABLES[kind].get(variable)
        if rank is None or value.dim() != rank:
            problems.append(f"{key}: {'shape ' + str(tuple(value.shape)) if rank else 'unexpected variable'} "
                            f"for {module} ({kind})")
            continue
        suffix, tensor = _native_tensor(kind, variable, value)
        if f"{module}.{suffix}" in out:
            problems.append(f"{key}: {module}.{suffix} is filled twice")
        out[f"{module}.{suffix}"] = tensor
    if problems:
        raise WeightsError(f"{len(problems)} problem(s) converting a TF Model Garden checkpoint:\n  "
                           + "\n  ".join(problems))
    return out


register_key_map("model_garden", is_model_garden_state_dict, from_model_garden)


def model_garden_arch(sd: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """``create_model`` keywords of the network a converted (native) Model Garden state dict holds: stage
    depths and widths, stem width and temporal kernel, per-stage temporal kernels, SE ratio, self-gating,
    input channels and classes. Strides are not in the weights (see the module docstring)."""
    depths, widths, kernels, gating = [], [], [], []
    while f"layer{len(depths) + 1}.0.conv1.weight" in sd:
        s = len(depths) + 1
        depth = sum(1 for k in sd if re.match(rf"^layer{s}\.\d+\.conv1\.weight$", k))
        taps = [int(sd[f"layer{s}.{b}.conv1.weight"].shape[2]) for b in range(depth)]
        depths.append(depth)
        widths.append(int(sd[f"layer{s}.0.conv1.weight"].shape[0]))
        kernels.append(taps[0] if len(set(taps)) == 1 else tuple(taps))
        gating.append(f"layer{s}.{depth - 1}.gate.fc.weight" in sd)
    if not depths:
        raise WeightsError("no bottleneck blocks (layer1.0.conv1.weight) in the state dict")
    stem = sd["stem.conv1.weight"]
    se = sd.get("layer1.0.se.fc1.weight")
    return dict(
        stage_depths=tuple(depths), stage_widths=tuple(widths), stem_width=int(stem.shape[0]),
        in_chans=int(stem.shape[1]), stem_temporal_kernel=int(stem.shape[2]), temporal_kernels_a=tuple(kernels),
        se_ratio=0.0 if se is None else se.shape[0] / sd["layer1.0.conv3.weight"].shape[0],
        self_gating=True if all(gating) else tuple(gating),
        num_classes=int(sd["head.fc.weight"].shape[0]) if "head.fc.weight" in sd else 0,
    )


def convert_model_garden_checkpoint(path: PathLike, prefer_ema: bool = False) -> Dict[str, torch.Tensor]:
    """Our state dict of a Model Garden TF2 checkpoint (prefix, ``.index`` file or model dir); with
    ``prefer_ema`` its EMA averages where it has them (see :func:`rs_image.models.resolve_weights`)."""
    resolved = resolve_weights(os.fspath(path), prefer_ema=prefer_ema)
    if resolved.format != "model_garden":
        raise WeightsError(f"{resolved.describe()} is not a TF Model Garden 3D ResNet-RS checkpoint")
    return resolved.state_dict


def create_model_from_model_garden(
    path: Union[PathLike, Mapping[str, torch.Tensor]], model_name: Optional[str] = None, *,
    prefer_ema: bool = False, **overrides: Any,
) -> nn.Module:
    """Build the ``rs3d_*_tf_mg`` model of a Model Garden checkpoint and load it strictly, in ``eval()``.

    Args:
        path: the checkpoint (prefix, ``.index`` file or model dir), or a state dict already converted.
        model_name: registry name to build as registered (the strict load checks that the file fits it).
            By default ``rs3d_{depth}_tf_mg`` with the architecture read from the file as overrides
            (:func:`model_garden_arch`), so that other depths and widths load too.
        prefer_ema: load the EMA averages.
        **overrides: further ``create_model`` keywords, e.g. strides of a non-K400 config.
    """
    sd = dict(path) if isinstance(path, Mapping) else convert_model_garden_checkpoint(path, prefer_ema)
    arch = model_garden_arch(sd)
    if model_name is None:
        by_depths = {tuple(STAGE_DEPTHS[d]): name for d, name in MODEL_GARDEN_MODELS.items()}
        model_name = by_depths.get(arch["stage_depths"], MODEL_GARDEN_MODELS[50])
        kwargs = {**overrides, **arch}
    else:
        kwargs = {**overrides, "num_classes": arch["num_classes"]}
    model = create_model(model_name, **kwargs)
    load_state_dict_strict(model, sd, f"{path if not isinstance(path, Mapping) else 'state dict'} (TF Model Garden)")
    return model.eval()

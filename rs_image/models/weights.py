"""Reading, converting and strictly loading weights.

Sources: our native state dicts (``.pth``/``.pt``/``.pyth`` via ``torch.load(weights_only=True)``, or
``.safetensors``), timm ``resnetrs*`` state dicts (renamed key by key), the official Keras ``.h5`` files
(:mod:`rs_image.models.keras_weights`), and any format another package registers with
:func:`register_converter` (``rs_video`` registers PyTorchVideo). Loading is strict: missing or unexpected
keys and shape mismatches raise one error that lists them all.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from rs_image.errors import UserError
from rs_image.fileio import atomic_path

__all__ = [
    "WeightsError",
    "read_state_dict",
    "detect_format",
    "timm_to_native",
    "to_native",
    "register_converter",
    "load_state_dict_strict",
    "key_mismatch_lines",
    "load_pretrained",
    "save_state_dict",
]

logger = logging.getLogger(__name__)

StateDict = Dict[str, torch.Tensor]


class WeightsError(UserError, ValueError):
    """A weight file that cannot be read or does not fit the model."""


# Checkpoint dicts written by trainers (ours, SlowFast, PyTorchVideo, timm train scripts).
_CHECKPOINT_KEYS = ("model_state", "state_dict", "model", "module")


def read_state_dict(path: Union[str, os.PathLike], prefer_ema: bool = False) -> StateDict:
    """Read a state dict from ``.safetensors``, ``.h5`` (Keras ResNet-RS) or a torch file.

    Torch files are loaded with ``weights_only=True``; a training checkpoint is unwrapped from its
    ``model_state`` (or ``ema_state`` with ``prefer_ema``) entry.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"weights file not found: {path}")
    if os.path.getsize(path) == 0:
        raise WeightsError(f"weights file is empty: {path}")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        if ext == ".h5":
            from .keras_weights import convert_keras_h5

            return convert_keras_h5(path)
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file for the user
        raise WeightsError(f"cannot read weights from {path}: {type(e).__name__}: {e}") from e
    if isinstance(obj, Mapping):
        if prefer_ema and isinstance(obj.get("ema_state"), Mapping):
            obj = obj["ema_state"]
        else:
            for key in _CHECKPOINT_KEYS:
                if isinstance(obj.get(key), Mapping):
                    obj = obj[key]
                    break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    sd = dict(obj)
    # DDP / torch.compile wrappers add prefixes that are not part of the model.
    for prefix in ("module.", "_orig_mod."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


# ------------------------------------------------------------------------------------------------
# Format detection and conversion
# ------------------------------------------------------------------------------------------------
Detector = Callable[[Mapping[str, torch.Tensor]], bool]
Converter = Callable[[Mapping[str, torch.Tensor]], StateDict]
_CONVERTERS: Dict[str, Tuple[Detector, Converter]] = {}


def register_converter(name: str, detect: Detector, convert: Converter) -> None:
    """Teach :func:`load_pretrained` a foreign state-dict format (``rs_video`` adds PyTorchVideo)."""
    _CONVERTERS[name] = (detect, convert)


def detect_format(sd: Mapping[str, torch.Tensor]) -> str:
    """``"native"``, ``"timm"`` or a registered format name."""
    if any(k.startswith("stem.") for k in sd):
        return "native"
    for name, (detect, _) in _CONVERTERS.items():
        if detect(sd):
            return name
    raise WeightsError(
        "unrecognised state dict format (expected native 'stem.*' keys, timm 'conv1.0.weight' or one of "
        f"{sorted(_CONVERTERS)}); first keys: {list(sd)[:5]}"
    )


# timm resnetrs* -> native, one explicit rule per key pattern.
_TIMM_RULES: List[Tuple[str, str]] = [
    (r"^conv1\.0\.", "stem.conv1."),
    (r"^conv1\.1\.", "stem.bn1."),
    (r"^conv1\.3\.", "stem.conv2."),
    (r"^conv1\.4\.", "stem.bn2."),
    (r"^conv1\.6\.", "stem.conv3."),
    (r"^bn1\.", "stem.bn3."),
    (r"^maxpool\.0\.", "stem.conv4."),
    (r"^maxpool\.1\.", "stem.bn4."),
    (r"^(layer\d+\.\d+)\.(conv[123]|bn[123])\.", r"\1.\2."),
    (r"^(layer\d+\.\d+)\.se\.(fc[12])\.", r"\1.se.\2."),
    (r"^(layer\d+\.0)\.downsample\.1\.", r"\1.shortcut.conv."),
    (r"^(layer\d+\.0)\.downsample\.2\.", r"\1.shortcut.bn."),
    (r"^fc\.", "head.fc."),
]


def timm_to_native(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Rename a timm ``resnetrs*`` state dict to our keys; unknown keys raise."""
    out: StateDict = {}
    unmatched = []
    for key, value in sd.items():
        for pattern, repl in _TIMM_RULES:
            if re.match(pattern, key):
                out[re.sub(pattern, repl, key)] = value
                break
        else:
            unmatched.append(key)
    if unmatched:
        raise WeightsError(f"timm state dict has {len(unmatched)} keys with no mapping: {unmatched[:20]}")
    return out


register_converter("timm", lambda sd: "conv1.0.weight" in sd and "maxpool.0.weight" in sd, timm_to_native)


def to_native(sd: Mapping[str, torch.Tensor]) -> Tuple[StateDict, str]:
    """Convert any known format to native keys; returns (state dict, detected format)."""
    fmt = detect_format(sd)
    if fmt == "native":
        return dict(sd), fmt
    return _CONVERTERS[fmt][1](sd), fmt


# ------------------------------------------------------------------------------------------------
# Strict loading
# ------------------------------------------------------------------------------------------------
def _classifier_prefix(model: nn.Module) -> str:
    return getattr(model, "pretrained_cfg", {}).get("classifier", "head.fc")


def key_mismatch_lines(
    expected: Mapping[str, Tuple[int, ...]], sd: Mapping[str, torch.Tensor], target: str, limit: Optional[int] = None
) -> List[str]:
    """Lines listing the missing and unexpected keys of ``sd`` and its shape mismatches against
    ``expected`` shapes (empty when everything fits)."""
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    mismatched = [f"{k}: file {tuple(sd[k].shape)} vs {target} {tuple(expected[k])}"
                  for k in sorted(set(sd) & set(expected)) if tuple(sd[k].shape) != tuple(expected[k])]
    lines = []
    for what, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched)):
        if keys:
            lines.append(f"  {what} ({len(keys)}): {keys[:limit] if limit else keys}")
    return lines


def load_state_dict_strict(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """Load ``sd`` into ``model``; any missing/unexpected key or shape mismatch raises, listing them.

    A classifier of another size (e.g. ImageNet weights into a 400-class model) is dropped with a
    message and the model keeps its freshly initialised classifier.
    """
    own = model.state_dict()
    sd = dict(sd)
    prefix = _classifier_prefix(model) + "."
    head_keys = [k for k in sd if k.startswith(prefix)]
    weight_key = prefix + "weight"
    same_features = (weight_key in sd and weight_key in own and sd[weight_key].dim() == 2
                     and sd[weight_key].shape[1] == own[weight_key].shape[1])
    # Only a classifier over the same features is "another number of classes"; any other mismatch is
    # an architecture difference and is reported below with everything else.
    if same_features and any(k in own and own[k].shape != sd[k].shape for k in head_keys):
        src = sd[prefix + "weight"].shape[0] if prefix + "weight" in sd else "?"
        # Expected when fine-tuning on another label set, so information rather than a warning.
        logger.info(
            "%s: dropped the %s-class classifier (%s); the model's %s-class classifier stays freshly initialised",
            source, src, ", ".join(head_keys), getattr(model, "num_classes", "?"),
        )
        for k in head_keys:
            sd.pop(k)
            sd[k] = own[k]
    # num_batches_tracked is bookkeeping that some exporters omit.
    for k in own:
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = own[k]
    problems = key_mismatch_lines({k: tuple(v.shape) for k, v in own.items()}, sd, "model")
    if problems:
        header = (f"cannot load {source} into {type(model).__name__} "
                  f"({getattr(model, 'pretrained_cfg', {}).get('architecture', '')}):")
        raise WeightsError("\n".join([header] + problems))
    model.load_state_dict(sd, strict=True)


def load_pretrained(
    model: nn.Module,
    weights: Union[str, os.PathLike, Mapping[str, torch.Tensor]],
    prefer_ema: bool = False,
) -> nn.Module:
    """Load native, timm, Keras ``.h5`` or registered-format weights into ``model``, strictly."""
    if isinstance(weights, Mapping):
        sd, source = dict(weights), "state dict"
    else:
        source = os.fspath(weights)
        sd = read_state_dict(source, prefer_ema=prefer_ema)
    native, fmt = to_native(sd)
    load_state_dict_strict(model, native, f"{source} ({fmt})")
    return model


def save_state_dict(model_or_sd: Union[nn.Module, Mapping[str, torch.Tensor]], path: Union[str, os.PathLike]) -> None:
    """Write weights as ``.safetensors`` (recommended for export) or a torch file, atomically."""
    sd = model_or_sd.state_dict() if isinstance(model_or_sd, nn.Module) else dict(model_or_sd)
    sd = {k: v.detach().cpu().contiguous() for k, v in sd.items()}
    with atomic_path(path) as tmp:
        if tmp.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(sd, str(tmp))
        else:
            torch.save(sd, tmp)

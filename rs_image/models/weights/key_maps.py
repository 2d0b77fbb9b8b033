"""Key maps: foreign state-dict layouts renamed to our native keys.

A layout is recognised by a detector and renamed by a converter, both registered under a name with
:func:`register_key_map`. timm's ``resnetrs*`` map is built in; ``rs_video`` registers PyTorchVideo's
(``rs_image`` never imports ``rs_video``). Native state dicts are recognised by their ``stem.*`` keys.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Mapping, Tuple

import torch

from .strict_load import StateDict, WeightsError

__all__ = ["register_key_map", "detect_format", "to_native", "timm_to_native"]

Detector = Callable[[Mapping[str, torch.Tensor]], bool]
Converter = Callable[[Mapping[str, torch.Tensor]], StateDict]
_KEY_MAPS: Dict[str, Tuple[Detector, Converter]] = {}


def register_key_map(name: str, detect: Detector, convert: Converter) -> None:
    """Teach the resolver a foreign state-dict layout (``rs_video`` adds ``"pytorchvideo"``)."""
    _KEY_MAPS[name] = (detect, convert)


def detect_format(sd: Mapping[str, torch.Tensor]) -> str:
    """``"native"`` or the name of the registered key map that recognises ``sd``."""
    if any(k.startswith("stem.") for k in sd):
        return "native"
    for name, (detect, _) in _KEY_MAPS.items():
        if detect(sd):
            return name
    raise WeightsError(
        "unrecognised state dict format (expected native 'stem.*' keys, timm 'conv1.0.weight' or one of "
        f"{sorted(_KEY_MAPS)}); first keys: {list(sd)[:5]}"
    )


def to_native(sd: Mapping[str, torch.Tensor]) -> Tuple[StateDict, str]:
    """Rename any known layout to native keys; returns (state dict, detected format)."""
    fmt = detect_format(sd)
    if fmt == "native":
        return dict(sd), fmt
    return _KEY_MAPS[fmt][1](sd), fmt


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


register_key_map("timm", lambda sd: "conv1.0.weight" in sd and "maxpool.0.weight" in sd, timm_to_native)

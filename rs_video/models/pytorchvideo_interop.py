"""PyTorchVideo interop: state-dict maps and heads.

:func:`from_pytorchvideo` renames the state dict of PyTorchVideo's ``create_resnet`` networks
(hub ``slow_r50``, ``i3d_r50``, ``c2d_r50``; the ``model_state`` of their zoo ``.pyth`` files) to our keys;
it is registered as the resolver's ``"pytorchvideo"`` key map.
PyTorchVideo numbers its top-level ``blocks``: 0 is the stem, then the four ``ResStage`` (with a
parameter-free ``MaxPool3d`` after res2 in C2D/I3D), and last the ``ResNetBasicHead``.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping

import torch
from torch import nn

from rs_image.models import WeightsError, register_key_map

__all__ = ["from_pytorchvideo", "is_pytorchvideo_state_dict", "PyTorchVideoHead"]

_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")
_STAGE_RULES = [
    (re.compile(r"^res_blocks\.(\d+)\.branch1_conv\.(.+)$"), r"{b}.shortcut.conv.\2"),
    (re.compile(r"^res_blocks\.(\d+)\.branch1_norm\.(.+)$"), r"{b}.shortcut.bn.\2"),
    (re.compile(r"^res_blocks\.(\d+)\.branch2\.conv_a\.(.+)$"), r"{b}.conv1.\2"),
    (re.compile(r"^res_blocks\.(\d+)\.branch2\.norm_a\.(.+)$"), r"{b}.bn1.\2"),
    (re.compile(r"^res_blocks\.(\d+)\.branch2\.conv_b\.(.+)$"), r"{b}.conv2.\2"),
    (re.compile(r"^res_blocks\.(\d+)\.branch2\.norm_b\.(.+)$"), r"{b}.bn2.\2"),
    (re.compile(r"^res_blocks\.(\d+)\.branch2\.conv_c\.(.+)$"), r"{b}.conv3.\2"),
    (re.compile(r"^res_blocks\.(\d+)\.branch2\.norm_c\.(.+)$"), r"{b}.bn3.\2"),
]
_STEM_RULES = {"conv.weight": "stem.conv1.weight"}
_HEAD_RULES = {"proj.weight": "head.fc.weight", "proj.bias": "head.fc.bias"}


# ``create_resnet_with_roi_head`` (hub ``slow_r50_detection``) wraps the network in a DetectionBBoxNetwork:
# the ResNet under ``model.`` and the RoI head's linear layer under ``detection_head.proj``.
_DETECTION_PREFIX = "model."
_DETECTION_HEAD_RULES = {"detection_head.proj.weight": "head.fc.weight", "detection_head.proj.bias": "head.fc.bias"}


def is_pytorchvideo_state_dict(sd: Mapping[str, torch.Tensor]) -> bool:
    return any(f"{p}blocks.0.conv.weight" in sd for p in ("", _DETECTION_PREFIX)) and any(".res_blocks." in k for k in sd)


def from_pytorchvideo(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map a PyTorchVideo ResNet (Slow / I3D / C2D R50) state dict onto our ``slow_r50`` /
    ``i3d_r50`` / ``c2d_r50`` keys, and a ``create_resnet_with_roi_head`` one (hub ``slow_r50_detection``)
    onto ``slow_r50_detection``. The zoo's checkpoint files (``{"model_state": ...}``) are unwrapped
    by :func:`rs_image.models.resolve_weights`, which applies this map."""
    sd = state_dict
    if not is_pytorchvideo_state_dict(sd):
        raise WeightsError("not a PyTorchVideo ResNet state dict (no 'blocks.0.conv.weight' / res_blocks keys)")
    if f"{_DETECTION_PREFIX}blocks.0.conv.weight" in sd:
        head = {new: sd[old] for old, new in _DETECTION_HEAD_RULES.items() if old in sd}
        rest = {k: v for k, v in sd.items() if k not in _DETECTION_HEAD_RULES}
        unmatched = [k for k in rest if not k.startswith(_DETECTION_PREFIX)]
        if unmatched or len(head) != len(_DETECTION_HEAD_RULES):
            raise WeightsError(f"PyTorchVideo detection state dict: keys without a mapping {unmatched[:20]}, "
                               f"head keys found {sorted(head)}")
        body = _map_resnet({k[len(_DETECTION_PREFIX):]: v for k, v in rest.items()}, with_head=False)
        return {**body, **head}
    return _map_resnet(sd, with_head=True)


def _map_resnet(sd: Mapping[str, torch.Tensor], with_head: bool) -> Dict[str, torch.Tensor]:
    """Our keys for a PyTorchVideo ``Net`` state dict (stem, four stages and, ``with_head``, its basic head)."""
    rests_of_block: Dict[int, List[str]] = {}
    for key in sd:
        m = _BLOCK_KEY.match(key)
        if m:
            rests_of_block.setdefault(int(m.group(1)), []).append(m.group(2))
    stage_ids = sorted(b for b, rests in rests_of_block.items() if any(r.startswith("res_blocks.") for r in rests))
    head_ids = sorted(b for b, rests in rests_of_block.items() if any(r.startswith("proj.") for r in rests))
    if len(stage_ids) != 4 or len(head_ids) != int(with_head):
        raise WeightsError(f"expected 4 residual stages and 1 head in the PyTorchVideo state dict, found stages "
                           f"{stage_ids} and heads {head_ids}")
    layer_of = {block: f"layer{i + 1}" for i, block in enumerate(stage_ids)}
    out: Dict[str, torch.Tensor] = {}
    unmatched: List[str] = []
    for key, value in sd.items():
        m = _BLOCK_KEY.match(key)
        new = None
        if m:
            block, rest = int(m.group(1)), m.group(2)
            if block == 0:
                new = _STEM_RULES.get(rest) or (f"stem.bn1.{rest[5:]}" if rest.startswith("norm.") else None)
            elif block in layer_of:
                for pattern, repl in _STAGE_RULES:
                    mm = pattern.match(rest)
                    if mm:
                        new = mm.expand(repl.format(b=f"{layer_of[block]}.{mm.group(1)}"))
                        break
            elif head_ids and block == head_ids[0]:
                new = _HEAD_RULES.get(rest)
        if new is None:
            unmatched.append(key)
        else:
            out[new] = value
    if unmatched:
        raise WeightsError(f"{len(unmatched)} PyTorchVideo keys have no mapping: {unmatched[:20]}")
    return out


register_key_map("pytorchvideo", is_pytorchvideo_state_dict, from_pytorchvideo)


class PyTorchVideoHead(nn.Module):
    """Adapter so a PyTorchVideo head (e.g. ``create_res_basic_head(in_features=2048, out_features=K,
    pool=None)``) can replace ours: PyTorchVideo heads take the 5D res5 map, ours too."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            raise ValueError("a PyTorchVideo head has no pre-logits output")
        return self.head(x)

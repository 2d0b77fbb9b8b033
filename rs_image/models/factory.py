"""``create_model``: build a registered model and optionally load weights into it."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from .registry import ModelRegistry
from .weights import load_state_dict_strict, read_state_dict, to_native
from .zoo import IMAGE_MODELS

__all__ = ["create_model", "list_models", "build_and_load"]

Weights = Union[None, bool, str, os.PathLike, Mapping[str, torch.Tensor]]


def _read_weights(weights: Union[str, os.PathLike, Mapping[str, torch.Tensor]]) -> tuple:
    if isinstance(weights, Mapping):
        return dict(weights), "state dict"
    source = os.fspath(weights)
    if "://" in source:
        # PyTorchVideo-style hub usage: a URL of a checkpoint in our format.
        sd = torch.hub.load_state_dict_from_url(source, map_location="cpu", weights_only=True)
        sd = sd.get("model_state", sd)
        return dict(sd), source
    return read_state_dict(source), source


def build_and_load(
    registry: ModelRegistry,
    name: str,
    *,
    pretrained: Weights = None,
    num_classes: Optional[int] = None,
    features_only: bool = False,
    out_indices: Sequence[int] = (1, 2, 3, 4),
    **overrides: Any,
) -> nn.Module:
    """Build ``name`` from ``registry`` and load ``pretrained`` (path, URL or state dict) strictly."""
    if pretrained is True:
        raise ValueError(
            "pretrained=True needs a download, which this library never does implicitly; pass the path "
            "(or URL) of a checkpoint, e.g. one converted with tools/convert_keras_weights.py"
        )
    model = registry.build(name, num_classes=num_classes, features_only=features_only, out_indices=out_indices, **overrides)
    if pretrained:
        sd, source = _read_weights(pretrained)
        native, fmt = to_native(sd)
        if features_only:
            native = {k: v for k, v in native.items() if not k.startswith("head.")}
        load_state_dict_strict(model, native, f"{source} ({fmt})")
    return model


def create_model(
    name: str,
    *,
    pretrained: Weights = None,
    num_classes: int = 1000,
    features_only: bool = False,
    out_indices: Sequence[int] = (1, 2, 3, 4),
    **overrides: Any,
) -> nn.Module:
    """Create a ResNet-RS image model.

    Args:
        name: a name from :func:`list_models` (``resnetrs50`` ... ``resnetrs420``), optionally with a
            variant tag: ``"resnetrs350.i320"`` selects the 320 px config (dropout 0.4).
        pretrained: path (``.pth``/``.safetensors``/``.h5``), URL or state dict of native, timm or
            Keras ResNet-RS weights; loaded strictly. A classifier of another size is dropped.
        num_classes: classifier outputs (0: no classifier, ``forward`` returns pooled features).
        features_only: return the feature maps of ``out_indices`` (0 = stem, 1..4 = stages, at
            reductions 4, 4, 8, 16, 32) instead of logits; ``model.feature_info`` describes them.
        **overrides: architecture keywords of :class:`~rs_image.models.resnet_rs.ResNetRS`, e.g.
            ``drop_path_rate``, ``drop_path_schedule``, ``dropout``, ``se_ratio``, ``stage_widths``,
            ``stage_depths``, ``width_multiplier``, ``in_chans``, ``variant``.
    """
    return build_and_load(
        IMAGE_MODELS, name, pretrained=pretrained, num_classes=num_classes,
        features_only=features_only, out_indices=out_indices, **overrides,
    )


def list_models(pattern: str = "*") -> list:
    """Names of the registered image models (shell-style ``pattern``)."""
    return IMAGE_MODELS.list(pattern)

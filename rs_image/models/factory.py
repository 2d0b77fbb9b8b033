"""``create_model``: build any registered model (:data:`~rs_image.models.registry.MODELS`) and optionally load weights
into it; ``create_image_model`` is the image family's own."""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Union

from torch import nn

from .registry import MODELS, ModelRegistry
from .weights import WeightsSource, hub_source, inspect_keras_h5, load_pretrained
from .weights.hf_hub import check_hub_architecture
from .weights.keras_h5 import PathLike, keras_file_variant
from .zoo import IMAGE_MODELS

__all__ = ["create_model", "create_image_model", "list_models", "build_and_load", "create_model_from_keras_h5"]

Weights = Union[None, bool, WeightsSource]


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
    """Build ``name`` from ``registry`` and load ``pretrained`` (any weights source) strictly.

    A hub source (``hf-hub:ORG/REPO`` or a hub folder) must name this architecture in its ``config.json``; its
    ``num_classes`` is the default of ``num_classes`` and its ``model_args`` the defaults of ``overrides``.
    """
    if pretrained is True:
        raise ValueError(
            "pretrained=True needs a download, which this library never does implicitly; pass the path, URL or "
            "hf-hub:ORG/REPO name of the weights, e.g. a file converted with tools/convert_keras_weights.py"
        )
    hub = hub_source(pretrained)
    if hub is not None:
        check_hub_architecture(hub, registry.split_name(name)[0])
        if num_classes is None and hub.config.get("num_classes") is not None:
            num_classes = int(hub.config["num_classes"])
        overrides = {**hub.model_args, **overrides}
        pretrained = hub
    model = registry.build(name, num_classes=num_classes, features_only=features_only, out_indices=out_indices, **overrides)
    if pretrained is not None and pretrained is not False and pretrained != "":
        load_pretrained(model, pretrained)
    return model


def create_image_model(
    name: str,
    *,
    pretrained: Weights = None,
    num_classes: Optional[int] = None,
    features_only: bool = False,
    out_indices: Sequence[int] = (1, 2, 3, 4),
    **overrides: Any,
) -> nn.Module:
    """Create a ResNet-RS image model.

    Args:
        name: a name from :func:`list_models` (``resnetrs50`` ... ``resnetrs420``), optionally with a
            variant tag: ``"resnetrs350.i320"`` selects the 320 px config (dropout 0.4).
        pretrained: native, timm or Keras ResNet-RS weights, loaded strictly: a path
            (``.pth``/``.pyth``/``.safetensors``/``.h5``), a URL, an ``hf-hub:ORG/REPO`` name or hub folder
            (:mod:`rs_image.models.weights.hf_hub`), a state dict or training checkpoint
            dict (its ``model_state``), or a model (:func:`rs_image.models.resolve_weights`). A
            classifier the model cannot use (another size; none in the model) is dropped.
        num_classes: classifier outputs (0: no classifier, ``forward`` returns pooled features); default
            the hub config's, else 1000.
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


MODELS.add_family(IMAGE_MODELS, create_image_model, task="image")


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Create any registered model: an image model (:func:`create_image_model`, whose keywords are described
    there) or, once ``rs_video`` is imported, a video model or action detector (``rs_video.create_model``'s
    keywords, e.g. ``inflate_from``). Unknown names raise :class:`~rs_image.models.registry.UnknownModelError`
    listing the close names of every family."""
    return MODELS.create(name, **kwargs)


def list_models(pattern: str = "*") -> list:
    """Names of the registered image models (shell-style ``pattern``); every family's: ``MODELS.list()``."""
    return IMAGE_MODELS.list(pattern)


def create_model_from_keras_h5(path: PathLike, model_name: Optional[str] = None, **overrides: Any) -> nn.Module:
    """Build the native model that matches a Keras ResNet-RS ``.h5`` and load the file into it, strictly.

    Args:
        path: the ``.h5`` file.
        model_name: registry name (optionally with a variant, ``"resnetrs350.i320"``). Given, that model
            is built as registered (with the file's number of classes) and the strict load checks that
            the file fits it. By default the name (and, for official file names, the variant) is
            inferred from the file and the architecture read from the file (depths, widths, stem
            width, SE ratio) is passed as overrides, so non-standard networks load too.
        **overrides: further ``create_model`` keywords (e.g. ``dropout``).

    Returns:
        The model in ``eval()`` mode. ``_notop`` files give a model with ``num_classes=0`` whose
        ``forward`` returns pooled features.
    """
    info = inspect_keras_h5(path)
    if model_name is None:
        official = keras_file_variant(path)
        model_name = info.model_name
        if official is not None and official[0] == model_name:
            model_name = f"{model_name}.{official[1]}"
        kwargs = {**overrides, **info.model_kwargs()}
    else:
        kwargs = {**overrides, "num_classes": info.num_classes or 0}
    return create_model(model_name, pretrained=os.fspath(path), **kwargs).eval()

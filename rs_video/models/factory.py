"""``rs_video.create_model``: video backbones, optionally inflated from 2D ResNet-RS weights; the video family of
:data:`rs_image.models.MODELS` (registered on import), so ``rs_image.create_model`` answers these names too."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from torch import nn

from rs_image.models import IMAGE_MODELS, MODELS, build_and_load, create_image_model
from rs_image.models.weights import WeightsSource

from .inflate import inflate
from .zoo import VIDEO_MODELS

__all__ = ["create_model", "list_models"]


def create_model(
    name: str,
    *,
    num_classes: Optional[int] = None,
    pretrained: Optional[WeightsSource] = None,
    inflate_from: Optional[WeightsSource] = None,
    inflate_method: str = "average",
    features_only: bool = False,
    out_indices: Sequence[int] = (1, 2, 3, 4),
    **overrides: Any,
) -> nn.Module:
    """Create a video model: ``rs3d_{50..420}``, ``rs3d_*_tf_mg``, ``rs2plus1d_{50..200}``, ``slow/i3d/c2d_r50``,
    and the action detectors ``slow_r50_detection``, ``rs3d_{50..200}_detection``.

    Input (B, 3, T, H, W), any T, H, W that survive the strides; output logits in train and eval. A
    detector is called ``model(x, boxes)`` and gives one row per box (sigmoid scores in eval mode).

    Args:
        num_classes: classifier outputs; default the hub config's (``hf-hub:`` weights), else the model's (400
            Kinetics classes, 80 AVA classes).
        pretrained: video weights (native, PyTorchVideo or, for ``*_tf_mg``, a TF Model Garden checkpoint),
            loaded strictly: a path, URL, ``hf-hub:ORG/REPO`` name or hub folder, state dict or
            checkpoint dict (its ``model_state``), or a model (:func:`rs_image.models.resolve_weights`).
        inflate_from: 2D ResNet-RS weights to inflate (:func:`rs_video.inflate`, which logs its report):
            any weights source (native/timm/Keras ``.h5``), or an ``rs_image`` model name (that model at
            random init, e.g. for tests). Self-gates, which have no 2D counterpart, start
            as a pass-through; without ``inflate_from`` they keep Model Garden's init.
        inflate_method: ``"average"`` (I3D, repeat / t) or ``"center"`` (centre tap; with ``"center"``
            the model computes the 2D network on a static clip).
        features_only, out_indices: return res2..res5 maps (5D) with ``feature_info``.
        **overrides: architecture keywords of :class:`rs_image.models.ResNetRS`, e.g.
            ``temporal_kernels_a``, ``temporal_strides``, ``stem_temporal_kernel``, ``self_gating``,
            ``se_ratio``, ``stage_widths``, ``stage_depths``, ``mid_channels``, ``dropout``, ``drop_path_rate``.
    """
    if pretrained is not None and inflate_from is not None:
        raise ValueError("pass either pretrained (video weights) or inflate_from (2D weights), not both")
    model = build_and_load(
        VIDEO_MODELS, name, pretrained=pretrained, num_classes=num_classes,
        features_only=features_only, out_indices=out_indices, **overrides,
    )
    if inflate_from is not None:
        source = inflate_from
        if isinstance(source, str) and source in IMAGE_MODELS:
            source = create_image_model(source, num_classes=0)
        inflate(source, model, method=inflate_method)
    return model


MODELS.add_family(VIDEO_MODELS, create_model, task="video")


def list_models(pattern: str = "*") -> list:
    """Names of the registered video models (shell-style ``pattern``); every family's: ``MODELS.list()``."""
    return VIDEO_MODELS.list(pattern)

"""ResNet-RS image backbones in torchvision's detectors (Faster R-CNN, Mask R-CNN, RetinaNet, ...).

torchvision's detection backbone contract: a module with an ``out_channels`` attribute whose forward returns
an ``OrderedDict`` of feature maps (or one tensor). :func:`fpn_backbone` gives torchvision's own
``BackboneWithFPN`` on a ResNet-RS (its ``IntermediateLayerGetter`` takes the stage outputs, the head is
dropped); :func:`stage_backbone` the plain stage maps without FPN. Example::

    from torchvision.models.detection import FasterRCNN
    from rs_image.models import create_model
    from rs_image.models.detection import fpn_backbone

    backbone = fpn_backbone(create_model("resnetrs50", pretrained="resnetrs50.pth"), trainable_layers=3)
    detector = FasterRCNN(backbone, num_classes=91)

Detection backbones usually stride the last stage less and dilate it: ``create_model(...,
spatial_strides=(1, 2, 2, 1), spatial_dilations=(1, 1, 1, 2))``; ``feature_info`` gives the reductions.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

from torch import nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, LastLevelMaxPool

from .resnet_rs import ResNetRS

__all__ = ["fpn_backbone", "stage_backbone", "freeze_stages"]

#: the top-level modules of a ResNet-RS, shallowest first (``trainable_layers`` counts from the end)
_TRAINABLE_ORDER = ("stem", "layer1", "layer2", "layer3", "layer4")


def _check(model: nn.Module, returned_layers: Sequence[int]) -> Dict[str, str]:
    if not isinstance(model, ResNetRS) or model.features_only:
        raise TypeError("expected a ResNetRS classification model (not features_only), e.g. create_model('resnetrs50')")
    bad = [i for i in returned_layers if not 1 <= i <= len(model.stage_names)]
    if bad or not returned_layers:
        raise ValueError(f"returned_layers must be stage numbers in 1..{len(model.stage_names)}, got {list(returned_layers)}")
    return {f"layer{i}": str(k) for k, i in enumerate(returned_layers)}


def freeze_stages(model: nn.Module, trainable_layers: int) -> None:
    """Train only the last ``trainable_layers`` of stem, layer1..layer4 (torchvision's ``trainable_layers``:
    0 freezes all, 5 none); frozen parameters get ``requires_grad=False``."""
    if not 0 <= trainable_layers <= len(_TRAINABLE_ORDER):
        raise ValueError(f"trainable_layers must be in 0..{len(_TRAINABLE_ORDER)}, got {trainable_layers}")
    trainable = _TRAINABLE_ORDER[len(_TRAINABLE_ORDER) - trainable_layers:]
    for name, param in model.named_parameters():
        if name.split(".")[0] in _TRAINABLE_ORDER and not name.startswith(trainable):
            param.requires_grad_(False)


def fpn_backbone(
    model: nn.Module,
    returned_layers: Sequence[int] = (1, 2, 3, 4),
    out_channels: int = 256,
    trainable_layers: int = 5,
    extra_blocks: Optional[ExtraFPNBlock] = None,
) -> BackboneWithFPN:
    """torchvision's ``BackboneWithFPN`` on the stages ``returned_layers`` of a 2D ResNet-RS.

    Args:
        model: a 2D :class:`ResNetRS` (any head; it is not used).
        returned_layers: stages (1..4) whose outputs feed the FPN, torchvision's ``returned_layers``.
        out_channels: FPN width (``backbone.out_channels``).
        trainable_layers: see :func:`freeze_stages`.
        extra_blocks: torchvision's extra FPN level (default ``LastLevelMaxPool``, as Faster R-CNN uses).
    """
    return_layers = _check(model, returned_layers)
    freeze_stages(model, trainable_layers)
    in_channels = [model.feature_info[i]["num_chs"] for i in returned_layers]  # index 0 is the stem
    return BackboneWithFPN(model, return_layers, in_channels, out_channels,
                           extra_blocks=extra_blocks if extra_blocks is not None else LastLevelMaxPool())


def stage_backbone(model: nn.Module, returned_layers: Sequence[int] = (4,), trainable_layers: int = 5) -> nn.Module:
    """The stage maps of ``returned_layers`` as an ``OrderedDict`` ("0", "1", ...), without FPN;
    ``out_channels`` is the last one's width (torchvision uses one map without FPN)."""
    return_layers = _check(model, returned_layers)
    freeze_stages(model, trainable_layers)
    body = IntermediateLayerGetter(model, return_layers)
    body.out_channels = model.feature_info[returned_layers[-1]]["num_chs"]
    return body

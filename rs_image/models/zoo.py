"""The ResNet-RS image models: architectures and per-model configs, as data.

Per-variant values are those of the released TF1 configs (tensorflow/tpu ``resnet_rs/configs``):
train resolution = eval resolution, RandAugment magnitude, dropout, stochastic-depth base rate, and the
paper's top-1. ``params_m`` and ``gmacs`` are the reference counts (multiply-adds, 1000 classes) that the
tests check our models against. Keras ``.h5`` names are the official converted EMA weights. The fields are
those of :class:`~rs_image.models.registry.PretrainedCfg`.
"""

from __future__ import annotations

from typing import Dict, Tuple

from .registry import ModelEntry, ModelRegistry, PretrainedCfg

__all__ = ["IMAGE_MODELS", "IMAGENET_MEAN", "IMAGENET_STD", "STAGE_DEPTHS"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

IMAGE_MODELS = ModelRegistry("image", default_num_classes=1000)

# depth -> blocks per stage (identical in TF1, TF2, Keras and timm).
STAGE_DEPTHS: Dict[int, Tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
    270: (4, 29, 53, 4),
    350: (4, 36, 72, 4),
    420: (4, 44, 87, 4),
}

# depth -> params (M), default variant, {variant: (resolution, RandAugment magnitude, dropout, top-1, GMACs)}
_VARIANTS = {
    50: (35.69, "i160", {"i160": (160, 10, 0.25, 78.8, 2.28)}),
    101: (63.62, "i192", {"i160": (160, 10, 0.25, 80.3, 4.18), "i192": (192, 15, 0.25, 81.2, 6.01)}),
    152: (
        86.62,
        "i256",
        {
            "i192": (192, 15, 0.25, 82.0, 8.75),
            "i224": (224, 15, 0.25, 82.2, 11.90),
            "i256": (256, 15, 0.25, 83.0, 15.53),
        },
    ),
    200: (93.21, "i256", {"i256": (256, 15, 0.25, 83.4, 20.09)}),
    270: (129.86, "i256", {"i256": (256, 15, 0.25, 83.8, 26.95)}),
    350: (163.96, "i256", {"i256": (256, 15, 0.25, 84.0, 34.38), "i320": (320, 15, 0.4, 84.2, 53.68)}),
    420: (191.89, "i320", {"i320": (320, 15, 0.4, 84.4, 63.94)}),
}

_RESNET_RS_ARCH = dict(stem_type="deep", stem_width=32, shortcut="avg_pool", se_ratio=0.25, zero_init_last=True)


def _variant_cfg(depth: int, res: int, ra: int, dropout: float, top1: float, gmacs: float) -> dict:
    return dict(
        input_size=(3, res, res),
        test_input_size=(3, res, res),
        randaugment_magnitude=ra,
        dropout=dropout,
        top1=top1,
        gmacs=gmacs,
        keras_weights=f"resnet-rs-{depth}-i{res}.h5",
    )


for _depth, (_params, _default, _variants) in _VARIANTS.items():
    IMAGE_MODELS.register(
        ModelEntry(
            name=f"resnetrs{_depth}",
            arch=dict(_RESNET_RS_ARCH, stage_depths=STAGE_DEPTHS[_depth]),
            pretrained_cfg=PretrainedCfg(
                crop_pct=0.875,  # TF eval: center crop 87.5 % of the short side, resized to the input size
                interpolation="bicubic",
                mean=IMAGENET_MEAN,
                std=IMAGENET_STD,
                first_conv="stem.conv1",
                classifier="head.fc",
                drop_path_rate=0.0 if _depth <= 152 else 0.1,
                drop_path_schedule="stage",
                params_m=_params,
                top1_source="ResNet-RS paper / official TF1 checkpoints (arXiv:2103.07579)",
                paper="arXiv:2103.07579",
            ),
            variants={v: _variant_cfg(_depth, *vals) for v, vals in _variants.items()},
            default_variant=_default,
        )
    )

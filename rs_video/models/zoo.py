"""The video models: 3D and (2+1)D ResNet-RS and the plain Slow / I3D / C2D ResNet-50s, as data.

All are :class:`rs_image.models.ResNetRS` with 3D ops and other settings; nothing here defines a layer.

``rs3d_*`` follows the TF Model Garden 3D ResNet-RS Kinetics-400 config (Du et al. 2021,
``k400_resnet3drs_50_tpu.yaml``): first stem conv temporal kernel 5 / stride 2, temporal kernels 1, 1, 3, 3
on the first 1x1 conv of the blocks of res2..res5 (Slow style), no further temporal downsampling, SE 0.25,
self-gating in the last block of each stage, stochastic depth 0.1 on the per-stage schedule, dropout 0.5.
Where it differs from the Model Garden network, on purpose, so that ImageNet ResNet-RS weights inflate:
the stem keeps the 2D model's stride-2 3x3 conv instead of the 3D max-pool, the shortcuts keep the
ResNet-D (1,2,2) average pool + 1x1 conv instead of a strided 1x1 conv, the last BN gamma is zero-initialised,
and there is no 1001-class background logit.

``rs3d_{50,101,152,200}_tf_mg`` are the Model Garden network itself (``resnet_3d_rs`` at the K400 yaml), the
same core with other settings: the stem's three convs followed by the [1,3,3] stride-(1,2,2) max-pool,
strided 1x1x1 conv + BN shortcuts, TF 'same' padding (asymmetric where strided), no zero-init, inputs in
[0, 1] without mean/std. A Model Garden TF2 checkpoint converts into them (``rs_video.models.model_garden``,
``tools/convert_tf_checkpoint.py``); equivalence and counts: docs/model_garden.md.

``slow_r50`` / ``i3d_r50`` / ``c2d_r50`` are PyTorchVideo's hub architectures expressed with the same core:
7x7 stem with max-pool, strided 1x1 conv shortcuts, no SE.

``*_detection`` are the action detectors of AVA (docs/detection.md): the backbone with its last stage at
stride 1 and dilation 2 (feature stride 16, SlowFast's and PyTorchVideo's AVA setting) and the RoI head
(:class:`rs_image.models.RoIHead`), 80 classes. ``slow_r50_detection`` is PyTorchVideo's hub model of that
name (``create_resnet_with_roi_head``: ``roi_align`` with ``aligned=False``); ``rs3d_*_detection`` use
SlowFast's ``DETECTION.ALIGNED`` True.
"""

from __future__ import annotations

from rs_image.models import IMAGENET_MEAN, IMAGENET_STD, ModelEntry, ModelRegistry, Ops, PretrainedCfg
from rs_image.models.zoo import STAGE_DEPTHS

__all__ = ["VIDEO_MODELS", "AVA_NUM_CLASSES"]

VIDEO_MODELS = ModelRegistry("video", default_num_classes=400)

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)

_RS3D_ARCH = dict(
    ops=Ops(3),
    stem_type="deep",
    stem_width=32,
    stem_temporal_kernel=5,
    stem_temporal_stride=2,
    shortcut="avg_pool",
    se_ratio=0.25,
    self_gating=True,
    drop_path_schedule="stage",
    temporal_kernels_a=(1, 1, 3, 3),
    temporal_kernels_b=(1, 1, 1, 1),
)

# TF Model Garden K400 top-1 of its own 3D ResNet-RS (32x2, 10x3 views, from scratch).
_MG_TOP1 = {50: 78.2, 101: 79.5, 152: 79.9, 200: 80.4}


def _rs_video_cfg(depth: int) -> PretrainedCfg:
    return PretrainedCfg(
        num_frames=32,
        sampling_rate=2,
        input_size=(3, 32, 224, 224),
        test_input_size=(3, 32, 256, 256),
        test_views=(10, 3),
        train_crop="inception",  # random resized crop, area (0.08, 1), aspect (0.5, 2)
        interpolation="bilinear",
        # ImageNet statistics, so that inflated ImageNet weights see the inputs they were trained on.
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        dropout=0.5,
        drop_path_rate=0.1,
        first_conv="stem.conv1",
        classifier="head.fc",
        inflate_from=f"resnetrs{depth}",
        top1=_MG_TOP1.get(depth),
        top1_source="TF Model Garden R3D-RS (its network differs slightly, see rs_video.models.zoo)"
        if depth in _MG_TOP1 else None,
    )


for _depth in (50, 101, 152, 200, 270, 350, 420):
    VIDEO_MODELS.register(
        ModelEntry(
            name=f"rs3d_{_depth}",
            arch=dict(_RS3D_ARCH, stage_depths=STAGE_DEPTHS[_depth]),
            pretrained_cfg=_rs_video_cfg(_depth),
        )
    )

# The Model Garden network, exactly (resnet_3d.py / nn_blocks_3d.py of tf-models-official 2.20.0).
_RS3D_TF_MG_ARCH = dict(
    _RS3D_ARCH,
    ops=Ops(3, padding="tf_same"),
    stem_type="deep_maxpool",  # conv [5,3,3]/(2,2,2) 32 -> [1,3,3] 32 -> [1,3,3] 64, max-pool [1,3,3]/(1,2,2)
    stem_pool_temporal_stride=1,  # stem_pool_temporal_stride 1: the pool's temporal kernel is 1 too
    shortcut="conv",  # strided 1x1x1 conv ('valid') + BN
    zero_init_last=False,  # Keras BN gamma starts at 1
)
# MG feeds RGB / 255 without mean/std (zero_centering_image false).
_MG_MEAN = (0.0, 0.0, 0.0)
_MG_STD = (1.0, 1.0, 1.0)

for _depth in (50, 101, 152, 200):
    VIDEO_MODELS.register(
        ModelEntry(
            name=f"rs3d_{_depth}_tf_mg",
            arch=dict(_RS3D_TF_MG_ARCH, stage_depths=STAGE_DEPTHS[_depth]),
            pretrained_cfg=_rs_video_cfg(_depth).replace(
                mean=_MG_MEAN, std=_MG_STD, inflate_from=None, label_set="kinetics400",
                top1_source="TF Model Garden R3D-RS (this network, trained by the Model Garden)",
            ),
        )
    )

for _depth in (50, 101, 152, 200):
    VIDEO_MODELS.register(
        ModelEntry(
            name=f"rs2plus1d_{_depth}",
            # Every 3x3 conv becomes spatial 1x3x3 -> BN -> ReLU -> temporal 3x1x1 (Tran et al. mid width).
            arch=dict(
                _RS3D_ARCH,
                ops=Ops(3, factorized=True),
                stage_depths=STAGE_DEPTHS[_depth],
                temporal_kernels_a=(1, 1, 1, 1),
                temporal_kernels_b=(3, 3, 3, 3),
                mid_channels="tran",
            ),
            pretrained_cfg=_rs_video_cfg(_depth).replace(top1=None, top1_source=None),
        )
    )

_PTV_ARCH = dict(
    ops=Ops(3),
    stage_depths=STAGE_DEPTHS[50],
    stem_type="plain",
    stem_width=64,
    shortcut="conv",
    se_ratio=0.0,
    self_gating=False,
    zero_init_last=False,
)


def _ptv_cfg(top1: float, gmacs: float, params_m: float) -> PretrainedCfg:
    return PretrainedCfg(
        num_frames=8,
        sampling_rate=8,
        input_size=(3, 8, 224, 224),
        test_input_size=(3, 8, 256, 256),
        test_views=(10, 3),
        train_crop="jitter",  # short side in [256, 320], random 224 crop
        interpolation="bilinear",
        mean=KINETICS_MEAN,
        std=KINETICS_STD,
        dropout=0.5,
        drop_path_rate=0.0,
        first_conv="stem.conv1",
        classifier="head.fc",
        top1=top1,
        top1_source="PyTorchVideo model zoo (8x8, 10x3 views)",
        gmacs=gmacs,  # the zoo's "GFLOPs" are fvcore multiply-adds
        params_m=params_m,
        label_set="kinetics400",  # the hub checkpoints' 400 outputs, in the sorted official class order
    )


VIDEO_MODELS.register(
    ModelEntry("slow_r50", dict(_PTV_ARCH, temporal_kernels_a=(1, 1, 3, 3)), _ptv_cfg(74.58, 54.52, 32.45))
)
VIDEO_MODELS.register(
    ModelEntry(
        "i3d_r50",
        dict(
            _PTV_ARCH,
            stem_temporal_kernel=5,
            temporal_kernels_a=(3, (3, 1), (3, 1), (1, 3)),
            temporal_pool_after_layer1=2,
        ),
        _ptv_cfg(73.27, 37.53, 28.04),
    )
)
VIDEO_MODELS.register(
    ModelEntry("c2d_r50", dict(_PTV_ARCH, temporal_pool_after_layer1=2), _ptv_cfg(71.46, 25.89, 24.33))
)


# AVA detection: last stage stride 1, dilation 2 (feature stride 16), per-box RoI head, 80 AVA classes.
_DETECTION_ARCH = dict(spatial_strides=(1, 2, 2, 1), spatial_dilations=(1, 1, 1, 2), head_type="roi")
AVA_NUM_CLASSES = 80


def _detection_cfg(cfg: PretrainedCfg, num_frames: int, sampling_rate: int) -> PretrainedCfg:
    # SlowFast's AVA recipe: short side jittered in [256, 320], 224 crops to train, short side 256 to test.
    return cfg.replace(
        num_classes=AVA_NUM_CLASSES, num_frames=num_frames, sampling_rate=sampling_rate,
        input_size=(3, num_frames, 224, 224), test_input_size=(3, num_frames, 256, 256), test_views=(1, 1),
        train_crop="jitter", top1=None, top1_source=None, gmacs=None, params_m=None,
    )


VIDEO_MODELS.register(
    ModelEntry(
        "slow_r50_detection",
        dict(_PTV_ARCH, temporal_kernels_a=(1, 1, 3, 3), roi_aligned=False, **_DETECTION_ARCH),
        _detection_cfg(_ptv_cfg(0.0, 0.0, 0.0), num_frames=4, sampling_rate=16),
    )
)
for _depth in (50, 101, 152, 200):
    VIDEO_MODELS.register(
        ModelEntry(
            name=f"rs3d_{_depth}_detection",
            arch=dict(_RS3D_ARCH, stage_depths=STAGE_DEPTHS[_depth], roi_aligned=True, **_DETECTION_ARCH),
            pretrained_cfg=_detection_cfg(_rs_video_cfg(_depth), num_frames=32, sampling_rate=2).replace(
                input_size=(3, 32, 224, 224), test_input_size=(3, 32, 256, 256)),
        )
    )

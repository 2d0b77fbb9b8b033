"""ResNet-RS models: the shared 2D/3D/(2+1)D definition, registries and weight loading."""

from .detection import fpn_backbone, freeze_stages, stage_backbone
from .factory import build_and_load, create_image_model, create_model, create_model_from_keras_h5, list_models
from .layers import Conv2plus1d, Ops, SelfGating, SqueezeExcite, tran_mid_channels
from .registry import MODELS, ModelEntry, ModelFamily, ModelRegistry, Models, PretrainedCfg, UnknownModelError
from .resnet_rs import (
    HEAD_TYPES, Bottleneck, ClassifierHead, FeatureInfo, ResNetRS, RoIHead, Shortcut, Stem, drop_path_rates,
    feature_take_indices, make_stages,
)
from .weights import (
    KerasWeightsError,
    ResolvedWeights,
    WeightsError,
    convert_keras_h5,
    inspect_keras_h5,
    load_pretrained,
    load_state_dict_strict,
    register_file_reader,
    register_key_map,
    resolve_weights,
    save_state_dict,
    timm_to_native,
)
from .zoo import IMAGE_MODELS, IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "fpn_backbone", "stage_backbone", "freeze_stages",
    "create_model", "create_image_model", "list_models", "build_and_load", "MODELS", "Models", "ModelFamily",
    "UnknownModelError", "Ops", "Conv2plus1d", "SelfGating", "SqueezeExcite",
    "tran_mid_channels", "ModelEntry", "ModelRegistry", "PretrainedCfg", "Bottleneck", "ClassifierHead", "RoIHead", "HEAD_TYPES",
    "FeatureInfo", "feature_take_indices", "ResNetRS", "Shortcut", "Stem", "drop_path_rates", "make_stages", "WeightsError",
    "ResolvedWeights", "resolve_weights", "load_pretrained", "load_state_dict_strict", "register_file_reader",
    "register_key_map", "save_state_dict", "timm_to_native", "IMAGE_MODELS", "IMAGENET_MEAN", "IMAGENET_STD",
    "KerasWeightsError", "convert_keras_h5", "create_model_from_keras_h5", "inspect_keras_h5",
]

"""ResNet-RS models: the shared 2D/3D/(2+1)D definition, registries and weight loading."""

from .factory import build_and_load, create_model, list_models
from .keras_weights import KerasWeightsError, convert_keras_h5, create_model_from_keras_h5, inspect_keras_h5
from .layers import Conv2plus1d, Ops, SelfGating, SqueezeExcite, tran_mid_channels
from .registry import ModelEntry, ModelRegistry
from .resnet_rs import Bottleneck, ClassifierHead, FeatureInfo, ResNetRS, Shortcut, Stem, drop_path_rates
from .weights import (
    WeightsError,
    load_pretrained,
    load_state_dict_strict,
    read_state_dict,
    register_converter,
    save_state_dict,
    timm_to_native,
    to_native,
)
from .zoo import IMAGE_MODELS, IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "create_model", "list_models", "build_and_load", "Ops", "Conv2plus1d", "SelfGating", "SqueezeExcite",
    "tran_mid_channels", "ModelEntry", "ModelRegistry", "Bottleneck", "ClassifierHead", "FeatureInfo",
    "ResNetRS", "Shortcut", "Stem", "drop_path_rates", "WeightsError", "load_pretrained",
    "load_state_dict_strict", "read_state_dict", "register_converter", "save_state_dict", "timm_to_native",
    "to_native", "IMAGE_MODELS", "IMAGENET_MEAN", "IMAGENET_STD", "KerasWeightsError", "convert_keras_h5",
    "create_model_from_keras_h5", "inspect_keras_h5",
]

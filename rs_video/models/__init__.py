"""Video backbones built on the rs_image ResNet-RS core."""

from .factory import create_model, list_models
from .inflate import InflationReport, inflate, inflate_conv_weight
from .model_garden import convert_model_garden_checkpoint, create_model_from_model_garden, from_model_garden
from .pytorchvideo_interop import PyTorchVideoHead, from_pytorchvideo, is_pytorchvideo_state_dict
from .zoo import KINETICS_MEAN, KINETICS_STD, VIDEO_MODELS

__all__ = [
    "create_model", "list_models", "inflate", "inflate_conv_weight", "InflationReport", "from_pytorchvideo",
    "is_pytorchvideo_state_dict", "PyTorchVideoHead", "VIDEO_MODELS", "KINETICS_MEAN", "KINETICS_STD",
    "from_model_garden", "convert_model_garden_checkpoint", "create_model_from_model_garden",
]

"""ImageNet-style data for the ResNet-RS image models: folder data sets and the RS train/eval transforms."""

from .imagenet import ImageFolderDataset, build_image_dataset, image_model_defaults, read_image
from .transforms import RandAugmentTF, build_eval_transform, build_train_transform, eval_resize_size, normalize_uint8

__all__ = [
    "ImageFolderDataset",
    "build_image_dataset",
    "image_model_defaults",
    "read_image",
    "RandAugmentTF",
    "build_train_transform",
    "build_eval_transform",
    "eval_resize_size",
    "normalize_uint8",
]

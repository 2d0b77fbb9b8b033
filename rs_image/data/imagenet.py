"""ImageNet-style folder data sets (``<root>/<split>/<class>/<image>``) with the ResNet-RS transforms.

Unreadable images (zero-byte, truncated, not an image) never stop a run; the policy is the one video data
sets follow (:mod:`rs_image.data.failures`):

* ``train`` / ``val``: the item is replaced by another image chosen by a generator seeded from
  ``(seed, epoch, index, attempt)``, a warning is logged once per file, and the item reports how many
  candidates were passed over (``failed_reads``), so a trainer counts failures by summing that field.
* ``test``: every item is returned, with ``failed=True`` and a zero image when it could not be read, so
  an evaluator can leave it out and report how many failed.

Augmentation randomness belongs to the sample (:mod:`rs_image.data.randomness`): the crop, flip and
RandAugment ops of a training image depend on ``(seed, epoch, index, attempt)`` only. ``failures``
(path -> reason) and ``num_failed`` include what every DataLoader worker found.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

try:  # torchvision's image decoders are deprecated (0.29) in favour of TorchCodec's
    from torchcodec.decoders import decode_image as _decode_image

    _RGB = "RGB"
except ImportError:  # TorchCodec is optional for image work; torchvision still decodes
    from torchvision.io import ImageReadMode, decode_image as _decode_image

    _RGB = ImageReadMode.RGB

from rs_image.errors import DataError, DataNotFoundError, TooManyFailuresError

from .failures import FILE_REASONS, FailurePolicy, SampleLoadError, check_file
from .transforms import build_eval_transform, build_train_transform

__all__ = ["ImageFolderDataset", "read_image", "build_image_dataset", "image_model_defaults"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def read_image(path: Union[str, os.PathLike]) -> torch.Tensor:
    """Decode an image file (JPEG, PNG, WebP, GIF, ...; format from its bytes) to uint8 RGB (3, H, W).

    Animated images give their first frame.
    """
    image = _decode_image(os.fspath(path), mode=_RGB)
    return image[0] if image.ndim == 4 else image


class ImageFolderDataset(Dataset):
    """Images in ``<folder>/<class>/<file>``, labelled by class folder.

    Args:
        folder: the split folder.
        transform: applied to the decoded uint8 (3, H, W) image.
        mode: "train", "val" or "test" (failure policy, see the module docstring).
        class_to_idx: class folder name -> label; default: the sorted sub-folders of ``folder``. Pass the
            train split's mapping to evaluate a split that lacks some classes.
        num_retries: substitutes tried per item in train/val mode before giving up with an error.
        seed: ``RNG_SEED``: seeds the augmentation and the substitute choice of every sample.
        reader: decodes a path into uint8 (3, H, W) (default :func:`read_image`).

    Items are dicts ``image`` (float (3, H, W)), ``label`` (int), ``index`` (int, the index of the image
    returned) and ``failed_reads`` (int) in train/val mode, or ``failed`` (bool) in test mode.
    """

    def __init__(
        self,
        folder: Union[str, os.PathLike],
        transform: Callable[[torch.Tensor], torch.Tensor],
        *,
        mode: str = "train",
        class_to_idx: Optional[Dict[str, int]] = None,
        num_retries: int = 10,
        seed: int = 0,
        reader: Callable[[str], torch.Tensor] = read_image,
    ) -> None:
        if mode not in SPLITS:
            raise ValueError(f"mode must be one of {SPLITS}, got {mode!r}")
        if num_retries < 0:
            raise ValueError(f"num_retries must be >= 0, got {num_retries}")
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataNotFoundError(f"image folder not found: {self.folder}")
        if class_to_idx is None:
            _, class_to_idx = find_classes(str(self.folder))
        else:
            extra = sorted(d.name for d in self.folder.iterdir() if d.is_dir() and d.name not in class_to_idx)
            if extra:
                raise DataError(f"{self.folder}: class folders not in the class list: {extra[:10]}")
        self.class_to_idx = dict(class_to_idx)
        self.classes = sorted(self.class_to_idx, key=self.class_to_idx.__getitem__)
        # allow_empty: an evaluation split may have no image of some classes.
        self.samples: List[Tuple[str, int]] = make_dataset(
            str(self.folder), self.class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True
        )
        if not self.samples:
            raise DataNotFoundError(f"no images ({', '.join(IMG_EXTENSIONS)}) under {self.folder}/<class>/")
        self.transform = transform
        self.mode = mode
        self.reader = reader
        self.policy = FailurePolicy(
            len(self.samples), self.path, FILE_REASONS, seed=seed, num_retries=num_retries,
            source=str(self.folder), kind="image",
        )
        self._item_shape: Optional[torch.Size] = None

    @property
    def failures(self) -> Dict[str, str]:
        """Path -> reason of every image that failed to load so far (all DataLoader workers)."""
        return self.policy.failures

    @property
    def num_failed(self) -> int:
        """Number of distinct images that failed to load so far (all DataLoader workers)."""
        return self.policy.num_failed

    def __len__(self) -> int:
        return len(self.samples)

    def path(self, index: int) -> str:
        return self.samples[index][0]

    def _load(self, index: int) -> torch.Tensor:
        path, _ = self.samples[index]
        try:
            check_file(path)
            image = self.reader(path)
        except SampleLoadError:
            raise
        except Exception as err:  # any decoder error means an unreadable file for the user
            raise SampleLoadError(path, "unreadable", f"{type(err).__name__}: {err}".splitlines()[0][:300]) from err
        return self.transform(image)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        if self.mode == "test":
            index = int(index)
            image = self.policy.load_or_none(index, self._load)
            failed = image is None
            if failed:
                # The shape of a good item, so that batches collate; the evaluator drops failed items.
                image = torch.zeros(self._good_item_shape())
            return dict(image=image, label=self.samples[index][1], index=index, failed=failed)
        image, used, failed_reads = self.policy.load(index, self._load)
        return dict(image=image, label=self.samples[used][1], index=used, failed_reads=failed_reads)

    def _good_item_shape(self) -> torch.Size:
        """Shape of a transformed readable image (found once, for the zero image of failed test items)."""
        if self._item_shape is None:
            for i in range(len(self.samples)):
                image = self.policy.load_or_none(i, self._load)
                if image is not None:
                    self._item_shape = image.shape
                    break
            else:
                raise TooManyFailuresError(f"no image under {self.folder} can be read")
        return self._item_shape


def image_model_defaults(model_name: str) -> Dict[str, Any]:
    """The pretrained cfg of a registered image model (input size, crop_pct, RandAugment magnitude, ...),
    or ``{}`` for an unregistered name."""
    from rs_image.models import IMAGE_MODELS

    if model_name not in IMAGE_MODELS:
        return {}
    _, variant = IMAGE_MODELS.split_name(model_name)
    return IMAGE_MODELS.get(model_name).cfg(variant).to_dict()


def _split_folder(root: Path, split: str) -> Path:
    # ImageNet has no labelled test set: "test" evaluates test/ when present, otherwise val/.
    if split == "test" and not (root / "test").is_dir():
        return root / "val"
    return root / split


def build_image_dataset(cfg: Any, split: str) -> ImageFolderDataset:
    """Build the image data set of ``split`` ("train", "val", "test") from an engine config.

    Keys read: ``DATA.PATH_TO_DATA_DIR`` (holding ``train/``, ``val/`` and optionally ``test/``),
    ``DATA.TRAIN_CROP_SIZE``, ``DATA.TEST_CROP_SIZE``, ``DATA.INCEPTION_AREA``, ``DATA.INCEPTION_ASPECT``,
    ``DATA.INTERPOLATION``, ``DATA.RANDOM_FLIP``, ``DATA.MEAN``, ``DATA.STD``, ``DATA.CROP_PCT`` (-1: the
    model's ``crop_pct``), ``DATA.NUM_RETRIES``, ``AUG.RAND_AUGMENT``, ``AUG.RA_MAGNITUDE`` (-1: the
    model's ``randaugment_magnitude``), ``AUG.RA_NUM_OPS``, ``MODEL.NAME``, ``MODEL.NUM_CLASSES``,
    ``RNG_SEED``. Labels follow the sorted class folders of ``train/`` (of the split folder itself when
    there is no ``train/``), so every split shares one class list.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(cfg.DATA.PATH_TO_DATA_DIR)
    folder = _split_folder(root, split)
    if not folder.is_dir():
        raise DataNotFoundError(f"DATA.PATH_TO_DATA_DIR={root}: no {folder.name}/ folder for split {split!r}")
    class_to_idx = find_classes(str(root / "train"))[1] if (root / "train").is_dir() else None
    defaults = image_model_defaults(cfg.MODEL.NAME)

    if split == "train":
        magnitude = None
        if cfg.AUG.RAND_AUGMENT:
            magnitude = cfg.AUG.RA_MAGNITUDE if cfg.AUG.RA_MAGNITUDE >= 0 else defaults.get("randaugment_magnitude")
            if magnitude is None:
                raise ValueError(f"AUG.RA_MAGNITUDE is -1 (model default) but model {cfg.MODEL.NAME!r} has none; set it")
        transform = build_train_transform(
            cfg.DATA.TRAIN_CROP_SIZE,
            area=tuple(cfg.DATA.INCEPTION_AREA),
            aspect=tuple(cfg.DATA.INCEPTION_ASPECT),
            interpolation=cfg.DATA.INTERPOLATION,
            flip=cfg.DATA.RANDOM_FLIP,
            randaugment_magnitude=None if magnitude is None else int(magnitude),
            randaugment_ops=cfg.AUG.RA_NUM_OPS,
            mean=cfg.DATA.MEAN,
            std=cfg.DATA.STD,
        )
    else:
        crop_pct = cfg.DATA.CROP_PCT if cfg.DATA.CROP_PCT > 0 else defaults.get("crop_pct")
        if crop_pct is None:
            raise ValueError(f"DATA.CROP_PCT is -1 (model default) but model {cfg.MODEL.NAME!r} has none; set it")
        transform = build_eval_transform(
            cfg.DATA.TEST_CROP_SIZE, crop_pct=crop_pct, interpolation=cfg.DATA.INTERPOLATION,
            mean=cfg.DATA.MEAN, std=cfg.DATA.STD,
        )
    dataset = ImageFolderDataset(
        folder, transform, mode=split, class_to_idx=class_to_idx, num_retries=cfg.DATA.NUM_RETRIES, seed=cfg.RNG_SEED
    )
    if len(dataset.classes) > cfg.MODEL.NUM_CLASSES:
        raise DataError(
            f"{folder} has {len(dataset.classes)} classes but MODEL.NUM_CLASSES is {cfg.MODEL.NUM_CLASSES}"
        )
    return dataset

"""Annotation sources by ``DATA.DATASET``: each reads one data set's files as downloaded.

PyTorchVideo's pattern: a source is a small reader over the one generic data set. Every reader returns
the same :class:`~rs_video.data.annotations.SplitAnnotations` (records, missing videos, source, format,
class names; :mod:`rs_video.data.annotations` is the contract and the set-up they share) and :class:`~rs_video.data.VideoDataset` serves them all.

* ``kinetics`` (default): path-label lists, official Kinetics CSVs, class trees (:mod:`.kinetics`); one split.
* ``ucf101``: ``UCF-101/`` and ``ucfTrainTestlist/`` (:mod:`.ucf101`); ``DATA.SPLIT`` 1, 2 or 3.
* ``hmdb51``: class folders and ``testTrainMulti_7030_splits/`` (:mod:`.hmdb51`); ``DATA.SPLIT`` 1, 2 or 3.
* ``ssv2``: ``labels/*.json`` and ``<id>.webm`` (:mod:`.ssv2`); one split; horizontal flips change labels.
* ``charades``: ``Charades_v1_{train,test}.csv``, ``Charades_v1_classes.txt`` and ``<id>.mp4`` (:mod:`.charades`);
  one split; multi-label (``DATA.MULTI_LABEL True``), video-level labels.

UCF101 and HMDB51 have train and test lists only: their ``val`` is the test list (as in mmaction2's
configs). Something-Something v2's ``test`` is its validation set (its test labels are not published).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, Tuple

from ..annotations import SplitAnnotations
from .charades import load_charades_split
from .hmdb51 import load_hmdb51_split
from .kinetics import load_kinetics_split
from .ssv2 import load_ssv2_split
from .ucf101 import load_ucf101_split

__all__ = ["AnnotationSource", "ANNOTATION_SOURCES", "load_annotations"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnnotationSource:
    """How ``DATA.DATASET`` reads a split, and what it implies for the rest of the config.

    Attributes:
        read: ``read(cfg, split) -> SplitAnnotations``.
        splits: the official split numbers (``DATA.SPLIT`` must be one of them).
        flip_changes_labels: the labels name left and right, so a horizontal flip makes them wrong.
        multi_label: a video has any number of labels (``VideoRecord.labels``); ``DATA.MULTI_LABEL`` must say so.
    """

    read: Callable[[Any, str], SplitAnnotations]
    splits: Tuple[int, ...] = (1,)
    flip_changes_labels: bool = False
    multi_label: bool = False


def _kinetics(cfg: Any, split: str) -> SplitAnnotations:
    data = cfg.DATA
    return load_kinetics_split(data.PATH_TO_DATA_DIR, split, path_prefix=data.PATH_PREFIX,
                               separator=data.PATH_LABEL_SEPARATOR, num_classes=int(cfg.MODEL.NUM_CLASSES))


def _ucf101(cfg: Any, split: str) -> SplitAnnotations:
    data = cfg.DATA
    return load_ucf101_split(data.PATH_TO_DATA_DIR, split, split_number=int(data.SPLIT),
                             video_root=data.PATH_PREFIX, num_classes=int(cfg.MODEL.NUM_CLASSES))


def _hmdb51(cfg: Any, split: str) -> SplitAnnotations:
    data = cfg.DATA
    return load_hmdb51_split(data.PATH_TO_DATA_DIR, split, split_number=int(data.SPLIT),
                             video_root=data.PATH_PREFIX, num_classes=int(cfg.MODEL.NUM_CLASSES))


def _ssv2(cfg: Any, split: str) -> SplitAnnotations:
    data = cfg.DATA
    return load_ssv2_split(data.PATH_TO_DATA_DIR, split, video_root=data.PATH_PREFIX,
                           num_classes=int(cfg.MODEL.NUM_CLASSES))


def _charades(cfg: Any, split: str) -> SplitAnnotations:
    data = cfg.DATA
    return load_charades_split(data.PATH_TO_DATA_DIR, split, video_root=data.PATH_PREFIX,
                               num_classes=int(cfg.MODEL.NUM_CLASSES))


ANNOTATION_SOURCES: Dict[str, AnnotationSource] = {
    "kinetics": AnnotationSource(_kinetics),
    "ucf101": AnnotationSource(_ucf101, splits=(1, 2, 3)),
    "hmdb51": AnnotationSource(_hmdb51, splits=(1, 2, 3)),
    "ssv2": AnnotationSource(_ssv2, flip_changes_labels=True),
    "charades": AnnotationSource(_charades, multi_label=True),
}
"""``DATA.DATASET`` -> its source. The video task takes the allowed values of the key from here."""


def load_annotations(cfg: Any, split: str) -> SplitAnnotations:
    """The annotations of ``split`` ("train", "val" or "test") from the source ``DATA.DATASET`` names."""
    name = cfg.DATA.DATASET
    if name not in ANNOTATION_SOURCES:
        raise ValueError(f"DATA.DATASET {name!r} is not one of {', '.join(ANNOTATION_SOURCES)}")
    source = ANNOTATION_SOURCES[name]
    if split == "train" and source.flip_changes_labels and cfg.DATA.RANDOM_FLIP:
        logger.warning("DATA.RANDOM_FLIP is on for DATA.DATASET %s, whose labels name left and right: flipped "
                       "training clips get the wrong label; set DATA.RANDOM_FLIP False (configs/ssv2/ do)", name)
    return source.read(cfg, split)

"""The video task: ``rs_video`` models on video data (Kinetics, UCF101, HMDB51, SSv2, Charades) for ``rs_image``'s
engine.

Importing this module registers ``TASK video`` with the engine (:func:`rs_image.engine.register_task`) and
adds the video keys to the configuration: clip sampling (``DATA.NUM_FRAMES``, ``SAMPLING_RATE``,
``TARGET_FPS``, ``SHORT_CLIP_POLICY``, ``SAMPLING_MODE``), clips per training video (``TRAIN_CROP_NUM_TEMPORAL``,
``AUG.NUM_SAMPLE``), annotations (``DATASET``, ``SPLIT``, ``PATH_PREFIX``, ``PATH_LABEL_SEPARATOR``), decoding
(``DECODER``, ``DECODER_THREADS``, ``BACKEND``), train crops (``TRAIN_CROP_MODE``, ``TRAIN_JITTER_SCALES``),
the output dtype of clips (``OUTPUT_DTYPE``), test views (``TEST.NUM_ENSEMBLE_VIEWS``,
``TEST.NUM_SPATIAL_CROPS``) and 2D-to-3D inflation of initial weights (``TRAIN.CHECKPOINT_INFLATE``). It
also makes the shipped recipes (the repository's ``configs/``, installed as ``rs_video/configs``) loadable by
name: ``--cfg kinetics/rs3d_50.yaml`` from any folder. The command-line tools import it; so must any script that loads a video config::

    import rs_video.task  # noqa: F401  (registers TASK video)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.utils.data import Dataset

from rs_image.engine.config import CfgNode, Rule, register_config_dir
from rs_image.engine.tasks import Task, register_task
from rs_image.recipe import model_kwargs_from_cfg

from .data import ANNOTATION_SOURCES, OUTPUT_DTYPES, build_pytorchvideo_dataset, build_video_dataset, collate_clips
from .data.decoders import DECODERS
from .data.sampling import SAMPLING_MODES, SHORT_CLIP_POLICIES
from .models import create_model, inflate  # also registers the PyTorchVideo key map with the resolver

__all__ = ["VideoTask"]

logger = logging.getLogger(__name__)


def _add_video_config(cfg: CfgNode) -> None:
    d = cfg.DATA
    # Which data set's files DATA.PATH_TO_DATA_DIR holds, as downloaded (docs/data.md): "kinetics" (also any
    # "path label" list or class-folder tree), "ucf101", "hmdb51", "ssv2" or "charades" (multi-label: needs
    # DATA.MULTI_LABEL True) (rs_video.data.sources).
    d.DATASET = "kinetics"
    # The official split of UCF101 / HMDB51 (1, 2 or 3); data sets with one split (kinetics, ssv2) need 1.
    d.SPLIT = 1
    # Where videos are: joined to listed paths (kinetics lists), or the folder of the videos (ucf101, ...).
    d.PATH_PREFIX = ""
    d.PATH_LABEL_SEPARATOR = " "
    # "native" (this library's loader) or "pytorchvideo" (its LabeledVideoDataset, for comparison).
    d.BACKEND = "native"
    # "auto": torchcodec, else PyAV, else decord.
    d.DECODER = "auto"
    d.DECODER_THREADS = 1
    # A clip is NUM_FRAMES frames spaced SAMPLING_RATE frames apart at TARGET_FPS (SlowFast's "8x8").
    d.NUM_FRAMES = 8
    d.SAMPLING_RATE = 8
    d.TARGET_FPS = 30
    # Train crops: "jitter" (short side in TRAIN_JITTER_SCALES, random crop) or "inception" (random resized).
    d.TRAIN_CROP_MODE = "jitter"
    d.TRAIN_JITTER_SCALES = [256, 320]
    # Frames past the end of a short video: "repeat_last" or "loop" (dense sampling).
    d.SHORT_CLIP_POLICY = "repeat_last"
    # "dense": the NUM_FRAMES x SAMPLING_RATE window above; "uniform": one frame from each of NUM_FRAMES equal
    # segments of the whole video (TSN / SlowFast's SSv2 sampling; SAMPLING_RATE and TARGET_FPS unused).
    d.SAMPLING_MODE = "dense"
    # Clips out of the data set: "float32" normalised, or "uint8" normalised on the device by the engine.
    d.OUTPUT_DTYPE = "float32"
    # Clips per training video, all from one decode (SlowFast's keys): TRAIN_CROP_NUM_TEMPORAL temporal clips,
    # each with its own window, times AUG.NUM_SAMPLE augmentations of each (repeated augmentation: own crop,
    # scale, flip and RandAugment on the same frames). The global batch (and the learning rate) counts clips.
    d.TRAIN_CROP_NUM_TEMPORAL = 1
    cfg.AUG.NUM_SAMPLE = 1
    # Multi-view test: NUM_ENSEMBLE_VIEWS temporal clips x NUM_SPATIAL_CROPS crops per video.
    cfg.TEST.NUM_ENSEMBLE_VIEWS = 10
    cfg.TEST.NUM_SPATIAL_CROPS = 3
    # Inflate 2D weights from TRAIN.CHECKPOINT_FILE_PATH ("average" or "center"); "" = no inflation.
    cfg.TRAIN.CHECKPOINT_INFLATE = ""


def _jitter_scales_fit(v: Any, cfg: CfgNode) -> bool:
    return len(v) == 2 and 0 < v[0] <= v[1] and (cfg.DATA.TRAIN_CROP_MODE != "jitter" or cfg.DATA.TRAIN_CROP_SIZE <= v[0])


@register_task
class VideoTask(Task):
    """``rs_video`` models on video data (:func:`rs_video.data.build_video_dataset`)."""

    name = "video"
    input_key = "video"
    index_key = "video_index"
    channels_last_format = torch.channels_last_3d
    logger_names = ("rs_image", "rs_video")
    config_choices = {
        "DATA.DATASET": tuple(ANNOTATION_SOURCES),
        "DATA.BACKEND": ("native", "pytorchvideo"),
        "DATA.DECODER": ("auto",) + tuple(DECODERS),
        "DATA.TRAIN_CROP_MODE": ("jitter", "inception"),
        "DATA.SHORT_CLIP_POLICY": SHORT_CLIP_POLICIES,
        "DATA.SAMPLING_MODE": SAMPLING_MODES,
        "DATA.OUTPUT_DTYPE": OUTPUT_DTYPES,
        "TRAIN.CHECKPOINT_INFLATE": ("", "average", "center"),
    }
    config_rules = (
        Rule("DATA.SPLIT", lambda v, c: v in ANNOTATION_SOURCES[c.DATA.DATASET].splits,
             "an official split of DATA.DATASET: " + ", ".join(
                 f"{name} {'/'.join(map(str, source.splits))}" for name, source in ANNOTATION_SOURCES.items())),
        Rule("DATA.NUM_FRAMES", lambda v, c: v >= 1, ">= 1"),
        Rule("DATA.SAMPLING_RATE", lambda v, c: v >= 1, ">= 1"),
        Rule("DATA.TARGET_FPS", lambda v, c: v > 0, "> 0"),
        Rule("DATA.DECODER_THREADS", lambda v, c: v >= 0, ">= 0 (0 = FFmpeg's choice)"),
        Rule("DATA.TRAIN_JITTER_SCALES", _jitter_scales_fit,
             "[min, max] with 0 < min <= max, and min >= DATA.TRAIN_CROP_SIZE in jitter mode"),
        Rule("DATA.SAMPLING_MODE", lambda v, c: v == "dense" or c.DATA.BACKEND == "native",
             "'dense' with DATA.BACKEND 'pytorchvideo' (PyTorchVideo samples windows)"),
        Rule("DATA.TRAIN_CROP_NUM_TEMPORAL", lambda v, c: v >= 1, ">= 1"),
        Rule("DATA.TRAIN_CROP_NUM_TEMPORAL", lambda v, c: v == 1 or c.DATA.BACKEND == "native",
             "1 with DATA.BACKEND 'pytorchvideo' (several clips per video are the native loader's)"),
        Rule("AUG.NUM_SAMPLE", lambda v, c: v >= 1, ">= 1"),
        Rule("AUG.NUM_SAMPLE", lambda v, c: v == 1 or c.DATA.BACKEND == "native",
             "1 with DATA.BACKEND 'pytorchvideo' (repeated augmentation is the native loader's)"),
        Rule("TEST.NUM_ENSEMBLE_VIEWS", lambda v, c: v >= 1, ">= 1"),
        Rule("TEST.NUM_SPATIAL_CROPS", lambda v, c: v >= 1, ">= 1"),
        Rule("DATA.MULTI_LABEL", lambda v, c: v == ANNOTATION_SOURCES[c.DATA.DATASET].multi_label,
             "True exactly for a multi-label DATA.DATASET (" + ", ".join(
                 n for n, source in ANNOTATION_SOURCES.items() if source.multi_label) + "); the others give one "
             "label per video"),
        Rule("DATA.MULTI_LABEL", lambda v, c: not v or c.DATA.BACKEND == "native",
             "False with DATA.BACKEND 'pytorchvideo' (multi-hot labels are the native loader's)"),
        Rule("TRAIN.CHECKPOINT_INFLATE", lambda v, c: not v or bool(c.TRAIN.CHECKPOINT_FILE_PATH),
             "'' while TRAIN.CHECKPOINT_FILE_PATH is empty (nothing to inflate)"),
    )
    add_config = staticmethod(_add_video_config)

    def create_model(self, cfg: Any) -> nn.Module:
        return create_model(cfg.MODEL.NAME, num_classes=cfg.MODEL.NUM_CLASSES, **model_kwargs_from_cfg(cfg))

    def build_dataset(self, cfg: Any, split: str) -> Dataset:
        if cfg.DATA.BACKEND == "pytorchvideo":  # the comparison loader (rs_video.benchmark), same items
            return build_pytorchvideo_dataset(cfg, split)
        return build_video_dataset(cfg, split)

    def samples_per_item(self, cfg: Any) -> int:
        """Clips per training video: ``DATA.TRAIN_CROP_NUM_TEMPORAL x AUG.NUM_SAMPLE``."""
        return int(cfg.DATA.TRAIN_CROP_NUM_TEMPORAL) * int(cfg.AUG.NUM_SAMPLE)

    def collate_fn(self) -> Optional[Callable[[list], Any]]:
        """:func:`rs_video.data.collate_clips`: uint8 clips stay channels-last (RGB de-interleaved on the device);
        items of K clips become K rows each."""
        return collate_clips

    def load_initial_weights(self, model: nn.Module, cfg: Any) -> None:
        if cfg.TRAIN.CHECKPOINT_INFLATE:
            inflate(cfg.TRAIN.CHECKPOINT_FILE_PATH, model, method=cfg.TRAIN.CHECKPOINT_INFLATE)
            return
        super().load_initial_weights(model, cfg)


# The recipes: configs/ of the repository, a link inside the package so that they install with it.
SHIPPED_CONFIGS = Path(__file__).resolve().parent / "configs"
register_config_dir(SHIPPED_CONFIGS)

# The AVA detection task shares the DATA keys above; importing it here registers TASK detection with TASK video.
from . import detection_task  # noqa: E402,F401

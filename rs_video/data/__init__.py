"""Kinetics video data: annotations, decoders, clip sampling, clip transforms, multi-view test.

Main entry points (see docs/data.md):

* :func:`build_video_dataset` ``(cfg, split)`` -> data set whose items are
  ``dict(video=float (C, T, H, W), label, video_index, view_index[, failed])``;
* :func:`build_mixup` ``(cfg)`` -> batch MixUp/CutMix callable or None;
* :class:`MultiViewAccumulator`: multi-view test ensembling that counts each view once under DDP.

``pytorchvideo.transforms`` is never imported here; :func:`enable_pytorchvideo_transforms` is an opt-in
fix for users who want it on current torchvision.
"""

from .annotations import AnnotationError, SplitAnnotations, VideoRecord, load_split
from .dataset import FailureReport, KineticsDataset, build_video_dataset
from .decoders import (
    FAILURE_REASONS,
    DecordDecoder,
    PyAVDecoder,
    TorchCodecDecoder,
    VideoDecodeError,
    VideoDecoder,
    available_decoders,
    create_decoder,
)
from .distributed import MultiViewAccumulator, VideoPredictions
from .pytorchvideo_backend import PyTorchVideoKinetics
from .pytorchvideo_compat import enable_pytorchvideo_transforms
from .sampling import ClipSampler
from .transforms import ClipTransform, UniformSpatialCrop, VideoMixup, build_clip_transform, build_mixup

__all__ = [
    "AnnotationError",
    "SplitAnnotations",
    "VideoRecord",
    "load_split",
    "FailureReport",
    "KineticsDataset",
    "build_video_dataset",
    "FAILURE_REASONS",
    "VideoDecodeError",
    "VideoDecoder",
    "TorchCodecDecoder",
    "DecordDecoder",
    "PyAVDecoder",
    "available_decoders",
    "create_decoder",
    "MultiViewAccumulator",
    "VideoPredictions",
    "PyTorchVideoKinetics",
    "enable_pytorchvideo_transforms",
    "ClipSampler",
    "ClipTransform",
    "UniformSpatialCrop",
    "VideoMixup",
    "build_clip_transform",
    "build_mixup",
]

"""Kinetics video data: annotations, decoders, clip sampling, clip transforms, multi-view test.

Main entry points (see docs/data.md):

* :func:`build_video_dataset` ``(cfg, split)`` -> data set whose items are
  ``dict(video=(C, T, H, W) float32 normalised or uint8 (DATA.OUTPUT_DTYPE), label, video_index,
  view_index[, failed])``;

Multi-view test ensembling (each view counted once, also under DDP) is the engine's
:class:`rs_image.engine.MultiViewAggregator`; normalisation of uint8 batches on the device is
:meth:`rs_image.engine.Task.prepare_input`.

``pytorchvideo.transforms`` is never imported here; :func:`enable_pytorchvideo_transforms` is an opt-in
fix for users who want it on current torchvision.
"""

from .annotations import AnnotationError, SplitAnnotations, VideoRecord, load_split
from .dataset import KineticsDataset, build_video_dataset, collate_clips
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
from .pytorchvideo_backend import PyTorchVideoKinetics
from .pytorchvideo_compat import enable_pytorchvideo_transforms
from .sampling import ClipSampler
from .transforms import OUTPUT_DTYPES, ClipTransform, UniformSpatialCrop, build_clip_transform

__all__ = [
    "AnnotationError",
    "SplitAnnotations",
    "VideoRecord",
    "load_split",
    "KineticsDataset",
    "build_video_dataset",
    "collate_clips",
    "FAILURE_REASONS",
    "VideoDecodeError",
    "VideoDecoder",
    "TorchCodecDecoder",
    "DecordDecoder",
    "PyAVDecoder",
    "available_decoders",
    "create_decoder",
    "PyTorchVideoKinetics",
    "enable_pytorchvideo_transforms",
    "ClipSampler",
    "OUTPUT_DTYPES",
    "ClipTransform",
    "UniformSpatialCrop",
    "build_clip_transform",
]

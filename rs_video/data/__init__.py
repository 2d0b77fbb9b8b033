"""The video loader: annotations (Kinetics; UCF101, HMDB51, Something-Something v2 in ``sources``), decoders,
clip sampling, clip transforms, the data set, preparation.

Main entry points (see docs/data.md):

* :func:`build_video_dataset` ``(cfg, split)`` -> data set whose items are
  ``dict(video=(C, T, H, W) float32 normalised or uint8 (DATA.OUTPUT_DTYPE), label, video_index,
  view_index[, failed])``;
* :func:`build_split_inputs` ``(cfg, split)`` -> the annotations, clip sampler and transform every video
  data set is built from.

Multi-view test ensembling (each view counted once, also under DDP) is the engine's
:class:`rs_image.engine.MultiViewAggregator`; normalisation of uint8 batches on the device is
:meth:`rs_image.engine.Task.prepare_input`.

Beside it, ``DATA.BACKEND: pytorchvideo`` (:func:`build_pytorchvideo_dataset`: PyTorchVideo's Kinetics behind
a map-style wrapper, for comparison) and the opt-in shim that makes ``pytorchvideo.transforms`` import on
current torchvision (:func:`enable_pytorchvideo_transforms`); PyTorchVideo itself is imported only when they
are called. This package is the loader only: it imports neither the engine nor ``rs_video.benchmark`` (the
loader benchmark) nor ``rs_video.demo``.
"""

from .annotations import AnnotationError, SplitAnnotations, VideoRecord
from .dataset import SplitInputs, VideoDataset, build_split_inputs, build_video_dataset, collate_clips
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
from .pytorchvideo_backend import PyTorchVideoKinetics, build_pytorchvideo_dataset
from .pytorchvideo_compat import enable_pytorchvideo_transforms
from .sampling import ClipSampler
from .sources import ANNOTATION_SOURCES, AnnotationSource, load_annotations
from .sources.kinetics import load_kinetics_split
from .transforms import OUTPUT_DTYPES, ClipTransform, UniformSpatialCrop, build_clip_transform

__all__ = [
    "AnnotationError",
    "SplitAnnotations",
    "VideoRecord",
    "load_kinetics_split",
    "ANNOTATION_SOURCES",
    "AnnotationSource",
    "load_annotations",
    "VideoDataset",
    "SplitInputs",
    "build_split_inputs",
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
    "ClipSampler",
    "PyTorchVideoKinetics",
    "build_pytorchvideo_dataset",
    "enable_pytorchvideo_transforms",
    "OUTPUT_DTYPES",
    "ClipTransform",
    "UniformSpatialCrop",
    "build_clip_transform",
]

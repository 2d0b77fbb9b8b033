"""Measuring the loader: the benchmark against PyTorchVideo, its backend and shim, and index-coded videos.

* :mod:`.throughput`: clips/s and worker CPU of our loader and PyTorchVideo's on the same files
  (``tools/benchmark_data.py``; docs/data.md, "Speed");
* :mod:`.pytorchvideo_backend`: ``DATA.BACKEND: pytorchvideo``, PyTorchVideo's Kinetics behind a map-style
  wrapper (:func:`build_pytorchvideo_dataset`, which the video task calls for that backend);
* :mod:`.pytorchvideo_compat`: the opt-in shim that makes ``pytorchvideo.transforms`` import on current
  torchvision;
* :mod:`.synthetic`: videos whose frames carry their own index, for exact checks of decoding and sampling.

This package builds on :mod:`rs_video.data` (the loader), never the other way round.
"""

from .pytorchvideo_backend import PyTorchVideoKinetics, build_pytorchvideo_dataset
from .pytorchvideo_compat import enable_pytorchvideo_transforms
from .synthetic import INDEX_BITS, make_frame, read_frame_index, write_audio_only_file, write_synthetic_video
from .throughput import (
    BenchmarkResult,
    BenchmarkSummary,
    format_table,
    make_benchmark_videos,
    measure_loader,
    run_benchmark,
)

__all__ = [
    "PyTorchVideoKinetics",
    "build_pytorchvideo_dataset",
    "enable_pytorchvideo_transforms",
    "INDEX_BITS",
    "make_frame",
    "read_frame_index",
    "write_synthetic_video",
    "write_audio_only_file",
    "BenchmarkResult",
    "BenchmarkSummary",
    "format_table",
    "make_benchmark_videos",
    "measure_loader",
    "run_benchmark",
]

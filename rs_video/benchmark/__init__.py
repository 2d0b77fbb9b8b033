"""Measuring video: the loader against PyTorchVideo's, inference windows/s against the per-window loop, the GPU
check, and index-coded videos.

* :mod:`.loader`: clips/s and worker CPU of our loader and PyTorchVideo's on the same files
  (``rs-benchmark-data``; docs/data.md, "Speed");
* :mod:`.inference`: the inference pipeline alone and end to end against the model alone
  (``rs-benchmark-inference``; docs/inference.md, "Speed");
* :mod:`.gpu_check`: the checks of the CUDA paths and the throughput rows of ``rs-gpu-check``;
* :mod:`.synthetic`: videos whose frames carry their own index, for exact checks of decoding and sampling.

Timing, peak memory and model throughput are :mod:`rs_image.benchmark`'s; the tables are
:mod:`rs_image.report`'s.
"""

from .loader import (
    BenchmarkResult,
    BenchmarkSummary,
    format_table,
    make_benchmark_videos,
    measure_loader,
    run_benchmark,
)
from .synthetic import INDEX_BITS, make_frame, read_frame_index, write_audio_only_file, write_synthetic_video

__all__ = [
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

"""Using a trained video model: video-level prediction equal to the test tool, windows over long videos
(timelines, annotated videos) and clip features for action localisation code (docs/inference.md).

* :class:`Predictor` - the model with its input settings and class names (config + weights, a checkpoint
  that carries its cfg, or a registered model name)
* :class:`WindowSpec` - which frames each window holds
* :class:`WindowStream`, :func:`run_windows` - windows of whole videos, decoded once, batched, overlapped
* :func:`extract_features` - resumable, sharded feature extraction
* :func:`compute_timeline`, :func:`write_timeline`, :func:`annotate_video` - per-window predictions
"""

from .features import ExtractionSummary, SidecarMismatchError, extract_features, find_videos
from .predictor import Predictor, VideoPrediction, load_predictor_config, pretrained_config
from .stream import LAYERS, WindowStream, layer_function, run_windows, window_transform
from .timeline import Timeline, annotate_video, compute_timeline, write_timeline
from .windows import WindowSpec

__all__ = [
    "Predictor", "VideoPrediction", "load_predictor_config", "pretrained_config", "WindowSpec", "WindowStream",
    "run_windows", "layer_function", "window_transform", "LAYERS", "extract_features", "find_videos",
    "ExtractionSummary", "SidecarMismatchError", "Timeline", "compute_timeline", "write_timeline", "annotate_video",
]

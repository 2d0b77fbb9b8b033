#!/usr/bin/env python
"""Predict actions in videos: ``python tools/predict.py VIDEO --cfg CONFIG --weights W [--topk 5] [--json OUT]``.

Video-level top-k with the test tool's views (equal to tools/test_net.py), ``--timeline DIR`` per-window CSV /
JSON / PNG, ``--annotate OUT.mp4`` the video with the predictions drawn on it. See docs/inference.md.
"""

import sys
import warnings
from pathlib import Path

# fvcore (precise BN, FLOP counting) calls torch.jit.script at import; the deprecation is not the user's to fix.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

import rs_video.task  # noqa: E402,F401  (registers TASK video)
from rs_video.inference.cli import predict_main  # noqa: E402

if __name__ == "__main__":
    predict_main()

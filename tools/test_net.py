#!/usr/bin/env python
"""Multi-view test of a trained model: ``python tools/test_net.py --cfg CONFIG TEST.CHECKPOINT_FILE_PATH W``.

Prints top-1/top-5 with the numbers of videos evaluated and failed; writes per-video predictions.
See docs/training.md.
"""

import sys
import warnings
from pathlib import Path

# fvcore (precise BN, FLOP counting) calls torch.jit.script at import; the deprecation is not the user's to fix.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

import rs_video.task  # noqa: E402,F401  (registers TASK video)
from rs_image.engine.launch import test_main  # noqa: E402

if __name__ == "__main__":
    test_main()

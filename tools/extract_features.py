#!/usr/bin/env python
"""Clip features for action localisation: ``python tools/extract_features.py --cfg CONFIG --weights W --videos DIR --out OUT``.

One ``.npy`` (num_windows, C) and a ``.json`` sidecar per video; resumable; ``torchrun --nproc_per_node N``
shards the videos. See docs/inference.md.
"""

import sys
import warnings
from pathlib import Path

# fvcore (precise BN, FLOP counting) calls torch.jit.script at import; the deprecation is not the user's to fix.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

import rs_video.task  # noqa: E402,F401  (registers TASK video)
from rs_video.inference.cli import extract_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(extract_main())

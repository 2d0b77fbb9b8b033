#!/usr/bin/env python
"""Train a ResNet-RS video or image model: ``python tools/train_net.py --cfg CONFIG [KEY VALUE ...]``.

Multi-GPU / multi-node: ``torchrun --nproc_per_node N [--nnodes M ...] tools/train_net.py --cfg ...``.
See docs/training.md.
"""

import sys
import warnings
from pathlib import Path

# fvcore (precise BN, FLOP counting) calls torch.jit.script at import; the deprecation is not the user's to fix.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

import rs_video.task  # noqa: E402,F401  (registers TASK video)
from rs_image.engine.launch import train_main  # noqa: E402

if __name__ == "__main__":
    train_main()

#!/usr/bin/env python
"""Export a model: safetensors, torch.export, ONNX, a Hugging Face Hub folder: the checkout form of ``rs-export`` (:mod:`rs_video.cli.export`; ``--help`` for its options)."""

from rs_video.cli.export import main

if __name__ == "__main__":
    raise SystemExit(main())

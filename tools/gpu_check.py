#!/usr/bin/env python
"""The CUDA paths on one GPU, one table (tools/gpu_check.sh wraps it): the checkout form of ``rs-gpu-check`` (:mod:`rs_video.cli.gpu_check`; ``--help`` for its options)."""

from rs_video.cli.gpu_check import main

if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""Inference speed: pipeline and end to end: the checkout form of ``rs-benchmark-inference`` (:mod:`rs_video.cli.benchmark_inference`; ``--help`` for its options)."""

from rs_video.cli.benchmark_inference import main

if __name__ == "__main__":
    raise SystemExit(main())

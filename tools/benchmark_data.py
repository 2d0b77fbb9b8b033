#!/usr/bin/env python
"""Loader speed against PyTorchVideo's: the checkout form of ``rs-benchmark-data`` (:mod:`rs_video.cli.benchmark_data`; ``--help`` for its options)."""

from rs_video.cli.benchmark_data import main

if __name__ == "__main__":
    raise SystemExit(main())

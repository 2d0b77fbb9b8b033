#!/usr/bin/env python
"""The training loop's own ms per step, across checkouts: the checkout form of ``rs-benchmark-trainer`` (:mod:`rs_video.cli.benchmark_trainer`; ``--help`` for its options)."""

from rs_video.cli.benchmark_trainer import main

if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""Parameters, multiply-adds, throughput of models; the zoo page and README tables: the checkout form of ``rs-report`` (:mod:`rs_video.cli.model_report`; ``--help`` for its options)."""

from rs_video.cli.model_report import main

if __name__ == "__main__":
    raise SystemExit(main())

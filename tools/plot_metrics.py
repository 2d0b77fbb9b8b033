#!/usr/bin/env python
"""Training curves of a run from its metrics.jsonl: the checkout form of ``rs-plot-metrics`` (:mod:`rs_video.cli.plot_metrics`; ``--help`` for its options)."""

from rs_video.cli.plot_metrics import main

if __name__ == "__main__":
    raise SystemExit(main())

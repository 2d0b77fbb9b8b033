#!/usr/bin/env python
"""Multi-view test of a trained model: the checkout form of ``rs-test`` (:mod:`rs_video.cli.test_net`; ``--help`` for its options)."""

from rs_video.cli.test_net import main

if __name__ == "__main__":
    raise SystemExit(main())

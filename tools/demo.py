#!/usr/bin/env python
"""The CPU demo: a video model learns motion that a single frame cannot show: the checkout form of ``rs-demo`` (:mod:`rs_video.cli.demo`; ``--help`` for its options)."""

from rs_video.cli.demo import main

if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""Predict actions in videos (top-k, timeline, annotated video): the checkout form of ``rs-predict`` (:mod:`rs_video.cli.predict`; ``--help`` for its options)."""

from rs_video.cli.predict import main

if __name__ == "__main__":
    raise SystemExit(main())

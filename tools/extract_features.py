#!/usr/bin/env python
"""Per-window clip features of videos for downstream action code: the checkout form of ``rs-extract-features`` (:mod:`rs_video.cli.extract_features`; ``--help`` for its options)."""

from rs_video.cli.extract_features import main

if __name__ == "__main__":
    raise SystemExit(main())

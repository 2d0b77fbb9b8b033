#!/usr/bin/env python
"""Check and index a Kinetics download: the checkout form of ``rs-prepare-kinetics`` (:mod:`rs_video.cli.prepare_kinetics`; ``--help`` for its options)."""

from rs_video.cli.prepare_kinetics import main

if __name__ == "__main__":
    raise SystemExit(main())

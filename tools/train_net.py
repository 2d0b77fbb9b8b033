#!/usr/bin/env python
"""Train a ResNet-RS video or image model: the checkout form of ``rs-train`` (:mod:`rs_video.cli.train_net`; ``--help`` for its options)."""

from rs_video.cli.train_net import main

if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""Convert a TF Model Garden ResNet-3D-RS checkpoint: the checkout form of ``rs-convert-tf`` (:mod:`rs_video.cli.convert_tf_checkpoint`; ``--help`` for its options)."""

from rs_video.cli.convert_tf_checkpoint import main

if __name__ == "__main__":
    raise SystemExit(main())

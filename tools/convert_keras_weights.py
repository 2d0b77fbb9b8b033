#!/usr/bin/env python
"""Convert official Keras ResNet-RS .h5 weights: the checkout form of ``rs-convert-keras`` (:mod:`rs_video.cli.convert_keras_weights`; ``--help`` for its options)."""

from rs_video.cli.convert_keras_weights import main

if __name__ == "__main__":
    raise SystemExit(main())

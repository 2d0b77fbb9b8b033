"""The built-in demo (``make demo``, docs/demo.md): moving-shapes videos and the runner that learns them.

* :mod:`rs_video.demo.moving_shapes`: the synthetic data set (real H.264 files, Kinetics-style lists),
  classes defined by motion only; ``python -m rs_video.demo.moving_shapes`` writes one;
* :mod:`rs_video.demo.run`: trains and tests a small 3D ResNet-RS and its single-frame control with the
  engine and checks the demo's targets (``tools/demo.py`` prints the results).

Import them from their modules: this package imports neither, so that ``python -m`` runs the generator
cleanly and making data does not load the engine.
"""

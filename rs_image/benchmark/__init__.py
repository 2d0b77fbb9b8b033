"""Measuring: model throughput and peak memory (:mod:`.throughput`) and the training loop's own cost per step
(:mod:`.trainer`). These modules time and measure; the tables, the zoo page and the plots that show their
results are :mod:`rs_image.report`'s, and the video measurements (loader, inference, the GPU check) are
:mod:`rs_video.benchmark`'s.
"""

#!/usr/bin/env python3
"""Clips/s of our Kinetics loader against PyTorchVideo's on the same files (see rs_video/benchmark/throughput.py).

Example (the README's setting: 2 workers, train mode, 32x2 clips, 224 crop, 10 s 30 fps 340x256 H.264):

    python tools/benchmark_data.py --make-videos 24 --data-dir /tmp/bench_videos --workers 2 --modes train

Several clips per decoded video, ratios to one clip per video from the same run: AUG.NUM_SAMPLE 2 and 4
(repeated augmentation of one window) and DATA.TRAIN_CROP_NUM_TEMPORAL 2 and 4 (own windows):

    python tools/benchmark_data.py --data-dir /tmp/bench_videos --configs ours/torchcodec ours/pyav \
        --output-dtype uint8 --num-sample 2 4 --num-temporal 2 4 --repeats 5
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence



import rs_video.task  # noqa: F401  (registers TASK video and its config keys)
from rs_image.engine.config import get_cfg
from rs_video.benchmark import format_table, make_benchmark_videos, run_benchmark

DEFAULT_CONFIGURATIONS = [
    "ours/torchcodec", "ours/pyav", "ours/decord",
    "ptv-backend/pyav", "ptv-backend/decord", "ptv-recipe/pyav", "ptv-recipe/decord",
]


def benchmark_cfg(data_dir, num_frames: int = 32, sampling_rate: int = 2, train_crop: int = 224, test_crop: int = 256,
                  jitter: Sequence[int] = (256, 320), num_views: int = 10, num_crops: int = 3):
    """The engine's default config set to the benchmark's clip and crop settings (Kinetics-400 classes and
    statistics)."""
    cfg = get_cfg()
    cfg.TASK = "video"
    cfg.MODEL.NUM_CLASSES = 400
    cfg.DATA.MEAN, cfg.DATA.STD = [0.45] * 3, [0.225] * 3
    cfg.DATA.PATH_TO_DATA_DIR = str(data_dir)
    cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE, cfg.DATA.TARGET_FPS = num_frames, sampling_rate, 30
    cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE = train_crop, test_crop
    cfg.DATA.TRAIN_JITTER_SCALES = list(jitter)
    cfg.DATA.TRAIN_CROP_MODE = "jitter"
    cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS = num_views, num_crops
    return cfg


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder with train.csv/test.csv lists (or where to make them)")
    parser.add_argument("--make-videos", type=int, default=0, help="first write this many synthetic videos there")
    parser.add_argument("--gop", type=int, default=250, help="keyframe interval of the synthetic videos")
    parser.add_argument("--short-side", type=int, default=256, help="short side of the synthetic videos (4:3)")
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGURATIONS, help="kind/decoder entries")
    parser.add_argument("--modes", nargs="+", default=["train"], choices=["train", "val", "test"])
    parser.add_argument("--workers", nargs="+", type=int, default=[2])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--clips", type=int, default=96, help="timed clips per configuration")
    parser.add_argument("--repeats", type=int, default=1,
                        help="interleaved rounds; rows give the median and the range over them")
    parser.add_argument("--num-frames", type=int, default=32)
    parser.add_argument("--sampling-rate", type=int, default=2)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--test-crop", type=int, default=256)
    parser.add_argument("--output-dtype", nargs="+", default=["float32", "uint8"], choices=["float32", "uint8"],
                        help="DATA.OUTPUT_DTYPE values to measure our loader with (PyTorchVideo rows are float32)")
    parser.add_argument("--num-sample", nargs="+", type=int, default=[1],
                        help="AUG.NUM_SAMPLE values (augmentations of one window) for our loader in train mode")
    parser.add_argument("--num-temporal", nargs="+", type=int, default=[1],
                        help="DATA.TRAIN_CROP_NUM_TEMPORAL values (windows per video) for our loader in train mode")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.make_videos:
        short = args.short_side
        width = (short * 4 // 3 + 1) // 2 * 2
        make_benchmark_videos(args.data_dir, num_videos=args.make_videos, width=width, height=short, gop=args.gop)
    cfg = benchmark_cfg(args.data_dir, args.num_frames, args.sampling_rate, args.crop, args.test_crop)
    results = run_benchmark(cfg, args.configs, args.modes, args.workers, args.batch_size, args.clips, args.repeats,
                            output_dtypes=args.output_dtype, num_sample=args.num_sample, num_temporal=args.num_temporal)
    print(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

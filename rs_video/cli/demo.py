#!/usr/bin/env python
"""The built-in demo: learn "moving shapes" on a CPU, with a single-frame control.

    python tools/demo.py [--detection] [--data DIR] [--output-dir DIR] [--seed N] [--check] [KEY VALUE ...]

1. Generates the moving-shapes data set (real H.264 files, Kinetics-style CSVs) into a cache folder on
   first use (``rs_video.demo.moving_shapes``; set-up, not counted in the demo time).
2. Trains and tests ``configs/demo/moving_shapes_rs3d.yaml`` (a small 3D ResNet-RS on 8-frame clips)
   and ``configs/demo/moving_shapes_2d.yaml`` (the same network on single frames) with the engine
   (``rs_video.demo.run``).
3. Prints both held-out results side by side with the FLOP report of the trained models, and whether
   the demo's targets hold (``--check``: exit with status 1 when they do not).

``--detection``: the action detection demo instead (docs/detection.md): several shapes per video, each with its
own motion class, boxes at every keyframe in AVA's formats (``rs_video.demo.moving_shapes_ava``); a small rs3d
detector (``configs/demo/moving_shapes_ava.yaml``) and the same detector on the keyframe alone, compared by
held-out frame mAP@0.5 (``rs_video.demo.run_detection``).

See docs/demo.md.
"""

import argparse
import sys
from pathlib import Path

import torch

from rs_image.engine.logger import setup_logging
from rs_image.engine.tasks import get_task
from rs_image.report.counts import count_macs, count_params
from rs_video.demo.moving_shapes import MOVING_SHAPES_CLASSES
from rs_video.demo.moving_shapes_ava import AVA_SHAPE_CLASSES
from rs_video.demo.run import CHANCE, run_demo
from rs_video.demo.run_detection import run_detection_demo
from rs_video.task import SHIPPED_CONFIGS


def _model_report(cfg) -> dict:
    """Parameters and fvcore multiply-adds of one test view and of one whole video (all views)."""
    model = get_task(cfg.TASK).create_model(cfg)
    view = torch.zeros(1, 3, cfg.DATA.NUM_FRAMES, cfg.DATA.TEST_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE)
    macs = count_macs(model, view)
    views = cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS
    return dict(params=count_params(model), macs_view=macs["conv_linear"], macs_bn=macs["batch_norm"], views=views)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="data folder (default: the cache folder)")
    parser.add_argument("--output-dir", type=Path, default=Path("output") / "demo",
                        help="runs go to a new sub-folder (default: output/demo under the current folder)")
    parser.add_argument("--seed", type=int, default=None, help="RNG_SEED of both trainings (default: the configs')")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    parser.add_argument("--detection", action="store_true", help="the AVA-format action detection demo")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides for both runs")
    args = parser.parse_args(argv)

    setup_logging(None, names=("rs_image", "rs_video"))  # the data set-up and both runs log their progress
    if args.detection:
        return _detection(args)
    result = run_demo(SHIPPED_CONFIGS / "demo", args.output_dir, data=args.data, seed=args.seed, opts=args.opts)

    spec = result.spec
    print(f"\nMoving shapes: {len(MOVING_SHAPES_CLASSES)} motion classes (chance {CHANCE:.1f}%), "
          f"{spec.num_train} train / {spec.num_test} held-out test videos of {spec.num_frames} frames at "
          f"{spec.size}x{spec.size}; data in {result.data} (set-up {result.setup_seconds:.0f} s, not counted).")
    header = (f"{'run':<6} {'input':<24} {'top-1':>7} {'top-5':>7} {'time':>7} {'params':>8} "
              f"{'MMACs/view':>11} {'BN MMACs':>9} {'views':>6} {'MMACs/video':>12}")
    print(header)
    print("-" * len(header))
    for row in result.rows:
        d, t, m = row.cfg.DATA, row.test, _model_report(row.cfg)
        clip = f"{d.NUM_FRAMES}x{d.SAMPLING_RATE} frames, {d.TEST_CROP_SIZE}px" if d.NUM_FRAMES > 1 else f"1 frame, {d.TEST_CROP_SIZE}px"
        print(f"{row.run.name:<6} {clip:<24} {t['top1']:>6.1f}% {t['top5']:>6.1f}% {row.seconds:>6.0f}s "
              f"{m['params'] / 1e6:>7.2f}M {m['macs_view'] / 1e6:>11.1f} {m['macs_bn'] / 1e6:>9.2f} {m['views']:>6} "
              f"{m['macs_view'] * m['views'] / 1e6:>12.1f}")
    print("MMACs: fvcore conv + linear multiply-adds of one test view, BatchNorm listed apart and not included "
          "(1 fused multiply-add = 1 flop, the model zoos' convention; the ResNet-RS paper's FLOPs are 2x this).")
    print(f"time: training + multi-view test per run; whole demo {result.seconds:.0f} s.")

    checks = result.checks()
    for text, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {text}")
    return 0 if all(ok for _, ok in checks) or not args.check else 1


def _detection(args) -> int:
    result = run_detection_demo(SHIPPED_CONFIGS / "demo", args.output_dir, data=args.data, seed=args.seed,
                                opts=args.opts)
    spec = result.spec
    print(f"\nMoving shapes AVA: {len(AVA_SHAPE_CLASSES)} motion classes, {spec.num_shapes[0]}-{spec.num_shapes[1]} "
          f"shapes per video, {spec.num_train} train / {spec.num_val} held-out videos of {spec.seconds} s at "
          f"{spec.size}x{spec.size}, keyframes every second; data in {result.data} (set-up "
          f"{result.setup_seconds:.0f} s, not counted).")
    header = f"{'run':<7} {'input':<26} {'frame mAP@0.5':>14} {'time':>7} {'params':>8}"
    print(header)
    print("-" * len(header))
    for row in result.rows:
        d, t = row.cfg.DATA, row.test
        clip = f"{d.NUM_FRAMES}x{d.SAMPLING_RATE} frames, {d.TEST_CROP_SIZE}px" if d.NUM_FRAMES > 1 else f"keyframe only, {d.TEST_CROP_SIZE}px"
        params = sum(p.numel() for p in get_task(row.cfg.TASK).create_model(row.cfg).parameters())
        print(f"{row.run.name:<7} {clip:<26} {t['mAP']:>13.1f}% {row.seconds:>6.0f}s {params / 1e6:>7.2f}M")
    print(f"time: training + test per run; whole demo {result.seconds:.0f} s.")
    checks = result.checks()
    for text, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {text}")
    return 0 if all(ok for _, ok in checks) or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())

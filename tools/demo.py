#!/usr/bin/env python
"""The built-in demo: learn "moving shapes" on a CPU, with a single-frame control.

    python tools/demo.py [--data DIR] [--output-dir DIR] [--seed N] [--check] [KEY VALUE ...]

1. Generates the moving-shapes data set (real H.264 files, Kinetics-style CSVs) into a cache folder on
   first use (``rs_video.data.moving_shapes``; set-up, not counted in the demo time).
2. Trains and tests ``configs/demo/moving_shapes_rs3d.yaml`` (a small 3D ResNet-RS on 8-frame clips)
   and ``configs/demo/moving_shapes_2d.yaml`` (the same network on single frames) with the engine.
3. Prints both held-out results side by side with the FLOP report of the trained models, and whether
   the demo's targets hold (``--check``: exit with status 1 when they do not).

See docs/demo.md.
"""

import argparse
import json
import sys
import time
import warnings
from datetime import datetime
from pathlib import Path

# fvcore (precise BN, FLOP counting) calls torch.jit.script at import; the deprecation is not the user's to fix.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a source checkout

import torch  # noqa: E402

from rs_image.engine.config import load_config  # noqa: E402
from rs_image.engine.launch import launch  # noqa: E402
from rs_image.engine.logger import setup_logging  # noqa: E402
from rs_image.engine.tasks import get_task  # noqa: E402
from rs_image.report.counts import count_macs, count_params  # noqa: E402
from rs_video.data.moving_shapes import (  # noqa: E402
    MOVING_SHAPES_CLASSES,
    MovingShapesSpec,
    default_moving_shapes_dir,
    generate_moving_shapes,
)

RUNS = (
    ("rs3d", "3D ResNet-RS, clips", REPO / "configs/demo/moving_shapes_rs3d.yaml"),
    ("2d", "same net, single frames", REPO / "configs/demo/moving_shapes_2d.yaml"),
)
CHANCE = 100.0 / len(MOVING_SHAPES_CLASSES)
TARGET_TOP1_3D = 90.0
TARGET_TOP1_CONTROL = CHANCE + 15.0
TARGET_SECONDS = 600.0


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
    parser.add_argument("--output-dir", type=Path, default=REPO / "output" / "demo", help="runs go to a new sub-folder")
    parser.add_argument("--seed", type=int, default=None, help="RNG_SEED of both trainings (default: the configs')")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides for both runs")
    args = parser.parse_args(argv)

    spec = MovingShapesSpec()
    if args.data is not None and (args.data / "spec.json").exists():  # a data set made with another spec
        spec = MovingShapesSpec.from_json(json.loads((args.data / "spec.json").read_text()))
    data = args.data or default_moving_shapes_dir(spec)
    start = time.perf_counter()
    setup_logging(None)  # the data set-up logs its progress
    generate_moving_shapes(data, spec)
    setup_seconds = time.perf_counter() - start

    run_dir = args.output_dir / datetime.now().strftime("%Y%m%d-%H%M%S")
    rows = []
    demo_start = time.perf_counter()
    for name, description, cfg_file in RUNS:
        opts = ["DATA.PATH_TO_DATA_DIR", str(data), "OUTPUT_DIR", str(run_dir / name)]
        if args.seed is not None:
            opts += ["RNG_SEED", str(args.seed)]
        opts += args.opts
        cfg = load_config(cfg_file, opts)
        print(f"\n=== {name}: {description} ({cfg_file.relative_to(REPO)}) -> {cfg.OUTPUT_DIR}", flush=True)
        t0 = time.perf_counter()
        results = launch(cfg, do_train=True, do_test=True)
        rows.append(dict(name=name, description=description, cfg=cfg, test=results["test"],
                         seconds=time.perf_counter() - t0, **_model_report(cfg)))
    demo_seconds = time.perf_counter() - demo_start

    print(f"\nMoving shapes: {len(MOVING_SHAPES_CLASSES)} motion classes (chance {CHANCE:.1f}%), "
          f"{spec.num_train} train / {spec.num_test} held-out test videos of {spec.num_frames} frames at "
          f"{spec.size}x{spec.size}; data in {data} (set-up {setup_seconds:.0f} s, not counted).")
    header = (f"{'run':<6} {'input':<24} {'top-1':>7} {'top-5':>7} {'time':>7} {'params':>8} "
              f"{'MMACs/view':>11} {'BN MMACs':>9} {'views':>6} {'MMACs/video':>12}")
    print(header)
    print("-" * len(header))
    for r in rows:
        d, t = r["cfg"].DATA, r["test"]
        clip = f"{d.NUM_FRAMES}x{d.SAMPLING_RATE} frames, {d.TEST_CROP_SIZE}px" if d.NUM_FRAMES > 1 else f"1 frame, {d.TEST_CROP_SIZE}px"
        print(f"{r['name']:<6} {clip:<24} {t['top1']:>6.1f}% {t['top5']:>6.1f}% {r['seconds']:>6.0f}s "
              f"{r['params'] / 1e6:>7.2f}M {r['macs_view'] / 1e6:>11.1f} {r['macs_bn'] / 1e6:>9.2f} {r['views']:>6} "
              f"{r['macs_view'] * r['views'] / 1e6:>12.1f}")
    print("MMACs: fvcore conv + linear multiply-adds of one test view, BatchNorm listed apart and not included "
          "(1 fused multiply-add = 1 flop, the model zoos' convention; the ResNet-RS paper's FLOPs are 2x this).")
    print(f"time: training + multi-view test per run; whole demo {demo_seconds:.0f} s.")

    top1_3d, top1_2d = rows[0]["test"]["top1"], rows[1]["test"]["top1"]
    checks = [
        (f"rs3d held-out top-1 {top1_3d:.1f}% >= {TARGET_TOP1_3D:.0f}%", top1_3d >= TARGET_TOP1_3D),
        (f"single-frame control {top1_2d:.1f}% <= chance + 15 = {TARGET_TOP1_CONTROL:.1f}%", top1_2d <= TARGET_TOP1_CONTROL),
        (f"demo time {demo_seconds:.0f} s <= {TARGET_SECONDS:.0f} s", demo_seconds <= TARGET_SECONDS),
    ]
    for text, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {text}")
    return 0 if all(ok for _, ok in checks) or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())

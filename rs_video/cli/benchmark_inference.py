#!/usr/bin/env python3
"""``rs-benchmark-inference``: inference speed of rs_video.inference (prints figures; nothing here is a test).

1. The pipeline alone (decode + resize + crop + normalise, the model replaced by a no-op) in windows/s, against
   the per-window loop of the references: PyTorchVideo ``EncodedVideo.get_clip`` for each window with
   PyTorchVideo's transforms (``Div255``, ``Normalize``, ``ShortSideScale``, centre ``uniform_crop``).
2. End to end (``run_windows`` with the model) against the model alone on the same number of ready-made
   batches, for each model and window setting: decoding is hidden when the ratio is close to 1.

Random weights (speed does not depend on them). The measuring is :mod:`rs_video.benchmark.inference`. Example
(the README's table):

    rs-benchmark-inference --num-videos 8 --seconds 30 --crop 128 --models slow_r50 rs3d_50 \
        --windows 8x8 32x2 --batch-size 5 --workers 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence


import torch

from rs_video.benchmark import make_benchmark_videos
from rs_video.benchmark.inference import inference_config, pytorchvideo_baseline, time_windows, window_stream
from rs_video.task import VideoTask


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="benchmark videos (made here when absent)")
    parser.add_argument("--num-videos", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--models", nargs="+", default=["slow_r50", "rs3d_50"])
    parser.add_argument("--windows", nargs="+", default=["8x8", "32x2"], help="NUM_FRAMESxSAMPLING_RATE")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--decoder", default="torchcodec")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    data = Path(args.data_dir or tempfile.mkdtemp(prefix="bench_inference_"))
    make_benchmark_videos(data, num_videos=args.num_videos, seconds=args.seconds, num_workers=2)
    videos = sorted((data / "videos").glob("*.mp4"))[: args.num_videos]
    device = torch.device(args.device)
    print(f"{len(videos)} videos of {args.seconds:g} s, 340x256 H.264 30 fps; crop {args.crop}; batch {args.batch_size}; "
          f"{args.workers} decoding worker(s); decoder {args.decoder}; device {device} "
          f"({os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}); torch {torch.__version__}")

    print("\n1. Pipeline alone (decode + preprocess, no model), windows/s")
    print(f"| window | ours, 0 workers | ours, {args.workers} worker(s) | PyTorchVideo get_clip per window | speed-up (0 workers) |")
    print("|---|---|---|---|---|")
    no_op = lambda x: x.new_zeros(x.shape[0], 1)  # noqa: E731
    for setting in args.windows:
        frames, rate = (int(v) for v in setting.split("x"))
        cfg = inference_config(args.models[0], frames, rate, args.crop, args.device, args.batch_size)
        if setting == args.windows[0]:  # warm-up: decoder libraries and the first file reads are not timed
            time_windows(cfg, window_stream(cfg, videos[:1], args.batch_size, args.decoder), no_op, device, None, 0)
        ours0 = time_windows(cfg, window_stream(cfg, videos, args.batch_size, args.decoder), no_op, device, None, 0)
        oursw = time_windows(cfg, window_stream(cfg, videos, args.batch_size, args.decoder), no_op, device, None, args.workers)
        base = pytorchvideo_baseline(cfg, videos)
        rate0, ratew, rateb = (w / s for w, s in (ours0, oursw, base))
        print(f"| {setting} | {rate0:.1f} | {ratew:.1f} | {rateb:.1f} | {rate0 / rateb:.1f}x |", flush=True)

    print("\n2. End to end vs the model alone, seconds per window")
    print("| model | window | windows | end to end | model only | ratio |")
    print("|---|---|---|---|---|---|")
    task = VideoTask()
    for name in args.models:
        for setting in args.windows:
            frames, rate = (int(v) for v in setting.split("x"))
            cfg = inference_config(name, frames, rate, args.crop, args.device, args.batch_size)
            model = task.create_model(cfg).to(device).eval().to(memory_format=torch.channels_last_3d)
            fmt = torch.channels_last_3d
            batch = {"video": torch.randint(0, 256, (args.batch_size, 3, frames, args.crop, args.crop), dtype=torch.uint8)}
            with torch.no_grad():  # warm-up: the first call picks and builds the kernels
                model(task.prepare_input(batch, cfg, device, fmt))
            windows, e2e = time_windows(cfg, window_stream(cfg, videos, args.batch_size, args.decoder), model, device, fmt,
                                args.workers)
            start = time.perf_counter()
            with torch.no_grad():
                for _ in range(-(-windows // args.batch_size)):
                    model(task.prepare_input(batch, cfg, device, fmt))
            if device.type == "cuda":
                torch.cuda.synchronize()
            alone = time.perf_counter() - start
            print(f"| {name} | {setting} | {windows} | {e2e / windows:.3f} | {alone / windows:.3f} | "
                  f"{e2e / alone:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Inference speed of rs_video.inference (prints figures; nothing here is a test).

1. The pipeline alone (decode + resize + crop + normalise, the model replaced by a no-op) in windows/s, against
   the per-window loop of the references: PyTorchVideo ``EncodedVideo.get_clip`` for each window with
   PyTorchVideo's transforms (``Div255``, ``Normalize``, ``ShortSideScale``, centre ``uniform_crop``).
2. End to end (``run_windows`` with the model) against the model alone on the same number of ready-made
   batches, for each model and window setting: decoding is hidden when the ratio is close to 1.

Random weights (speed does not depend on them). Example (the README's table):

    python tools/benchmark_inference.py --num-videos 2 --seconds 10 --crop 128 --models slow_r50 rs3d_50 \
        --windows 8x8 32x2 --batch-size 5 --workers 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import List, Tuple

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

import torch  # noqa: E402

import rs_video.task  # noqa: E402,F401  (registers TASK video)
from rs_video.benchmark import make_benchmark_videos  # noqa: E402
from rs_video.benchmark.pytorchvideo_compat import enable_pytorchvideo_transforms  # noqa: E402
from rs_video.data import create_decoder  # noqa: E402
from rs_video.inference import WindowSpec, WindowStream, pretrained_config, run_windows, window_transform  # noqa: E402


def _cfg(model: str, frames: int, rate: int, crop: int, device: str, batch: int):
    return pretrained_config(model, ["DATA.NUM_FRAMES", str(frames), "DATA.SAMPLING_RATE", str(rate),
                                     "DATA.TEST_CROP_SIZE", str(crop), "DEVICE", device, "TEST.BATCH_SIZE", str(batch),
                                     "MODEL.CHANNELS_LAST", "True", "DATA_LOADER.PIN_MEMORY", "True"])


def _stream(cfg, videos: List[Path], batch: int, decoder: str) -> WindowStream:
    spec = WindowSpec(int(cfg.DATA.NUM_FRAMES), int(cfg.DATA.SAMPLING_RATE))
    return WindowStream(list(enumerate(map(str, videos))), spec, window_transform(cfg, 1), create_decoder(decoder), batch)


def _run(cfg, stream: WindowStream, model_fn, device, memory_format, workers: int) -> Tuple[int, float]:
    task = rs_video.task.VideoTask()
    windows = [0]

    def on_video(info, outputs) -> None:
        windows[0] += info.num_windows

    start = time.perf_counter()
    run_windows(stream, model_fn, cfg, task, device, memory_format, on_video, num_workers=workers)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return windows[0], time.perf_counter() - start


def pytorchvideo_baseline(cfg, videos: List[Path]) -> Tuple[int, float]:
    """Windows/s of EncodedVideo.get_clip per window with PyTorchVideo's float transforms (same windows)."""
    from pytorchvideo.data.encoded_video import EncodedVideo

    ptv = enable_pytorchvideo_transforms()
    import pytorchvideo.transforms.functional as ptv_functional

    t, tau, crop = int(cfg.DATA.NUM_FRAMES), int(cfg.DATA.SAMPLING_RATE), int(cfg.DATA.TEST_CROP_SIZE)
    spec = WindowSpec(t, tau)
    recipe = torch.nn.Sequential(ptv.Div255(), ptv.Normalize(cfg.DATA.MEAN, cfg.DATA.STD), ptv.ShortSideScale(crop))
    windows = 0
    start = time.perf_counter()
    for path in videos:
        with create_decoder("pyav").open(str(path)) as probe:
            n, fps = probe.num_frames, probe.fps
        video = EncodedVideo.from_path(str(path), decode_audio=False, decoder="pyav")
        for s in spec.starts(n):
            clip = video.get_clip(s / fps, (s + spec.span) / fps)["video"]  # (C, frames, H, W) float
            index = torch.clamp(torch.arange(t) * tau, max=clip.shape[1] - 1)
            x = ptv_functional.uniform_crop(recipe(clip[:, index]), crop, spatial_idx=1)
            assert x.shape[-1] == crop
            windows += 1
        video.close()
    return windows, time.perf_counter() - start


def main() -> None:
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
    args = parser.parse_args()

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
        cfg = _cfg(args.models[0], frames, rate, args.crop, args.device, args.batch_size)
        if setting == args.windows[0]:  # warm-up: decoder libraries and the first file reads are not timed
            _run(cfg, _stream(cfg, videos[:1], args.batch_size, args.decoder), no_op, device, None, 0)
        ours0 = _run(cfg, _stream(cfg, videos, args.batch_size, args.decoder), no_op, device, None, 0)
        oursw = _run(cfg, _stream(cfg, videos, args.batch_size, args.decoder), no_op, device, None, args.workers)
        base = pytorchvideo_baseline(cfg, videos)
        rate0, ratew, rateb = (w / s for w, s in (ours0, oursw, base))
        print(f"| {setting} | {rate0:.1f} | {ratew:.1f} | {rateb:.1f} | {rate0 / rateb:.1f}x |", flush=True)

    print("\n2. End to end vs the model alone, seconds per window")
    print("| model | window | windows | end to end | model only | ratio |")
    print("|---|---|---|---|---|---|")
    task = rs_video.task.VideoTask()
    for name in args.models:
        for setting in args.windows:
            frames, rate = (int(v) for v in setting.split("x"))
            cfg = _cfg(name, frames, rate, args.crop, args.device, args.batch_size)
            model = task.create_model(cfg).to(device).eval().to(memory_format=torch.channels_last_3d)
            fmt = torch.channels_last_3d
            batch = {"video": torch.randint(0, 256, (args.batch_size, 3, frames, args.crop, args.crop), dtype=torch.uint8)}
            with torch.no_grad():  # warm-up: the first call picks and builds the kernels
                model(task.prepare_input(batch, cfg, device, fmt))
            windows, e2e = _run(cfg, _stream(cfg, videos, args.batch_size, args.decoder), model, device, fmt,
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


if __name__ == "__main__":
    main()

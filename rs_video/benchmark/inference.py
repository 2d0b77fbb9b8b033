"""Inference speed (``rs-benchmark-inference``; docs/inference.md, "Speed"): windows/s of
:mod:`rs_video.inference`'s pipeline and of the references' per-window loop, and end-to-end time.

* :func:`time_windows`: :func:`rs_video.inference.run_windows` over a :func:`window_stream` with any model
  function (a no-op for the pipeline alone);
* :func:`pytorchvideo_baseline`: PyTorchVideo ``EncodedVideo.get_clip`` for each window with PyTorchVideo's
  transforms (``Div255``, ``Normalize``, ``ShortSideScale``, centre ``uniform_crop``), the same windows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Tuple

import torch

from rs_video.data import create_decoder, enable_pytorchvideo_transforms
from rs_video.inference import WindowSpec, WindowStream, pretrained_config, run_windows, window_transform
from rs_video.task import VideoTask

__all__ = ["inference_config", "window_stream", "time_windows", "pytorchvideo_baseline"]


def inference_config(model: str, frames: int, rate: int, crop: int, device: str, batch: int):
    return pretrained_config(model, ["DATA.NUM_FRAMES", str(frames), "DATA.SAMPLING_RATE", str(rate),
                                     "DATA.TEST_CROP_SIZE", str(crop), "DEVICE", device, "TEST.BATCH_SIZE", str(batch),
                                     "MODEL.CHANNELS_LAST", "True", "DATA_LOADER.PIN_MEMORY", "True"])


def window_stream(cfg, videos: List[Path], batch: int, decoder: str) -> WindowStream:
    spec = WindowSpec(int(cfg.DATA.NUM_FRAMES), int(cfg.DATA.SAMPLING_RATE))
    return WindowStream(list(enumerate(map(str, videos))), spec, window_transform(cfg, 1), create_decoder(decoder), batch)


def time_windows(cfg, stream: WindowStream, model_fn, device, memory_format, workers: int) -> Tuple[int, float]:
    task = VideoTask()
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
    ptv = enable_pytorchvideo_transforms()  # first: it imports PyTorchVideo without the upstream jit warning
    from pytorchvideo.data.encoded_video import EncodedVideo

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

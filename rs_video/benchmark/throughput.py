"""Loader throughput: our Kinetics loader against PyTorchVideo's on the same files (``tools/benchmark_data.py``).

Every configuration runs through a real ``DataLoader`` (``num_workers`` worker processes, persistent,
``batch_size`` clips per batch) and is timed after a warm-up of ``2 * num_workers`` batches. Per
configuration:

* clips/s: wall clock, what training sees;
* CPU ms per clip: user + system CPU time of the worker processes (from ``/proc``) per clip. It is the
  better number on a shared or noisy machine: it does not depend on what else runs there;
* the 1-minute load average at the end of the run (other work on the machine lowers clips/s).

Configurations:

* ``ours/<decoder>``: :func:`rs_video.data.build_video_dataset` with ``DATA.DECODER=<decoder>``, once per
  requested ``DATA.OUTPUT_DTYPE`` (float32: normalised clips; uint8: clips the consumer normalises on its
  device after the copy, as the engine does);
* ``ptv-backend/<decoder>``: ``DATA.BACKEND=pytorchvideo``, :func:`~rs_video.benchmark.build_pytorchvideo_dataset`
  (PyTorchVideo decoding, our transforms);
* ``ptv-recipe/<decoder>``: ``pytorchvideo.data.Kinetics`` with PyTorchVideo's own transform recipe
  (``UniformTemporalSubsample -> Div255 -> Normalize -> RandomShortSideScale -> RandomCrop -> flip`` in
  train mode; ``ShortSideScale -> uniform crop`` in test mode), as SlowFast's ``Ptvkinetics`` builds it,
  using :func:`~rs_video.benchmark.enable_pytorchvideo_transforms`.

All use the same files, the same T x tau at TARGET_FPS (clip duration ``T * tau / 30`` s), the same
crop sizes, scale jitter and normalisation. PyTorchVideo rows always deliver float32 normalised clips
(its contract).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import torch

from rs_image.fileio import atomic_path
from rs_video.data import build_split_inputs, build_video_dataset, collate_clips

from .pytorchvideo_backend import PyTorchVideoKinetics, build_pytorchvideo_dataset
from .pytorchvideo_compat import enable_pytorchvideo_transforms
from .synthetic import write_synthetic_video

__all__ = [
    "BenchmarkResult",
    "make_benchmark_videos",
    "measure_loader",
    "run_benchmark",
    "format_table",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class BenchmarkResult:
    """One measured configuration."""

    name: str
    mode: str
    num_workers: int
    clips: int
    seconds: float
    cpu_seconds: Optional[float]
    output_dtype: str = "float32"
    load_average: Optional[float] = None

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_ms_per_clip(self) -> Optional[float]:
        return None if self.cpu_seconds is None else 1000.0 * self.cpu_seconds / max(self.clips, 1)


def make_benchmark_videos(
    out_dir, num_videos: int = 24, seconds: float = 10.0, fps: int = 30, width: int = 340, height: int = 256,
    gop: int = 250, num_classes: int = 4, num_workers: int = 2,
) -> Path:
    """Writes ``num_videos`` H.264 files and ``train.csv``/``val.csv``/``test.csv`` lists over them.

    Defaults: 10 s at 30 fps, 340x256 (short side 256), x264 preset medium CRF 23 with 3 B-frames and
    keyframes every 250 frames (ffmpeg's default, what a plain ``ffmpeg -vf scale=-2:256`` resize of the
    Kinetics clips gives). Files that exist are kept (resumable).
    """
    from concurrent.futures import ProcessPoolExecutor

    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    jobs = []
    for index in range(num_videos):
        path = out / "videos" / f"bench_{index:03d}.mp4"
        if not path.exists():
            jobs.append(path)
    kwargs = dict(num_frames=int(seconds * fps), fps=fps, width=width, height=height, gop=gop, preset="medium")
    if jobs:
        with ProcessPoolExecutor(max_workers=max(1, num_workers)) as pool:
            list(pool.map(_write_one, [(p, kwargs) for p in jobs]))
    lines = "".join(f"videos/bench_{i:03d}.mp4 {i % num_classes}\n" for i in range(num_videos))
    for split in ("train", "val", "test"):
        (out / f"{split}.csv").write_text(lines)
    return out


def _write_one(job) -> None:
    path, kwargs = job
    with atomic_path(path) as tmp:  # a crash never leaves a bad file under the final name
        write_synthetic_video(tmp, **kwargs)


class _PTVRecipeKinetics(PyTorchVideoKinetics):
    """PyTorchVideo's Kinetics with PyTorchVideo's own float transform recipe (benchmark reference)."""

    def __init__(self, *args, jitter: Sequence[int], crop: int, test_crop: int, mean, std, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.jitter, self.crop, self.test_crop = tuple(jitter), crop, test_crop
        self.mean, self.std = list(mean), list(std)
        self._recipe = None

    def _build_recipe(self):
        import torchvision.transforms as T

        ptv = enable_pytorchvideo_transforms()
        steps = [ptv.UniformTemporalSubsample(self.sampler.num_frames), ptv.Div255(), ptv.Normalize(self.mean, self.std)]
        if self.mode == "train":
            steps += [ptv.RandomShortSideScale(*self.jitter), T.RandomCrop(self.crop), T.RandomHorizontalFlip()]
        else:
            steps += [ptv.ShortSideScale(self.test_crop)]
        return T.Compose(steps), importlib.import_module("pytorchvideo.transforms.functional")

    def _convert(self, sample: dict) -> dict:
        if self._recipe is None:
            self._recipe = self._build_recipe()
        recipe, ptv_functional = self._recipe
        video = recipe(sample["video"])
        spatial = int(sample["aug_index"]) if self.mode == "test" else 0
        if self.mode != "train":
            video = ptv_functional.uniform_crop(video, self.test_crop, spatial_idx=spatial if self.mode == "test" else 1)
        item = {"video": video, "label": int(sample["label"]), "video_index": int(sample["video_index"]),
                "view_index": int(sample["clip_index"]) * self.num_spatial_crops + spatial if self.mode == "test" else 0}
        if self.mode == "test":
            item["failed"] = False
        return item

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_recipe"] = None
        return state


def _cpu_seconds(pids: Iterable[int]) -> Optional[float]:
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    except (OSError, IndexError, ValueError):
        return None
    return total


def measure_loader(dataset, num_workers: int, batch_size: int = 4, num_clips: int = 96, name: str = "",
                   mode: str = "train", shuffle: bool = True) -> BenchmarkResult:
    """Clips/s and worker CPU per clip of ``dataset`` in a DataLoader, after ``2 * num_workers`` warm-up batches."""
    import multiprocessing

    warmup_batches = 2 * max(num_workers, 1)
    total = num_clips + warmup_batches * batch_size
    if shuffle:
        sampler = torch.utils.data.RandomSampler(dataset, replacement=False, num_samples=total)
    else:
        sampler = [i % len(dataset) for i in range(total)]
    pids = multiprocessing.Array("i", max(num_workers, 1))

    def remember_pid(worker_id: int) -> None:
        pids[worker_id] = os.getpid()

    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, worker_init_fn=remember_pid,
        persistent_workers=num_workers > 0, prefetch_factor=2 if num_workers > 0 else None,
        collate_fn=collate_clips,  # what the engine uses (float batches: default_collate)
    )
    iterator = iter(loader)
    for _ in range(warmup_batches):
        batch = next(iterator)
    output_dtype = "uint8" if batch["video"].dtype == torch.uint8 else "float32"
    worker_pids = list(pids) if num_workers > 0 else [os.getpid()]
    cpu_start = _cpu_seconds(worker_pids)
    start = time.perf_counter()
    clips = 0
    for batch in iterator:
        clips += batch["video"].shape[0]
    seconds = time.perf_counter() - start
    cpu_end = _cpu_seconds(worker_pids)
    cpu = None if cpu_start is None or cpu_end is None else cpu_end - cpu_start
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    del iterator, loader
    return BenchmarkResult(name, mode, num_workers, clips, seconds, cpu, output_dtype, load)


def _dataset(kind: str, decoder: str, cfg, mode: str, output_dtype: str = "float32"):
    cfg = cfg.clone()
    if kind == "ours":
        cfg.DATA.BACKEND, cfg.DATA.DECODER, cfg.DATA.OUTPUT_DTYPE = "native", decoder, output_dtype
        return build_video_dataset(cfg, mode)
    cfg.DATA.OUTPUT_DTYPE = "float32"  # PyTorchVideo's contract: normalised float clips
    if kind == "ptv-backend":
        cfg.DATA.BACKEND, cfg.DATA.DECODER = "pytorchvideo", decoder
        return build_pytorchvideo_dataset(cfg, mode)
    if kind == "ptv-recipe":
        annotations, sampler, transform = build_split_inputs(cfg, mode)
        data = cfg.DATA
        return _PTVRecipeKinetics(
            annotations.records, mode, sampler, transform, decoder=decoder,
            num_ensemble_views=cfg.TEST.NUM_ENSEMBLE_VIEWS if mode == "test" else 1,
            jitter=data.TRAIN_JITTER_SCALES, crop=data.TRAIN_CROP_SIZE, test_crop=data.TEST_CROP_SIZE,
            mean=data.MEAN, std=data.STD,
        )
    raise ValueError(f"unknown loader kind {kind!r}")


def run_benchmark(
    cfg, configurations: Sequence[str], modes: Sequence[str] = ("train",), workers: Sequence[int] = (2,),
    batch_size: int = 4, num_clips: int = 96, repeats: int = 1, output_dtypes: Sequence[str] = ("float32",),
) -> List[BenchmarkResult]:
    """Measures every ``kind/decoder`` configuration in every mode and worker count.

    ``ours`` configurations run once per entry of ``output_dtypes`` ("float32", "uint8"); PyTorchVideo
    ones once, float32. With ``repeats > 1`` the configurations are interleaved round by round and the
    best round of each is kept, which filters out bursts of load from other processes.
    """
    best: Dict[tuple, BenchmarkResult] = {}
    for _ in range(repeats):
        for mode in modes:
            for num_workers in workers:
                for configuration in configurations:
                    kind, decoder = configuration.split("/")
                    for output_dtype in output_dtypes if kind == "ours" else ("float32",):
                        dataset = _dataset(kind, decoder, cfg, mode, output_dtype)
                        result = measure_loader(dataset, num_workers, batch_size, num_clips, configuration, mode,
                                                shuffle=mode == "train")
                        key = (configuration, output_dtype, mode, num_workers)
                        if key not in best or result.clips_per_second > best[key].clips_per_second:
                            best[key] = result
                        logger.info("%s (%s) %s workers=%d: %.1f clips/s, load %.1f", configuration, output_dtype,
                                    mode, num_workers, result.clips_per_second, result.load_average or float("nan"))
    return list(best.values())


def format_table(results: Sequence[BenchmarkResult]) -> str:
    """Markdown table with, per mode and worker count, each row's speed relative to the best PyTorchVideo
    row (any ``ptv-*`` configuration) and to the best ``ptv-recipe`` row (PyTorchVideo's loader as run)."""
    lines = [
        "| loader | output | mode | workers | clips/s | CPU ms/clip | load avg | x best PyTorchVideo | x PyTorchVideo recipe |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def ratio(value: float, reference: List[float]) -> str:
        return f"{value / max(reference):.2f}" if reference else "-"

    for mode in sorted({r.mode for r in results}, key=["train", "val", "test"].index):
        for workers in sorted({r.num_workers for r in results}):
            group = [r for r in results if r.mode == mode and r.num_workers == workers]
            any_ptv = [r.clips_per_second for r in group if r.name.startswith("ptv")]
            recipe = [r.clips_per_second for r in group if r.name.startswith("ptv-recipe")]
            for r in sorted(group, key=lambda r: -r.clips_per_second):
                cpu = f"{r.cpu_ms_per_clip:.0f}" if r.cpu_ms_per_clip is not None else "-"
                load = f"{r.load_average:.1f}" if r.load_average is not None else "-"
                lines.append(
                    f"| {r.name} | {r.output_dtype} | {mode} | {workers} | {r.clips_per_second:.1f} | {cpu} | {load} "
                    f"| {ratio(r.clips_per_second, any_ptv)} | {ratio(r.clips_per_second, recipe)} |"
                )
    return "\n".join(lines)

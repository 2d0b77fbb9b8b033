"""Loader throughput: our Kinetics loader against PyTorchVideo's on the same files (``tools/benchmark_data.py``).

Every configuration runs through a real ``DataLoader`` (``num_workers`` worker processes, persistent,
``batch_size`` clips per batch) and is timed after a warm-up of ``2 * num_workers`` batches. Per
configuration:

* clips/s: wall clock, what training sees;
* CPU ms per clip: user + system CPU time of the worker processes (from ``/proc``) per clip. It is the
  better number on a shared or noisy machine: it does not depend on what else runs there;
* the 1-minute load average at the end of the run (other work on the machine lowers clips/s).

With ``repeats`` rounds (configurations interleaved round by round) a table row gives the median over the
rounds and the range (lowest-highest), never the best round alone.

Configurations:

* ``ours/<decoder>``: :func:`rs_video.data.build_video_dataset` with ``DATA.DECODER=<decoder>``, once per
  requested ``DATA.OUTPUT_DTYPE`` (float32: normalised clips; uint8: clips the consumer normalises on its
  device after the copy, as the engine does) and, in train mode, once per requested number of clips per
  decoded video: ``AUG.NUM_SAMPLE`` S augmentations of one window (repeated augmentation, "1xS") or
  ``DATA.TRAIN_CROP_NUM_TEMPORAL`` W windows ("Wx1"). The timed number of clips stays the same, so a row with
  K clips per video decodes 1/K as many videos; its ratio to one clip per video is taken round by round;
* ``ptv-backend/<decoder>``: ``DATA.BACKEND=pytorchvideo``, :func:`~rs_video.data.build_pytorchvideo_dataset`
  (PyTorchVideo decoding, our transforms);
* ``ptv-recipe/<decoder>``: ``pytorchvideo.data.Kinetics`` with PyTorchVideo's own transform recipe
  (``UniformTemporalSubsample -> Div255 -> Normalize -> RandomShortSideScale -> RandomCrop -> flip`` in
  train mode; ``ShortSideScale -> uniform crop`` in test mode), as SlowFast's ``Ptvkinetics`` builds it,
  using :func:`~rs_video.data.enable_pytorchvideo_transforms`.

All use the same files, the same T x tau at TARGET_FPS (clip duration ``T * tau / 30`` s), the same
crop sizes, scale jitter and normalisation. PyTorchVideo rows always deliver float32 normalised clips
(its contract).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import torch

from rs_image.data.randomness import EpochIndex
from rs_image.fileio import atomic_path
from rs_video.data import (PyTorchVideoKinetics, build_pytorchvideo_dataset, build_split_inputs, build_video_dataset,
                           collate_clips, enable_pytorchvideo_transforms)

from .synthetic import write_synthetic_video

__all__ = [
    "BenchmarkResult",
    "BenchmarkSummary",
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
    windows: int = 1
    augmentations: int = 1
    round: int = 0

    @property
    def clips_per_video(self) -> int:
        return self.windows * self.augmentations

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_ms_per_clip(self) -> Optional[float]:
        return None if self.cpu_seconds is None else 1000.0 * self.cpu_seconds / max(self.clips, 1)

    @property
    def key(self) -> tuple:
        """What identifies the configuration across rounds."""
        return (self.name, self.output_dtype, self.mode, self.num_workers, self.windows, self.augmentations)


@dataclasses.dataclass
class BenchmarkSummary:
    """One configuration over all rounds: medians and ranges.

    Attributes:
        rounds: the measurements, one per round.
        per_clip_baseline: the same configuration with one clip per video, round by round (rows with
            several clips per video), else empty.
    """

    rounds: List[BenchmarkResult]
    per_clip_baseline: List[BenchmarkResult] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return self.rounds[0].name

    @property
    def mode(self) -> str:
        return self.rounds[0].mode

    @property
    def num_workers(self) -> int:
        return self.rounds[0].num_workers

    @property
    def output_dtype(self) -> str:
        return self.rounds[0].output_dtype

    @property
    def windows(self) -> int:
        return self.rounds[0].windows

    @property
    def augmentations(self) -> int:
        return self.rounds[0].augmentations

    @property
    def clips_per_second(self) -> float:
        """Median over the rounds."""
        return statistics.median(r.clips_per_second for r in self.rounds)

    @property
    def clips_per_second_range(self) -> tuple:
        values = [r.clips_per_second for r in self.rounds]
        return min(values), max(values)

    @property
    def cpu_ms_per_clip(self) -> Optional[float]:
        values = [r.cpu_ms_per_clip for r in self.rounds]
        return None if None in values else statistics.median(values)

    @property
    def load_average_range(self) -> Optional[tuple]:
        values = [r.load_average for r in self.rounds]
        return None if None in values else (min(values), max(values))

    @property
    def ratios_to_one_clip(self) -> List[float]:
        """clips/s over the one-clip-per-video configuration's, per round (same round, same files)."""
        baseline = {r.round: r.clips_per_second for r in self.per_clip_baseline}
        return [r.clips_per_second / baseline[r.round] for r in self.rounds if r.round in baseline]


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
    """Clips/s and worker CPU per clip of ``dataset`` in a DataLoader, after ``2 * num_workers`` warm-up batches.

    With ``shuffle`` the items come in a seeded random order, a new one per pass over the data set, and each
    pass is a new epoch (:class:`~rs_image.data.randomness.EpochIndex`), so that every pass draws new
    windows and crops, as in training (the same order and draws for every configuration).

    ``batch_size`` counts items; an item of K clips (``dataset.clips_per_item``) adds K clips to a batch, and
    ``num_clips / K`` items are timed, so that every row times about ``num_clips`` clips.
    """
    import multiprocessing

    windows, augmentations = int(getattr(dataset, "num_windows", 1)), int(getattr(dataset, "num_augmentations", 1))
    clips_per_video = windows * augmentations
    warmup_batches = 2 * max(num_workers, 1)
    total = max(num_clips // clips_per_video, 1) + warmup_batches * batch_size
    if shuffle:  # as in training: a new order and, through the epoch, new windows and crops every pass
        size = len(dataset)
        sampler = [EpochIndex(int(i), n // size) for n in range(0, total, size)
                   for i in torch.randperm(size, generator=torch.Generator().manual_seed(n // size))][:total]
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
    return BenchmarkResult(name, mode, num_workers, clips, seconds, cpu, output_dtype, load, windows, augmentations)


def _dataset(kind: str, decoder: str, cfg, mode: str, output_dtype: str = "float32", windows: int = 1,
             augmentations: int = 1):
    cfg = cfg.clone()
    if kind == "ours":
        cfg.DATA.BACKEND, cfg.DATA.DECODER, cfg.DATA.OUTPUT_DTYPE = "native", decoder, output_dtype
        cfg.DATA.TRAIN_CROP_NUM_TEMPORAL, cfg.AUG.NUM_SAMPLE = windows, augmentations
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
    num_sample: Sequence[int] = (1,), num_temporal: Sequence[int] = (1,),
) -> List[BenchmarkSummary]:
    """Measures every ``kind/decoder`` configuration in every mode and worker count, ``repeats`` times.

    ``ours`` configurations run once per entry of ``output_dtypes`` ("float32", "uint8") and, in train
    mode, once with one clip per video, once per ``num_sample`` S > 1 (``AUG.NUM_SAMPLE``: S augmentations of
    one window) and once per ``num_temporal`` W > 1 (``DATA.TRAIN_CROP_NUM_TEMPORAL``: W windows);
    PyTorchVideo ones once, float32, one clip per video.
    The configurations are interleaved round by round, so that a burst of load from other processes hits
    all of them; each summary holds every round (median and range, not the best round).
    """
    results: List[BenchmarkResult] = []
    for round_index in range(repeats):
        for mode in modes:
            for num_workers in workers:
                for configuration in configurations:
                    kind, decoder = configuration.split("/")
                    for output_dtype in output_dtypes if kind == "ours" else ("float32",):
                        shapes = [(1, 1)]  # (windows, augmentations); 1x1: the reference of the ratios
                        if kind == "ours" and mode == "train":
                            shapes += [(1, s) for s in sorted(set(num_sample) - {1})]
                            shapes += [(w, 1) for w in sorted(set(num_temporal) - {1})]
                        for windows, augmentations in shapes:
                            dataset = _dataset(kind, decoder, cfg, mode, output_dtype, windows, augmentations)
                            result = measure_loader(dataset, num_workers, batch_size, num_clips, configuration,
                                                    mode, shuffle=mode == "train")
                            result.round = round_index
                            results.append(result)
                            logger.info("%s (%s, %dx%d clips/video) %s workers=%d: %.1f clips/s, load %.1f",
                                        configuration, output_dtype, windows, augmentations, mode, num_workers,
                                        result.clips_per_second, result.load_average or float("nan"))
    grouped: Dict[tuple, List[BenchmarkResult]] = {}
    for result in results:
        grouped.setdefault(result.key, []).append(result)
    summaries = []
    for key, rounds in grouped.items():
        baseline = grouped.get(key[:-2] + (1, 1), []) if key[-2:] != (1, 1) else []
        summaries.append(BenchmarkSummary(rounds, baseline))
    return summaries


def format_table(summaries: Sequence[BenchmarkSummary]) -> str:
    """Markdown table with, per mode and worker count, each row's median clips/s (and range over the rounds),
    its ratio to the best PyTorchVideo row (any ``ptv-*`` configuration) and to the best ``ptv-recipe`` row
    (PyTorchVideo's loader as run), both on medians, and for rows with several clips per video the ratio
    to one clip per video (median and range of the per-round ratios). "windows x augs" is
    ``DATA.TRAIN_CROP_NUM_TEMPORAL x AUG.NUM_SAMPLE``."""
    lines = [
        "| loader | output | mode | workers | windows x augs | clips/s median (range) | CPU ms/clip | load avg "
        "| x best PyTorchVideo | x PyTorchVideo recipe | x 1 clip/video (range) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ratio(value: float, reference: List[float]) -> str:
        return f"{value / max(reference):.2f}" if reference else "-"

    for mode in sorted({r.mode for r in summaries}, key=["train", "val", "test"].index):
        for workers in sorted({r.num_workers for r in summaries}):
            group = [r for r in summaries if r.mode == mode and r.num_workers == workers]
            any_ptv = [r.clips_per_second for r in group if r.name.startswith("ptv")]
            recipe = [r.clips_per_second for r in group if r.name.startswith("ptv-recipe")]
            for r in sorted(group, key=lambda r: -r.clips_per_second):
                low, high = r.clips_per_second_range
                speed = f"{r.clips_per_second:.1f}" + (f" ({low:.1f}-{high:.1f})" if len(r.rounds) > 1 else "")
                cpu = f"{r.cpu_ms_per_clip:.0f}" if r.cpu_ms_per_clip is not None else "-"
                loads = r.load_average_range
                load = "-" if loads is None else "-".join(dict.fromkeys(f"{x:.1f}" for x in loads))
                per_clip = "-"
                if r.ratios_to_one_clip:
                    values = r.ratios_to_one_clip
                    per_clip = f"{statistics.median(values):.2f}" + (
                        f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else "")
                lines.append(
                    f"| {r.name} | {r.output_dtype} | {mode} | {workers} | {r.windows}x{r.augmentations} | {speed} "
                    f"| {cpu} "
                    f"| {load} | {ratio(r.clips_per_second, any_ptv)} | {ratio(r.clips_per_second, recipe)} "
                    f"| {per_clip} |"
                )
    return "\n".join(lines)

"""Helpers for the rs_video.data tests: tiny real video files (PyAV, H.264/VP9), broken files, configs.

Import explicitly (``from tests.videos import ...``); nothing here is a fixture.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterable, List, Sequence, Tuple

import torch

from rs_video.benchmark.synthetic import write_audio_only_file, write_synthetic_video
from rs_video.data import VideoDecoder

__all__ = ["BROKEN_KINDS", "data_cfg", "write_video", "write_broken", "write_list", "list_dataset", "CountingDecoder",
           "expected_substitution"]

BROKEN_KINDS = ("missing", "empty", "truncated", "garbage", "audio_only")


def write_video(path, num_frames: int = 24, fps: int = 30, width: int = 64, height: int = 48, **kwargs) -> Path:
    """A small index-coded video (see :mod:`rs_video.benchmark.synthetic`); parents are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_synthetic_video(path, num_frames=num_frames, fps=fps, width=width, height=height, **kwargs)


def write_broken(path, kind: str) -> Path:
    """A broken "video" of ``kind`` (one of :data:`BROKEN_KINDS`; "missing" writes nothing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "missing":
        if path.exists():
            path.unlink()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":  # a download cut in half: the MP4 index (moov, at the end) is gone
        write_video(path, num_frames=30)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "garbage":
        path.write_bytes(random.Random(0).randbytes(4096))  # fixed bytes: random ones can look like a stream
    elif kind == "audio_only":
        write_audio_only_file(path, seconds=0.5)
    else:
        raise ValueError(f"unknown broken kind {kind!r}")
    return path


def write_list(list_file, rows: Iterable[Tuple[str, int]], separator: str = " ") -> Path:
    list_file = Path(list_file)
    list_file.write_text("".join(f"{p}{separator}{label}\n" for p, label in rows))
    return list_file


def list_dataset(root, splits: Sequence[str] = ("train", "val", "test"), num_videos: int = 4, num_frames: int = 24,
                 broken: Sequence[str] = (), **video_kwargs) -> Path:
    """``root/{split}.csv`` path-label lists over ``root/videos/``; ``broken`` kinds are appended per split.

    Video ``i`` has label ``i % 2``; broken entries come after the good ones.
    """
    root = Path(root)
    for split in splits:
        rows: List[Tuple[str, int]] = []
        for index in range(num_videos):
            rel = f"videos/{split}_{index}.mp4"
            write_video(root / rel, num_frames=num_frames, **video_kwargs)
            rows.append((rel, index % 2))
        for kind in broken:
            rel = f"videos/{split}_broken_{kind}.mp4"
            write_broken(root / rel, kind)
            rows.append((rel, 0))
        write_list(root / f"{split}.csv", rows)
    return root


def data_cfg(data_dir, **overrides):
    """The engine's default config with small clips for tests; ``overrides`` like ``DATA__NUM_FRAMES=4``."""
    import rs_video.task  # noqa: F401  (the video keys; spawned test processes do not run conftest.py)
    from rs_image.engine.config import get_cfg

    cfg = get_cfg()
    cfg.TASK = "video"
    cfg.MODEL.NUM_CLASSES = 2
    cfg.DATA.PATH_TO_DATA_DIR = str(data_dir)
    cfg.DATA.MEAN, cfg.DATA.STD = [0.45] * 3, [0.225] * 3  # the Kinetics statistics (SlowFast's)
    cfg.DATA.NUM_FRAMES = 4
    cfg.DATA.SAMPLING_RATE = 2
    cfg.DATA.TRAIN_JITTER_SCALES = [40, 48]
    cfg.DATA.TRAIN_CROP_SIZE = 32
    cfg.DATA.TEST_CROP_SIZE = 40
    cfg.TEST.NUM_ENSEMBLE_VIEWS = 2
    cfg.TEST.NUM_SPATIAL_CROPS = 3
    for key, value in overrides.items():
        node = cfg
        parts = key.split("__")
        for part in parts[:-1]:
            node = getattr(node, part)
        setattr(node, parts[-1], value)
    return cfg


class CountingDecoder:
    """Wraps a decoder and counts opens per (DataLoader worker, video) in shared memory."""

    read = VideoDecoder.read  # the data set reads through read(), which opens through this open()

    def __init__(self, decoder, paths, workers: int = 1) -> None:
        self.decoder, self.name, self.fallback = decoder, decoder.name, decoder.fallback
        self.video_of = {path: index for index, path in enumerate(paths)}
        self.opens = torch.zeros(workers, len(paths), dtype=torch.int64).share_memory_()

    def open(self, path):
        worker = torch.utils.data.get_worker_info()
        self.opens[0 if worker is None else worker.id, self.video_of[path]] += 1
        return self.decoder.open(path)


def expected_substitution(dataset, index, epoch, good):
    """(video used, candidates passed over) for ``index``: the first good one of its seeded candidates."""
    for attempt in range(dataset.policy.num_retries + 1):
        candidate = dataset.policy.candidate(index, epoch, attempt)
        if candidate in good:
            return candidate, attempt
    raise AssertionError("no good candidate")

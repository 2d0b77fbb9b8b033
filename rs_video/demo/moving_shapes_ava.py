""""Moving shapes" for action detection: several shapes per video, each with its own motion class, and their
boxes at every keyframe written in AVA's formats.

Every video is an H.264 MP4 (PyAV) of ``num_shapes`` shapes moving over a cluttered static background for
``seconds`` seconds. Each shape moves in one of four directions (the classes, AVA action ids 1..4:
``translate_left``, ``translate_right``, ``translate_up``, ``translate_down``) at a constant speed for the
whole video; start positions are uniform over where the path fits, so a single frame does not tell the
class: only the motion does. The keyframes are the whole seconds ``1 .. seconds - 1``; at each, every shape's
box (the bounding box of its polygon, normalised) is a row of the annotation CSV. The layout is AVA's
(docs/detection.md), with full-length videos (``AVA.VIDEO_TIME_OFFSET 0``)::

    ROOT/spec.json
    ROOT/videos/<video_id>.mp4                       video ids "train0000", ..., "val0000", ...
    ROOT/annotations/ava_train_v2.2.csv              video_id,timestamp,x1,y1,x2,y2,action_id,person_id
    ROOT/annotations/ava_val_v2.2.csv
    ROOT/annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt
    ROOT/annotations/ava_val_excluded_timestamps_v2.2.csv   (the last keyframe of the first val video)

Generation is seeded per video and resumable (finished files are skipped; files are written atomically).
"""

from __future__ import annotations

import dataclasses
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from rs_image.fileio import atomic_path, atomic_write, remove_stale_temporaries

from .moving_shapes import (
    SHAPES, MovingShapesSpec, SpecJson, _background, _coverage, _luma, _polygon, _shape_colour, _write_mp4,
)

__all__ = [
    "AVA_SHAPE_CLASSES", "MovingShapesAvaSpec", "default_moving_shapes_ava_dir", "generate_moving_shapes_ava",
    "render_moving_shapes_ava_video",
]

AVA_SHAPE_CLASSES: Tuple[str, ...] = ("translate_left", "translate_right", "translate_up", "translate_down")
_DIRECTIONS = {"translate_left": (-1, 0), "translate_right": (1, 0), "translate_up": (0, -1), "translate_down": (0, 1)}
_SPLITS = ("train", "val")


@dataclasses.dataclass(frozen=True)
class MovingShapesAvaSpec(SpecJson):
    """Parameters of a moving-shapes AVA data set (lengths are fractions of the frame side unless stated).

    Args:
        num_train, num_val: videos per split.
        size: frame side in pixels (even).
        fps: frame rate; seconds: video length (keyframes at 1 .. seconds - 1).
        num_shapes: range (inclusive) of moving shapes per video.
        radius: range of a shape's radius (largest vertex distance).
        speed: range of a shape's speed in frame sides per second.
        num_distractors: range (inclusive) of static distractor shapes.
        seed: master seed; a video depends only on (seed, split, index).
    """

    num_train: int = 96
    num_val: int = 32
    size: int = 64
    fps: int = 10
    seconds: int = 5
    num_shapes: Tuple[int, int] = (2, 3)
    radius: Tuple[float, float] = (0.09, 0.13)
    speed: Tuple[float, float] = (0.08, 0.12)
    num_distractors: Tuple[int, int] = (1, 3)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size < 16 or self.size % 2:
            raise ValueError(f"MovingShapesAvaSpec.size must be an even number >= 16, got {self.size}")
        if self.seconds < 2 or self.fps < 1:
            raise ValueError("MovingShapesAvaSpec needs seconds >= 2 and fps >= 1")
        if 2 * self.radius[1] + self.speed[1] * self.seconds > 1.0:
            raise ValueError("MovingShapesAvaSpec: 2 * radius[1] + speed[1] * seconds must be <= 1 (paths must fit)")

    def _frame_spec(self) -> MovingShapesSpec:
        """The classification generator's settings this one shares (background, colours, encoding)."""
        return MovingShapesSpec(num_train=0, num_val=0, num_test=0, size=self.size, num_frames=2, fps=self.fps,
                                num_distractors=self.num_distractors)


def default_moving_shapes_ava_dir(spec: MovingShapesAvaSpec = MovingShapesAvaSpec()) -> Path:
    """``$RS_VIDEO_CACHE/moving_shapes_ava-<fingerprint>`` (``RS_VIDEO_CACHE`` defaults to ``~/.cache/rs_video``)."""
    cache = Path(os.environ.get("RS_VIDEO_CACHE", Path.home() / ".cache" / "rs_video"))
    return cache / f"moving_shapes_ava-{spec.fingerprint()}"


Row = Tuple[int, Tuple[float, float, float, float], int, int]  # timestamp, box, action id, person id


def render_moving_shapes_ava_video(spec: MovingShapesAvaSpec, split: str, index: int) -> Tuple[np.ndarray, List[Row]]:
    """Frames uint8 (T, H, W, 3) of video ``index`` of ``split`` and its annotation rows."""
    rng = np.random.default_rng([spec.seed, 100 + _SPLITS.index(split), index])
    frame_spec = spec._frame_spec()
    size, frames = spec.size, spec.fps * spec.seconds
    background, base = _background(frame_spec, rng)
    t = np.arange(frames) / spec.fps  # seconds
    shapes = []
    for person in range(int(rng.integers(spec.num_shapes[0], spec.num_shapes[1] + 1))):
        action = int(rng.integers(len(AVA_SHAPE_CLASSES)))
        dx, dy = _DIRECTIONS[AVA_SHAPE_CLASSES[action]]
        radius = float(rng.uniform(*spec.radius) * size)
        travel = float(rng.uniform(*spec.speed) * size * spec.seconds)
        # The start is uniform over the positions from which the whole path stays inside the frame.
        lo = np.array([radius + travel * max(-dx, 0), radius + travel * max(-dy, 0)])
        hi = np.array([size - radius - travel * max(dx, 0), size - radius - travel * max(dy, 0)])
        start = rng.uniform(lo, hi)
        cx, cy = start[0] + dx * travel * t / spec.seconds, start[1] + dy * travel * t / spec.seconds
        shape = list(SHAPES)[int(rng.integers(len(SHAPES)))]
        colour = _shape_colour(rng, _luma(base), 90.0, True)
        shapes.append((person, action, shape, radius, float(rng.uniform(0, 360)), cx, cy, colour))
    video = np.empty((frames, size, size, 3), dtype=np.uint8)
    rows: List[Row] = []
    for i in range(frames):
        frame = background.copy()
        keyframe = i % spec.fps == 0 and 0 < i // spec.fps < spec.seconds
        for person, action, shape, radius, angle, cx, cy, colour in shapes:
            polygon = _polygon(shape, (float(cx[i]), float(cy[i])), radius, angle)
            alpha = _coverage(size, polygon)
            frame = frame * (1 - alpha) + colour[None, None, :] * alpha
            if keyframe:
                xs = [x / 4 for x, _ in polygon]  # _polygon works on the 4x supersampled canvas
                ys = [y / 4 for _, y in polygon]
                box = tuple(float(np.clip(v / size, 0.0, 1.0)) for v in (min(xs), min(ys), max(xs), max(ys)))
                rows.append((i // spec.fps, box, action + 1, person))
        frame += rng.normal(0.0, 3.0, size=frame.shape)
        video[i] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return video, rows


def _video_id(split: str, index: int) -> str:
    return f"{split}{index:04d}"


def _make(job: Tuple[MovingShapesAvaSpec, str, int, str]) -> List[Row]:
    spec, split, index, root = job
    video, rows = render_moving_shapes_ava_video(spec, split, index)
    path = Path(root) / "videos" / f"{_video_id(split, index)}.mp4"
    if not path.exists():
        with atomic_path(path) as tmp:
            _write_mp4(tmp, video, spec._frame_spec())
    return rows


def generate_moving_shapes_ava(root: Union[str, Path], spec: MovingShapesAvaSpec = MovingShapesAvaSpec(),
                               workers: Optional[int] = None) -> Path:
    """Write (or complete) the data set of ``spec`` under ``root``; returns ``root``."""
    root = Path(root)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    spec_file = root / "spec.json"
    if spec_file.exists() and json.loads(spec_file.read_text()) != spec.to_json():
        raise ValueError(f"{root} holds another moving-shapes AVA data set ({spec_file}); use another folder")
    remove_stale_temporaries(root / "videos")
    jobs = [(spec, split, i, str(root)) for split in _SPLITS for i in range(getattr(spec, f"num_{split}"))]
    if workers == 0 or len(jobs) < 4:
        results = [_make(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_make, jobs, chunksize=4))
    notes = root / "annotations"
    for split in _SPLITS:
        lines = [
            f"{_video_id(s, i)},{ts:04d},{box[0]:.3f},{box[1]:.3f},{box[2]:.3f},{box[3]:.3f},{action},{person}"
            for (_, s, i, _), rows in zip(jobs, results) if s == split for ts, box, action, person in rows
        ]
        with atomic_write(notes / f"ava_{split}_v2.2.csv") as f:
            f.write("\n".join(lines) + "\n")
    with atomic_write(notes / "ava_action_list_v2.2_for_activitynet_2019.pbtxt") as f:
        f.write("".join(f'item {{\n  name: "{name}"\n  id: {k + 1}\n}}\n' for k, name in enumerate(AVA_SHAPE_CLASSES)))
    with atomic_write(notes / "ava_val_excluded_timestamps_v2.2.csv") as f:
        f.write(f"{_video_id('val', 0)},{spec.seconds - 1:04d}\n" if spec.num_val else "")
    with atomic_write(spec_file) as f:
        json.dump(spec.to_json(), f, indent=2)
    return root

""""Moving shapes": a synthetic but real video classification data set for the demo.

Every sample is an H.264 MP4 file (written with PyAV) of one shape moving over a cluttered, static
background. The eight classes are defined by *motion only*:

============================  ========================================================
``translate_left``            the shape moves right-to-left at constant speed
``translate_right``           left-to-right
``translate_up``              bottom-to-top
``translate_down``            top-to-bottom
``grow``                      the shape scales up geometrically
``shrink``                    the shape scales down geometrically
``rotate_clockwise``          the shape turns clockwise (as seen on screen) about a point one radius
                              from its centre, so it spins and swings round that point
``rotate_counterclockwise``   the same, counter-clockwise
============================  ========================================================

Shape, colour, size, position, orientation, speed and clutter are drawn from the same distributions for
every class, and no shape has a rotational symmetry (so a rotation is always visible). A non-translating
shape sits at a static offset drawn from the spread a translating one covers, and a non-scaling shape has
a static size drawn from the spread a growing one covers; so single frames of all classes share (nearly)
one distribution and a single frame does not tell the class: a model has to compare frames.

The data set is laid out like Kinetics after ``tools/prepare_kinetics.py``::

    ROOT/spec.json                       the generation parameters (another spec in the same ROOT is refused)
    ROOT/classids.json                   {"translate_left": 0, ...}
    ROOT/train.csv, val.csv, test.csv    lines "videos/<split>/<index>.mp4 <label>"
    ROOT/videos/<split>/<index>.mp4

so ``DATA.PATH_TO_DATA_DIR`` and ``DATA.PATH_PREFIX`` are both ``ROOT``. Generation is seeded per video
(a video's frames depend only on the seed, the split and the index; the x264 bitstream is not always
byte-identical between encodes, its decoded frames stay within encoder noise), resumable (finished files are
skipped; a file is written under a temporary name and renamed when complete, so an interrupted write
never counts as done) and parallel.

Example::

    from rs_video.demo.moving_shapes import MovingShapesSpec, generate_moving_shapes
    root = generate_moving_shapes("/tmp/moving_shapes", MovingShapesSpec(num_train=64, num_val=16, num_test=16))

or from a shell: ``python -m rs_video.demo.moving_shapes --out /tmp/moving_shapes``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import av
import numpy as np
from PIL import Image, ImageDraw

from rs_image.fileio import atomic_path, atomic_write, remove_stale_temporaries

__all__ = [
    "MOVING_SHAPES_CLASSES",
    "SHAPES",
    "MovingShapesSpec",
    "default_moving_shapes_dir",
    "generate_moving_shapes",
    "render_moving_shapes_video",
    "main",
]

logger = logging.getLogger(__name__)

MOVING_SHAPES_CLASSES: Tuple[str, ...] = (
    "translate_left",
    "translate_right",
    "translate_up",
    "translate_down",
    "grow",
    "shrink",
    "rotate_clockwise",
    "rotate_counterclockwise",
)

# Unit polygons (vertex radius <= 1, centred on the origin, y pointing down as on screen). None of them
# has a rotational symmetry, so a rotation by any angle below 360 degrees changes the picture.
SHAPES: Dict[str, Tuple[Tuple[float, float], ...]] = {
    "triangle": ((0.0, -1.0), (0.55, 0.75), (-0.55, 0.75)),
    "arrow": ((0.0, -1.0), (0.7, -0.2), (0.25, -0.2), (0.25, 0.95), (-0.25, 0.95), (-0.25, -0.2), (-0.7, -0.2)),
    "ell": ((-0.7, -0.9), (-0.2, -0.9), (-0.2, 0.4), (0.7, 0.4), (0.7, 0.9), (-0.7, 0.9)),
    "tee": (
        (-0.85, -0.85), (0.85, -0.85), (0.85, -0.4), (0.25, -0.4), (0.25, 0.9), (-0.25, 0.9), (-0.25, -0.4),
        (-0.85, -0.4),
    ),
    "kite": ((0.0, -1.0), (0.6, -0.3), (0.0, 0.95), (-0.6, -0.3)),
    "notched_square": (
        (-0.7, -0.7), (0.7, -0.7), (0.7, 0.7), (0.15, 0.7), (0.15, 0.1), (-0.35, 0.1), (-0.35, 0.7), (-0.7, 0.7),
    ),
    "star": tuple(
        # a five-pointed star with one long ray, which breaks its five-fold symmetry
        (r * math.sin(2 * math.pi * k / 10), -r * math.cos(2 * math.pi * k / 10))
        for k, r in enumerate((1.0, 0.3, 0.6, 0.3, 0.6, 0.3, 0.6, 0.3, 0.6, 0.3))
    ),
    "trapezoid": ((-0.35, -0.6), (0.35, -0.6), (0.9, 0.6), (-0.9, 0.6)),
}

_SPLITS = ("train", "val", "test")
_SUPERSAMPLE = 4  # shapes are drawn at 4x and box-filtered down: anti-aliased edges and sub-pixel motion
_TRANSLATIONS = {
    "translate_left": (-1, 0),
    "translate_right": (1, 0),
    "translate_up": (0, -1),
    "translate_down": (0, 1),
}


class SpecJson:
    """JSON round trip and fingerprint of a frozen dataclass of generation parameters (the demo data specs)."""

    def to_json(self) -> Dict[str, object]:
        """A JSON-serialisable dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, data: Dict[str, object]):
        """Inverse of :meth:`to_json`."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def fingerprint(self) -> str:
        """A short stable hash of the spec (names default cache folders)."""
        return hashlib.sha1(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:10]


@dataclasses.dataclass(frozen=True)
class MovingShapesSpec(SpecJson):
    """Parameters of a moving-shapes data set (lengths are fractions of the frame side unless stated).

    Args:
        num_train, num_val, num_test: videos per split; labels cycle through the classes (index % 8), so a
            split is balanced when its size is a multiple of 8.
        size: frame height and width in pixels (even, for yuv420p).
        num_frames: frames per video.
        fps: frame rate written in the file.
        seed: master seed; a video's content depends only on (seed, split, index).
        radius: range of the shape's radius (largest vertex distance) at mid-video; drawn log-uniformly.
        travel: range of the total distance a translating shape covers over the video.
        scale_ratio: range of the total size ratio of a growing/shrinking shape over the video.
        spin: range of the rotation speed in degrees per frame.
        num_distractors: range (inclusive) of the number of static distractor shapes.
        background_texture: amplitude (0..255) of the static low-frequency background texture.
        frame_noise: standard deviation (0..255) of the per-frame pixel noise.
        contrast: least luma difference (0..255) between the moving shape and the background colour.
        shape_brighter: the moving shape is always lighter than the background (hues stay random). This
            tells a local filter which side of an edge is the shape, which makes growing versus shrinking
            and the direction of a rotation learnable by a small network; it is the same for all classes.
        pivot: distance, in shape radii, of the point the rotating classes turn about from the shape's
            centre (0: spin about the centre). An off-centre pivot adds a swing of the whole shape to its
            spin, a motion small networks pick up much faster than a spin in place.
        crf: x264 constant rate factor (lower = higher quality).
        gop: keyframe interval in frames (short GOPs seek fast).
    """

    num_train: int = 480
    num_val: int = 160
    num_test: int = 160
    size: int = 64
    num_frames: int = 32
    fps: int = 30
    seed: int = 0
    radius: Tuple[float, float] = (0.11, 0.2)
    travel: Tuple[float, float] = (0.35, 0.55)
    scale_ratio: Tuple[float, float] = (1.7, 2.4)
    spin: Tuple[float, float] = (4.0, 8.0)
    num_distractors: Tuple[int, int] = (2, 4)
    background_texture: float = 25.0
    frame_noise: float = 3.0
    contrast: float = 90.0
    shape_brighter: bool = True
    pivot: float = 1.0
    crf: int = 18
    gop: int = 16

    def __post_init__(self) -> None:
        for name in ("num_train", "num_val", "num_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"MovingShapesSpec.{name} must be >= 0, got {getattr(self, name)}")
        if self.size < 16 or self.size % 2:
            raise ValueError(f"MovingShapesSpec.size must be an even number >= 16, got {self.size}")
        if self.num_frames < 2:
            raise ValueError(f"MovingShapesSpec.num_frames must be >= 2, got {self.num_frames}")
        for name in ("radius", "travel", "scale_ratio", "spin", "num_distractors"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"MovingShapesSpec.{name} must be (low, high) with low <= high, got {(low, high)}")
        if self.radius[0] <= 0:
            raise ValueError(f"MovingShapesSpec.radius must be > 0, got {self.radius}")
        if self.pivot < 0:
            raise ValueError(f"MovingShapesSpec.pivot must be >= 0, got {self.pivot}")
        if self.radius[1] * (1 + self.pivot) + self.travel[1] > 1.0:
            raise ValueError(
                "MovingShapesSpec: radius[1] * (1 + pivot) + travel[1] must be <= 1 so that a path fits in the "
                f"frame, got {self.radius[1]} * (1 + {self.pivot}) + {self.travel[1]}"
            )
        if self.scale_ratio[0] < 1.0:
            raise ValueError(f"MovingShapesSpec.scale_ratio must be >= 1, got {self.scale_ratio}")

    def num_videos(self, split: str) -> int:
        """Number of videos of ``split`` ("train", "val" or "test")."""
        if split not in _SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {_SPLITS}")
        return getattr(self, f"num_{split}")



def default_moving_shapes_dir(spec: MovingShapesSpec = MovingShapesSpec()) -> Path:
    """The cache folder of ``spec``: ``$RS_VIDEO_CACHE/moving_shapes-<fingerprint>``, where
    ``RS_VIDEO_CACHE`` defaults to ``~/.cache/rs_video``."""
    cache = Path(os.environ.get("RS_VIDEO_CACHE", Path.home() / ".cache" / "rs_video"))
    return cache / f"moving_shapes-{spec.fingerprint()}"


def _label_of(index: int) -> int:
    return index % len(MOVING_SHAPES_CLASSES)


def _polygon(shape: str, centre: Tuple[float, float], radius: float, angle_deg: float) -> List[Tuple[float, float]]:
    """Vertices of ``shape`` scaled by ``radius``, turned clockwise on screen by ``angle_deg`` and moved to
    ``centre`` (pixels), in supersampled canvas coordinates."""
    a = math.radians(angle_deg)
    cos_a, sin_a = math.cos(a), math.sin(a)
    cx, cy = centre
    # With y pointing down, this standard rotation matrix turns clockwise on screen for positive angles.
    return [
        ((cx + (x * cos_a - y * sin_a) * radius) * _SUPERSAMPLE, (cy + (x * sin_a + y * cos_a) * radius) * _SUPERSAMPLE)
        for x, y in SHAPES[shape]
    ]


def _coverage(size: int, polygon: List[Tuple[float, float]]) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] (H, W, 1) of ``polygon`` drawn on a supersampled canvas."""
    canvas = Image.new("L", (size * _SUPERSAMPLE, size * _SUPERSAMPLE), 0)
    ImageDraw.Draw(canvas).polygon(polygon, fill=255)
    small = canvas.reduce(_SUPERSAMPLE)  # box filter: the covered area of each output pixel
    return (np.asarray(small, dtype=np.float32) / 255.0)[:, :, None]


def _luma(rgb: np.ndarray) -> float:
    return float(np.dot(rgb, (0.299, 0.587, 0.114)))


def _shape_colour(rng: np.random.Generator, background_luma: float, contrast: float, brighter: bool) -> np.ndarray:
    """A random RGB colour whose luma is at least ``contrast`` above ``background_luma`` (``brighter``) or
    differs from it by at least ``contrast`` either way (rejection sampling)."""
    for _ in range(1000):
        colour = rng.uniform(0, 255, size=3)
        diff = _luma(colour) - background_luma
        if (diff if brighter else abs(diff)) >= contrast:
            return colour
    return np.full(3, 255.0 if brighter or background_luma < 128 else 0.0)


def _background(spec: MovingShapesSpec, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """The static background (H, W, 3) float: a colour, a smooth texture and distractor shapes; and its
    base colour."""
    size = spec.size
    # A light moving shape needs a darker background to stand out from.
    base = rng.uniform(0, 120, size=3) if spec.shape_brighter else rng.uniform(30, 225, size=3)
    texture = rng.normal(0.0, 1.0, size=(6, 6)).astype(np.float32)
    texture = np.asarray(Image.fromarray(texture, mode="F").resize((size, size), Image.BICUBIC))
    texture = texture / max(float(np.abs(texture).max()), 1e-6) * spec.background_texture
    background = np.clip(base[None, None, :] + texture[:, :, None], 0, 255)
    shape_names = list(SHAPES)
    for _ in range(int(rng.integers(spec.num_distractors[0], spec.num_distractors[1] + 1))):
        alpha = _coverage(
            size,
            _polygon(
                shape_names[int(rng.integers(len(shape_names)))],
                (float(rng.uniform(0, size)), float(rng.uniform(0, size))),
                float(rng.uniform(0.05, 0.12) * size),
                float(rng.uniform(0, 360)),
            ),
        )
        background = background * (1 - alpha) + rng.uniform(0, 255, size=3)[None, None, :] * alpha
    return background, base


def render_moving_shapes_video(spec: MovingShapesSpec, split: str, index: int) -> Tuple[np.ndarray, int]:
    """Render video ``index`` of ``split``: returns (frames uint8 (T, H, W, 3), label)."""
    rng = np.random.default_rng([spec.seed, _SPLITS.index(split), index])
    label = _label_of(index)
    motion = MOVING_SHAPES_CLASSES[label]
    size, frames = spec.size, spec.num_frames
    background, base = _background(spec, rng)

    shape = list(SHAPES)[int(rng.integers(len(SHAPES)))]
    colour = _shape_colour(rng, _luma(base), spec.contrast, spec.shape_brighter)
    radius_mid = float(math.exp(rng.uniform(math.log(spec.radius[0]), math.log(spec.radius[1]))) * size)
    travel = float(rng.uniform(*spec.travel) * size)
    log_ratio = float(math.log(rng.uniform(*spec.scale_ratio)))
    spin = float(rng.uniform(*spec.spin))
    angle0 = float(rng.uniform(0, 360))
    # Static "phases" in [-0.5, 0.5] of the classes that do not translate / scale: where on a moving
    # shape's path (resp. growth) they sit, so that single frames share one distribution.
    phase_pos, phase_scale = float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.5, 0.5))
    static_axis, static_sign = int(rng.integers(2)), (1 if rng.uniform() < 0.5 else -1)
    # The centre at mid-video keeps the whole path inside the frame (the shape at worst half clipped).
    margin = 0.5 * radius_mid * (1 + spec.pivot) + 0.5 * travel
    mid = rng.uniform(margin, size - margin, size=2)

    t = np.linspace(-0.5, 0.5, frames)  # time relative to mid-video, in video lengths
    if motion in _TRANSLATIONS:
        dx, dy = _TRANSLATIONS[motion]
        cx, cy = mid[0] + dx * travel * t, mid[1] + dy * travel * t
    else:
        offset = np.zeros(2)
        offset[static_axis] = static_sign * travel * phase_pos
        cx, cy = np.full(frames, mid[0] + offset[0]), np.full(frames, mid[1] + offset[1])
    if motion == "grow":
        radius = radius_mid * np.exp(log_ratio * t)
    elif motion == "shrink":
        radius = radius_mid * np.exp(-log_ratio * t)
    else:
        radius = np.full(frames, radius_mid * math.exp(log_ratio * phase_scale))
    steps = np.arange(frames) - (frames - 1) / 2
    if motion == "rotate_clockwise":
        angle = angle0 + spin * steps
    elif motion == "rotate_counterclockwise":
        angle = angle0 - spin * steps
    else:
        angle = np.full(frames, angle0)
    if motion.startswith("rotate") and spec.pivot > 0:
        # Turn about a pivot `pivot` radii from the centre (the static position above): the centre
        # swings round it together with the shape, as a rigid body does.
        swing = np.radians(angle)
        cx = cx + spec.pivot * radius * np.sin(swing)
        cy = cy - spec.pivot * radius * np.cos(swing)

    video = np.empty((frames, size, size, 3), dtype=np.uint8)
    for i in range(frames):
        alpha = _coverage(size, _polygon(shape, (float(cx[i]), float(cy[i])), float(radius[i]), float(angle[i])))
        frame = background * (1 - alpha) + colour[None, None, :] * alpha
        frame += rng.normal(0.0, spec.frame_noise, size=frame.shape)
        video[i] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return video, label


def _write_mp4(path: Path, video: np.ndarray, spec: MovingShapesSpec) -> None:
    """Encode ``video`` (T, H, W, 3) uint8 as H.264/yuv420p MP4 at ``path``."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=spec.fps)
        stream.width, stream.height = spec.size, spec.size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(spec.crf), "g": str(spec.gop), "preset": "medium", "threads": "1"}
        # One thread: generation runs one process per core, and single-threaded x264 is reproducible.
        stream.codec_context.thread_count = 1
        for rgb in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _relative_path(split: str, index: int) -> str:
    return f"videos/{split}/{index:05d}.mp4"


def _make_video(job: Tuple[MovingShapesSpec, str, int, str]) -> None:
    """Render and write one video atomically (temporary name in the same folder, then rename)."""
    spec, split, index, root = job
    video, _ = render_moving_shapes_video(spec, split, index)
    with atomic_path(Path(root) / _relative_path(split, index)) as tmp:
        _write_mp4(tmp, video, spec)


def _write_text_atomically(path: Path, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def generate_moving_shapes(
    root: Union[str, os.PathLike, None] = None,
    spec: MovingShapesSpec = MovingShapesSpec(),
    *,
    num_workers: Optional[int] = None,
) -> Path:
    """Create (or complete) the moving-shapes data set of ``spec`` in ``root``; return ``root``.

    Videos already present are kept; missing ones are rendered and written atomically, so an interrupted
    run resumes where it stopped. The CSV files are written last.

    Args:
        root: output folder (created); default :func:`default_moving_shapes_dir` of ``spec``.
        spec: what to generate. ``root/spec.json`` records it; a folder holding another spec is refused.
        num_workers: processes rendering and encoding in parallel (default: the CPU count, at most 8;
            0: in this process). The output does not depend on it.

    Raises:
        ValueError: ``root`` holds a data set generated with a different spec.
    """
    root = Path(root) if root is not None else default_moving_shapes_dir(spec)
    root.mkdir(parents=True, exist_ok=True)
    spec_path = root / "spec.json"
    if spec_path.exists():
        try:
            existing = MovingShapesSpec.from_json(json.loads(spec_path.read_text()))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{spec_path}: not a moving-shapes spec ({err})") from err
        if existing != spec:
            raise ValueError(
                f"{root} already holds a moving-shapes data set with another spec ({spec_path}); "
                "use another folder or delete this one"
            )
    else:
        _write_text_atomically(spec_path, json.dumps(spec.to_json(), indent=2, sort_keys=True) + "\n")

    todo = []
    for split in _SPLITS:
        folder = root / "videos" / split
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)  # partial files of interrupted runs; live writers' ones stay
        todo += [(spec, split, i, str(root)) for i in range(spec.num_videos(split)) if not (root / _relative_path(split, i)).is_file()]
    total = sum(spec.num_videos(s) for s in _SPLITS)
    logger.info("moving shapes: %d/%d videos present in %s, writing %d", total - len(todo), total, root, len(todo))
    if num_workers is None:
        num_workers = min(os.cpu_count() or 1, 8)
    if num_workers > 0 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=num_workers) as pool:
            list(pool.map(_make_video, todo, chunksize=8))
    else:
        for job in todo:
            _make_video(job)

    classids = {name: i for i, name in enumerate(MOVING_SHAPES_CLASSES)}
    _write_text_atomically(root / "classids.json", json.dumps(classids, indent=2) + "\n")
    for split in _SPLITS:
        lines = "".join(f"{_relative_path(split, i)} {_label_of(i)}\n" for i in range(spec.num_videos(split)))
        _write_text_atomically(root / f"{split}.csv", lines)
    logger.info("moving shapes: done (%s)", root)
    return root


def main(argv: Optional[Sequence[str]] = None) -> Path:
    """Command line: ``python -m rs_video.demo.moving_shapes --out DIR [--num-train N ...]``."""
    defaults = MovingShapesSpec()
    parser = argparse.ArgumentParser(
        description="Generate the moving-shapes synthetic video data set (H.264 MP4 + Kinetics-style CSVs).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the spec's cache folder)")
    parser.add_argument("--num-train", type=int, default=defaults.num_train)
    parser.add_argument("--num-val", type=int, default=defaults.num_val)
    parser.add_argument("--num-test", type=int, default=defaults.num_test)
    parser.add_argument("--size", type=int, default=defaults.size, help="frame height and width in pixels")
    parser.add_argument("--num-frames", type=int, default=defaults.num_frames)
    parser.add_argument("--fps", type=int, default=defaults.fps)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=None, help="parallel processes (0: none)")
    args = parser.parse_args(argv)
    spec = dataclasses.replace(
        defaults, num_train=args.num_train, num_val=args.num_val, num_test=args.num_test, size=args.size,
        num_frames=args.num_frames, fps=args.fps, seed=args.seed,
    )
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return generate_moving_shapes(args.out, spec, num_workers=args.workers)


if __name__ == "__main__":
    main()

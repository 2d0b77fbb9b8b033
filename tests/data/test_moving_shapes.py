"""The moving-shapes demo data: real H.264 files, Kinetics-style CSVs, resumable, seeded, motion classes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as F

from rs_image.fileio import TMP_MARK
from rs_video.demo.moving_shapes import (
    MOVING_SHAPES_CLASSES,
    MovingShapesSpec,
    generate_moving_shapes,
    main,
    render_moving_shapes_video,
)

TINY = MovingShapesSpec(num_train=8, num_val=4, num_test=4, size=32, num_frames=8, seed=3)


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])


def _files(root: Path) -> list:
    return sorted((root / "videos").rglob("*.mp4"))


def _assert_encodes_render(path: Path, spec: MovingShapesSpec, split: str, index: int) -> None:
    """The file decodes to the seeded render within x264 noise. Bytes are not compared: this x264 build is not
    reproducible even within one process (about 1 file in 20 re-encodes differently, mean abs diff ~1.7),
    while the encoding error against the render is ~5 and another seed's render differs by ~50."""
    render = render_moving_shapes_video(spec, split, index)[0].astype(np.int16)
    assert np.abs(_decode(path).astype(np.int16) - render).mean() < 10


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return generate_moving_shapes(tmp_path_factory.mktemp("shapes"), TINY, num_workers=0)


def test_files_decode_and_csvs_follow_the_kinetics_layout(tiny_root: Path) -> None:
    assert json.loads((tiny_root / "classids.json").read_text()) == {n: i for i, n in enumerate(MOVING_SHAPES_CLASSES)}
    for split, count in (("train", 8), ("val", 4), ("test", 4)):
        rows = [line.split(" ") for line in (tiny_root / f"{split}.csv").read_text().splitlines()]
        assert len(rows) == count
        for index, (rel, label) in enumerate(rows):
            assert rel == f"videos/{split}/{index:05d}.mp4"
            assert int(label) == index % 8
            frames = _decode(tiny_root / rel)
            assert frames.shape == (8, 32, 32, 3)
    assert sorted(int(r.split()[1]) for r in (tiny_root / "train.csv").read_text().splitlines()) == list(range(8))
    assert not list(tiny_root.rglob(f"*{TMP_MARK}*"))
    assert MovingShapesSpec.from_json(json.loads((tiny_root / "spec.json").read_text())) == TINY


def test_generation_resumes_and_only_writes_missing_files(tmp_path: Path) -> None:
    root = generate_moving_shapes(tmp_path, TINY, num_workers=0)
    before = {p: p.stat().st_mtime_ns for p in _files(root)}
    victim = root / "videos" / "val" / "00002.mp4"
    original = victim.read_bytes()
    victim.unlink()
    # A half-written file left by an interrupted run (its process is gone) never counts as done and is
    # cleaned up.
    stale = victim.parent / f".00002{TMP_MARK}999999999.mp4"
    stale.write_bytes(original[:100])
    generate_moving_shapes(root, TINY, num_workers=0)
    after = {p: p.stat().st_mtime_ns for p in _files(root)}
    assert set(after) == set(before)
    changed = [p for p in after if after[p] != before[p]]
    assert changed == [victim]
    _assert_encodes_render(victim, TINY, "val", 2)  # regenerated from the same seed
    assert not stale.exists()


def test_seeded_and_deterministic(tiny_root: Path, tmp_path: Path) -> None:
    for split, count in (("train", 8), ("val", 4), ("test", 4)):
        for index in range(count):
            first = render_moving_shapes_video(TINY, split, index)
            again = render_moving_shapes_video(TINY, split, index)
            assert np.array_equal(first[0], again[0]) and first[1] == again[1]  # the render is exact per seed
            _assert_encodes_render(tiny_root / f"videos/{split}/{index:05d}.mp4", TINY, split, index)
    # Worker processes write the same videos.
    parallel = generate_moving_shapes(tmp_path / "parallel", TINY, num_workers=2)
    assert [p.relative_to(parallel) for p in _files(parallel)] == [p.relative_to(tiny_root) for p in _files(tiny_root)]
    for path in _files(parallel):
        _assert_encodes_render(path, TINY, path.parent.name, int(path.stem))
    other = render_moving_shapes_video(dataclasses.replace(TINY, seed=4), "train", 0)[0]
    assert not np.array_equal(other, render_moving_shapes_video(TINY, "train", 0)[0])
    with pytest.raises(ValueError, match="another spec"):
        generate_moving_shapes(tiny_root, dataclasses.replace(TINY, seed=4))


def _masks(label_name: str, index: int, pivot: float = 0.0, num_frames: int = 6) -> torch.Tensor:
    """Foreground masks (T, H, W) of a clean video (no clutter, texture or noise) of one class."""
    spec = dataclasses.replace(
        TINY, size=64, num_frames=num_frames, num_distractors=(0, 0), background_texture=0.0, frame_noise=0.0,
        spin=(8.0, 8.0), pivot=pivot,
    )
    index = MOVING_SHAPES_CLASSES.index(label_name) + 8 * index
    video, label = render_moving_shapes_video(spec, "train", index)
    assert MOVING_SHAPES_CLASSES[label] == label_name
    background = video[0, 0, 0].astype(int)  # the shape stays clear of the corners here
    return torch.from_numpy((np.abs(video.astype(int) - background).max(-1) > 30).astype(np.float32))


def _centroid(mask: torch.Tensor) -> tuple:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return float(xs.float().mean()), float(ys.float().mean())


@pytest.mark.parametrize("index", [0, 1, 2])
def test_classes_are_the_motions_they_name(index: int) -> None:
    x0, y0 = _centroid(_masks("translate_right", index)[0])
    x1, y1 = _centroid(_masks("translate_right", index)[-1])
    assert x1 - x0 > 5 and abs(y1 - y0) < 2
    x0, _ = _centroid(_masks("translate_left", index)[0])
    x1, _ = _centroid(_masks("translate_left", index)[-1])
    assert x0 - x1 > 5
    _, y0 = _centroid(_masks("translate_down", index)[0])
    _, y1 = _centroid(_masks("translate_down", index)[-1])
    assert y1 - y0 > 5
    _, y0 = _centroid(_masks("translate_up", index)[0])
    _, y1 = _centroid(_masks("translate_up", index)[-1])
    assert y0 - y1 > 5
    grow, shrink = _masks("grow", index), _masks("shrink", index)
    assert grow[-1].sum() > 1.5 * grow[0].sum() and shrink[0].sum() > 1.5 * shrink[-1].sum()
    for name, screen_sign in (("rotate_clockwise", -1), ("rotate_counterclockwise", 1)):
        masks = _masks(name, index)
        # torchvision's positive angle turns counter-clockwise on screen: the next frame must match the
        # current one turned by 8 degrees in the named direction far better than turned the other way.
        for t in range(len(masks) - 1):
            centre = [round(c) for c in _centroid(masks[t])]
            right = F.rotate(masks[t][None], screen_sign * 8.0, center=centre)[0]
            wrong = F.rotate(masks[t][None], -screen_sign * 8.0, center=centre)[0]
            assert (right - masks[t + 1]).abs().sum() < 0.6 * (wrong - masks[t + 1]).abs().sum()


@pytest.mark.parametrize("index", [0, 1, 2])
def test_rotations_about_an_off_centre_pivot_swing_in_the_named_direction(index: int) -> None:
    # With a pivot the shape's centre travels on a circle round it: the signed area its path sweeps
    # (sum of cross products of successive steps; y points down, so clockwise on screen is positive).
    for name, sign in (("rotate_clockwise", 1), ("rotate_counterclockwise", -1)):
        path = torch.tensor([_centroid(m) for m in _masks(name, index, pivot=1.0, num_frames=12)])
        steps = path.diff(dim=0)
        assert steps.norm(dim=1).mean() > 0.8  # it moves (spin in place would leave the centroid still)
        turning = float((steps[:-1, 0] * steps[1:, 1] - steps[:-1, 1] * steps[1:, 0]).sum())
        assert sign * turning > 1.0


def test_cli_and_spec_validation(tmp_path: Path) -> None:
    root = main(["--out", str(tmp_path), "--num-train", "2", "--num-val", "1", "--num-test", "1",
                 "--size", "16", "--num-frames", "4", "--workers", "0"])
    assert root == tmp_path and len(_files(root)) == 4
    assert _decode(root / "videos" / "train" / "00001.mp4").shape == (4, 16, 16, 3)
    with pytest.raises(ValueError, match="size"):
        MovingShapesSpec(size=33)
    with pytest.raises(ValueError, match="radius"):
        MovingShapesSpec(radius=(0.3, 0.1))
    with pytest.raises(ValueError, match="pivot"):
        MovingShapesSpec(pivot=-1.0)
    with pytest.raises(ValueError, match="fits in the frame"):
        MovingShapesSpec(radius=(0.1, 0.3), pivot=1.0, travel=(0.3, 0.5))

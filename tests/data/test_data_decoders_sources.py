"""Decoders on the files people actually have: phone rotation, 10-bit and full range, AV1; the fallback backend.

Every file shows the index-coded frames of :mod:`rs_video.benchmark.synthetic` upright when played: a
rotated file stores them turned the other way, with the display rotation a phone writes. So reading the
index from the top edge of a decoded frame proves both that it is the requested frame and that it is
upright; the backends must also agree bit for bit.
"""

from __future__ import annotations

import logging
import shutil
import subprocess

import numpy as np
import pytest
import torch

from rs_video.benchmark.synthetic import make_frame, read_frame_index
from rs_video.data import build_video_dataset
from rs_video.data.decoders import VideoDecodeError, available_decoders, create_decoder, display_quarter_turns
from tests.videos import data_cfg, write_broken, write_list, write_video

av = pytest.importorskip("av")

AVAILABLE = [name for name, why in available_decoders().items() if not why]
WIDTH, HEIGHT, FRAMES = 96, 64, 24  # as displayed; decord 0.6 cannot return some widths (48 px), 64 and 96 are fine
INDICES = [0, 5, 11, 12, 20, 23]
AV1_ENCODER = next((c for c in ("libsvtav1", "libaom-av1", "librav1e") if c in av.codecs_available), None)

# name -> writer kwargs (suffix, codec, pix_fmt, rotation), the encoder it needs
SOURCES = {
    "rot90": (dict(suffix=".mp4", rotation=90), "libx264"),
    "rot180": (dict(suffix=".mp4", rotation=180), "libx264"),
    "rot270": (dict(suffix=".mp4", rotation=-90), "libx264"),  # what FFmpeg reads back for 270
    "full_range_yuvj420p": (dict(suffix=".mp4", pix_fmt="yuvj420p"), "libx264"),
    "h264_10bit": (dict(suffix=".mp4", pix_fmt="yuv420p10le"), "libx264"),
    "hevc_10bit_mkv": (dict(suffix=".mkv", codec="libx265", pix_fmt="yuv420p10le"), "libx265"),
    "hevc_10bit_rot90_phone": (dict(suffix=".mp4", codec="libx265", pix_fmt="yuv420p10le", rotation=90), "libx265"),
    "av1_mp4": (dict(suffix=".mp4", codec=AV1_ENCODER), AV1_ENCODER),
}
# decord's own reading of these would differ (10-bit conversion, HEVC frame placement) or fail (AV1):
# they reach decord's caller through the fallback backend.
DECORD_FALLBACK = {"h264_10bit", "hevc_10bit_mkv", "hevc_10bit_rot90_phone", "av1_mp4"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """name -> path, or name -> the reason it could not be written (the test then skips saying why)."""
    root = tmp_path_factory.mktemp("source_videos")
    paths = {}
    for name, (kwargs, encoder) in SOURCES.items():
        kwargs = dict(kwargs)
        if encoder is None:
            paths[name] = "no AV1 encoder in this PyAV build (libsvtav1, libaom-av1, librav1e)"
            continue
        if encoder not in av.codecs_available:
            paths[name] = f"{encoder} is not in this PyAV build"
            continue
        path = root / f"{name}{kwargs.pop('suffix')}"
        try:
            paths[name] = str(write_video(path, num_frames=FRAMES, width=WIDTH, height=HEIGHT, gop=8, **kwargs))
        except av.error.FFmpegError as error:  # e.g. an x264 built without 10-bit support
            paths[name] = f"{encoder} cannot write {kwargs}: {error}"
    return paths


def _source(sources, name) -> str:
    path = sources[name]
    if not path.startswith("/"):
        pytest.skip(path)
    return path


def _read(backend: str, path: str, indices=INDICES):
    """(frames, primary error) through the backend with its fallback, as the data set reads."""
    return create_decoder(backend).read(path, lambda video: video.get_frames(indices))


@pytest.mark.parametrize("name", list(SOURCES))
def test_every_backend_returns_the_upright_frames_a_player_shows(sources, name):
    path = _source(sources, name)
    results = {}
    for backend in AVAILABLE:
        frames, primary_error = _read(backend, path)
        used_fallback = backend == "decord" and name in DECORD_FALLBACK
        assert (primary_error is not None) == used_fallback, (backend, primary_error)
        assert frames.dtype == torch.uint8 and frames.shape == (len(INDICES), 3, HEIGHT, WIDTH), backend
        # The index blocks run along the top edge of the upright frame: sideways or upside-down frames
        # (or the wrong frame) do not read back as the requested index.
        assert [read_frame_index(f) for f in frames] == INDICES, backend
        results[backend] = frames
    reference = results[AVAILABLE[0]]
    for backend, frames in results.items():
        assert torch.equal(frames, reference), f"{backend} differs from {AVAILABLE[0]} on {name}"
    # The whole picture is the source picture (not only the index row), within lossy coding.
    source = torch.from_numpy(np.stack([make_frame(i, WIDTH, HEIGHT) for i in INDICES])).permute(0, 3, 1, 2)
    assert (reference.float() - source.float()).abs().mean() < 12


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg on PATH to play the file with")
@pytest.mark.parametrize("name", ["rot90", "rot180", "rot270"])
def test_rotation_sign_is_what_the_ffmpeg_player_shows(sources, name):
    path = _source(sources, name)
    # ffmpeg applies the display matrix by default (-autorotate), as players do.
    raw = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", path, "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    played = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(HEIGHT, WIDTH, 3).permute(2, 0, 1)
    for backend in AVAILABLE:
        frames, _ = _read(backend, path, [0])
        assert torch.equal(frames[0], played), backend


def test_display_quarter_turns_follow_ffmpegs_counter_clockwise_angle():
    turns = {0: 0, 90: 1, -90: 3, 270: 3, 180: 2, -180: 2, 89.6: 1, -270: 1, 360: 0}
    assert {degrees: display_quarter_turns(degrees) for degrees in turns} == turns


def test_pyav_alone_turns_rotated_frames_upright_and_keeps_their_memory_channels_last(sources):
    path = _source(sources, "rot90")
    with create_decoder("pyav", fallback=False).open(path) as video:
        frames = video.get_frames([3, 3, 1])  # repeats and any order after the turn
    assert [read_frame_index(f) for f in frames] == [3, 3, 1]
    assert frames.permute(0, 2, 3, 1).is_contiguous()  # (N, H, W, C) memory, as the other backends give


@pytest.mark.skipif("decord" not in AVAILABLE, reason="decord is not installed")
def test_decord_cannot_decode_av1_and_read_takes_the_fallback_every_time(sources, caplog):
    path = _source(sources, "av1_mp4")
    with pytest.raises(VideoDecodeError) as info:
        with create_decoder("decord", fallback=False).open(path) as video:
            video.get_frames([0])
    assert info.value.reason == "decode error"
    decoder = create_decoder("decord")
    assert decoder.fallback is not None and decoder.fallback.name == AVAILABLE[0]
    with caplog.at_level(logging.INFO, logger="rs_video.data.decoders"):
        first, error = decoder.read(path, lambda video: video.get_frames(INDICES))
        again, error_again = decoder.read(path, lambda video: video.get_frames(INDICES))
    assert error is not None and error.reason == error_again.reason == "decode error"
    assert torch.equal(first, again) and [read_frame_index(f) for f in first] == INDICES
    logged = [r.getMessage() for r in caplog.records if "cannot decode it" in r.getMessage()]
    assert len(logged) <= 1 and all(f"with {decoder.fallback.name}: decord" in m for m in logged)


def test_no_fallback_for_missing_files_and_both_errors_named_when_the_fallback_fails_too(tmp_path, monkeypatch):
    decoder = create_decoder(AVAILABLE[-1])
    assert decoder.fallback is not None
    garbage = str(write_broken(tmp_path / "garbage.mp4", "garbage"))
    with pytest.raises(VideoDecodeError) as info:
        decoder.read(garbage, lambda video: video.get_frames([0]))
    assert info.value.reason == "unreadable" and f"{decoder.fallback.name}: unreadable" in info.value.detail
    monkeypatch.setattr(decoder.fallback, "open", lambda path: pytest.fail("a missing file was retried"))
    with pytest.raises(VideoDecodeError, match="missing"):
        decoder.read(str(tmp_path / "absent.mp4"), lambda video: video.get_frames([0]))
    assert create_decoder(AVAILABLE[0], fallback=False).fallback is None


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory, sources):
    """Three H.264 videos and one AV1 video (the last) in train/val/test lists."""
    av1 = _source(sources, "av1_mp4")
    root = tmp_path_factory.mktemp("mixed")
    rows = [(str(write_video(root / f"h264_{i}.mp4", num_frames=FRAMES, width=WIDTH, height=HEIGHT)), i % 2)
            for i in range(3)]
    rows.append((av1, 1))
    for split in ("train", "val", "test"):
        write_list(root / f"{split}.csv", rows)
    return root


@pytest.mark.skipif("decord" not in AVAILABLE, reason="decord is not installed")
def test_data_set_counts_fallback_reads_apart_from_failures(mixed_root):
    cfg = data_cfg(mixed_root, DATA__DECODER="decord", DATA__TRAIN_JITTER_SCALES=[64, 72], DATA__TEST_CROP_SIZE=48)
    train = build_video_dataset(cfg, "train")
    items = [train[i] for i in range(len(train))]
    assert [(it["failed_reads"], it["fallback_reads"]) for it in items] == [(0, 0), (0, 0), (0, 0), (0, 1)]
    again = train[3]  # the sample's seeded RNG scope: the same file takes the same path to the same clip
    assert again["fallback_reads"] == 1 and torch.equal(again["video"], items[3]["video"])
    report = train.failure_report()
    assert (report.num_failed, report.num_fallback) == (0, 1)
    assert str(report).endswith("; 1 read by a fallback decoder")
    test = build_video_dataset(cfg, "test")
    test_items = [test[i] for i in range(len(test))]
    assert not any(it["failed"] for it in test_items)
    # Every view of the AV1 video came from the fallback, counted once per video (on view 0).
    assert sum(it["fallback_reads"] for it in test_items) == 1
    assert [it["video_index"] for it in test_items if it["fallback_reads"]] == [3]
    assert test.failure_report().num_fallback == 1


@pytest.mark.skipif("decord" not in AVAILABLE, reason="decord is not installed")
def test_epoch_and_test_summaries_report_fallback_reads(mixed_root, tmp_path, caplog):
    import json

    from rs_image.engine import Trainer, load_config, run_test
    from tests.helpers import tiny_opts

    cfg = load_config(None, tiny_opts(tmp_path, "video", "DATA.PATH_TO_DATA_DIR", str(mixed_root), "DATA.DECODER",
                                      "decord", "DATA.TRAIN_JITTER_SCALES", "[64, 72]", "TRAIN.EVAL_PERIOD", "0",
                                      "TRAIN.MIXED_PRECISION", "none", "TEST.NUM_ENSEMBLE_VIEWS", "1"))
    with caplog.at_level(logging.INFO, logger="rs_image"):
        Trainer(cfg).train()
        summary = run_test(cfg)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["type"] == "train_epoch"]
    assert [(r["failed_reads"], r["fallback_reads"]) for r in epochs] == [(0, 1)]  # the AV1 video, once an epoch
    assert (summary.num_failed, summary.extra["fallback_reads"]) == (0, 1)
    messages = [r.getMessage() for r in caplog.records]
    assert "epoch 1: 1 samples were read by the fallback decoder" in " ".join(messages)
    assert any(m.startswith("1 test samples were read by the fallback decoder") for m in messages)


def test_only_installed_backends_are_fallbacks(monkeypatch):
    from rs_video.data import decoders as dec

    for name in ("pyav", "decord"):
        monkeypatch.setattr(dec.DECODERS[name], "is_available", classmethod(lambda cls: (False, "ImportError")))
    assert create_decoder("torchcodec").fallback is None
    monkeypatch.setattr(dec.DECODERS["decord"], "is_available", classmethod(lambda cls: (True, "")))
    assert create_decoder("torchcodec").fallback.name == "decord"
    assert create_decoder("decord").fallback.name == "torchcodec"

"""Decoders: identical frames from torchcodec, decord and PyAV; seeking; metadata; broken files; fallback."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from rs_video.data import decoders as dec
from rs_video.data.decoders import VideoDecodeError, available_decoders, create_decoder
from rs_video.benchmark.synthetic import read_frame_index
from tests.videos import write_broken, write_video

AVAILABLE = [name for name, why in available_decoders().items() if not why]

# name -> (writer kwargs, frames, fps)
FILES = {
    "mp4_gop12_bframes": (dict(suffix=".mp4", num_frames=60, fps=30, gop=12, bframes=3), 60, 30.0),
    "mp4_gop250": (dict(suffix=".mp4", num_frames=90, fps=30, gop=250, bframes=3), 90, 30.0),
    "mp4_no_bframes_audio": (dict(suffix=".mp4", num_frames=40, fps=30, gop=8, bframes=0, audio=True), 40, 30.0),
    "mp4_25fps_portrait": (dict(suffix=".mp4", num_frames=50, fps=25, gop=10, width=56, height=64), 50, 25.0),
    "mkv_25fps": (dict(suffix=".mkv", num_frames=45, fps=25, gop=15), 45, 25.0),
    "webm_vp9_24fps": (dict(suffix=".webm", num_frames=36, fps=24, gop=12, audio=True), 36, 24.0),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoder_videos")
    paths = {}
    for name, (kwargs, _, _) in FILES.items():
        kwargs = dict(kwargs)
        suffix = kwargs.pop("suffix")
        paths[name] = str(write_video(root / f"{name}{suffix}", **kwargs))
    return paths


def test_all_three_backends_are_installed_here():
    # CI installs all three; a missing one would silently shrink the identity tests below.
    assert AVAILABLE == ["torchcodec", "pyav", "decord"], available_decoders()


@pytest.mark.parametrize("name", list(FILES))
def test_backends_return_identical_frames_at_the_requested_indices(files, name):
    _, num_frames, fps = FILES[name]
    indices = [0, 1, num_frames // 2, num_frames // 2 + 3, num_frames - 2, num_frames - 1]
    results = {}
    for backend in AVAILABLE:
        with create_decoder(backend).open(files[name]) as video:
            assert video.num_frames == num_frames, backend
            assert video.fps == pytest.approx(fps, abs=0.01), backend
            frames = video.get_frames(indices)
        assert frames.dtype == torch.uint8 and frames.shape[:2] == (len(indices), 3), backend
        # The pixels say which source frame this is: every backend maps index -> frame correctly.
        assert [read_frame_index(f) for f in frames] == indices, backend
        results[backend] = frames
    reference = results[AVAILABLE[0]]
    for backend, frames in results.items():
        assert torch.equal(frames, reference), f"{backend} differs from {AVAILABLE[0]} on {name}"


@pytest.mark.parametrize("backend", AVAILABLE)
def test_any_order_repeats_and_past_the_end(files, backend):
    with create_decoder(backend).open(files["mp4_gop12_bframes"]) as video:
        frames = video.get_frames([30, 5, 5, 59, 70, 200])
    assert [read_frame_index(f) for f in frames] == [30, 5, 5, 59, 59, 59]


@pytest.mark.parametrize("backend", AVAILABLE)
def test_threads_setting_gives_the_same_frames(files, backend):
    indices = list(range(20, 52, 2))
    with create_decoder(backend, num_threads=1).open(files["mp4_gop250"]) as video:
        single = video.get_frames(indices)
    with create_decoder(backend, num_threads=2).open(files["mp4_gop250"]) as video:
        threaded = video.get_frames(indices)
    assert torch.equal(single, threaded)


def test_pyav_seeks_to_the_keyframe_before_the_first_needed_frame(tmp_path):
    path = write_video(tmp_path / "long_gop12.mp4", num_frames=240, gop=12, bframes=0)
    with create_decoder("pyav").open(str(path)) as video:
        frames = video.get_frames(list(range(200, 211)))
        # Keyframe at 192, so 192..210 at most are decoded, not the 200 frames before.
        assert 11 <= video.frames_decoded <= 19
    assert [read_frame_index(f) for f in frames] == list(range(200, 211))


def test_pyav_seeks_again_across_a_long_gap(tmp_path):
    path = str(write_video(tmp_path / "long_gop30.mp4", num_frames=300, gop=30, bframes=0))
    indices = [0, 1, 2, 280, 290]  # e.g. the first and last test windows of a long video
    with create_decoder("pyav").open(path) as video:
        frames = video.get_frames(indices)
        # 0..2, then a new seek to the keyframe at 270 and 270..290: not the ~290 frames in between.
        assert video.frames_decoded <= 30
    assert [read_frame_index(f) for f in frames] == indices
    with create_decoder("torchcodec").open(path) as video:
        assert torch.equal(video.get_frames(indices), frames)


def test_pyav_skips_unneeded_non_reference_frames_without_changing_pixels(tmp_path):
    path = str(write_video(tmp_path / "bframes.mp4", num_frames=120, gop=250, bframes=3))
    indices = list(range(90, 120, 2))
    with create_decoder("pyav").open(path) as video:
        fast = video.get_frames(indices)
        decoded_with_skipping = video.frames_decoded
    with create_decoder("pyav").open(path) as video:
        video._skip_unneeded = False
        full = video.get_frames(indices)
        decoded_without = video.frames_decoded
    assert torch.equal(fast, full)
    assert decoded_with_skipping < decoded_without


EXPECTED_REASON = {
    "missing": "missing",
    "empty": "empty file",
    "truncated": "unreadable",  # cut before the MP4 index
    "garbage": "unreadable",
    "audio_only": "no video stream",
}


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("kind", list(EXPECTED_REASON))
def test_broken_files_raise_with_a_reason(tmp_path, backend, kind):
    path = write_broken(tmp_path / f"{kind}.mp4", kind)
    with pytest.raises(VideoDecodeError) as info:
        with create_decoder(backend).open(str(path)) as video:
            video.get_frames([0])
    assert info.value.reason == EXPECTED_REASON[kind]
    assert str(path) in str(info.value)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_file_cut_after_its_index_is_truncated_not_silently_short(tmp_path, backend):
    path = write_video(tmp_path / "faststart.mp4", num_frames=60, gop=10, faststart=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(VideoDecodeError) as info:
        with create_decoder(backend).open(str(path)) as video:
            video.get_frames(list(range(0, 60, 3)))
    assert info.value.reason in ("truncated", "decode error")


def test_decord_frame_width_bug_is_reported_as_a_decode_error(tmp_path):
    # decord 0.6 cannot copy out frames of some widths (48 px here); the file must count as a failure with
    # decord's message, never crash the worker. torchcodec and PyAV read it fine.
    path = str(write_video(tmp_path / "w48.mp4", num_frames=10, width=48, height=64))
    with pytest.raises(VideoDecodeError, match="DECORDArrayCopyFromTo") as info:
        with create_decoder("decord").open(path) as video:
            video.get_frames([0])
    assert info.value.reason == "decode error"
    for backend in ("torchcodec", "pyav"):
        with create_decoder(backend).open(path) as video:
            assert read_frame_index(video.get_frames([7])[0]) == 7


def test_decode_error_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(VideoDecodeError("/x.mp4", "truncated", "detail")))
    assert (error.path, error.reason, error.detail) == ("/x.mp4", "truncated", "detail")


def test_auto_prefers_torchcodec_and_logs_the_choice_once(caplog):
    dec._logged_choices.clear()
    with caplog.at_level(logging.INFO, logger="rs_video.data.decoders"):
        first = create_decoder("auto", num_threads=1)
        create_decoder("auto", num_threads=1)
    assert first.name == "torchcodec"
    lines = [r.getMessage() for r in caplog.records if "video decoder" in r.getMessage()]
    assert len(lines) == 1 and "torchcodec" in lines[0] and "\n" not in lines[0]


def test_fallback_when_torchcodec_cannot_load(monkeypatch, caplog):
    dec._logged_choices.clear()
    monkeypatch.setattr(dec.TorchCodecDecoder, "is_available", classmethod(lambda cls: (False, "OSError: libavutil")))
    with caplog.at_level(logging.INFO, logger="rs_video.data.decoders"):
        auto = create_decoder("auto")
        named = create_decoder("torchcodec")
    assert auto.name == "pyav" and named.name == "pyav"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "torchcodec (OSError: libavutil)" in warnings[0].getMessage()


def test_no_backend_at_all_and_unknown_names(monkeypatch):
    with pytest.raises(ValueError, match="DATA.DECODER"):
        create_decoder("torchvision")
    for cls in dec.DECODERS.values():
        monkeypatch.setattr(cls, "is_available", classmethod(lambda c: (False, "ImportError")))
    with pytest.raises(RuntimeError, match="no video decoder"):
        create_decoder("auto")


def test_frame_index_code_round_trips():
    from rs_video.benchmark.synthetic import make_frame

    for index in (0, 1, 77, 511, 1023):
        assert read_frame_index(make_frame(index, 64, 48)) == index
        assert read_frame_index(np.ascontiguousarray(make_frame(index, 64, 48).transpose(2, 0, 1))) == index

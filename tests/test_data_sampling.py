"""Clip sampling: T x tau at TARGET_FPS by timestamps, train/val/test placement, short videos."""

from __future__ import annotations

import pytest
import torch

from rs_video.data import ClipSampler, create_decoder
from rs_video.benchmark.synthetic import read_frame_index
from tests.videos import write_video


def test_stride_at_the_target_rate_is_tau():
    sampler = ClipSampler(num_frames=8, sampling_rate=8, target_fps=30)
    assert sampler.offsets(30.0) == [0, 8, 16, 24, 32, 40, 48, 56]
    assert sampler.duration_seconds == pytest.approx(64 / 30)


@pytest.mark.parametrize("fps", [24.0, 25.0, 29.97, 50.0, 60.0])
def test_other_native_rates_pick_frames_by_timestamp(fps):
    sampler = ClipSampler(num_frames=32, sampling_rate=2, target_fps=30)
    offsets = sampler.offsets(fps)
    # Frame k is the one on screen at k * tau / target_fps seconds after the window start.
    for k, offset in enumerate(offsets):
        seconds = k * 2 / 30
        assert offset / fps <= seconds + 1e-6 < (offset + 1) / fps
    assert offsets == sorted(offsets) and len(offsets) == 32


def test_exact_multiples_do_not_round_down():
    # 25/30 * 6 = 5 exactly; floating point must not turn it into 4.999 -> 4.
    assert ClipSampler(4, 6, 30).offsets(25.0) == [0, 5, 10, 15]


def test_train_start_covers_every_valid_start_and_nothing_else():
    sampler = ClipSampler(4, 2, 30)  # window spans 7 frames
    generator = torch.Generator().manual_seed(0)
    starts = {sampler.start("train", 20, 30.0, generator=generator) for _ in range(400)}
    assert starts == set(range(0, 14))  # last start 13: frames 13, 15, 17, 19
    assert sampler.last_start(20, 30.0) == 13


def test_val_is_the_centre_window():
    sampler = ClipSampler(4, 2, 30)
    assert sampler.sample("val", 20, 30.0) == [6, 8, 10, 12]


def test_test_views_span_first_to_last_window_uniformly():
    sampler = ClipSampler(4, 2, 30)
    starts = [sampler.start("test", 100, 30.0, view=i, num_views=5) for i in range(5)]
    last = sampler.last_start(100, 30.0)
    assert starts == [round(last * i / 4) for i in range(5)]
    assert starts[0] == 0 and starts[-1] == last
    assert sampler.indices(starts[-1], 100, 30.0)[-1] == 99  # the last view ends on the last frame
    assert sampler.start("test", 100, 30.0, view=0, num_views=1) == last // 2


@pytest.mark.parametrize(
    "policy, expected", [("repeat_last", [0, 2, 4, 4, 4, 4]), ("loop", [0, 2, 4, 1, 3, 0])]
)
def test_short_videos_follow_the_short_clip_policy(policy, expected):
    sampler = ClipSampler(6, 2, 30, short_clip_policy=policy)
    for mode in ("train", "val", "test"):
        assert sampler.sample(mode, 5, 30.0, view=1, num_views=3) == expected


def test_one_frame_video_and_bad_arguments():
    assert ClipSampler(4, 4, 30).sample("train", 1, 30.0) == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="SHORT_CLIP_POLICY"):
        ClipSampler(4, 2, 30, short_clip_policy="pad")
    with pytest.raises(ValueError):
        ClipSampler(0, 2, 30)
    with pytest.raises(ValueError, match="mode"):
        ClipSampler(4, 2, 30).start("eval", 100, 30.0)


def test_sampled_frames_are_the_decoded_frames_at_25_fps(tmp_path):
    # End to end: the frames a decoder returns for a 25 fps file are the timestamp-picked ones.
    path = str(write_video(tmp_path / "v25.mp4", num_frames=75, fps=25, gop=10))
    sampler = ClipSampler(8, 3, 30)
    with create_decoder("pyav").open(path) as video:
        start = sampler.start("test", video.num_frames, video.fps, view=2, num_views=3)
        indices = sampler.indices(start, video.num_frames, video.fps)
        frames = video.get_frames(indices)
    assert indices[-1] == 74  # last view ends at the end
    assert [read_frame_index(f) for f in frames] == indices
    assert indices == [start + int(k * 3 * 25 / 30 + 1e-6) for k in range(8)]

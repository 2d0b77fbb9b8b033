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


# ------------------------------------------------------------------------------- uniform (segment) sampling
# 30 frames, T = 8: size = 29 / 8 = 3.625, boundaries round(3.625 i) = 0 4 7 11 14 (14.5 rounds to even) 18 22 25 29.
SEGMENTS_30 = [(0, 4), (4, 7), (7, 11), (11, 14), (14, 18), (18, 22), (22, 25), (25, 29)]
CENTRES_30 = [2, 5, 9, 12, 16, 20, 23, 27]  # (a + b) // 2
VIEWS_30 = [  # a + (b - a) * (2v + 1) // 6 for v = 0, 1, 2
    [0, 4, 7, 11, 14, 18, 22, 25],
    [2, 5, 9, 12, 16, 20, 23, 27],
    [3, 6, 10, 13, 17, 21, 24, 28],
]
# 5 frames, T = 8: size = 0.5, boundaries 0 0 1 2 2 2 3 4 4: frames repeat in order.
SEGMENTS_5 = [(0, 0), (0, 1), (1, 2), (2, 2), (2, 2), (2, 3), (3, 4), (4, 4)]
CENTRES_5 = [0, 0, 1, 2, 2, 2, 3, 4]


def uniform(**kwargs) -> ClipSampler:
    return ClipSampler(8, 4, 30, sampling_mode="uniform", **kwargs)


def test_uniform_segments_centres_and_test_views_are_the_hand_computed_ones():
    sampler = uniform()
    assert sampler.segments(30) == SEGMENTS_30 and sampler.segments(5) == SEGMENTS_5
    assert sampler.sample("val", 30, 30.0) == CENTRES_30
    assert [sampler.sample("test", 30, 30.0, view=v, num_views=3) for v in range(3)] == VIEWS_30
    assert sampler.sample("test", 30, 30.0, view=0, num_views=1) == CENTRES_30  # one view: the centre
    assert sampler.sample("val", 5, 30.0) == CENTRES_5
    assert sampler.sample("val", 1, 30.0) == [0] * 8
    # Neither the stride, the frame rate nor the short-clip policy moves a segment frame.
    assert ClipSampler(8, 2, 30, "loop", "uniform").sample("val", 30, 25.0) == CENTRES_30
    assert repr(sampler) == "ClipSampler(8 uniform segments per video)"
    with pytest.raises(ValueError, match="no fixed duration"):
        sampler.duration_seconds
    with pytest.raises(ValueError, match="SAMPLING_MODE"):
        ClipSampler(8, 4, 30, sampling_mode="tsn")


@pytest.mark.parametrize("num_frames, segments", [(30, SEGMENTS_30), (5, SEGMENTS_5)])
def test_uniform_train_draws_every_frame_of_each_segment_independently(num_frames, segments):
    sampler = uniform()
    generator = torch.Generator().manual_seed(0)
    draws = [sampler.sample("train", num_frames, 30.0, generator=generator) for _ in range(300)]
    for i, (a, b) in enumerate(segments):
        assert {d[i] for d in draws} == set(range(a, b + 1)), i
    if num_frames == 30:  # independent per segment: the offsets within segments 0 and 1 are not tied
        assert len({(d[0], d[1]) for d in draws}) == 5 * 4


@pytest.mark.parametrize("num_frames, fps, views", [(30, 30, VIEWS_30), (5, 25, [CENTRES_5] * 3)])
def test_uniform_indices_are_the_decoded_frames_of_a_real_file(tmp_path, num_frames, fps, views):
    from rs_video.data import build_video_dataset
    from tests.videos import data_cfg, write_list

    write_video(tmp_path / "v.mp4", num_frames=num_frames, fps=fps, gop=8)
    for split in ("val", "test"):
        write_list(tmp_path / f"{split}.csv", [("v.mp4", 0)])
    cfg = data_cfg(tmp_path, DATA__SAMPLING_MODE="uniform", DATA__NUM_FRAMES=8, TEST__NUM_ENSEMBLE_VIEWS=3)
    val, test = build_video_dataset(cfg, "val"), build_video_dataset(cfg, "test")
    assert [read_frame_index(f) for f in val._decode(0, 0)] == views[1]  # val = the centres
    for view in range(3):  # each view on its own, and the union decode the test items are cut from
        assert [read_frame_index(f) for f in test._decode(0, view)] == views[view]
    decoded = test._decode_windows(0, 3)
    union = [read_frame_index(f) for f in decoded.frames]
    assert union == sorted({i for v in views for i in v})
    for view, rows in enumerate(decoded.positions):
        assert [union[r] for r in (range(len(union)) if rows is None else rows.tolist())] == views[view]

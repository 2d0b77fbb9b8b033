"""Which frames a clip is made of.

A clip is ``num_frames`` (T, SlowFast's ``DATA.NUM_FRAMES``) frames spaced ``sampling_rate`` (tau,
``DATA.SAMPLING_RATE``) frames apart *at* ``target_fps`` (``DATA.TARGET_FPS``, 30). So a clip covers
``T * tau / target_fps`` seconds of the video whatever its native frame rate, and frame ``k`` of a clip that
starts at native frame ``s`` is the frame on screen at time ``s / fps + k * tau / target_fps``:

    index_k = s + floor(k * tau * fps / target_fps)

where ``fps`` is the video's native (header) rate. At ``fps == target_fps`` this is ``s + k * tau``
exactly; a 25 fps video with 32x2 at 30 takes every 1.67th native frame (2.56 s either way); a 60 fps one
every 4th. Nothing is resampled or interpolated: frames are picked by timestamp.

Window placement (``s``), with ``last_start = num_video_frames - 1 - floor((T - 1) * tau * fps / target_fps)``
the last start whose final frame is still inside the video:

* train: ``s`` uniform in ``[0, last_start]`` (one random window per video and epoch);
* val: the centre window, ``s = last_start // 2``;
* test: ``NUM_ENSEMBLE_VIEWS`` windows spaced uniformly from the first to the last possible start,
  ``s_i = round(last_start * i / (n - 1))`` for ``i = 0..n-1`` (so the first view starts at frame 0 and the
  last one ends on the last frame); a single view is the centre window, as in val.

A video shorter than the window (``last_start < 0``) starts at 0, and the indices past its end follow
``DATA.SHORT_CLIP_POLICY``: ``"repeat_last"`` (default) repeats the last frame, ``"loop"`` wraps around to
the first frame. Either way the clip has T frames and nothing crashes.

That is ``DATA.SAMPLING_MODE "dense"`` (the default; SlowFast's Kinetics sampling). ``"uniform"`` is segment
(TSN) sampling, the usual choice for Something-Something and short clips: the whole video of ``N`` frames is
cut into T segments and one frame is taken from each, whatever ``SAMPLING_RATE`` and ``TARGET_FPS`` are.
The segments are SlowFast's SSv2 rule (``slowfast/datasets/ssv2.py``), which mmaction2's ``UniformSample``
(``UniformSampleFrames`` with ``out_of_bound_opt="repeat_frame"``) copies: with ``size = (N - 1) / T``,
segment ``i`` is the frames ``[a_i, b_i]`` (both ends included, so neighbours share a boundary frame),
``a_i = round(size * i)``, ``b_i = round(size * (i + 1))`` (Python's and NumPy's round half to even):

* train: a uniformly random frame of each segment, drawn independently per segment;
* val: the centre frame ``(a_i + b_i) // 2`` of each segment (SlowFast, mmaction2 in test mode);
* test: view ``v`` of ``n`` takes ``a_i + floor((b_i - a_i) * (2v + 1) / (2n))``, the frames at fractions
  ``1/(2n), 3/(2n), ...`` of each segment, so the views shift the offsets evenly through the segments and
  a single view is the centre frame, as in val.

A video with fewer than T frames needs no padding rule: its segments are shorter than a frame, so frames
repeat in order (5 frames at T = 8 give ``[0, 0, 1, 2, 2, 2, 3, 4]`` in val), which is mmaction2's
``repeat_frame`` behaviour; ``SHORT_CLIP_POLICY`` does not apply.
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch

__all__ = ["SAMPLING_MODES", "SHORT_CLIP_POLICIES", "ClipSampler"]

SAMPLING_MODES = ("dense", "uniform")
SHORT_CLIP_POLICIES = ("repeat_last", "loop")


class ClipSampler:
    """Computes native frame indices for train, val and test clips (rules in the module docstring).

    Args:
        num_frames: frames per clip (T).
        sampling_rate: stride between clip frames at ``target_fps`` (tau).
        target_fps: frame rate the stride is defined at.
        short_clip_policy: "repeat_last" or "loop" (dense mode).
        sampling_mode: "dense" (a window of T frames tau apart) or "uniform" (one frame per segment).
    """

    def __init__(
        self, num_frames: int, sampling_rate: int, target_fps: float = 30.0, short_clip_policy: str = "repeat_last",
        sampling_mode: str = "dense",
    ) -> None:
        if num_frames < 1 or sampling_rate < 1 or target_fps <= 0:
            raise ValueError(
                f"need num_frames >= 1, sampling_rate >= 1, target_fps > 0; got {num_frames}, {sampling_rate}, "
                f"{target_fps}"
            )
        if short_clip_policy not in SHORT_CLIP_POLICIES:
            raise ValueError(f"DATA.SHORT_CLIP_POLICY must be one of {SHORT_CLIP_POLICIES}, got {short_clip_policy!r}")
        if sampling_mode not in SAMPLING_MODES:
            raise ValueError(f"DATA.SAMPLING_MODE must be one of {SAMPLING_MODES}, got {sampling_mode!r}")
        self.num_frames = int(num_frames)
        self.sampling_rate = int(sampling_rate)
        self.target_fps = float(target_fps)
        self.short_clip_policy = short_clip_policy
        self.sampling_mode = sampling_mode

    @property
    def duration_seconds(self) -> float:
        """Seconds a dense clip covers: ``T * tau / target_fps`` (uniform clips span the whole video)."""
        if self.sampling_mode != "dense":
            raise ValueError("a uniform (segment) clip spans the whole video; it has no fixed duration")
        return self.num_frames * self.sampling_rate / self.target_fps

    def offsets(self, video_fps: float) -> List[int]:
        """Native-frame offsets of the T clip frames from the window start."""
        step = self.sampling_rate * (video_fps if video_fps > 0 else self.target_fps) / self.target_fps
        # The epsilon keeps exact multiples (e.g. 25/30 * 6 = 5.0) from rounding down to 4.
        return [int(math.floor(k * step + 1e-6)) for k in range(self.num_frames)]

    def last_start(self, num_video_frames: int, video_fps: float) -> int:
        """Last start frame whose window fits in the video (negative when the video is too short)."""
        return num_video_frames - 1 - self.offsets(video_fps)[-1]

    def start(self, mode: str, num_video_frames: int, video_fps: float, view: int = 0, num_views: int = 1,
              generator: Optional[torch.Generator] = None) -> int:
        """Dense window start for ``mode`` ("train", "val" or "test"); ``view``/``num_views`` for test."""
        _check_mode(mode, view, num_views)
        last = self.last_start(num_video_frames, video_fps)
        if last <= 0:
            return 0
        if mode == "train":
            return int(torch.randint(0, last + 1, (1,), generator=generator))
        if mode == "val" or num_views == 1:
            return last // 2
        return int(round(last * view / (num_views - 1)))

    def indices(self, start: int, num_video_frames: int, video_fps: float) -> List[int]:
        """The T native frame indices of the window at ``start``, with the short-clip policy applied."""
        if num_video_frames < 1:
            raise ValueError("video has no frames")
        raw = [start + offset for offset in self.offsets(video_fps)]
        if self.short_clip_policy == "loop":
            return [i % num_video_frames for i in raw]
        return [min(i, num_video_frames - 1) for i in raw]

    def segments(self, num_video_frames: int) -> List[Tuple[int, int]]:
        """The T segments ``[a_i, b_i]`` (inclusive) of a video of ``num_video_frames`` frames (uniform mode)."""
        if num_video_frames < 1:
            raise ValueError("video has no frames")
        size = (num_video_frames - 1) / self.num_frames
        return [(round(size * i), round(size * (i + 1))) for i in range(self.num_frames)]

    def segment_indices(self, mode: str, num_video_frames: int, view: int = 0, num_views: int = 1,
                        generator: Optional[torch.Generator] = None) -> List[int]:
        """One frame per segment for ``mode`` (uniform mode; rules in the module docstring)."""
        _check_mode(mode, view, num_views)
        segments = self.segments(num_video_frames)
        if mode == "train":
            return [int(torch.randint(a, b + 1, (1,), generator=generator)) for a, b in segments]
        if mode == "val":
            view, num_views = 0, 1
        return [a + (b - a) * (2 * view + 1) // (2 * num_views) for a, b in segments]

    def sample(self, mode: str, num_video_frames: int, video_fps: float, view: int = 0, num_views: int = 1,
               generator: Optional[torch.Generator] = None) -> List[int]:
        """The T native frame indices of a clip: :meth:`start` then :meth:`indices` (dense mode), or
        :meth:`segment_indices` (uniform mode)."""
        if self.sampling_mode == "uniform":
            return self.segment_indices(mode, num_video_frames, view, num_views, generator)
        start = self.start(mode, num_video_frames, video_fps, view, num_views, generator)
        return self.indices(start, num_video_frames, video_fps)

    def __repr__(self) -> str:
        if self.sampling_mode == "uniform":
            return f"ClipSampler({self.num_frames} uniform segments per video)"
        return (
            f"ClipSampler({self.num_frames}x{self.sampling_rate} at {self.target_fps:g} fps = "
            f"{self.duration_seconds:.3f} s, short clips: {self.short_clip_policy})"
        )


def _check_mode(mode: str, view: int, num_views: int) -> None:
    if mode not in ("train", "val", "test"):
        raise ValueError(f"mode must be 'train', 'val' or 'test', got {mode!r}")
    if mode == "test" and not 0 <= view < num_views:
        raise ValueError(f"view {view} out of range for {num_views} views")

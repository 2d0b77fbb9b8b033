"""Which frames each inference window of a video holds (predict's timeline and feature extraction).

Frames are counted on a time axis of ``fps`` frames per second: the video's own frames (``fps`` None, the
default), or the video resampled to a fixed rate first (``--fps F``, the usual setting for temporal action
localisation features): frame ``j`` of the resampled axis is the native frame on screen at ``j / F`` s,
``floor(j * native_fps / F)``, and the axis has ``ceil(N * F / native_fps)`` frames for ``N`` native ones.
Nothing is interpolated; frames are picked by timestamp, as the clip sampler of the data sets does.

On that axis, with ``T = DATA.NUM_FRAMES``, ``tau = DATA.SAMPLING_RATE`` and ``stride`` (default the span
``T * tau``, non-overlapping windows):

* window ``k`` starts at frame ``k * stride`` and holds frames ``start + i * tau`` for ``i < T``;
* windows are taken while their last frame ``start + (T - 1) * tau`` is inside the video, i.e. for
  ``start <= last_start = n - 1 - (T - 1) * tau``;
* when the last of them does not end on the last frame (``last_start`` is not a multiple of ``stride``),
  one final window ending on the last frame (starting at ``last_start``) covers the rest;
* a video shorter than one window (``last_start < 0``) gives one window at 0 with its last frame repeated
  (the test sampler's ``repeat_last`` policy).

So a video of ``n >= (T - 1) * tau + 1`` frames has ``last_start // stride + 1`` windows, plus one when
``last_start % stride != 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

__all__ = ["WindowSpec", "num_axis_frames", "axis_to_native"]


def num_axis_frames(num_video_frames: int, video_fps: float, fps: Optional[float]) -> int:
    """Frames on the time axis: the video's own count, or ``ceil(N * F / native_fps)`` at ``fps`` F."""
    if fps is None or video_fps <= 0:
        return int(num_video_frames)
    return max(1, math.ceil(num_video_frames * fps / video_fps - 1e-6))


def axis_to_native(frame: int, video_fps: float, fps: Optional[float], num_video_frames: int) -> int:
    """The native frame shown at axis frame ``frame`` (itself without resampling)."""
    if fps is None or video_fps <= 0:
        return min(int(frame), num_video_frames - 1)
    # The epsilon keeps exact multiples (e.g. 3 * 25 / 5 = 15.0) from rounding down.
    return min(int(math.floor(frame * video_fps / fps + 1e-6)), num_video_frames - 1)


@dataclass(frozen=True)
class WindowSpec:
    """The window convention of the module docstring.

    Args:
        num_frames: ``DATA.NUM_FRAMES`` (T).
        sampling_rate: ``DATA.SAMPLING_RATE`` (tau).
        stride: frames between window starts; None: the span ``T * tau``.
        fps: resample time to this rate first; None: the video's own frames.
    """

    num_frames: int
    sampling_rate: int
    stride: Optional[int] = None
    fps: Optional[float] = None

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.sampling_rate < 1:
            raise ValueError(f"need num_frames >= 1 and sampling_rate >= 1, got {self.num_frames}, {self.sampling_rate}")
        if self.stride is not None and self.stride < 1:
            raise ValueError(f"the window stride must be >= 1 frame, got {self.stride}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"--fps must be > 0, got {self.fps}")

    @property
    def span(self) -> int:
        """``T * tau``: the frames one window stands for (the default stride)."""
        return self.num_frames * self.sampling_rate

    @property
    def step(self) -> int:
        """The stride in use."""
        return self.stride if self.stride is not None else self.span

    def starts(self, num_axis: int) -> List[int]:
        """Start frames (on the time axis) of the windows of a video of ``num_axis`` frames."""
        if num_axis < 1:
            raise ValueError("video has no frames")
        last_start = num_axis - 1 - (self.num_frames - 1) * self.sampling_rate
        if last_start < 0:
            return [0]
        starts = list(range(0, last_start + 1, self.step))
        if starts[-1] != last_start:
            starts.append(last_start)
        return starts

    def frames(self, start: int, num_axis: int) -> List[int]:
        """The T axis frames of the window at ``start`` (past the end: the last frame, repeated)."""
        return [min(start + i * self.sampling_rate, num_axis - 1) for i in range(self.num_frames)]

    def native_frames(self, start: int, num_video_frames: int, video_fps: float) -> List[int]:
        """The T native frame indices of the window at axis frame ``start``."""
        num_axis = num_axis_frames(num_video_frames, video_fps, self.fps)
        return [axis_to_native(j, video_fps, self.fps, num_video_frames) for j in self.frames(start, num_axis)]

    def seconds(self, frame: int, video_fps: float) -> float:
        """Time of axis frame ``frame`` in seconds."""
        rate = self.fps if self.fps is not None else video_fps
        return frame / rate if rate > 0 else float("nan")

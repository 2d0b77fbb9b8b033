"""Index-coded video files for tests and benchmarks (see :mod:`rs_video.demo.moving_shapes` for demo data).

Every frame carries its own index as a row of black/white blocks along the top edge (bit ``b`` of the
index is block ``b``, least significant first), over a smooth moving texture with a moving disc. The
blocks survive lossy H.264/VP9 compression, so :func:`read_frame_index` recovers which source frame a
decoder returned. That is what lets tests check clip sampling and seeking exactly.

They are measuring videos (the loader's tests, ``tools/gpu_check.py`` and the loader benchmark write
them), not part of the loader, so they live here rather than in :mod:`rs_video.data`.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Optional, Union

import numpy as np

__all__ = [
    "INDEX_BITS",
    "make_frame",
    "read_frame_index",
    "write_synthetic_video",
    "write_audio_only_file",
]

INDEX_BITS = 10
"""Number of index bits drawn into each frame (frame indices up to 1023 are recoverable)."""

_CONTAINER_FORMATS = {".mp4": "mp4", ".mkv": "matroska", ".webm": "webm", ".avi": "avi", ".mov": "mov"}


def make_frame(index: int, width: int, height: int) -> np.ndarray:
    """Draws synthetic frame ``index`` as an RGB ``uint8`` array of shape (height, width, 3)."""
    if width < 2 * INDEX_BITS or height < 8:
        raise ValueError(f"frame {width}x{height} too small to hold {INDEX_BITS} index blocks")
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 128.0 + 60.0 * np.sin((xx + 3.0 * index) / 17.0) * np.cos((yy - 2.0 * index) / 23.0)
    image = np.stack([base, np.roll(base, 5, axis=1), 255.0 - base], axis=-1)
    centre_x = width / 2 + width / 3 * np.sin(index / 15.0)
    centre_y = height / 2 + height / 4 * np.cos(index / 11.0)
    image[(xx - centre_x) ** 2 + (yy - centre_y) ** 2 < (height / 6) ** 2] = (230, 40, 40)
    block_w, block_h = width // INDEX_BITS, max(height // 4, 8)
    for bit in range(INDEX_BITS):
        image[:block_h, bit * block_w : (bit + 1) * block_w] = 255 if (index >> bit) & 1 else 0
    return image.clip(0, 255).astype(np.uint8)


def read_frame_index(frame: np.ndarray) -> int:
    """Recovers the index drawn by :func:`make_frame` from a decoded frame.

    Args:
        frame: ``uint8`` frame in (H, W, 3) or (3, H, W) layout (numpy array or torch tensor), at the
            size it was written.
    """
    array = np.asarray(frame)
    if array.ndim != 3:
        raise ValueError(f"expected one frame with 3 dims, got shape {array.shape}")
    if array.shape[0] == 3 and array.shape[-1] != 3:
        array = array.transpose(1, 2, 0)
    height, width = array.shape[:2]
    block_w, block_h = width // INDEX_BITS, max(height // 4, 8)
    index = 0
    for bit in range(INDEX_BITS):
        patch = array[block_h // 4 : 3 * block_h // 4, bit * block_w + 1 : (bit + 1) * block_w - 1]
        if patch.mean() > 128:
            index |= 1 << bit
    return index


def write_synthetic_video(
    path: Union[str, os.PathLike],
    num_frames: int = 30,
    fps: Union[int, Fraction] = 30,
    width: int = 64,
    height: int = 48,
    gop: int = 12,
    codec: Optional[str] = None,
    crf: int = 23,
    preset: str = "veryfast",
    bframes: int = 3,
    audio: bool = False,
    faststart: bool = False,
    pix_fmt: str = "yuv420p",
    rotation: Optional[int] = None,
) -> Path:
    """Encodes a synthetic video with PyAV.

    Args:
        path: output file; the container follows the suffix (.mp4, .mkv, .webm, .avi, .mov).
        num_frames: number of frames.
        fps: constant frame rate.
        width, height: frame size as displayed (even numbers for yuv420p).
        gop: keyframe interval in frames (scene-cut keyframes disabled so it is exact for x264).
        codec: encoder name; default libx264, or libvpx-vp9 for .webm; also libx265 (closed GOPs: decord
            misplaces frames of open-GOP HEVC) and the AV1 encoders libsvtav1, libaom-av1, librav1e.
        crf: x264 constant rate factor.
        preset: x264 preset.
        bframes: x264/x265 B-frames between references (0 disables B-frames).
        audio: also write a mono AAC/Opus track, as Kinetics files have one.
        faststart: put the MP4 index (moov) before the data.
        pix_fmt: stored pixel format, e.g. ``yuv420p10le`` (10-bit) or ``yuvj420p`` (full range).
        rotation: display rotation in degrees counter-clockwise (FFmpeg's display matrix, what a phone
            writes), or None for none. The frames are stored turned the other way, so that a player (and
            every decoder) shows the index-coded frames upright: a phone video.

    Returns:
        The path written.
    """
    import av

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _CONTAINER_FORMATS:
        raise ValueError(f"unsupported video suffix {suffix!r} for {path}")
    from rs_video.data.decoders import display_quarter_turns

    codec = codec or ("libvpx-vp9" if suffix == ".webm" else "libx264")
    turns = display_quarter_turns(rotation) if rotation is not None else 0
    options = {"movflags": "+faststart"} if faststart and suffix in (".mp4", ".mov") else {}
    container = av.open(str(path), "w", format=_CONTAINER_FORMATS[suffix], options=options)
    try:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = (height, width) if turns % 2 else (width, height)
        stream.pix_fmt = pix_fmt
        stream.codec_context.gop_size = gop
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if codec == "libx264":
            stream.options = {
                "crf": str(crf),
                "preset": preset,
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}",
            }
        elif codec == "libx265":
            stream.options = {"preset": "ultrafast", "x265-params": (
                f"log-level=error:keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:no-open-gop=1")}
        elif codec.startswith("libvpx"):
            stream.options = {"deadline": "realtime", "cpu-used": "8", "g": str(gop)}
        elif codec == "libsvtav1":
            stream.options = {"preset": "11", "svtav1-params": "lp=1"}
        elif codec == "libaom-av1":
            stream.options = {"cpu-used": "8", "usage": "realtime"}
        elif codec == "librav1e":
            stream.options = {"speed": "10"}
        audio_stream = None
        if audio:
            audio_codec = "libopus" if suffix == ".webm" else "aac"
            audio_stream = container.add_stream(audio_codec, rate=48000 if audio_codec == "libopus" else 16000)
        for index in range(num_frames):
            stored = np.ascontiguousarray(np.rot90(make_frame(index, width, height), -turns))
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            _encode_silence(container, audio_stream, seconds=num_frames / float(fps))
    finally:
        container.close()
    return path


def _encode_silence(container, stream, seconds: float) -> None:
    """Muxes ``seconds`` of mono silence into ``stream``."""
    import av

    rate = stream.rate
    samples_per_frame = stream.codec_context.frame_size or 1024
    total = int(seconds * rate)
    for start in range(0, max(total, 1), samples_per_frame):
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, samples_per_frame), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_audio_only_file(path: Union[str, os.PathLike], seconds: float = 1.0) -> Path:
    """Writes an MP4 holding only a silent AAC track (a Kinetics download that lost its video)."""
    import av

    path = Path(path)
    container = av.open(str(path), "w", format=_CONTAINER_FORMATS.get(path.suffix.lower(), "mp4"))
    try:
        stream = container.add_stream("aac", rate=16000)
        _encode_silence(container, stream, seconds)
    finally:
        container.close()
    return path

"""Video decoders: torchcodec, decord and PyAV behind one small interface.

All three return the same thing for the same request: the frames at the given *frame indices*
(presentation order, 0-based) as a ``uint8`` tensor of shape (N, 3, H, W), RGB. They decode only what the
request needs: each seeks to the keyframe at or before the first requested frame and decodes forward to
the last one, converting only the requested frames to RGB. No decoder reads the whole file into memory,
and none touches the audio stream.

Frame indices are positions in presentation order. For constant-frame-rate files (everything Kinetics
preparation produces) all three decoders agree bit for bit on which frame an index means and on its
pixels (tested). For variable-frame-rate files PyAV derives the index from the timestamp at the header's
average rate, so it may pick a neighbouring frame where torchcodec and decord count frames.

The files people actually have (docs/data.md has the table per backend):

* **Display rotation** (a phone video's display matrix or ``rotate`` tag): every backend returns the
  upright frames a player shows. torchcodec and decord apply it themselves; for PyAV the shared base
  turns the decoded frames with :func:`torch.rot90` (:func:`display_quarter_turns`, the angle read once
  per file from the first decoded frame). Flips in the display matrix are not applied.
* **High bit depth and full range** (10-bit HEVC/H.264/AV1, ``yuvj420p`` or ``color_range=pc``): PyAV
  converts to 8-bit RGB with a libavfilter ``format=rgb24`` graph, which honours the frame's colour range
  and matrix and gives the same bytes as torchcodec (``frame.to_ndarray("rgb24")`` differed by up to 47
  levels on 10-bit sources). decord converts with its bundled FFmpeg 4 and cannot be configured (up to
  61 levels off on 10-bit sources), and it misplaces frames of open-GOP HEVC (x265's default): it
  refuses both (probed with PyAV where installed), so they go to the fallback below.
* **Codecs a backend lacks** (AV1 for decord): :meth:`VideoDecoder.read` retries such a file once with
  the decoder's :attr:`~VideoDecoder.fallback` (set by :func:`create_decoder`: the most preferred other
  installed backend). A file always takes the same path, and the data set counts these reads apart
  from broken files (``fallback_reads``).

Failures raise :class:`VideoDecodeError` with a short machine-readable ``reason`` (see
:data:`FAILURE_REASONS`), so the data set can report *why* a file was skipped.

Backend choice (``DATA.DECODER``): ``"auto"`` takes torchcodec when its FFmpeg libraries load, else PyAV,
else decord. A named backend that cannot be imported falls back the same way. The choice is logged once
in one line.
"""

from __future__ import annotations

import abc
import importlib
import logging
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

import torch

from rs_image.data.failures import FILE_REASONS, SampleLoadError, check_file

__all__ = [
    "FAILURE_REASONS",
    "VideoDecodeError",
    "OpenVideo",
    "VideoDecoder",
    "TorchCodecDecoder",
    "DecordDecoder",
    "PyAVDecoder",
    "DECODERS",
    "available_decoders",
    "create_decoder",
    "display_quarter_turns",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)

FAILURE_REASONS: Tuple[str, ...] = FILE_REASONS + (  # missing, empty file, unreadable (garbage, no index)
    "no video stream",  # e.g. an audio-only download
    "no frames",  # a video stream without a decodable frame
    "truncated",  # the container promises more frames than the file holds
    "decode error",  # the codec failed on a packet
)
"""Reasons a :class:`VideoDecodeError` can carry (index + 1 is the code stored by the data set)."""

# A container's frame count may be an estimate (from the duration) or off by a frame or two at the end
# (edit lists, a dropped last B-frame). Missing frames up to this many at the end are padded with the
# last decoded frame instead of being reported as truncation.
_END_TOLERANCE_FRAMES = 2

# Reasons after which a file is not retried with the fallback backend: no backend reads a missing or
# empty file. Every other failure may be the backend's (a codec it lacks, decord's width bug).
_NO_FALLBACK_REASONS = ("missing", "empty file")

# Fallback reads are logged per file (INFO), for this many files per process; the epoch summary counts all.
_LOGGED_FALLBACKS_MAX = 20
_logged_fallbacks: set = set()

# PyAV decodes a request from one seek to its last frame. Where two requested frames are further apart
# than this, it seeks again instead of decoding the gap: x264's default keyframe interval is 250, so such
# a gap nearly always holds a keyframe and the new seek lands past the old position (several test windows
# of a long untrimmed video). torchcodec and decord know the keyframes and make this choice themselves.
_PYAV_RESEEK_GAP_FRAMES = 250


class VideoDecodeError(SampleLoadError):
    """A video could not be decoded: a :class:`rs_image.data.failures.SampleLoadError` whose ``reason`` is
    one of :data:`FAILURE_REASONS` (``path``, ``reason``, ``detail``)."""

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        if reason not in FAILURE_REASONS:
            raise ValueError(f"unknown failure reason {reason!r}")
        super().__init__(path, reason, detail)


def _classify_open_failure(path: str, error: BaseException) -> VideoDecodeError:
    """Turns a backend's open error into a reason, probing the container with PyAV where available."""
    if isinstance(error, VideoDecodeError):
        return error
    detail = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    try:
        import av
    except ImportError:
        return VideoDecodeError(path, "unreadable", detail)
    try:
        with av.open(path) as container:
            has_video = len(container.streams.video) > 0
    except Exception:
        return VideoDecodeError(path, "unreadable", detail)
    # The container opens, so the backend failed on the stream itself (e.g. it scans packets on open).
    return VideoDecodeError(path, "decode error" if has_video else "no video stream", detail)


def _unique_sorted(indices: Sequence[int]) -> Tuple[List[int], Optional[torch.Tensor]]:
    """Unique sorted indices plus, for every requested position, where its frame is in that list.

    The second value is None when the request is already strictly increasing (the usual clip), so that
    callers skip a copy of the frames.
    """
    request = [int(i) for i in indices]
    if not request:
        raise ValueError("no frame indices requested")
    if min(request) < 0:
        raise ValueError(f"negative frame index requested: {request}")
    if all(a < b for a, b in zip(request, request[1:])):
        return request, None
    unique, inverse = torch.unique(torch.tensor(request), sorted=True, return_inverse=True)
    return unique.tolist(), inverse


def _reorder(frames: torch.Tensor, inverse: Optional[torch.Tensor]) -> torch.Tensor:
    return frames if inverse is None else frames[inverse]


def display_quarter_turns(degrees: float) -> int:
    """Counter-clockwise quarter turns (0-3) that make frames upright for a display rotation of ``degrees``.

    ``degrees`` follows FFmpeg's display matrix (``av_display_rotation_get``, PyAV's ``frame.rotation``,
    torchcodec's ``metadata.rotation``): the counter-clockwise angle a player turns the stored frame by,
    e.g. 90 or -90 for a phone held upright. ``torch.rot90(frames, k, dims=(H, W))`` with the result ``k``
    gives the frames a player shows. Angles that are not a multiple of 90 are rounded to the nearest one.
    """
    return int(round(float(degrees) / 90.0)) % 4


def _upright(frames: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    """(N, H, W, 3) frames turned ``quarter_turns`` times counter-clockwise, contiguous (channels-last)."""
    if quarter_turns % 4 == 0:
        return frames
    return torch.rot90(frames, quarter_turns, dims=(1, 2)).contiguous()


class OpenVideo(abc.ABC):
    """One opened video file. Use as a context manager.

    Attributes:
        path: the file.
        num_frames: number of frames (from the stream index or, for PyAV without one, the duration).
        fps: average frame rate from the container header (frames per second).
    """

    path: str
    num_frames: int
    fps: float

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 (N, 3, H, W).

        Indices past the end are clamped to the last frame; the sampler never asks for them except through
        a short-clip policy, and clamping keeps every backend identical there. Each distinct frame is
        decoded once, in increasing order (:meth:`_read_sorted`), turned upright where the backend left
        the display rotation to us (:meth:`_quarter_turns_left`), and then put in the requested order.
        """
        unique, inverse = _unique_sorted(self._clamp(indices))
        frames = self._read_sorted(unique)
        return _reorder(_upright(frames, self._quarter_turns_left()), inverse).permute(0, 3, 1, 2)

    @abc.abstractmethod
    def _read_sorted(self, indices: List[int]) -> torch.Tensor:
        """Frames at strictly increasing, in-range ``indices`` as uint8 (N, H, W, 3); raises VideoDecodeError."""

    def _quarter_turns_left(self) -> int:
        """Counter-clockwise quarter turns that :meth:`_read_sorted`'s frames still need to be upright
        (:func:`display_quarter_turns`); 0 for backends that apply the display rotation themselves."""
        return 0

    def _decode_error(self, error: Exception) -> VideoDecodeError:
        """A backend's exception as the data set's "decode error" for this file."""
        return VideoDecodeError(self.path, "decode error", f"{type(error).__name__}: {error}"[:300])

    def close(self) -> None:
        """Releases the file."""

    def __enter__(self) -> "OpenVideo":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _clamp(self, indices: Sequence[int]) -> List[int]:
        last = self.num_frames - 1
        return [min(int(i), last) for i in indices]


class VideoDecoder(abc.ABC):
    """A backend: opens files. Instances hold only settings, so they pickle into DataLoader workers.

    Args:
        num_threads: decoder threads per open file. 1 is right for DataLoader workers (parallelism comes
            from the workers; threaded decoders lose 20-30 % there, see docs/data.md); 0 lets the backend
            choose.

    Attributes:
        fallback: the backend :meth:`read` retries a file with when this one cannot decode it (None: no
            retry); :func:`create_decoder` sets it.
    """

    name: str = ""
    module: str = ""

    def __init__(self, num_threads: int = 1) -> None:
        if num_threads < 0:
            raise ValueError(f"decoder threads must be >= 0, got {num_threads}")
        self.num_threads = int(num_threads)
        self.fallback: Optional["VideoDecoder"] = None

    @classmethod
    def is_available(cls) -> Tuple[bool, str]:
        """Whether the backend imports (and, for torchcodec, its FFmpeg libraries load), and why not."""
        try:
            importlib.import_module(cls.module)
        except Exception as error:  # ImportError, or RuntimeError/OSError when shared libraries fail
            return False, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        return True, ""

    @classmethod
    def version(cls) -> str:
        root = importlib.import_module(cls.module.split(".")[0])
        return str(getattr(root, "__version__", "?"))

    def open(self, path: str) -> OpenVideo:
        """Opens ``path``; raises :class:`VideoDecodeError` when it cannot be used."""
        path = os.fspath(path)
        check_file(path, VideoDecodeError)
        try:
            video = self._open(path)
        except Exception as error:
            raise _classify_open_failure(path, error) from error
        if video.num_frames <= 0:
            video.close()
            raise VideoDecodeError(path, "no frames")
        return video

    def read(self, path: str, read: Callable[[OpenVideo], T]) -> Tuple[T, Optional[VideoDecodeError]]:
        """``read(video)`` on ``path`` opened with this backend or, when that fails, once with :attr:`fallback`.

        A missing or empty file is not retried. The result is deterministic per file: a file this
        backend cannot decode fails the same way every time, so it always takes the fallback path.

        Returns:
            ``(result, None)``, or ``(result, error)`` when the fallback produced the result, ``error``
            being this backend's failure (the caller counts these reads apart from broken files).

        Raises:
            VideoDecodeError: this backend's error when the file is not retried or the fallback fails too
                (its message then names the fallback's error as well).
        """
        path = os.fspath(path)
        try:
            with self.open(path) as video:
                return read(video), None
        except VideoDecodeError as error:
            if self.fallback is None or error.reason in _NO_FALLBACK_REASONS:
                raise
            try:
                with self.fallback.open(path) as video:
                    result = read(video)
            except VideoDecodeError as fallback_error:
                detail = f"{error.detail}; {self.fallback.name}: {fallback_error.reason}"
                raise VideoDecodeError(path, error.reason, detail[:400]) from fallback_error
            if path not in _logged_fallbacks and len(_logged_fallbacks) < _LOGGED_FALLBACKS_MAX:
                _logged_fallbacks.add(path)
                logger.info("read %s with %s: %s cannot decode it (%s)%s", path, self.fallback.name, self.name,
                            f"{error.reason}: {error.detail}" if error.detail else error.reason,
                            "; further fallback reads are counted, not logged"
                            if len(_logged_fallbacks) == _LOGGED_FALLBACKS_MAX else "")
            return result, error

    @abc.abstractmethod
    def _open(self, path: str) -> OpenVideo: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_threads={self.num_threads})"


# ----------------------------------------------------------------------------------------- torchcodec


class _TorchCodecVideo(OpenVideo):
    def __init__(self, path: str, num_threads: int) -> None:
        from torchcodec.decoders import VideoDecoder as _TCDecoder

        self.path = path
        # "exact" scans the packet index once on open (a few ms for a 10 s clip) and then seeks exactly.
        # NHWC, returned as a (N, C, H, W) view: channels-last memory is what torchvision's uint8 resize
        # kernels are fastest on (2x here), and PyAV and decord produce the same layout.
        self._decoder = _TCDecoder(path, seek_mode="exact", num_ffmpeg_threads=num_threads, dimension_order="NHWC")
        meta = self._decoder.metadata
        self.num_frames = int(meta.num_frames or 0)
        self.fps = float(meta.average_fps_from_header or meta.average_fps or 0.0)
        header_frames = meta.num_frames_from_header
        if header_frames and self.num_frames and header_frames - self.num_frames > _END_TOLERANCE_FRAMES:
            # The other backends fail on such files when the lost part is reached; fail consistently.
            raise VideoDecodeError(
                path, "truncated", f"header promises {header_frames} frames, file holds {self.num_frames}"
            )

    def _read_sorted(self, indices: List[int]) -> torch.Tensor:
        try:
            return self._decoder.get_frames_at(indices=indices).data
        except Exception as error:
            raise self._decode_error(error) from error

    def close(self) -> None:
        self._decoder = None


class TorchCodecDecoder(VideoDecoder):
    """torchcodec (FFmpeg through the system's shared libraries); exact seek mode, batched frame access.

    Applies the display rotation itself (``metadata.rotation``, a ``transpose`` in its filter graph)."""

    name = "torchcodec"
    module = "torchcodec.decoders"

    def _open(self, path: str) -> OpenVideo:
        return _TorchCodecVideo(path, self.num_threads)


# --------------------------------------------------------------------------------------------- decord


def _decord_refusal(path: str) -> str:
    """Why decord 0.6 would return other pixels or frames than torchcodec and PyAV for ``path`` ("" when it
    would not): high bit depth (its FFmpeg 4 conversion) or HEVC (open GOPs, x265's default, come out with
    misplaced frames). Probed with PyAV where installed (a header read, no decoding); without PyAV nothing
    is refused."""
    try:
        import av
    except ImportError:
        return ""
    try:
        with av.open(path) as container:
            if not container.streams.video:
                return ""
            context = container.streams.video[0].codec_context
            pixel_format = context.format
            codec = context.name
    except Exception:  # decord reports what is wrong with the file itself
        return ""
    bits = max((c.bits for c in pixel_format.components), default=8) if pixel_format is not None else 8
    if codec == "hevc":
        return "decord 0.6 misplaces frames of open-GOP HEVC"
    if bits > 8:
        return f"decord 0.6 converts {bits}-bit video differently from torchcodec and PyAV"
    return ""


class _DecordVideo(OpenVideo):
    def __init__(self, path: str, num_threads: int) -> None:
        import decord

        self.path = path
        refusal = _decord_refusal(path)
        if refusal:
            raise VideoDecodeError(path, "decode error", refusal)
        self._reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
        self.num_frames = len(self._reader)
        self.fps = float(self._reader.get_avg_fps() or 0.0)

    def _read_sorted(self, indices: List[int]) -> torch.Tensor:
        try:
            batch = self._reader.get_batch(indices)
        except Exception as error:
            raise self._decode_error(error) from error
        # decord returns its NDArray, or a torch tensor when someone (e.g. pytorchvideo's decord module)
        # switched decord's process-wide bridge to torch; accept both.
        return batch if isinstance(batch, torch.Tensor) else torch.from_numpy(batch.asnumpy())

    def close(self) -> None:
        self._reader = None


class DecordDecoder(VideoDecoder):
    """decord (bundles its own FFmpeg 4). Unmaintained since 2022; kept as an option, never the default.

    Applies the MP4/MOV display rotation itself (FFmpeg 4's ``rotate`` tag). Cannot decode AV1, and
    refuses high-bit-depth and HEVC files (:func:`_decord_refusal`): all three are read by the fallback."""

    name = "decord"
    module = "decord"

    def _open(self, path: str) -> OpenVideo:
        return _DecordVideo(path, self.num_threads)


# ----------------------------------------------------------------------------------------------- PyAV


class _PyAVVideo(OpenVideo):
    def __init__(self, path: str, num_threads: int) -> None:
        import av

        self.path = path
        self._container = av.open(path)
        if not self._container.streams.video:
            self._container.close()
            raise VideoDecodeError(path, "no video stream")
        stream = self._container.streams.video[0]
        if num_threads == 1:
            stream.thread_type = "NONE"
            stream.thread_count = 1
        else:
            stream.thread_type = "AUTO"
            stream.thread_count = num_threads
        self._stream = stream
        self._skip_unneeded = num_threads == 1
        self._convert_threads = num_threads
        self._rgb_graph = None  # libavfilter graph to rgb24, rebuilt when the frames' properties change
        self._rgb_graph_key: Optional[tuple] = None
        self._quarter_turns: Optional[int] = None  # display rotation, read from the first decoded frame
        self.frames_decoded = 0  # statistics: frames that came out of the codec (tests check the seek)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.fps = float(rate) if rate else 0.0
        self._time_base = stream.time_base
        # Frames per timestamp tick as a float: _index_of_pts runs for every packet and frame, and exact
        # Fraction arithmetic there cost ~1.5 ms per 32-frame clip (5 % of the whole item).
        self._frames_per_tick = float(self._time_base) * self.fps
        self._start_pts = stream.start_time if stream.start_time is not None else 0
        if stream.frames and stream.frames > 0:
            self.num_frames = int(stream.frames)
        else:  # Matroska/WebM carry no frame count: estimate it from the duration
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif self._container.duration is not None:
                seconds = self._container.duration / 1_000_000
            else:
                seconds = 0.0
            self.num_frames = int(round(seconds * self.fps)) if self.fps > 0 else 0

    def _index_of_pts(self, pts: int) -> int:
        return int(round((pts - self._start_pts) * self._frames_per_tick))

    def _index_of(self, frame) -> int:
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None:
            raise VideoDecodeError(self.path, "decode error", "frame without timestamp")
        return self._index_of_pts(pts)

    def _to_rgb(self, frame):
        """8-bit RGB (H, W, 3) of a decoded frame, as stored (before the display rotation).

        Through a libavfilter ``format=rgb24`` graph rather than ``frame.to_ndarray("rgb24")``: the graph
        honours the frame's colour range and matrix and converts high-bit-depth frames exactly as
        torchcodec does (the bytes agree, tested); ``to_ndarray`` differed by up to 47 levels on 10-bit
        sources. For 8-bit sources both give the same bytes.
        """
        import av

        if self._quarter_turns is None:
            self._quarter_turns = display_quarter_turns(getattr(frame, "rotation", 0) or 0)
        key = (frame.width, frame.height, frame.format.name, int(frame.color_range), int(frame.colorspace))
        if key != self._rgb_graph_key:
            graph = av.filter.Graph()
            # One thread: swscale's automatic threading costs 3x the CPU at Kinetics frame sizes.
            graph.threads = self._convert_threads
            source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                      time_base=self._time_base)
            convert, sink = graph.add("format", "rgb24"), graph.add("buffersink")
            source.link_to(convert)
            convert.link_to(sink)
            graph.configure()
            self._rgb_graph, self._rgb_graph_key = graph, key
        self._rgb_graph.vpush(frame)
        return self._rgb_graph.vpull().to_ndarray()

    def _quarter_turns_left(self) -> int:
        return self._quarter_turns or 0

    def _decode_range(self, unique: List[int], from_start: bool) -> Dict[int, torch.Tensor]:
        import av

        first, last = unique[0], unique[-1]
        wanted = set(unique)
        if from_start:
            target = self._start_pts
        else:
            # Seek to the keyframe at or before half a frame ahead of the first needed frame's timestamp.
            target_seconds = (first - 0.5) / self.fps if self.fps > 0 else 0.0
            target = self._start_pts + int(max(target_seconds, 0.0) / self._time_base)
        try:
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        except av.error.FFmpegError as error:  # e.g. an MP4 without keyframe flags (EPERM)
            raise self._decode_error(error) from error
        context = self._stream.codec_context
        out: Dict[int, torch.Tensor] = {}
        first_seen = None
        try:
            for packet in self._container.demux(self._stream):
                if self._skip_unneeded:
                    # A frame nobody references and we do not need is not decoded at all (FFmpeg's
                    # AVDISCARD_NONREF, decided per packet as it enters the decoder). References are
                    # always decoded, so the needed frames come out bit-identical. Only valid without
                    # frame threading, where the setting applies to exactly this packet. A packet without
                    # a timestamp is always decoded.
                    unneeded = packet.pts is not None and self._index_of_pts(packet.pts) not in wanted
                    context.skip_frame = "NONREF" if unneeded else "DEFAULT"
                for frame in context.decode(packet):
                    self.frames_decoded += 1
                    index = self._index_of(frame)
                    if first_seen is None:
                        first_seen = index
                        if index > first and not from_start:
                            return {}  # the seek landed past the first needed frame: decode from the start
                    if index in wanted and index not in out:
                        out[index] = torch.from_numpy(self._to_rgb(frame))
                    if index >= last:
                        return out
        except av.error.FFmpegError as error:
            raise self._decode_error(error) from error
        finally:
            context.skip_frame = "DEFAULT"
        return out

    def _read_sorted(self, unique: List[int]) -> torch.Tensor:
        gaps = [i for i in range(1, len(unique)) if unique[i] - unique[i - 1] > _PYAV_RESEEK_GAP_FRAMES]
        decoded: Dict[int, torch.Tensor] = {}
        for start, stop in zip([0] + gaps, gaps + [len(unique)]):
            run = unique[start:stop]
            part = self._decode_range(run, from_start=False)
            if not part:
                part = self._decode_range(run, from_start=True)
            decoded.update(part)
        if not decoded:
            raise VideoDecodeError(self.path, "no frames", f"nothing decodable at frames {unique[0]}..{unique[-1]}")
        last_decoded = max(decoded)
        frames = []
        for index in unique:
            if index in decoded:
                frames.append(decoded[index])
            elif index > last_decoded and index - last_decoded <= _END_TOLERANCE_FRAMES:
                frames.append(decoded[last_decoded])  # frame count estimate overshot the end by a little
            elif index > last_decoded:
                raise VideoDecodeError(
                    self.path,
                    "truncated",
                    f"stream ended at frame {last_decoded}, frame {index} of {self.num_frames} requested",
                )
            else:  # a hole inside the stream: use the nearest earlier frame (timestamp jitter in VFR files)
                earlier = [i for i in decoded if i < index]
                if not earlier:
                    raise VideoDecodeError(self.path, "decode error", f"frame {index} not decodable")
                frames.append(decoded[max(earlier)])
        return torch.stack(frames)

    def close(self) -> None:
        self._rgb_graph = None
        if self._container is not None:
            self._container.close()
            self._container = None


class PyAVDecoder(VideoDecoder):
    """PyAV (bundles FFmpeg in its wheel, so it works without system libraries)."""

    name = "pyav"
    module = "av"

    def _open(self, path: str) -> OpenVideo:
        return _PyAVVideo(path, self.num_threads)


# ------------------------------------------------------------------------------------------ selection

DECODERS: Dict[str, type] = {"torchcodec": TorchCodecDecoder, "pyav": PyAVDecoder, "decord": DecordDecoder}
_AUTO_ORDER = ("torchcodec", "pyav", "decord")
_logged_choices: set = set()


def available_decoders() -> Dict[str, str]:
    """Maps each backend name to "" when it is usable, else to the reason it is not."""
    return {name: DECODERS[name].is_available()[1] for name in _AUTO_ORDER}


def create_decoder(name: str = "auto", num_threads: int = 1, fallback: bool = True) -> VideoDecoder:
    """Builds the decoder for ``DATA.DECODER`` with fallback, logging the choice once per process.

    Args:
        name: "auto", "torchcodec", "decord" or "pyav".
        num_threads: ``DATA.DECODER_THREADS``.
        fallback: give the decoder a :attr:`~VideoDecoder.fallback`: the first installed backend of
            torchcodec, PyAV, decord other than the chosen one, which :meth:`VideoDecoder.read` retries a
            file with when the chosen one cannot decode it (e.g. AV1 with decord). None when no other
            backend is installed.

    Raises:
        ValueError: unknown name.
        RuntimeError: no backend can be imported at all.
    """
    if name != "auto" and name not in DECODERS:
        raise ValueError(f"DATA.DECODER must be 'auto' or one of {sorted(DECODERS)}, got {name!r}")
    order = [name] + [n for n in _AUTO_ORDER if n != name] if name != "auto" else list(_AUTO_ORDER)
    reasons = []
    for candidate in order:
        usable, why = DECODERS[candidate].is_available()
        if usable:
            decoder = DECODERS[candidate](num_threads=num_threads)
            if fallback:
                second = next((n for n in _AUTO_ORDER if n != candidate and DECODERS[n].is_available()[0]), None)
                decoder.fallback = DECODERS[second](num_threads=num_threads) if second is not None else None
            key = (name, candidate, num_threads)
            if key not in _logged_choices:
                _logged_choices.add(key)
                unavailable = f"; unavailable: {'; '.join(reasons)}" if reasons else ""
                retry = f"; files it cannot decode: {decoder.fallback.name}" if decoder.fallback is not None else ""
                logger.log(
                    logging.WARNING if name != "auto" and reasons else logging.INFO,
                    "video decoder: %s %s, %d thread(s) (DATA.DECODER=%s%s%s)",
                    candidate, DECODERS[candidate].version(), num_threads, name, unavailable, retry,
                )
            return decoder
        reasons.append(f"{candidate} ({why})")
    raise RuntimeError("no video decoder can be imported: " + "; ".join(reasons))

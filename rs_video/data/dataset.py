"""The Kinetics data set: a map-style :class:`torch.utils.data.Dataset` with a real ``__len__``.

Items are dicts (the contract with the engine):

* train / val: ``video`` (C, T, H, W), ``label`` int, ``video_index`` int, ``view_index`` 0. One item per
  video. ``video`` is float32 normalised (``DATA.OUTPUT_DTYPE: float32``, the default) or the uint8 clip
  that the consumer normalises on its device (``uint8``; the engine does it in
  :meth:`rs_image.engine.Task.prepare_input`).
* test: the same plus ``failed`` (bool). ``len = num_videos * num_views`` with
  ``num_views = NUM_ENSEMBLE_VIEWS * NUM_SPATIAL_CROPS``; item ``i`` is video ``i // num_views`` and view
  ``view_index = i % num_views = temporal_view * NUM_SPATIAL_CROPS + spatial_crop``.

Test mode decodes each video once per worker. The first item of a video opens the file once, decodes
the union of the frames of all its ``NUM_ENSEMBLE_VIEWS`` temporal windows in one request (overlapping
windows share their frames, and a long GOP is walked once instead of once per window), resizes them
once and keeps them in a per-worker cache of **one** video: at most ``NUM_ENSEMBLE_VIEWS * NUM_FRAMES``
resized frames (e.g. 10 x 32 frames of 256 x 341 x 3 bytes = 84 MB). Every view of the video is then a
crop and a gather of its T frames from that cache, identical to decoding its window on its own. The
cache pays off when a worker gets consecutive indices of one video, which sequential samplers and the
engine's :class:`~rs_image.engine.evaluator.ShardedEvalSampler` (contiguous shards) give; a video whose
views are split across DataLoader batches is decoded once by each worker that gets some of them (a
``TEST.BATCH_SIZE`` that is a multiple of the views per video avoids that).

Broken input (missing, zero-byte, truncated, garbage, audio-only or frameless files):

* train / val: the item is replaced by another random video (up to ``DATA.NUM_RETRIES`` decode attempts,
  never drawing a video already known to fail); a warning names the path and reason once per file; the
  failures are counted per epoch (:meth:`KineticsDataset.failure_report`). When every video of the data
  set has failed, or the retries run out, the first batch raises an error saying so; an epoch is never
  silently empty and nothing hangs.
* test: nothing is substituted (that would bias the accuracy). The failed view comes back as an item with
  ``failed=True`` and a zero clip (of the output dtype), so the default collate works and the engine
  aggregates only the views with ``failed=False``. Failed and missing videos are counted, and loading
  stops with an error once they exceed ``DATA.MAX_FAILURE_FRACTION`` of the listed videos.

Videos listed but absent are dropped when the data set is built (one summary line) and count as failed
in test mode.

Failure state lives in shared memory (``torch`` tensors moved to shared memory), so the counts seen by
the main process include every DataLoader worker, with ``fork``, ``spawn`` or ``persistent_workers``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from .annotations import SplitAnnotations, VideoRecord, load_split
from .decoders import FAILURE_REASONS, VideoDecodeError, VideoDecoder, create_decoder
from .sampling import ClipSampler
from .transforms import ClipTransform, build_clip_transform

__all__ = ["FailureReport", "KineticsDataset", "build_video_dataset", "collate_clips", "MODES"]

logger = logging.getLogger(__name__)

MODES = ("train", "val", "test")
_MAX_WORKER_SLOTS = 512


class _PathTable:
    """Paths packed in one byte buffer plus offsets.

    A list of 240k Python strings is touched by reference counting in every forked worker, which copies
    its pages (the well-known DataLoader memory growth); two numpy arrays are not.
    """

    def __init__(self, paths: Sequence[str]) -> None:
        encoded = [os.fsencode(p) for p in paths]
        self._offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=self._offsets[1:])
        self._buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, index: int) -> str:
        start, end = self._offsets[index], self._offsets[index + 1]
        return os.fsdecode(self._buffer[start:end].tobytes())


@dataclass
class _DecodedViews:
    """Test-mode per-worker cache: the prepared frames of all temporal windows of one video."""

    video_index: int
    frames: torch.Tensor  # prepared uint8 (N, 3, H, W): the sorted union of the windows' frames
    positions: List[torch.Tensor]  # per temporal view, the rows of ``frames`` that make its T-frame clip


@dataclass
class FailureReport:
    """What failed while loading.

    Attributes:
        epoch_failures: failed decode attempts since the last reset (a file failing again in a later epoch
            counts again).
        failed_videos: distinct videos that have ever failed.
        missing_videos: listed videos that do not exist.
        num_videos: videos in the data set (listed minus missing).
        failures: path -> reason for every failed or missing video.
    """

    epoch_failures: int
    failed_videos: int
    missing_videos: int
    num_videos: int
    failures: Dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        reasons: Dict[str, int] = {}
        for reason in self.failures.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        by_reason = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "none"
        return (
            f"{self.epoch_failures} failed loads this epoch; {self.failed_videos} of {self.num_videos} videos "
            f"failed so far, {self.missing_videos} missing ({by_reason})"
        )


class KineticsDataset(torch.utils.data.Dataset):
    """Clips from a list of videos (module docstring: item format, test views, broken input).

    Args:
        records: the videos (path, label).
        mode: "train", "val" or "test".
        sampler: which frames make a clip.
        transform: clip transform for ``mode``.
        decoder: video decoder backend.
        num_ensemble_views: temporal views per video in test mode (``TEST.NUM_ENSEMBLE_VIEWS``).
        num_retries: train/val decode attempts on other videos after a failure (``DATA.NUM_RETRIES``).
        max_failure_fraction: test mode stops above this fraction of failed videos
            (``DATA.MAX_FAILURE_FRACTION``).
        missing: listed paths that do not exist (counted as failures in test mode).
        class_names: index -> class name, where known.
        source: where the records came from (for messages).
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        mode: str,
        sampler: ClipSampler,
        transform: ClipTransform,
        decoder: VideoDecoder,
        num_ensemble_views: int = 1,
        num_retries: int = 10,
        max_failure_fraction: float = 0.05,
        missing: Sequence[str] = (),
        class_names: Optional[Sequence[str]] = None,
        source: str = "",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not records:
            raise ValueError(f"{source or 'data set'}: no videos")
        self.mode = mode
        self.sampler = sampler
        self.transform = transform
        self.decoder = decoder
        self.num_retries = int(num_retries)
        self.max_failure_fraction = float(max_failure_fraction)
        self.class_names = list(class_names) if class_names is not None else None
        self.source = source
        self._paths = _PathTable([r.path for r in records])
        self._labels = np.asarray([r.label for r in records], dtype=np.int64)
        self.missing = list(missing)
        self.num_temporal_views = int(num_ensemble_views) if mode == "test" else 1
        self.num_spatial_crops = transform.num_crops if mode == "test" else 1
        if self.num_temporal_views < 1:
            raise ValueError(f"TEST.NUM_ENSEMBLE_VIEWS must be >= 1, got {num_ensemble_views}")
        # Shared across DataLoader workers: per-video failure code (0 = ok, else reason index + 1) and
        # per-worker failure counters (one slot per process, so increments never race).
        self._failure_codes = torch.zeros(len(self._paths), dtype=torch.int8).share_memory_()
        self._epoch_failures = torch.zeros(_MAX_WORKER_SLOTS, dtype=torch.int64).share_memory_()
        self._views: Optional[_DecodedViews] = None  # test mode: the last video's decoded views (per process)
        if mode == "test":
            self._check_failure_fraction()

    # ------------------------------------------------------------------------------------ sizes

    @property
    def num_videos(self) -> int:
        """Videos in the data set (listed videos that exist)."""
        return len(self._paths)

    @property
    def num_views(self) -> int:
        """Items per video: ``NUM_ENSEMBLE_VIEWS * NUM_SPATIAL_CROPS`` in test mode, else 1."""
        return self.num_temporal_views * self.num_spatial_crops

    def __len__(self) -> int:
        return self.num_videos * self.num_views

    def path(self, video_index: int) -> str:
        return self._paths[video_index]

    def label(self, video_index: int) -> int:
        return int(self._labels[video_index])

    @property
    def labels(self) -> np.ndarray:
        """Labels of all videos (read-only view)."""
        view = self._labels.view()
        view.flags.writeable = False
        return view

    # --------------------------------------------------------------------------------- failures

    @property
    def failures(self) -> Dict[str, str]:
        """Path -> reason of every video that failed so far (all workers) and every missing one."""
        result = {path: "missing" for path in self.missing}
        for index in torch.nonzero(self._failure_codes).flatten().tolist():
            result[self._paths[index]] = FAILURE_REASONS[int(self._failure_codes[index]) - 1]
        return result

    @property
    def num_failed(self) -> int:
        """Failed plus missing videos."""
        return int(torch.count_nonzero(self._failure_codes)) + len(self.missing)

    def failure_report(self, reset: bool = True) -> FailureReport:
        """The failure counts for the engine to log after each epoch; ``reset`` starts a new epoch count."""
        report = FailureReport(
            epoch_failures=int(self._epoch_failures.sum()),
            failed_videos=int(torch.count_nonzero(self._failure_codes)),
            missing_videos=len(self.missing),
            num_videos=self.num_videos,
            failures=self.failures,
        )
        if reset:
            self._epoch_failures.zero_()
        return report

    def _record_failure(self, video_index: int, error: VideoDecodeError) -> None:
        worker = torch.utils.data.get_worker_info()
        slot = 0 if worker is None else 1 + worker.id % (_MAX_WORKER_SLOTS - 1)
        self._epoch_failures[slot] += 1
        if int(self._failure_codes[video_index]) == 0:
            self._failure_codes[video_index] = FAILURE_REASONS.index(error.reason) + 1
            action = "excluded from the results" if self.mode == "test" else "replaced by another video"
            logger.warning("skipping video %s: %s; %s", error.path, f"{error.reason} ({error.detail})" if error.detail
                           else error.reason, action)

    def _check_failure_fraction(self) -> None:
        listed = self.num_videos + len(self.missing)
        failed = self.num_failed
        if failed > self.max_failure_fraction * listed:
            examples = "; ".join(f"{p}: {r}" for p, r in list(self.failures.items())[:5])
            raise RuntimeError(
                f"{self.source}: {failed} of {listed} test videos failed or are missing, more than "
                f"DATA.MAX_FAILURE_FRACTION={self.max_failure_fraction:g}; e.g. {examples}"
            )

    # ---------------------------------------------------------------------------------- loading

    def _decode(self, video_index: int, temporal_view: int) -> torch.Tensor:
        """uint8 (T, 3, H, W) frames of one temporal view; raises VideoDecodeError."""
        path = self._paths[video_index]
        with self.decoder.open(path) as video:
            indices = self.sampler.sample(
                self.mode, video.num_frames, video.fps, view=temporal_view, num_views=self.num_temporal_views
            )
            return video.get_frames(indices)

    def _decode_views(self, video_index: int) -> _DecodedViews:
        """All temporal views of a test video from one open and one decode request (module docstring)."""
        path = self._paths[video_index]
        with self.decoder.open(path) as video:
            windows = [
                self.sampler.sample("test", video.num_frames, video.fps, view=view, num_views=self.num_temporal_views)
                for view in range(self.num_temporal_views)
            ]
            union = sorted({index for window in windows for index in window})
            frames = video.get_frames(union)
        lookup = torch.tensor(union)
        positions = [torch.searchsorted(lookup, torch.tensor(window)) for window in windows]
        return _DecodedViews(video_index, self.transform.prepare(frames), positions)

    def _train_item(self, index: int) -> Dict[str, object]:
        video_index = index
        attempts: List[str] = []
        for _ in range(self.num_retries + 1):
            try:
                clip = self._decode(video_index, 0)
            except VideoDecodeError as error:
                self._record_failure(video_index, error)
                attempts.append(f"{error.path}: {error.reason}")
                video_index = self._substitute()
                continue
            video = self.transform(clip)
            return {"video": video, "label": self.label(video_index), "video_index": video_index, "view_index": 0}
        raise RuntimeError(
            f"{self.source}: could not load a clip in {len(attempts)} attempts on different videos "
            f"(DATA.NUM_RETRIES={self.num_retries}); {self.num_failed} of {self.num_videos + len(self.missing)} "
            f"videos have failed so far. Last failures: " + "; ".join(attempts[-3:])
            + ". Check DATA.PATH_TO_DATA_DIR / DATA.PATH_PREFIX and DATA.DECODER."
        )

    def _substitute(self) -> int:
        """A random video not known to fail; raises when every video has failed."""
        good = torch.nonzero(self._failure_codes == 0).flatten()
        if good.numel() == 0:
            examples = "; ".join(f"{p}: {r}" for p, r in list(self.failures.items())[:3])
            raise RuntimeError(
                f"{self.source}: all {self.num_videos} videos failed to load (e.g. {examples}); check the files, "
                f"DATA.PATH_PREFIX and DATA.DECODER ({self.decoder.name})"
            )
        return int(good[torch.randint(0, good.numel(), (1,))])

    def _test_item(self, index: int) -> Dict[str, object]:
        video_index, view_index = divmod(index, self.num_views)
        temporal_view, spatial_crop = divmod(view_index, self.num_spatial_crops)
        item = {"label": self.label(video_index), "video_index": video_index, "view_index": view_index}
        if int(self._failure_codes[video_index]) == 0:
            try:
                if self._views is None or self._views.video_index != video_index:
                    self._views = None  # free the previous video before decoding the next one
                    self._views = self._decode_views(video_index)
                video = self.transform.finalize(
                    self._views.frames, spatial_crop, frame_positions=self._views.positions[temporal_view]
                )
                return {"video": video, **item, "failed": False}
            except VideoDecodeError as error:
                self._record_failure(video_index, error)
                self._check_failure_fraction()
        size = self.transform.crops.size if self.transform.crops is not None else 1
        zeros = torch.zeros(3, self.sampler.num_frames, size, size, dtype=self.transform.dtype)
        return {"video": zeros, **item, "failed": True}

    def __getitem__(self, index: int) -> Dict[str, object]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if self.mode == "test":
            return self._test_item(index)
        return self._train_item(index)  # val: the centre window, with the same substitution as train

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_views"] = None  # per-process cache
        return state

    def __repr__(self) -> str:
        return (
            f"KineticsDataset(mode={self.mode}, videos={self.num_videos}, views={self.num_views}, "
            f"sampler={self.sampler}, decoder={self.decoder.name}, source={self.source})"
        )


def collate_clips(batch: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """``default_collate`` for the data set's items that keeps uint8 clips channels-last.

    A uint8 clip (``DATA.OUTPUT_DTYPE uint8``) is a (C, T, H, W) view of frames stored in (T, H, W, C)
    order, RGB interleaved as decoded and resized. ``default_collate`` would stack it into a contiguous
    (B, C, T, H, W) batch, de-interleaving the bytes in the worker (a strided byte copy, slower than all
    the other uint8 work after decoding). This stacks in (T, H, W, C) order instead (a plain copy, into
    shared memory in a worker, as ``default_collate`` does) and returns the batch as a (B, C, T, H, W)
    view with ``channels_last_3d`` strides; the device de-interleaves it while normalising
    (:func:`rs_image.data.normalize_uint8`). Float clips go through ``default_collate`` as they
    are, and so does every other key.
    """
    if not batch or not isinstance(batch[0], dict) or batch[0]["video"].dtype != torch.uint8:
        return torch.utils.data.default_collate(batch)
    videos = torch.utils.data.default_collate([item["video"].permute(1, 2, 3, 0) for item in batch])
    rest = torch.utils.data.default_collate([{k: v for k, v in item.items() if k != "video"} for item in batch])
    return {"video": videos.permute(0, 4, 1, 2, 3), **rest}


def _num_ensemble_views(cfg, mode: str) -> int:
    return int(cfg.TEST.NUM_ENSEMBLE_VIEWS) if mode == "test" else 1


def build_video_dataset(cfg, split: str) -> torch.utils.data.Dataset:
    """The data set for ``split`` ("train", "val" or "test") from the config contract (docs/data.md).

    ``DATA.BACKEND = "native"`` gives a :class:`KineticsDataset`; ``"pytorchvideo"`` gives
    :class:`rs_video.data.pytorchvideo_backend.PyTorchVideoKinetics` (slower; same item format).
    """
    if split not in MODES:
        raise ValueError(f"split must be one of {MODES}, got {split!r}")
    data = cfg.DATA
    annotations: SplitAnnotations = load_split(
        data.PATH_TO_DATA_DIR, split, path_prefix=data.PATH_PREFIX, separator=data.PATH_LABEL_SEPARATOR,
        num_classes=int(cfg.MODEL.NUM_CLASSES),
    )
    sampler = ClipSampler(data.NUM_FRAMES, data.SAMPLING_RATE, data.TARGET_FPS, data.SHORT_CLIP_POLICY)
    transform = build_clip_transform(cfg, split)
    if data.BACKEND == "pytorchvideo":
        from .pytorchvideo_backend import PyTorchVideoKinetics

        return PyTorchVideoKinetics(
            annotations.records, split, sampler, transform,
            decoder=data.DECODER if data.DECODER in ("pyav", "decord") else "pyav",
            num_ensemble_views=_num_ensemble_views(cfg, split), class_names=annotations.class_names,
            source=annotations.source,
        )
    if data.BACKEND != "native":
        raise ValueError(f"DATA.BACKEND must be 'native' or 'pytorchvideo', got {data.BACKEND!r}")
    return KineticsDataset(
        annotations.records, split, sampler, transform, create_decoder(data.DECODER, int(data.DECODER_THREADS)),
        num_ensemble_views=_num_ensemble_views(cfg, split), num_retries=int(data.NUM_RETRIES),
        max_failure_fraction=float(data.MAX_FAILURE_FRACTION), missing=annotations.missing,
        class_names=annotations.class_names, source=annotations.source,
    )

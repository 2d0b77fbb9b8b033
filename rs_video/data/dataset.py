"""The video data set: a map-style :class:`torch.utils.data.Dataset` with a real ``__len__``, one class for
every annotation source (Kinetics, UCF101, HMDB51, Something-Something v2: :mod:`rs_video.data.sources`).

Items are dicts (the contract with the engine):

* train / val: ``video`` (C, T, H, W), ``label`` int (multi-label: a float32 (num_classes,) multi-hot row),
  ``video_index`` int, ``view_index`` 0, ``failed_reads`` and ``fallback_reads`` (broken input, below). One item
  per video. ``video`` is float32 normalised (``DATA.OUTPUT_DTYPE: float32``, the default) or the uint8 clip
  that the consumer normalises on its device (``uint8``; the engine does it in
  :meth:`rs_image.engine.Task.prepare_input`).
* train with several clips per video (SlowFast's keys): ``DATA.TRAIN_CROP_NUM_TEMPORAL`` W temporal clips,
  each with its own window, and ``AUG.NUM_SAMPLE`` S augmentations of each (repeated augmentation: its own
  crop, scale, flip and RandAugment ops on the same frames), K = W * S clips in window-major order.
  ``video`` is (K, C, T, H, W) and every other key a length-K tensor, one row per clip: ``label`` and
  ``video_index`` repeated, ``view_index`` the clip number 0..K-1, ``failed_reads`` on the first row (0 on
  the others, so that summing it still counts replaced loads). :func:`collate_clips` makes a batch of B
  such items a batch of B * K clips. The file is opened once and decoded once for all K clips: the W
  windows are drawn first and the union of their frames is decoded in one request, as for test views
  (below). A broken file is replaced as a whole: all K clips come from the substitute.
* test: the same plus ``failed`` (bool) and ``fallback_reads`` (below). ``len = num_videos * num_views`` with
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

Broken input (missing, zero-byte, truncated, garbage, audio-only or frameless files) follows the policy
shared with the image data sets (:mod:`rs_image.data.failures`):

* train / val: the item is replaced by another video, chosen by a generator seeded from
  ``(RNG_SEED, epoch, index, attempt)`` (up to ``DATA.NUM_RETRIES`` substitutes; a video known to fail is
  passed over without being opened again); a warning names the path and reason once per file; the item's
  ``failed_reads`` says how many candidates were passed over, so the engine counts replaced loads by
  summing it. When every video of the data set has failed, or the retries run out, the first batch raises
  an error saying so; an epoch is never silently empty and nothing hangs.
* test: nothing is substituted (that would bias the accuracy). The failed view comes back as an item with
  ``failed=True`` and a zero clip (of the output dtype), so the default collate works and the engine
  aggregates only the views with ``failed=False``. Failed and missing videos are counted, and loading
  stops with an error once they exceed ``DATA.MAX_FAILURE_FRACTION`` of the listed videos.

Every random choice about a training clip (its window, crop, scale, flip, RandAugment ops) is drawn in the
sample's own seeded RNG scope (:mod:`rs_image.data.randomness`), so it depends on ``(RNG_SEED, epoch,
index, attempt)`` only: the number of workers, persistent workers and resuming change nothing. With K clips
the draws come from that one scope in a fixed order: the W windows, then clip 0's spatial parameters,
clip 1's, and so on (K = 1 is exactly the single-clip item).

A file the chosen decoder cannot decode (a codec it lacks, such as AV1 for decord) is read once more with
the decoder's fallback backend (:meth:`rs_video.data.decoders.VideoDecoder.read`) before it counts as
broken. Such reads are counted apart from broken files: items carry ``fallback_reads`` (train/val: 1 when
the item's video came from the fallback; with K clips on the first row; test: 1 on view 0 of such a
video, so that the sum over all items counts videos), which the engine sums into its epoch and test
summaries, and :meth:`VideoDataset.failure_report` counts the distinct files (all workers).

Videos listed but absent are dropped when the data set is built (one summary line) and count as failed
in test mode.

Which videos failed lives in shared memory, so :meth:`VideoDataset.failure_report` in the main process
includes every DataLoader worker, with ``fork``, ``spawn`` or ``persistent_workers``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from rs_image.data.failures import FailurePolicy, FailureReport
from rs_image.errors import DataError

from .annotations import SplitAnnotations, VideoRecord
from .decoders import FAILURE_REASONS, OpenVideo, VideoDecoder, create_decoder
from .sampling import ClipSampler
from .sources import load_annotations
from .transforms import ClipTransform, build_clip_transform, gather_frames

__all__ = ["VideoDataset", "SplitInputs", "build_split_inputs", "build_video_dataset", "collate_clips", "MODES"]

logger = logging.getLogger(__name__)

MODES = ("train", "val", "test")


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
class _DecodedWindows:
    """The frames of several temporal windows of one video, from one open and one decode request.

    Test mode keeps the last video's (prepared) in a per-worker cache; repeated augmentation cuts its K
    train clips from it.
    """

    video_index: int
    frames: torch.Tensor  # uint8 (N, 3, H, W): the sorted union of the windows' frames (test mode: prepared)
    positions: List[Optional[torch.Tensor]]  # per window, the rows of ``frames`` that make it; None: all, in order
    fallback: bool = False  # read by the decoder's fallback backend (the chosen one cannot decode the file)


class VideoDataset(torch.utils.data.Dataset):
    """Clips from a list of videos (module docstring: item format, test views, broken input).

    Args:
        records: the videos (path, label).
        mode: "train", "val" or "test".
        sampler: which frames make a clip.
        transform: clip transform for ``mode``.
        decoder: video decoder backend.
        num_ensemble_views: temporal views per video in test mode (``TEST.NUM_ENSEMBLE_VIEWS``).
        num_windows: temporal clips per item in train mode, each its own window (``DATA.TRAIN_CROP_NUM_TEMPORAL``).
        num_augmentations: augmented clips per window in train mode (``AUG.NUM_SAMPLE``, repeated augmentation).
        num_retries: train/val decode attempts on other videos after a failure (``DATA.NUM_RETRIES``).
        seed: ``RNG_SEED``: seeds every random choice about a sample (module docstring).
        max_failure_fraction: test mode stops above this fraction of failed videos
            (``DATA.MAX_FAILURE_FRACTION``).
        missing: listed paths that do not exist (counted as failures in test mode).
        class_names: index -> class name, where known.
        source: where the records came from (for messages).
        multi_label_classes: > 0 for a multi-label data set (records with ``labels``): the width of the
            multi-hot ``label`` rows (``MODEL.NUM_CLASSES``).
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
        seed: int = 0,
        num_windows: int = 1,
        num_augmentations: int = 1,
        multi_label_classes: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        for key, value in (("DATA.TRAIN_CROP_NUM_TEMPORAL", num_windows), ("AUG.NUM_SAMPLE", num_augmentations)):
            if value < 1 or (value > 1 and mode != "train"):
                raise ValueError(f"{key} must be >= 1, and 1 outside train mode; got {value} in {mode} mode")
        if not records:
            raise DataError(f"{source or 'data set'}: no videos")
        self.mode = mode
        self.sampler = sampler
        self.transform = transform
        self.decoder = decoder
        self.class_names = list(class_names) if class_names is not None else None
        self.source = source
        self._paths = _PathTable([r.path for r in records])
        self._labels = np.asarray([r.label for r in records], dtype=np.int64)
        self.multi_label = multi_label_classes > 0
        if self.multi_label:  # (N, C) multi-hot, one byte per class
            self._multi_hot = np.zeros((len(records), multi_label_classes), dtype=np.uint8)
            for row, record in enumerate(records):
                classes = list(record.labels or ())
                if classes and max(classes) >= multi_label_classes:
                    raise DataError(f"{source}: {record.path} has class {max(classes)}, but MODEL.NUM_CLASSES is "
                                    f"{multi_label_classes}")
                self._multi_hot[row, classes] = 1
        self.num_windows, self.num_augmentations = int(num_windows), int(num_augmentations)
        self.num_temporal_views = int(num_ensemble_views) if mode == "test" else 1
        self.num_spatial_crops = transform.num_crops if mode == "test" else 1
        if self.num_temporal_views < 1:
            raise ValueError(f"TEST.NUM_ENSEMBLE_VIEWS must be >= 1, got {num_ensemble_views}")
        self.policy = FailurePolicy(
            len(self._paths), self.path, FAILURE_REASONS, seed=seed, num_retries=num_retries,
            max_failure_fraction=float(max_failure_fraction) if mode == "test" else None, missing=missing,
            source=source, kind="video",
            hint=f"check DATA.PATH_TO_DATA_DIR / DATA.PATH_PREFIX and DATA.DECODER ({decoder.name})",
        )
        self._views: Optional[_DecodedWindows] = None  # test mode: the last video's decoded views (per process)
        self.policy.check_failure_fraction()

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

    def label(self, video_index: int) -> Union[int, torch.Tensor]:
        """The class index, or for a multi-label data set the float32 multi-hot row."""
        if self.multi_label:
            return torch.from_numpy(self._multi_hot[video_index].astype(np.float32))
        return int(self._labels[video_index])

    @property
    def labels(self) -> np.ndarray:
        """Labels of all videos (read-only view)."""
        view = self._labels.view()
        view.flags.writeable = False
        return view

    # --------------------------------------------------------------------------------- failures

    @property
    def missing(self) -> List[str]:
        """Listed paths that do not exist."""
        return self.policy.missing

    @property
    def failures(self) -> Dict[str, str]:
        """Path -> reason of every video that failed so far (all workers) and every missing one."""
        return self.policy.failures

    @property
    def num_failed(self) -> int:
        """Failed plus missing videos."""
        return self.policy.num_failed

    def failure_report(self) -> FailureReport:
        """What failed so far, in every DataLoader worker."""
        return self.policy.report()

    # ---------------------------------------------------------------------------------- loading

    def _decode(self, video_index: int, temporal_view: int) -> torch.Tensor:
        """uint8 (T, 3, H, W) frames of one temporal view; raises VideoDecodeError."""

        def read(video: OpenVideo) -> torch.Tensor:
            indices = self.sampler.sample(
                self.mode, video.num_frames, video.fps, view=temporal_view, num_views=self.num_temporal_views
            )
            return video.get_frames(indices)

        return self.decoder.read(self._paths[video_index], read)[0]

    def _decode_windows(self, video_index: int, num_windows: int) -> _DecodedWindows:
        """``num_windows`` temporal windows of a video from one open and one decode request: the views of a
        test video (window ``w`` is view ``w``) or the clips of a train item (each window drawn in the
        sample's RNG scope, in order). Overlapping windows share their frames and a long GOP is walked
        once. A file the decoder cannot decode is read once more with its fallback backend
        (:meth:`~rs_video.data.decoders.VideoDecoder.read`), recorded in the failure policy and flagged in
        the result; raises VideoDecodeError."""
        test = self.mode == "test"

        def read(video: OpenVideo):
            windows = [
                self.sampler.sample(self.mode, video.num_frames, video.fps, view=window if test else 0,
                                    num_views=num_windows if test else 1)
                for window in range(num_windows)
            ]
            union = sorted({index for window in windows for index in window})
            return windows, union, video.get_frames(union)

        (windows, union, frames), primary_error = self.decoder.read(self._paths[video_index], read)
        if primary_error is not None:
            self.policy.record_fallback(video_index)
        lookup = torch.tensor(union)
        positions = [None if window == union else torch.searchsorted(lookup, torch.tensor(window))
                     for window in windows]
        return _DecodedWindows(video_index, frames, positions, fallback=primary_error is not None)

    def _decode_views(self, video_index: int) -> _DecodedWindows:
        """All temporal views of a test video, resized once for all of them (module docstring)."""
        decoded = self._decode_windows(video_index, self.num_temporal_views)
        decoded.frames = self.transform.prepare(decoded.frames)
        return decoded

    @property
    def clips_per_item(self) -> int:
        """Clips in a train item: ``DATA.TRAIN_CROP_NUM_TEMPORAL x AUG.NUM_SAMPLE`` (1 in val and test)."""
        return self.num_windows * self.num_augmentations

    def _train_clips(self, video_index: int) -> Tuple[torch.Tensor, bool]:
        """The transformed train/val clip (C, T, H, W), or the item's :attr:`clips_per_item` clips (K, C, T, H, W)
        from one decode (called in the sample's seeded RNG scope), and whether the fallback decoder read
        them; raises VideoDecodeError."""
        decoded = self._decode_windows(video_index, self.num_windows)
        if self.clips_per_item == 1:
            return self.transform(gather_frames(decoded.frames, decoded.positions[0])), decoded.fallback
        prepared = []
        for rows in decoded.positions:
            frames = gather_frames(decoded.frames, rows)
            prepared += [self.transform.prepare(frames) for _ in range(self.num_augmentations)]
        t, c, h, w = prepared[0].shape
        if self.transform.dtype == torch.uint8:  # in the frames' (T, H, W, C) memory order (collate_clips)
            clips = torch.empty((len(prepared), t, h, w, c), dtype=torch.uint8).permute(0, 4, 1, 2, 3)
        else:
            clips = torch.empty((len(prepared), c, t, h, w), dtype=torch.float32)
        for clip, row in zip(prepared, clips):  # written in place: no copy of the K clips into one tensor
            self.transform.finalize(clip, out=row)
        return clips, decoded.fallback

    def _train_item(self, index: int) -> Dict[str, object]:
        (video, fallback), video_index, failed_reads = self.policy.load(index, self._train_clips)
        label = self.label(video_index)
        k = self.clips_per_item
        if k == 1:
            return {"video": video, "label": label, "video_index": video_index, "view_index": 0,
                    "failed_reads": failed_reads, "fallback_reads": int(fallback)}
        # One row per clip (module docstring).
        labels = label.expand(k, -1).clone() if isinstance(label, torch.Tensor) else torch.full((k,), label)
        return {"video": video, "label": labels, "video_index": torch.full((k,), video_index),
                "view_index": torch.arange(k), "failed_reads": torch.tensor([failed_reads] + [0] * (k - 1)),
                "fallback_reads": torch.tensor([int(fallback)] + [0] * (k - 1))}

    def _test_views(self, video_index: int) -> _DecodedWindows:
        if self._views is None or self._views.video_index != video_index:
            self._views = None  # free the previous video before decoding the next one
            self._views = self._decode_views(video_index)
        return self._views

    def _test_item(self, index: int) -> Dict[str, object]:
        video_index, view_index = divmod(index, self.num_views)
        temporal_view, spatial_crop = divmod(view_index, self.num_spatial_crops)
        item = {"label": self.label(video_index), "video_index": video_index, "view_index": view_index}
        views = self.policy.load_or_none(video_index, self._test_views)
        if views is not None:
            video = self.transform.finalize(views.frames, spatial_crop, frame_positions=views.positions[temporal_view])
            # Counted on view 0 only, so that summing over all items counts each video read by the fallback once.
            return {"video": video, **item, "failed": False, "fallback_reads": int(views.fallback and view_index == 0)}
        size = self.transform.crops.size if self.transform.crops is not None else 1
        zeros = torch.zeros(3, self.sampler.num_frames, size, size, dtype=self.transform.dtype)
        return {"video": zeros, **item, "failed": True, "fallback_reads": 0}

    def __getitem__(self, index: int) -> Dict[str, object]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if self.mode == "test":
            return self._test_item(int(index))
        return self._train_item(index)  # val: the centre window, with the same substitution as train

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_views"] = None  # per-process cache
        return state

    def __repr__(self) -> str:
        return (
            f"VideoDataset(mode={self.mode}, videos={self.num_videos}, views={self.num_views}, "
            f"clips per item={self.num_windows}x{self.num_augmentations}, "
            f"sampler={self.sampler}, decoder={self.decoder.name}, source={self.source})"
        )


def collate_clips(batch: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """``default_collate`` for the data set's items that keeps uint8 clips channels-last and flattens
    repeated-augmentation items.

    A uint8 clip (``DATA.OUTPUT_DTYPE uint8``) is a (C, T, H, W) view of frames stored in (T, H, W, C)
    order, RGB interleaved as decoded and resized. ``default_collate`` would stack it into a contiguous
    (B, C, T, H, W) batch, de-interleaving the bytes in the worker (a strided byte copy, slower than all
    the other uint8 work after decoding). This stacks in (T, H, W, C) order instead (a plain copy, into
    shared memory in a worker, as ``default_collate`` does) and returns the batch as a (B, C, T, H, W)
    view with ``channels_last_3d`` strides; the device de-interleaves it while normalising
    (:func:`rs_image.data.normalize_uint8`). Float clips go through ``default_collate`` as they
    are, and so does every other key.

    Items of K clips (``video`` (K, C, T, H, W): ``DATA.TRAIN_CROP_NUM_TEMPORAL x AUG.NUM_SAMPLE``) give a
    batch of B * K clips, item after item, and every other key B * K rows: each (B, K, ...) tensor is
    flattened (a view).
    """
    if not batch or not isinstance(batch[0], dict):
        return torch.utils.data.default_collate(batch)
    if batch[0]["video"].dtype == torch.uint8:
        videos = torch.utils.data.default_collate([item["video"].movedim(-4, -1) for item in batch])
        rest = torch.utils.data.default_collate([{k: v for k, v in item.items() if k != "video"} for item in batch])
        collated = {"video": videos.movedim(-1, -4), **rest}
    else:
        collated = torch.utils.data.default_collate(batch)
    if batch[0]["video"].dim() == 5:  # K clips per item
        collated = {k: v.flatten(0, 1) if isinstance(v, torch.Tensor) else v for k, v in collated.items()}
    return collated


class SplitInputs(NamedTuple):
    """What a video data set of one split is built from."""

    annotations: SplitAnnotations
    sampler: ClipSampler
    transform: ClipTransform


def build_split_inputs(cfg, split: str, read_annotations: bool = True) -> SplitInputs:
    """The annotations, clip sampler and clip transform of ``split`` from the config (docs/data.md).

    Every video data set builder starts here, so that all of them read the same videos and make the same
    clips (:func:`build_video_dataset`; the PyTorchVideo comparison in ``rs_video.benchmark``).
    ``read_annotations`` False leaves the annotation files unread (empty annotations).
    """
    if split not in MODES:
        raise ValueError(f"split must be one of {MODES}, got {split!r}")
    data = cfg.DATA
    # the reader of DATA.DATASET (rs_video.data.sources)
    annotations = load_annotations(cfg, split) if read_annotations else SplitAnnotations([])
    sampler = ClipSampler(data.NUM_FRAMES, data.SAMPLING_RATE, data.TARGET_FPS, data.SHORT_CLIP_POLICY,
                          data.SAMPLING_MODE)
    return SplitInputs(annotations, sampler, build_clip_transform(cfg, split))


def build_video_dataset(cfg, split: str, annotations: Optional[SplitAnnotations] = None) -> VideoDataset:
    """Our loader's data set for ``split`` ("train", "val" or "test") from the config contract (docs/data.md).

    It is ``DATA.BACKEND: native``; the video task builds ``pytorchvideo``, the comparison backend, with
    ``rs_video.data.build_pytorchvideo_dataset`` (this package never imports it). ``annotations``
    replaces the split's annotation files (the video predictor passes the videos it was given, so that its
    views are the test tool's).
    """
    data = cfg.DATA
    if data.BACKEND != "native":
        raise ValueError(
            f"build_video_dataset builds DATA.BACKEND 'native', got {data.BACKEND!r} "
            "(DATA.BACKEND 'pytorchvideo' is rs_video.data.build_pytorchvideo_dataset)"
        )
    listed, sampler, transform = build_split_inputs(cfg, split, read_annotations=annotations is None)
    annotations = annotations if annotations is not None else listed
    return VideoDataset(
        annotations.records, split, sampler, transform, create_decoder(data.DECODER, int(data.DECODER_THREADS)),
        num_ensemble_views=int(cfg.TEST.NUM_ENSEMBLE_VIEWS) if split == "test" else 1,
        num_retries=int(data.NUM_RETRIES), max_failure_fraction=float(data.MAX_FAILURE_FRACTION),
        missing=annotations.missing, class_names=annotations.class_names, source=annotations.source,
        seed=int(cfg.RNG_SEED), num_windows=int(data.TRAIN_CROP_NUM_TEMPORAL) if split == "train" else 1,
        num_augmentations=int(cfg.AUG.NUM_SAMPLE) if split == "train" else 1,
        multi_label_classes=int(cfg.MODEL.NUM_CLASSES) if data.MULTI_LABEL else 0,
    )

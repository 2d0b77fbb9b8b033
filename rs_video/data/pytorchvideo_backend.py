"""``DATA.BACKEND: pytorchvideo``: PyTorchVideo's Kinetics loader behind a map-style wrapper.

The slower path, kept for comparison and for people who want PyTorchVideo's decoding; the video task
builds it with :func:`build_pytorchvideo_dataset` (our own loader, ``native``, is
:func:`rs_video.data.build_video_dataset`). It builds
``pytorchvideo.data.LabeledVideoDataset`` (the class ``pytorchvideo.data.Kinetics`` returns) from the
annotations our loader parsed, so every annotation layout works and missing files are dropped the same
way, with ``decode_audio=False`` and decoder "pyav" or "decord" (its "torchvision" decoder no longer
works). PyTorchVideo's clip is float32 in [0, 255] holding every frame of the window; the wrapper picks
the T frames at stride tau, goes back to uint8 and applies our transforms, so items are identical in
format to :class:`rs_video.data.VideoDataset`'s.

Differences from the native loader (PyTorchVideo's semantics):

* it is an iterable underneath: ``__getitem__`` ignores the index and returns the next clip. The length
  is the number of videos (train/val) or videos x views (test), and each DataLoader worker walks its own
  slice of the videos, restarting (and reshuffling, with a new epoch seed) when the slice is used up, so
  an "epoch" is approximate, as with PyTorchVideo's own ``LimitDataset`` wrapper;
* broken videos are skipped inside PyTorchVideo (logged at DEBUG level); in test mode a skipped video's
  views are therefore missing rather than marked ``failed``, and ``failures`` stays empty;
* clip placement is PyTorchVideo's: train a uniformly random window, val the window at the start of the
  video, test ``NUM_ENSEMBLE_VIEWS`` windows at ``k * (duration - clip) / n`` (the last never reaches the
  end), each cropped ``NUM_SPATIAL_CROPS`` times.

Under ``torch.distributed`` each rank reads its own shard (PyTorchVideo's DistributedSampler usage);
the engine's sampler over this wrapper only sets how many items each rank takes.
"""

from __future__ import annotations

import functools
import logging
from typing import Dict, Optional, Sequence

import torch

from rs_image.data.failures import FailureReport
from rs_image.upstream import quiet_upstream_import

from .annotations import VideoRecord
from .dataset import build_split_inputs
from .sampling import ClipSampler
from .transforms import ClipTransform

__all__ = ["PyTorchVideoKinetics", "build_pytorchvideo_dataset"]

logger = logging.getLogger(__name__)


class PyTorchVideoKinetics(torch.utils.data.Dataset):
    """Map-style wrapper with a correct length around PyTorchVideo's ``LabeledVideoDataset``.

    Args:
        records: the videos.
        mode: "train", "val" or "test".
        sampler: gives T, tau and the clip duration ``T * tau / TARGET_FPS``.
        transform: our clip transform for ``mode``.
        decoder: "pyav" or "decord".
        num_ensemble_views: temporal views per video in test mode.
        class_names, source: as for :class:`~rs_video.data.VideoDataset`.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        mode: str,
        sampler: ClipSampler,
        transform: ClipTransform,
        decoder: str = "pyav",
        num_ensemble_views: int = 1,
        class_names: Optional[Sequence[str]] = None,
        source: str = "",
    ) -> None:
        if decoder not in ("pyav", "decord"):
            raise ValueError(f"the pytorchvideo backend decodes with 'pyav' or 'decord', got {decoder!r}")
        if mode not in ("train", "val", "test"):
            raise ValueError(f"mode must be 'train', 'val' or 'test', got {mode!r}")
        self.records = list(records)
        self.mode, self.sampler, self.transform, self.decoder = mode, sampler, transform, decoder
        self.num_temporal_views = int(num_ensemble_views) if mode == "test" else 1
        self.num_spatial_crops = transform.num_crops if mode == "test" else 1
        self.class_names = list(class_names) if class_names is not None else None
        self.source = source
        self.failures: Dict[str, str] = {}
        self.num_failed = 0
        self._dataset = None
        self._iterator = None
        self._epoch = 0
        logger.info("data backend: pytorchvideo LabeledVideoDataset, decoder %s, decode_audio=False", decoder)

    @property
    def num_videos(self) -> int:
        return len(self.records)

    @property
    def num_views(self) -> int:
        return self.num_temporal_views * self.num_spatial_crops

    def __len__(self) -> int:
        return self.num_videos * self.num_views

    def failure_report(self) -> FailureReport:
        """No per-file failure information comes out of PyTorchVideo; an all-zero report."""
        return FailureReport(0, 0, self.num_videos)

    def _build(self):
        ptv_data = quiet_upstream_import("pytorchvideo.data")
        LabeledVideoDataset, make_clip_sampler = ptv_data.LabeledVideoDataset, ptv_data.make_clip_sampler

        duration = self.sampler.duration_seconds
        if self.mode == "train":
            clip_sampler = make_clip_sampler("random", duration)
        else:
            clip_sampler = make_clip_sampler(
                "constant_clips_per_video", duration, self.num_temporal_views, self.num_spatial_crops
            )
        world, rank = 1, 0
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
        # A DistributedSampler (also for one process) gives a public set_epoch() for reshuffling.
        video_sampler = functools.partial(
            torch.utils.data.DistributedSampler, num_replicas=world, rank=rank, shuffle=self.mode == "train"
        )
        return LabeledVideoDataset(
            [(record.path, {"label": record.label}) for record in self.records],
            clip_sampler=clip_sampler,
            video_sampler=video_sampler,
            transform=self._convert,
            decode_audio=False,
            decoder=self.decoder,
        )

    def _convert(self, sample: dict) -> dict:
        window = sample["video"]  # float32 (C, W, H, W') in [0, 255], every frame of the clip window
        length = window.shape[1]
        t = self.sampler.num_frames
        picks = torch.tensor([min(k * length // t, length - 1) for k in range(t)])
        clip = window[:, picks].round_().clamp_(0, 255).to(torch.uint8).permute(1, 0, 2, 3)
        spatial = int(sample["aug_index"]) if self.mode == "test" else 0
        item = {
            "video": self.transform(clip, spatial),
            "label": int(sample["label"]),
            "video_index": int(sample["video_index"]),
            "view_index": int(sample["clip_index"]) * self.num_spatial_crops + spatial if self.mode == "test" else 0,
        }
        if self.mode == "test":
            item["failed"] = False
        return item

    def _restart(self) -> None:
        if self._dataset is None:
            self._dataset = self._build()
        self._dataset.video_sampler.set_epoch(self._epoch)
        self._epoch += 1
        self._iterator = iter(self._dataset)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if self._iterator is None:
            self._restart()
        for _ in range(2):
            try:
                return next(self._iterator)
            except StopIteration:
                self._restart()  # this worker's slice is used up: next epoch's permutation
            except RuntimeError as error:
                raise RuntimeError(f"{self.source}: pytorchvideo ({self.decoder}) could not load clips: {error}") from error
        raise RuntimeError(
            f"{self.source}: pytorchvideo ({self.decoder}) returned no clip from a full pass over this worker's "
            f"videos; they all fail to decode (PyTorchVideo logs the reasons at DEBUG level)"
        )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_dataset"], state["_iterator"] = None, None  # rebuilt inside each worker
        return state

    def __repr__(self) -> str:
        return (
            f"PyTorchVideoKinetics(mode={self.mode}, videos={self.num_videos}, views={self.num_views}, "
            f"decoder={self.decoder}, sampler={self.sampler})"
        )


def build_pytorchvideo_dataset(cfg, split: str) -> PyTorchVideoKinetics:
    """``DATA.BACKEND: pytorchvideo``: the wrapper for ``split`` from the same config contract, annotations,
    clip sampler and transforms as :func:`rs_video.data.build_video_dataset` (``DATA.DECODER`` other than
    "pyav" or "decord" means pyav)."""
    annotations, sampler, transform = build_split_inputs(cfg, split)
    decoder = cfg.DATA.DECODER if cfg.DATA.DECODER in ("pyav", "decord") else "pyav"
    return PyTorchVideoKinetics(
        annotations.records, split, sampler, transform, decoder=decoder,
        num_ensemble_views=int(cfg.TEST.NUM_ENSEMBLE_VIEWS), class_names=annotations.class_names,
        source=annotations.source,
    )

"""The AVA-format keyframe data set: a clip centred on each keyframe and the person boxes on it.

Items (the contract with :class:`rs_video.detection_task.DetectionTask`):

* ``video``: the clip (C, T, H, W), float32 normalised or uint8 (``DATA.OUTPUT_DTYPE``), T =
  ``DATA.NUM_FRAMES`` frames ``DATA.SAMPLING_RATE`` apart at ``DATA.TARGET_FPS``, centred on the keyframe
  (SlowFast: frames ``centre - T * tau / 2 + k * tau``, clamped to the video);
* ``boxes``: (K, 4) float32, the keyframe's boxes in pixels of the transformed clip (x1, y1, x2, y2);
* ``labels``: (K, NUM_CLASSES) float32 multi-hot (action id ``a`` is column ``a - 1``); zeros for detector
  proposals at test time, whose labels only the evaluation knows;
* ``keyframe_index``, ``failed`` (test mode: the clip could not be read; no boxes then).

Boxes: training uses the ground-truth boxes; val/test the person detections above
``AVA.DETECTION_SCORE_THRESH`` (SlowFast's convention), or the ground-truth boxes when no detection file is
configured. Box-aware transforms are torchvision's v2 transforms on a ``Video`` and its ``BoundingBoxes``
together, so boxes follow every pixel operation: train = short-side scale jitter and random square crop
(:class:`~rs_video.data.transforms.RandomShortSideScaleCrop`), horizontal flip, then boxes clipped to the
crop (a box that leaves it keeps its clipped, possibly empty, extent, as SlowFast's ``clip_boxes_to_image``);
val/test = short side resized to ``DATA.TEST_CROP_SIZE``, the whole frame kept.

Frames come from the videos (:func:`rs_video.data.create_decoder`; the keyframe at ``timestamp -
AVA.VIDEO_TIME_OFFSET`` seconds into the file: 900 for AVA's 15-minute cuts, 0 for full-length videos) or from
extracted frame folders listed in SlowFast's frame lists (frame ``(timestamp - AVA.VIDEO_TIME_OFFSET) * 30``).
A keyframe whose video is missing is dropped when the data set is built (counted in one log line); a
keyframe past the end of its video, or a file that cannot be read, follows the loader's failure policy
(:mod:`rs_image.data.failures`: replaced in training, reported and left out at test time).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from rs_image.data import read_image
from rs_image.data.failures import FailurePolicy, SampleLoadError, check_file
from rs_image.data.transforms import interpolation_mode
from rs_image.errors import DataError

from .ava import (
    AVA_FPS, AvaBox, KeyframeKey, merge_box_lists, read_box_csv, read_frame_list, read_label_map, video_files,
)
from .decoders import FAILURE_REASONS, VideoDecoder, create_decoder
from .transforms import ClipTransform, RandomShortSideScaleCrop

__all__ = [
    "VideoFrames", "FolderFrames", "AvaDataset", "build_box_transform", "collate_detection", "clip_indices",
    "build_ava_dataset", "ava_annotation_path",
]

logger = logging.getLogger(__name__)

_REASONS = tuple(FAILURE_REASONS) + ("timestamp outside the video",)


def clip_indices(centre: int, num_frames: int, step: float, length: int) -> List[int]:
    """SlowFast's AVA clip: ``centre - T * step / 2 + k * step`` for k < T, clamped to ``[0, length - 1]``."""
    half = num_frames * step / 2
    return [min(max(int(math.floor(centre - half + k * step + 1e-6)), 0), length - 1) for k in range(num_frames)]


class VideoFrames:
    """Clips from video files: ``{video id: path}``, read with a project decoder."""

    def __init__(self, paths: Dict[str, str], decoder: VideoDecoder, time_offset: float) -> None:
        self.paths, self.decoder, self.time_offset = paths, decoder, float(time_offset)

    def path(self, video_id: str) -> str:
        return self.paths[video_id]

    def clip(self, video_id: str, timestamp: int, num_frames: int, sampling_rate: int, target_fps: float) -> torch.Tensor:
        path = self.paths[video_id]
        with self.decoder.open(path) as video:
            fps = video.fps if video.fps > 0 else target_fps
            centre = int(round((timestamp - self.time_offset) * fps))
            if not 0 <= centre < video.num_frames:
                raise SampleLoadError(path, "timestamp outside the video",
                                      f"keyframe {timestamp} s is frame {centre} of {video.num_frames} "
                                      f"(AVA.VIDEO_TIME_OFFSET {self.time_offset:g})")
            return video.get_frames(clip_indices(centre, num_frames, sampling_rate * fps / target_fps, video.num_frames))


class FolderFrames:
    """Clips from extracted frames (30 fps, SlowFast's layout): ``{video id: [frame paths]}`` from the frame
    lists, relative to ``frame_dir``."""

    def __init__(self, frames: Dict[str, List[str]], frame_dir: str, time_offset: float) -> None:
        self.frames, self.frame_dir, self.time_offset = frames, frame_dir, float(time_offset)

    def path(self, video_id: str) -> str:
        return os.path.join(self.frame_dir, video_id)

    def clip(self, video_id: str, timestamp: int, num_frames: int, sampling_rate: int, target_fps: float) -> torch.Tensor:
        frames = self.frames[video_id]
        centre = int(round((timestamp - self.time_offset) * AVA_FPS))
        if not 0 <= centre < len(frames):
            raise SampleLoadError(self.path(video_id), "timestamp outside the video",
                                  f"keyframe {timestamp} s is frame {centre} of {len(frames)} listed frames")
        images = []
        for index in clip_indices(centre, num_frames, sampling_rate * AVA_FPS / target_fps, len(frames)):
            path = os.path.join(self.frame_dir, frames[index])
            check_file(path)
            try:
                images.append(read_image(path))
            except RuntimeError as error:
                raise SampleLoadError(path, "decode error", str(error)[:200]) from None
        return torch.stack(images)


def build_box_transform(cfg: Any, mode: str) -> Tuple[v2.Transform, ClipTransform]:
    """The box-aware spatial transform of ``mode`` and the clip finisher (dtype, normalisation) after it."""
    data = cfg.DATA
    interpolation = interpolation_mode(data.INTERPOLATION)
    if mode == "train":
        low, high = (int(s) for s in data.TRAIN_JITTER_SCALES)
        steps: List[v2.Transform] = [RandomShortSideScaleCrop(low, high, int(data.TRAIN_CROP_SIZE), interpolation)]
        if data.RANDOM_FLIP:
            steps.append(v2.RandomHorizontalFlip())
    elif mode in ("val", "test"):
        steps = [v2.Resize(int(data.TEST_CROP_SIZE), interpolation=interpolation, antialias=True)]
    else:
        raise ValueError(f"mode must be 'train', 'val' or 'test', got {mode!r}")
    steps.append(v2.ClampBoundingBoxes())
    finisher = ClipTransform(v2.Identity(), data.MEAN, data.STD, output_dtype=data.OUTPUT_DTYPE)
    return v2.Compose(steps), finisher


class AvaDataset(torch.utils.data.Dataset):
    """One item per keyframe (module docstring).

    Args:
        keyframes: the keyframes, in item order.
        boxes: the boxes of each keyframe (ground truth in training; proposals at test time).
        frames: :class:`VideoFrames` or :class:`FolderFrames`.
        mode: "train", "val" or "test".
        spatial, finisher: :func:`build_box_transform`.
        num_classes: columns of ``labels``.
        num_frames, sampling_rate, target_fps: the clip (``DATA.*``).
        seed, num_retries, max_failure_fraction, missing: the failure policy (``rs_image.data.failures``).
    """

    def __init__(
        self, keyframes: Sequence[KeyframeKey], boxes: Dict[KeyframeKey, List[AvaBox]], frames: Any, mode: str,
        spatial: v2.Transform, finisher: ClipTransform, num_classes: int, num_frames: int, sampling_rate: int,
        target_fps: float, *, seed: int = 0, num_retries: int = 10, max_failure_fraction: float = 0.05,
        missing: Sequence[str] = (), source: str = "AVA",
    ) -> None:
        if not keyframes:
            raise DataError(f"{source}: no keyframes with boxes and frames")
        self.keyframes = list(keyframes)
        self.boxes = boxes
        self.frames, self.mode = frames, mode
        self.spatial, self.finisher = spatial, finisher
        self.num_classes = int(num_classes)
        self.num_frames, self.sampling_rate, self.target_fps = int(num_frames), int(sampling_rate), float(target_fps)
        self.policy = FailurePolicy(
            len(self.keyframes), self.keyframe_name, _REASONS, seed=seed, num_retries=num_retries,
            max_failure_fraction=float(max_failure_fraction) if mode != "train" else None, missing=missing,
            source=source, kind="keyframe", hint="check AVA.VIDEO_DIR / AVA.FRAME_DIR and AVA.VIDEO_TIME_OFFSET",
        )

    def __len__(self) -> int:
        return len(self.keyframes)

    @property
    def num_videos(self) -> int:  # the engine's name for the number of test samples
        return len(self.keyframes)

    def keyframe_name(self, index: int) -> str:
        video_id, timestamp = self.keyframes[index]
        return f"{self.frames.path(video_id)}@{timestamp}s"

    def _load(self, index: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = self.keyframes[index]
        clip = self.frames.clip(key[0], key[1], self.num_frames, self.sampling_rate, self.target_fps)
        height, width = clip.shape[-2:]
        items = self.boxes.get(key, [])
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        pixels = torch.tensor([b.box for b in items], dtype=torch.float32).reshape(-1, 4) * scale
        labels = torch.zeros(len(items), self.num_classes)
        for row, b in enumerate(items):
            for action in b.actions:
                if 1 <= action <= self.num_classes:
                    labels[row, action - 1] = 1.0
        video, boxes = self.spatial(tv_tensors.Video(clip),
                                    tv_tensors.BoundingBoxes(pixels, format="XYXY", canvas_size=(height, width)))
        clip = self.finisher.finalize(video.as_subclass(torch.Tensor))
        return clip, boxes.as_subclass(torch.Tensor).float(), labels

    def __getitem__(self, index: int) -> Dict[str, Any]:
        if self.mode == "train":
            (clip, boxes, labels), used, failed_reads = self.policy.load(index, self._load)
            return {"video": clip, "boxes": boxes, "labels": labels, "keyframe_index": used,
                    "failed_reads": failed_reads, "failed": False}
        loaded = self.policy.load_or_none(int(index), self._load)
        if loaded is None:
            size = 1
            clip = torch.zeros(3, self.num_frames, size, size, dtype=self.finisher.dtype)
            return {"video": clip, "boxes": torch.zeros(0, 4), "labels": torch.zeros(0, self.num_classes),
                    "keyframe_index": int(index), "failed_reads": 0, "failed": True}
        clip, boxes, labels = loaded
        return {"video": clip, "boxes": boxes, "labels": labels, "keyframe_index": int(index), "failed_reads": 0,
                "failed": False}


def collate_detection(batch: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Clips padded (bottom/right, zeros) to the largest height and width of the batch and stacked; boxes as
    one (K, 5) tensor with the batch index first (``torchvision.ops.roi_align``'s layout), ``labels`` (K, C),
    ``box_keyframe`` / ``box_index`` (K,) the keyframe of each box and its place in that keyframe's list."""
    height = max(item["video"].shape[-2] for item in batch)
    width = max(item["video"].shape[-1] for item in batch)
    first = batch[0]["video"]
    videos = first.new_zeros((len(batch), *first.shape[:-2], height, width))
    boxes, labels, keyframes, indices = [], [], [], []
    for i, item in enumerate(batch):
        clip = item["video"]
        videos[i, ..., : clip.shape[-2], : clip.shape[-1]] = clip
        k = item["boxes"].shape[0]
        boxes.append(torch.cat([torch.full((k, 1), float(i)), item["boxes"]], dim=1))
        labels.append(item["labels"])
        keyframes.append(torch.full((k,), int(item["keyframe_index"]), dtype=torch.long))
        indices.append(torch.arange(k))
    return {
        "video": videos, "boxes": torch.cat(boxes), "labels": torch.cat(labels), "box_keyframe": torch.cat(keyframes),
        "box_index": torch.cat(indices),
        "keyframe_index": torch.tensor([int(item["keyframe_index"]) for item in batch]),
        "failed": torch.tensor([bool(item["failed"]) for item in batch]),
        "failed_reads": torch.tensor([int(item["failed_reads"]) for item in batch]),
    }


def ava_annotation_path(cfg: Any, name: str) -> str:
    """``name`` under ``AVA.ANNOTATION_DIR`` (an absolute ``name`` as it is)."""
    return name if os.path.isabs(name) else os.path.join(cfg.AVA.ANNOTATION_DIR, name)


def _split_boxes(cfg: Any, split: str) -> Dict[KeyframeKey, List[AvaBox]]:
    """Train: the ground-truth boxes of ``AVA.TRAIN_GT_BOX_LISTS``; val/test: the detections of
    ``AVA.TEST_PREDICT_BOX_LISTS`` above ``AVA.DETECTION_SCORE_THRESH``, or the boxes of
    ``AVA.GROUNDTRUTH_FILE`` when that list is empty."""
    ava, num_classes = cfg.AVA, int(cfg.MODEL.NUM_CLASSES)
    if split == "train":
        return merge_box_lists([read_box_csv(ava_annotation_path(cfg, f), num_classes=num_classes)
                                for f in ava.TRAIN_GT_BOX_LISTS])
    if ava.TEST_PREDICT_BOX_LISTS:
        return merge_box_lists([
            read_box_csv(ava_annotation_path(cfg, f), with_scores=True, score_thresh=float(ava.DETECTION_SCORE_THRESH))
            for f in ava.TEST_PREDICT_BOX_LISTS])
    truth = read_box_csv(ava_annotation_path(cfg, ava.GROUNDTRUTH_FILE), num_classes=num_classes)
    # Proposals carry no labels: the evaluation compares them with the ground truth.
    return {key: [AvaBox(b.box, [], b.person_id, 1.0) for b in boxes] for key, boxes in truth.items()}


def build_ava_dataset(cfg: Any, split: str) -> AvaDataset:
    """The AVA data set of ``split`` from the ``AVA.*`` and ``DATA.*`` keys (docs/detection.md)."""
    ava, data = cfg.AVA, cfg.DATA
    if not ava.VIDEO_DIR and not ava.FRAME_DIR:
        raise DataError("AVA.VIDEO_DIR (the folder of the videos) or AVA.FRAME_DIR (extracted frames) must be set")
    boxes = _split_boxes(cfg, split)
    if ava.FRAME_DIR:
        lists = ava.TRAIN_LISTS if split == "train" else ava.TEST_LISTS
        frame_lists: Dict[str, List[str]] = {}
        for name in lists:
            frame_lists.update(read_frame_list(os.path.join(ava.FRAME_LIST_DIR, name)))
        frames: Any = FolderFrames(frame_lists, ava.FRAME_DIR, float(ava.VIDEO_TIME_OFFSET))
        available = set(frame_lists)
    else:
        paths = video_files(ava.VIDEO_DIR)
        frames = VideoFrames(paths, create_decoder(data.DECODER, int(data.DECODER_THREADS)), float(ava.VIDEO_TIME_OFFSET))
        available = set(paths)
    keyframes = sorted(key for key, items in boxes.items() if items and key[0] in available)
    missing_videos = sorted({key[0] for key in boxes} - available)
    missing = [f"{video} (video)" for video in missing_videos]
    if missing_videos:
        dropped = sum(1 for key in boxes if key[0] in missing_videos)
        logger.warning("%s: %d video ids have no %s (e.g. %s); their %d keyframes are left out", split,
                       len(missing_videos), "frames" if ava.FRAME_DIR else "video file",
                       ", ".join(missing_videos[:3]), dropped)
    spatial, finisher = build_box_transform(cfg, split)
    return AvaDataset(
        keyframes, boxes, frames, split, spatial, finisher, int(cfg.MODEL.NUM_CLASSES), int(data.NUM_FRAMES),
        int(data.SAMPLING_RATE), float(data.TARGET_FPS), seed=int(cfg.RNG_SEED), num_retries=int(data.NUM_RETRIES),
        max_failure_fraction=float(data.MAX_FAILURE_FRACTION), missing=missing,
        source=f"AVA {split} ({ava.FRAME_DIR or ava.VIDEO_DIR})",
    )

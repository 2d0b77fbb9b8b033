"""Windows over whole videos, decoded once and batched, with decoding overlapped with compute.

:class:`WindowStream` is an ``IterableDataset``: DataLoader worker ``w`` of ``W`` takes videos ``w, w + W, ...``
of its list, opens each once and decodes its windows (:class:`~rs_video.inference.windows.WindowSpec`) in
increasing order, a chunk of windows per request (the union of their frames, so overlapping windows share
frames and nothing is decoded twice), resizes each decoded frame once (the test transform's resize:
short side to ``DATA.TEST_CROP_SIZE``) and cuts the centre crop, or the test tool's uniform crops, of every
window. Clips stay uint8 through the loader and are normalised on the device
(:meth:`rs_image.engine.Task.prepare_input`), as in the test.

Every batch has exactly ``batch_size`` rows; windows of consecutive videos of a worker share batches and
the last batch is padded with zero clips. A row's output depends only on its own clip at a fixed batch
shape, so a video's outputs are the same bit for bit whatever videos it shares batches with: with any
number of workers or processes, and after a resume.

:func:`run_windows` drives the loader and hands each video's per-window outputs (averaged over the spatial
crops) to a callback as soon as its last window is computed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from rs_image.engine.evaluator import view_scores
from rs_image.engine.runtime import autocast_context, loader_kwargs
from rs_image.errors import UserError
from rs_video.data import ClipTransform, VideoDecodeError, VideoDecoder, build_clip_transform, collate_clips

from .windows import WindowSpec, num_axis_frames

__all__ = ["LAYERS", "layer_function", "window_transform", "WindowStream", "VideoWindows", "run_windows"]

logger = logging.getLogger(__name__)

#: ``--layer`` values: the pooled features before the classifier, the logits, a globally pooled stage map.
LAYERS = ("pre_logits", "logits", "stage1", "stage2", "stage3", "stage4")


def layer_function(model: nn.Module, layer: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> (B, C)`` outputs of ``layer`` (:data:`LAYERS`; ``stageN`` is ``layerN`` of the ResNet, res(N+1)
    in SlowFast's names, averaged over time and space); raises :class:`UserError` for another name."""
    if layer == "logits":
        return model
    if layer == "pre_logits":
        return lambda x: model.forward_head(model.forward_features(x), pre_logits=True)
    if layer in LAYERS[2:] and hasattr(model, "forward_intermediates"):
        index = int(layer[len("stage"):])

        def pooled(x: torch.Tensor) -> torch.Tensor:
            fmap = model.forward_intermediates(x, indices=[index], stop_early=True, intermediates_only=True)[0]
            return fmap.mean(dim=tuple(range(2, fmap.dim())))

        return pooled
    raise UserError(f"--layer {layer!r} does not exist; choose one of {', '.join(LAYERS)}")


def window_transform(cfg: Any, num_crops: int) -> ClipTransform:
    """The test transform (short side to ``DATA.TEST_CROP_SIZE``) with ``num_crops`` uniform crops (1: the
    centre crop), giving uint8 clips."""
    if num_crops not in (1, 3):
        raise UserError(f"--crops must be 1 (centre) or 3 (the test tool's three crops, averaged), got {num_crops}")
    cfg = cfg.clone()
    cfg.defrost()
    cfg.TEST.NUM_SPATIAL_CROPS = num_crops
    cfg.DATA.OUTPUT_DTYPE = "uint8"
    return build_clip_transform(cfg, "test")


@dataclass
class VideoWindows:
    """What a worker learnt about a video: its windows (``starts`` on the time axis), the native frame count
    and rate, and the decoder; or why it failed."""

    index: int
    path: str
    num_windows: int = 0
    starts: Tuple[int, ...] = ()
    num_video_frames: int = 0
    video_fps: float = 0.0
    decoder: str = ""
    failure: str = ""


class WindowStream(IterableDataset):
    """Batches of window clips of ``videos`` (module docstring).

    Items (``batch_size=None`` in the DataLoader) are dicts: ``video`` uint8 (B, C, T, H, W) or None,
    ``video_index``, ``window_index``, ``crop_index``, ``num_windows`` (of the row's video) (B,) (-1 in
    padding rows), and ``finished``: the
    :class:`VideoWindows` of videos whose last row is in this batch or an earlier one (or that failed).

    Args:
        videos: (index, path) pairs; ``index`` is echoed in ``video_index``.
        spec: the windows.
        transform: :func:`window_transform`.
        decoder: the decoder backend.
        batch_size: rows per batch (windows x crops).
        chunk_windows: windows per decode request.
    """

    def __init__(self, videos: Sequence[Tuple[int, str]], spec: WindowSpec, transform: ClipTransform,
                 decoder: VideoDecoder, batch_size: int, chunk_windows: int = 0) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.videos = list(videos)
        self.spec, self.transform, self.decoder = spec, transform, decoder
        self.batch_size = int(batch_size)
        self.chunk_windows = int(chunk_windows) or max(1, self.batch_size // transform.num_crops)

    def _video_rows(self, index: int, path: str, info: VideoWindows) -> Iterator[Tuple[torch.Tensor, int, int]]:
        """(clip, window, crop) of every window of one video; fills ``info``; raises VideoDecodeError."""
        with self.decoder.open(path) as video:
            n, fps = video.num_frames, video.fps
            starts = self.spec.starts(num_axis_frames(n, fps, self.spec.fps))
            info.num_windows, info.starts = len(starts), tuple(starts)
            info.num_video_frames, info.video_fps, info.decoder = n, fps, self.decoder.name
            for first in range(0, len(starts), self.chunk_windows):
                chunk = starts[first:first + self.chunk_windows]
                windows = [self.spec.native_frames(s, n, fps) for s in chunk]
                union = sorted({i for w in windows for i in w})
                frames = self.transform.prepare(video.get_frames(union))
                lookup = torch.tensor(union)
                for offset, window in enumerate(windows):
                    rows = torch.searchsorted(lookup, torch.tensor(window))
                    for crop in range(self.transform.num_crops):
                        yield self.transform.finalize(frames, crop, frame_positions=rows), first + offset, crop

    def _batch(self, rows: List[Tuple[torch.Tensor, int, int, int, int]], finished: List[VideoWindows],
               pad: bool) -> Dict[str, Any]:
        meta = torch.tensor([row[1:] for row in rows], dtype=torch.long).reshape(-1, 4)
        video = None
        if rows:
            clips = [{"video": row[0]} for row in rows]
            if pad and len(rows) < self.batch_size:
                zero = torch.zeros_like(rows[0][0])
                clips += [{"video": zero}] * (self.batch_size - len(rows))
                meta = torch.cat([meta, torch.full((self.batch_size - len(rows), 4), -1, dtype=torch.long)])
            video = collate_clips(clips)["video"]
        return {"video": video, "video_index": meta[:, 0], "window_index": meta[:, 1], "crop_index": meta[:, 2],
                "num_windows": meta[:, 3], "finished": list(finished)}

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        worker = get_worker_info()
        mine = self.videos if worker is None else self.videos[worker.id::worker.num_workers]
        pending: List[Tuple[torch.Tensor, int, int, int, int]] = []
        finished: List[VideoWindows] = []
        for index, path in mine:
            info = VideoWindows(index, path)
            try:
                for clip, window, crop in self._video_rows(index, path, info):
                    pending.append((clip, index, window, crop, info.num_windows))
                    if len(pending) == self.batch_size:
                        yield self._batch(pending, finished, pad=False)
                        pending, finished = [], []
            except VideoDecodeError as error:
                info.failure = error.reason + (f": {error.detail}" if error.detail else "")
                pending = [row for row in pending if row[1] != index]
            finished.append(info)
        if pending or finished:
            yield self._batch(pending, finished, pad=True)


def run_windows(stream: WindowStream, model_fn: Callable[[torch.Tensor], torch.Tensor], cfg: Any, task: Any,
                device: torch.device, memory_format: Optional[torch.memory_format],
                on_video: Callable[[VideoWindows, Optional[torch.Tensor]], None], num_workers: int = 0,
                scores: Optional[str] = None, on_batch: Optional[Callable[[int], None]] = None) -> None:
    """Run ``model_fn`` on every window of ``stream`` and call ``on_video(info, outputs)`` once per video:
    ``outputs`` float32 (num_windows, C) on the CPU, averaged over the crops (of ``view_scores(.., scores)``
    when ``scores`` is given: ``"prob"`` averages softmax probabilities), None for a failed video.
    ``on_batch(rows)`` is called after every batch with the number of real rows."""
    kwargs = loader_kwargs(cfg, device)
    kwargs["num_workers"] = num_workers
    if num_workers == 0:
        kwargs.pop("persistent_workers", None)
        kwargs.pop("prefetch_factor", None)
        kwargs["worker_init_fn"] = None
    kwargs.pop("collate_fn", None)
    loader = DataLoader(stream, batch_size=None, **kwargs)
    crops = stream.transform.num_crops
    buffers: Dict[int, torch.Tensor] = {}
    counts: Dict[int, int] = {}
    infos: Dict[int, VideoWindows] = {}
    autocast = autocast_context(cfg.TRAIN.MIXED_PRECISION, device)

    def maybe_done(index: int) -> None:
        info = infos.get(index)
        if info is None:
            return
        if info.failure:
            buffers.pop(index, None)
            counts.pop(index, None)
            on_video(infos.pop(index), None)
        elif counts.get(index, 0) == info.num_windows * crops:
            counts.pop(index)
            on_video(infos.pop(index), buffers.pop(index).mean(dim=1))

    with torch.no_grad():
        for batch in loader:
            real = batch["video_index"] >= 0
            if batch["video"] is not None and bool(real.any()):
                x = task.prepare_input(batch, cfg, device, memory_format)
                with autocast:
                    out = model_fn(x)
                out = (view_scores(out, scores) if scores else out.float()).cpu()
                for row in torch.nonzero(real).flatten().tolist():
                    v, w, c, n = (int(batch[k][row]) for k in ("video_index", "window_index", "crop_index",
                                                                "num_windows"))
                    if v not in buffers:
                        buffers[v] = torch.zeros(n, crops, out.shape[1])
                    buffers[v][w, c] = out[row]
                    counts[v] = counts.get(v, 0) + 1
            for info in batch["finished"]:
                infos[info.index] = info
            for index in list(infos):
                maybe_done(index)
            if on_batch is not None:
                on_batch(int(real.sum()))

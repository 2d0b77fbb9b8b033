"""Per-window predictions over a long video: a timeline (CSV, JSON, PNG) and an annotated copy of the video.

Window ``k`` (:mod:`.windows`) gets the softmax probabilities of the model on its clip (averaged over the
crops with 3 crops). Frames and seconds are on the time axis of the windows (the video's own frames, or
``--fps``): ``start_frame`` is the window's first frame, ``end_frame`` its last (inclusive),
``start_s = start_frame / fps``, ``end_s = (end_frame + 1) / fps``.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from rs_image.engine.logger import plotting_available
from rs_image.errors import UserError
from rs_image.fileio import atomic_path, atomic_write
from rs_video.data import create_decoder

from .predictor import Predictor
from .stream import VideoWindows, WindowStream, layer_function, run_windows, window_transform
from .windows import WindowSpec, num_axis_frames

__all__ = ["Timeline", "compute_timeline", "write_timeline", "annotate_video"]

logger = logging.getLogger(__name__)


@dataclass
class Timeline:
    """Window placement and (num_windows, num_classes) probabilities of one video."""

    path: str
    spec: WindowSpec
    starts: List[int]
    probs: torch.Tensor
    video_fps: float
    num_video_frames: int
    class_names: List[str]

    @property
    def rate(self) -> float:
        return self.spec.fps if self.spec.fps is not None else self.video_fps

    def end(self, start: int) -> int:
        last = start + (self.spec.num_frames - 1) * self.spec.sampling_rate
        return min(last, num_axis_frames(self.num_video_frames, self.video_fps, self.spec.fps) - 1)

    def rows(self, topk: int = 5) -> List[Dict[str, Any]]:
        """One dict per window: index, start/end frame and seconds, top-k classes, names and scores."""
        k = min(topk, self.probs.shape[1])
        top = self.probs.topk(k, dim=1)
        out = []
        for w, start in enumerate(self.starts):
            end = self.end(start)
            out.append({
                "window": w, "start_frame": start, "end_frame": end,
                "start_s": round(start / self.rate, 4), "end_s": round((end + 1) / self.rate, 4),
                "topk": [{"class": int(c), "name": self.class_names[int(c)], "score": round(float(s), 6)}
                         for s, c in zip(top.values[w].tolist(), top.indices[w].tolist())],
            })
        return out


def compute_timeline(predictor: Predictor, path: str, spec: Optional[WindowSpec] = None, num_crops: int = 1,
                     batch_size: int = 0, num_workers: int = 0) -> Timeline:
    """The per-window probabilities of ``path``; raises :class:`UserError` when it cannot be decoded."""
    cfg = predictor.cfg
    spec = spec or WindowSpec(int(cfg.DATA.NUM_FRAMES), int(cfg.DATA.SAMPLING_RATE))
    decoder = create_decoder(cfg.DATA.DECODER, int(cfg.DATA.DECODER_THREADS))
    stream = WindowStream([(0, str(path))], spec, window_transform(cfg, num_crops), decoder,
                          batch_size or int(cfg.TEST.BATCH_SIZE))
    result: Dict[str, Any] = {}

    def on_video(info: VideoWindows, probs: Optional[torch.Tensor]) -> None:
        result["info"], result["probs"] = info, probs

    run_windows(stream, layer_function(predictor.model, "logits"), cfg, predictor.task, predictor.device,
                predictor.memory_format, on_video, num_workers=num_workers, scores="prob")
    info = result["info"]
    if result["probs"] is None:
        raise UserError(f"{path}: cannot decode the video ({info.failure})")
    return Timeline(str(path), spec, list(info.starts), result["probs"], info.video_fps, info.num_video_frames,
                    predictor.class_names)


def write_timeline(timeline: Timeline, out_dir: str, topk: int = 5, plot_classes: int = 5) -> Dict[str, str]:
    """``<stem>.timeline.csv`` / ``.json`` and, with matplotlib, ``.png`` (the ``plot_classes`` classes with the
    highest peak probability over time) in ``out_dir``; returns the paths written."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(timeline.path).stem
    rows = timeline.rows(topk)
    k = min(topk, timeline.probs.shape[1])
    paths = {"csv": str(folder / f"{stem}.timeline.csv"), "json": str(folder / f"{stem}.timeline.json")}
    with atomic_write(paths["csv"], newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["window", "start_frame", "end_frame", "start_s", "end_s"]
                        + [f"top{i + 1}_{part}" for i in range(k) for part in ("class", "name", "score")])
        for row in rows:
            writer.writerow([row[key] for key in ("window", "start_frame", "end_frame", "start_s", "end_s")]
                            + [t[part] for t in row["topk"] for part in ("class", "name", "score")])
    with atomic_write(paths["json"]) as f:
        json.dump({"path": timeline.path, "fps": timeline.rate, "num_frames": timeline.spec.num_frames,
                   "sampling_rate": timeline.spec.sampling_rate, "stride": timeline.spec.step,
                   "windows": rows}, f, indent=1)
    if not plotting_available():  # it says so once
        return paths
    from rs_image.report.figure import new_figure, save_png

    peaks = timeline.probs.max(dim=0).values
    classes = peaks.topk(min(plot_classes, peaks.numel())).indices.tolist()
    figure = new_figure((8, 3))
    axes = figure.add_subplot(1, 1, 1)
    middles = [(row["start_s"] + row["end_s"]) / 2 for row in rows]
    for c in classes:
        axes.plot(middles, timeline.probs[:, c].tolist(), marker="." if len(rows) < 50 else None,
                  label=timeline.class_names[c])
    axes.set_xlabel("time (s, window centre)")
    axes.set_ylabel("probability")
    axes.set_ylim(0, 1)
    axes.set_title(Path(timeline.path).name)
    axes.legend(fontsize="small", loc="upper right")
    paths["png"] = str(save_png(figure, folder / f"{stem}.timeline.png"))
    return paths


def annotate_video(timeline: Timeline, out_path: str, topk: int = 3) -> str:
    """Re-encode the video with the top-``topk`` of the current window drawn on every frame (PyAV, H.264 or
    MPEG-4 Part 2 where the FFmpeg build has no libx264). A frame shows the last window that started at or
    before it."""
    import av
    import numpy as np
    from PIL import ImageDraw

    native_starts = [timeline.spec.native_frames(s, timeline.num_video_frames, timeline.video_fps)[0]
                     for s in timeline.starts]
    rows = timeline.rows(topk)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(timeline.path) as source, atomic_path(out) as tmp:
        in_stream = source.streams.video[0]
        rate = in_stream.average_rate or 30
        with av.open(str(tmp), "w", format="mp4") as sink:
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            stream = sink.add_stream(codec, rate=rate)
            stream.width = in_stream.codec_context.width // 2 * 2
            stream.height = in_stream.codec_context.height // 2 * 2
            stream.pix_fmt = "yuv420p"
            window = 0
            for index, frame in enumerate(source.decode(in_stream)):
                while window + 1 < len(native_starts) and native_starts[window + 1] <= index:
                    window += 1
                image = frame.to_image().crop((0, 0, stream.width, stream.height))
                draw = ImageDraw.Draw(image)
                lines = [f"{t['name']} {t['score']:.2f}" for t in rows[window]["topk"]]
                draw.rectangle((0, 0, stream.width, 12 * len(lines) + 4), fill=(0, 0, 0))
                for i, line in enumerate(lines):
                    draw.text((3, 2 + 12 * i), line, fill=(255, 255, 255))
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")):
                    sink.mux(packet)
            for packet in stream.encode():
                sink.mux(packet)
    return str(out)

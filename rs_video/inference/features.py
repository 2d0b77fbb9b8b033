"""Clip features of many videos for temporal action localisation, retrieval or detection code.

For every input video ``IN/<rel>.<ext>``: ``OUT/<rel>.npy``, float32 (or float16) of shape
``(num_windows, C)``, row ``k`` the output of ``layer`` on window ``k`` (:mod:`.windows`), and the sidecar
``OUT/<rel>.json`` (model, weights file and SHA-256, layer, frames, sampling rate, stride, fps, crop, the
window starts, decoder, library version).

* Resumable: the ``.npy`` and then the sidecar are written atomically; a video whose sidecar matches the
  requested settings is skipped, one whose sidecar differs stops the run before anything is computed,
  naming the file and the setting (``overwrite`` recomputes). Outputs do not depend on what else was in a
  batch (:mod:`.stream`), so a killed run that is started again ends with the same bytes.
* Broken or missing videos are skipped and listed with their reason in ``OUT/failed.csv``.
* Under ``torchrun`` the sorted video list is split over the ranks, video ``i`` on rank ``i % world_size``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

import rs_image
from rs_image.engine import distributed as du
from rs_image.errors import DataNotFoundError, UserError
from rs_image.fileio import atomic_path, atomic_write, remove_stale_temporaries
from rs_video.data import create_decoder
from rs_video.data.annotations import VIDEO_EXTENSIONS

from .predictor import Predictor
from .stream import VideoWindows, WindowStream, layer_function, run_windows, window_transform
from .windows import WindowSpec

__all__ = ["FAILED_CSV", "SETTINGS", "SidecarMismatchError", "ExtractionSummary", "find_videos", "output_paths",
           "file_sha256", "extract_features"]

logger = logging.getLogger(__name__)

FAILED_CSV = "failed.csv"
#: sidecar keys that must match for a video to count as done
SETTINGS = ("model", "weights_sha256", "layer", "num_frames", "sampling_rate", "stride", "fps", "crop_size",
            "num_crops", "mean", "std", "dtype")
DTYPES = {"float32": np.float32, "float16": np.float16}


class SidecarMismatchError(UserError, ValueError):
    """An existing output was made with other settings (``--overwrite`` recomputes it)."""


@dataclass
class ExtractionSummary:
    """Counts over all processes: videos listed, written now, skipped as already done, failed (path, reason)."""

    num_videos: int = 0
    written: int = 0
    skipped: int = 0
    failed: List[Tuple[str, str]] = field(default_factory=list)
    windows: int = 0
    seconds: float = 0.0

    def format(self, out_dir: Path) -> str:
        line = (f"{self.num_videos} videos: {self.written} written, {self.skipped} already done, "
                f"{len(self.failed)} failed")
        if self.failed:
            line += f" (listed in {out_dir / FAILED_CSV})"
        return line + f"; {self.windows} windows in {self.seconds:.1f} s"


def find_videos(videos: str) -> Tuple[List[Path], Path]:
    """The videos of ``videos`` and the folder their output paths are relative to: a folder searched
    recursively for video suffixes (:data:`~rs_video.data.annotations.VIDEO_EXTENSIONS`), or a list file of
    paths, one a line (relative ones are relative to the list's folder)."""
    source = Path(videos)
    if source.is_dir():
        found = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
        if not found:
            raise DataNotFoundError(f"--videos {videos}: no video files ({', '.join(VIDEO_EXTENSIONS)}) in the folder")
        return found, source
    if not source.is_file():
        raise DataNotFoundError(f"--videos {videos}: no such folder or list file")
    lines = [line.strip() for line in source.read_text(encoding="utf-8").splitlines()]
    paths = [Path(line) if Path(line).is_absolute() else source.parent / line
             for line in lines if line and not line.startswith("#")]
    if not paths:
        raise DataNotFoundError(f"--videos {videos}: the list file names no videos")
    return paths, source.parent


def output_paths(video: Path, root: Path, out_dir: Path) -> Tuple[Path, Path]:
    """``OUT/<path relative to root, suffix replaced>`` ``.npy`` and ``.json``."""
    try:
        rel = video.resolve().relative_to(root.resolve())
    except ValueError:  # a listed path outside the list's folder: its path without the anchor
        rel = Path(*video.resolve().parts[1:])
    base = out_dir / rel.with_suffix("")
    return base.with_name(base.name + ".npy"), base.with_name(base.name + ".json")


def file_sha256(path: str) -> str:
    """SHA-256 of a file ("" for a source that is not a local file)."""
    if not Path(path).is_file():
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _settings(predictor: Predictor, layer: str, spec: WindowSpec, num_crops: int, dtype: str,
              sha256: str) -> Dict[str, Any]:
    cfg = predictor.cfg
    return {
        "model": cfg.MODEL.NAME, "weights": predictor.weights, "weights_sha256": sha256, "layer": layer,
        "num_frames": spec.num_frames, "sampling_rate": spec.sampling_rate, "stride": spec.step,
        "fps": spec.fps, "crop_size": int(cfg.DATA.TEST_CROP_SIZE), "num_crops": num_crops,
        "mean": [float(v) for v in cfg.DATA.MEAN], "std": [float(v) for v in cfg.DATA.STD], "dtype": dtype,
    }


def _check_sidecar(sidecar: Path, npy: Path, settings: Dict[str, Any]) -> bool:
    """True when ``sidecar`` and ``npy`` exist and match ``settings``; raises SidecarMismatchError when the
    sidecar differs; False when there is nothing (complete) yet."""
    if not sidecar.is_file() or not npy.is_file():
        return False
    try:
        found = json.loads(sidecar.read_text(encoding="utf-8"))
    except ValueError:
        raise SidecarMismatchError(f"{sidecar} is not valid JSON; remove it or pass --overwrite") from None
    for key in SETTINGS:
        if found.get(key) != settings[key]:
            raise SidecarMismatchError(
                f"{sidecar} was made with {key}={found.get(key)!r}, this run asks for {key}={settings[key]!r}; "
                "pass --overwrite to recompute, or another --out"
            )
    return True


def extract_features(
    predictor: Predictor, videos: Sequence[Path], root: Path, out_dir: Path, *, layer: str = "pre_logits",
    spec: Optional[WindowSpec] = None, num_crops: int = 1, dtype: str = "float32", overwrite: bool = False,
    batch_size: int = 0, num_workers: Optional[int] = None, progress: Optional[bool] = None,
) -> ExtractionSummary:
    """Write the features of ``videos`` under ``out_dir`` (module docstring); every rank of a torchrun job
    calls it with the same arguments. Returns the summary over all ranks."""
    cfg = predictor.cfg
    spec = spec or WindowSpec(int(cfg.DATA.NUM_FRAMES), int(cfg.DATA.SAMPLING_RATE))
    if dtype not in DTYPES:
        raise UserError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    model_fn = layer_function(predictor.model, layer)
    transform = window_transform(cfg, num_crops)
    out_dir = Path(out_dir)
    started = time.perf_counter()
    sha256 = file_sha256(predictor.weights) if du.is_main_process() else ""
    sha256 = du.broadcast_object(sha256)
    settings = _settings(predictor, layer, spec, num_crops, dtype, sha256)

    targets = [(Path(v), *output_paths(Path(v), root, out_dir)) for v in videos]
    seen: Dict[Path, Path] = {}
    for video, npy, _ in targets:
        if npy in seen:
            raise UserError(f"{video} and {seen[npy]} would both write {npy}; rename one of them")
        seen[npy] = video
    rank, world = du.get_rank(), du.get_world_size()
    if rank == 0:  # what a killed run was writing
        for folder in sorted({npy.parent for _, npy, _ in targets}):
            remove_stale_temporaries(folder)
    todo: List[Tuple[int, str]] = []
    skipped = 0
    for index, (video, npy, sidecar) in enumerate(targets):
        if index % world != rank:
            continue
        if not overwrite and _check_sidecar(sidecar, npy, settings):
            skipped += 1
        else:
            todo.append((index, str(video)))

    decoder = create_decoder(cfg.DATA.DECODER, int(cfg.DATA.DECODER_THREADS))
    rows = batch_size or int(cfg.TEST.BATCH_SIZE)
    stream = WindowStream(todo, spec, transform, decoder, rows)
    workers = int(cfg.DATA_LOADER.NUM_WORKERS) if num_workers is None else int(num_workers)
    workers = min(workers, len(todo))
    show_bar = (sys.stderr.isatty() if progress is None else progress) and du.is_main_process()
    bar = tqdm(total=len(todo), desc="videos", unit="video", disable=not show_bar, dynamic_ncols=True)
    written: List[int] = []
    failed: List[Tuple[str, str]] = []
    windows = [0]

    def on_video(info: VideoWindows, outputs: Optional[torch.Tensor]) -> None:
        if outputs is None:
            failed.append((info.path, info.failure))
            logger.warning("skipped %s: %s", info.path, info.failure)
        else:
            _, npy, sidecar = targets[info.index]
            _write(npy, sidecar, outputs.numpy().astype(DTYPES[dtype]), info, settings, spec, decoder.name)
            written.append(info.index)
        bar.update(1)
        done = len(written) + len(failed)
        if not show_bar and done % 100 == 0:
            logger.info("%d / %d videos (%d failed), %.1f windows/s", done, len(todo), len(failed),
                        windows[0] / max(time.perf_counter() - started, 1e-9))

    def on_batch(real_rows: int) -> None:
        windows[0] += real_rows // num_crops
        bar.set_postfix_str(f"{windows[0] / max(time.perf_counter() - started, 1e-9):.1f} windows/s", refresh=False)

    if todo:
        run_windows(stream, model_fn, cfg, predictor.task, predictor.device, predictor.memory_format, on_video,
                    num_workers=workers, on_batch=on_batch)
    bar.close()

    parts = du.all_gather_object({"written": len(written), "skipped": skipped, "failed": failed,
                                  "windows": windows[0]})
    summary = ExtractionSummary(num_videos=len(targets), written=sum(p["written"] for p in parts),
                                skipped=sum(p["skipped"] for p in parts),
                                failed=sorted(f for p in parts for f in p["failed"]),
                                windows=sum(p["windows"] for p in parts), seconds=time.perf_counter() - started)
    if du.is_main_process():
        failed_csv = out_dir / FAILED_CSV
        if summary.failed:
            out_dir.mkdir(parents=True, exist_ok=True)
            with atomic_write(failed_csv, newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["path", "reason"])
                writer.writerows(summary.failed)
        elif failed_csv.exists():
            failed_csv.unlink()  # a re-run that decoded everything leaves no stale list
    du.barrier()
    return summary


def _write(npy: Path, sidecar: Path, features: np.ndarray, info: VideoWindows, settings: Dict[str, Any],
           spec: WindowSpec, decoder: str) -> None:
    """The features, then the sidecar that marks them complete, each atomically."""
    npy.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(npy) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, features)
    record = dict(settings)
    record.update({
        "video": info.path, "num_windows": int(features.shape[0]), "feature_dim": int(features.shape[1]),
        "window_starts": list(info.starts),
        "window_starts_seconds": [round(spec.seconds(s, info.video_fps), 6) for s in info.starts],
        "window_span": spec.span, "num_video_frames": info.num_video_frames, "video_fps": info.video_fps,
        "decoder": decoder, "version": rs_image.__version__,
    })
    with atomic_write(sidecar) as f:
        json.dump(record, f, indent=1)

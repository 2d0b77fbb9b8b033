"""Kinetics preparation: official CSVs + downloaded videos -> re-encoded videos and ``path label`` lists.

What :func:`prepare_kinetics` writes into ``out_dir``::

    videos/{split}/{youtube_id}_{start:06d}_{end:06d}.mp4   H.264, short side ``short_side``, no audio
    {split}.csv                                             "videos/{split}/<file>.mp4 <label>" lines
    classids.json                                           sorted class names of all splits -> index
    unreadable.txt                                          "<source path>\\t<reason>" per failed video
    missing.txt                                             CSV rows without a downloaded file

so that ``DATA.PATH_TO_DATA_DIR = out_dir`` works directly (relative paths resolve against the list's
folder). Re-encoding settings, chosen for fast random clip access (docs/data.md): short side
``short_side`` (320 default, enough for scale jitter [256, 320]), long side scaled to keep the aspect
ratio and rounded to an even number, ``yuv420p``, libx264 CRF 23, keyframe every ``gop`` frames (32; a
random clip then decodes at most 31 frames it does not need), constant frame rate at the source's average
rate, ``+faststart``. Audio is dropped. Any codec FFmpeg decodes is read (H.264, HEVC, VP9, AV1, ...); a
display rotation (phone videos) is baked into the pixels, so the output is upright with no rotation left
to apply, and 10-bit or full-range sources become limited-range 8-bit ``yuv420p``.

The official CSVs are read from ``annotations_dir`` or ``annotations_dir/annotations``. A split's
downloads are found by file stem in ``videos_dir/{split}``, ``videos_dir/videos/{split}``,
``videos_dir/videos`` and ``videos_dir``, each flat or with per-class sub-folders (the downloaders'
``{split}/<class>/`` output; .mp4 .mkv .webm .avi .mov): either the trimmed clip
``{youtube_id}_{start:06d}_{end:06d}`` or the full YouTube video ``{youtube_id}``, which is then trimmed
to ``[time_start, time_end)``. When none of the listed videos is found (and none was prepared before),
nothing is written and :func:`prepare_kinetics` raises, naming the folders searched; a split of which
nothing was found is left without a list (with a warning).

Resumable: a finished output is never redone (files are written under a temporary name and renamed when
complete). Parallel: ``num_workers`` processes, with a progress bar.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from rs_image.fileio import atomic_path

from .annotations import VIDEO_EXTENSIONS, index_videos
from .sources.kinetics import find_split_file, read_kinetics_csv, video_folders
from .decoders import display_quarter_turns

__all__ = ["PrepareReport", "prepare_kinetics", "reencode_video", "find_kinetics_csv"]

logger = logging.getLogger(__name__)


@dataclass
class PrepareReport:
    """Counts per outcome, and the failed sources."""

    encoded: int = 0
    skipped_done: int = 0
    unreadable: List[Tuple[str, str]] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    lists: Dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"{self.encoded} encoded, {self.skipped_done} already done, {len(self.unreadable)} unreadable, "
            f"{len(self.missing)} not downloaded"
        )


def find_kinetics_csv(annotations_dir: str, split: str) -> Optional[str]:
    """The official CSV of ``split`` in ``annotations_dir`` or ``annotations_dir/annotations``, or None."""
    return find_split_file(annotations_dir, split, suffix=".csv")


def _even(value: float) -> int:
    return max(2, int(round(value / 2.0)) * 2)


def _output_size(width: int, height: int, short_side: int) -> Tuple[int, int]:
    if width <= height:
        return _even(short_side), _even(height * short_side / width)
    return _even(width * short_side / height), _even(short_side)


# Filters that turn a stored frame upright, per counter-clockwise quarter turns (display_quarter_turns).
_UPRIGHT_FILTERS = {0: [], 1: [("transpose", "cclock")], 2: [("hflip", None), ("vflip", None)], 3: [("transpose", "clock")]}


def _encode_graph(frame, time_base, width: int, height: int, turns: int):
    """libavfilter graph: a decoded frame -> upright, scaled (area), limited-range 8-bit yuv420p."""
    import av

    graph = av.filter.Graph()
    graph.threads = 1  # parallelism comes from the worker processes
    chain = [graph.add_buffer(width=frame.width, height=frame.height, format=frame.format, time_base=time_base)]
    for name, args in _UPRIGHT_FILTERS[turns] + [("scale", f"{width}:{height}:flags=area:out_range=tv"),
                                                 ("format", "yuv420p")]:
        chain.append(graph.add(name, args))
    chain.append(graph.add("buffersink"))
    for a, b in zip(chain, chain[1:]):
        a.link_to(b)
    graph.configure()
    return graph


def _reencode_pyav(src: str, dst: str, short_side: int, gop: int, crf: int, preset: str,
                   trim: Optional[Tuple[float, float]]) -> None:
    import av

    with av.open(src) as source:
        if not source.streams.video:
            raise ValueError("no video stream")
        in_stream = source.streams.video[0]
        in_stream.thread_type = "AUTO"
        rate = in_stream.average_rate or in_stream.guessed_rate or Fraction(30)
        with av.open(dst, "w", format="mp4", options={"movflags": "+faststart"}) as target:
            out_stream, graph, count = None, None, 0
            if trim is not None:
                source.seek(int(trim[0] * av.time_base), backward=True, any_frame=False)
            for frame in source.decode(in_stream):
                if trim is not None and frame.time is not None:
                    if frame.time < trim[0]:
                        continue
                    if frame.time >= trim[1]:
                        break
                if graph is None:  # the display rotation is known from the first frame
                    turns = display_quarter_turns(getattr(frame, "rotation", 0) or 0)
                    shown = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
                    width, height = _output_size(*shown, short_side)
                    graph = _encode_graph(frame, in_stream.time_base, width, height, turns)
                    out_stream = target.add_stream("libx264", rate=rate)
                    out_stream.width, out_stream.height, out_stream.pix_fmt = width, height, "yuv420p"
                    out_stream.codec_context.gop_size = gop
                    out_stream.codec_context.color_range = av.video.reformatter.ColorRange.MPEG
                    out_stream.options = {"crf": str(crf), "preset": preset,
                                          "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
                graph.vpush(frame)
                upright = graph.vpull()
                upright.pts, upright.time_base = count, Fraction(1, 1) / rate
                count += 1
                for packet in out_stream.encode(upright):
                    target.mux(packet)
            if count == 0:
                raise ValueError("no decodable frames")
            for packet in out_stream.encode():
                target.mux(packet)


def _reencode_ffmpeg(src: str, dst: str, short_side: int, gop: int, crf: int, preset: str,
                     trim: Optional[Tuple[float, float]]) -> None:
    executable = shutil.which("ffmpeg")
    if executable is None:
        raise RuntimeError("ffmpeg not found on PATH (use backend='pyav')")
    s = short_side
    # ffmpeg turns rotated input upright before the filters (-autorotate, its default) and writes no
    # display matrix then; iw/ih are the upright sizes.
    scale = f"scale='if(gt(iw,ih),-2,{s})':'if(gt(iw,ih),{s},-2)':flags=area:out_range=tv,format=yuv420p"
    command = [executable, "-nostdin", "-y", "-loglevel", "error"]
    if trim is not None:
        command += ["-ss", f"{trim[0]:.3f}", "-to", f"{trim[1]:.3f}"]
    command += [
        "-i", src, "-map", "0:v:0", "-an", "-sn", "-vf", scale, "-c:v", "libx264", "-preset", preset,
        "-crf", str(crf), "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-fps_mode", "cfr",
        "-movflags", "+faststart", "-f", "mp4", dst,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ValueError((result.stderr.strip().splitlines() or ["ffmpeg failed"])[-1][:300])


def reencode_video(src: str, dst: str, short_side: int = 320, backend: str = "pyav", gop: int = 32, crf: int = 23,
                   preset: str = "fast", trim: Optional[Tuple[float, float]] = None) -> None:
    """Re-encodes one video (settings in the module docstring); writes ``dst`` only when complete.

    Raises:
        ValueError: the source cannot be decoded (message says why).
    """
    if backend not in ("pyav", "ffmpeg"):
        raise ValueError(f"backend must be 'pyav' or 'ffmpeg', got {backend!r}")
    try:
        with atomic_path(dst) as tmp:
            (_reencode_pyav if backend == "pyav" else _reencode_ffmpeg)(src, str(tmp), short_side, gop, crf, preset, trim)
    except Exception as error:
        if isinstance(error, RuntimeError) and "ffmpeg not found" in str(error):
            raise
        raise ValueError(f"{type(error).__name__}: {error}".splitlines()[0][:300]) from error


def _job(args) -> Tuple[str, str, Optional[str]]:
    src, dst, kwargs = args
    try:
        reencode_video(src, dst, **kwargs)
        return src, dst, None
    except ValueError as error:
        return src, dst, str(error)


def prepare_kinetics(
    annotations_dir: str,
    videos_dir: str,
    out_dir: str,
    short_side: int = 320,
    backend: str = "pyav",
    num_workers: Optional[int] = None,
    splits: Sequence[str] = ("train", "val", "test"),
    gop: int = 32,
    crf: int = 23,
    preset: str = "fast",
    progress: bool = True,
) -> PrepareReport:
    """Runs the whole preparation (module docstring). Splits without a CSV are skipped.

    Raises:
        FileNotFoundError: no official CSV for any split in ``annotations_dir``, ``videos_dir`` is not a
            folder, or none of the listed videos is in it (the message names the folders searched).
        AnnotationError: a malformed CSV.
    """
    csvs = {split: find_kinetics_csv(annotations_dir, split) for split in splits}
    csvs = {split: path for split, path in csvs.items() if path is not None}
    if not csvs:
        raise FileNotFoundError(
            f"no official Kinetics CSV (train.csv, validate.csv, ...) in {annotations_dir} or its annotations/"
        )
    if not os.path.isdir(videos_dir):
        raise FileNotFoundError(f"videos folder {videos_dir} does not exist")
    rows = {split: read_kinetics_csv(path) for split, path in csvs.items()}
    names = sorted({row.label_name for split_rows in rows.values() for row in split_rows if row.label_name})
    class_ids = {name: index for index, name in enumerate(names)}
    out = Path(out_dir)
    report = PrepareReport()
    settings = dict(short_side=short_side, backend=backend, gop=gop, crf=crf, preset=preset)
    jobs, done, searched = [], {}, {}
    for split, split_rows in rows.items():
        searched[split] = video_folders(videos_dir, split)
        downloads = index_videos(searched[split], VIDEO_EXTENSIONS)
        for row in split_rows:
            rel = f"videos/{split}/{row.stem}.mp4"
            dst = str(out / rel)
            if os.path.exists(dst):
                report.skipped_done += 1
                done[dst] = True
                continue
            src, trim = downloads.get(row.stem), None
            if src is None and row.youtube_id in downloads:
                src, trim = downloads[row.youtube_id], (float(row.time_start), float(row.time_end))
            if src is None:
                report.missing.append(row.stem)
                continue
            jobs.append((src, dst, dict(settings, trim=trim)))
    if not jobs and not report.skipped_done:
        folders = list(dict.fromkeys(folder for split_folders in searched.values() for folder in split_folders))
        raise FileNotFoundError(
            f"none of the {len(report.missing)} videos listed in {', '.join(csvs.values())} was found: searched "
            f"{', '.join(folders)} and their class sub-folders for <youtube_id>_<start:06d>_<end:06d> or "
            f"<youtube_id> with {' '.join(VIDEO_EXTENSIONS)}"
        )
    out.mkdir(parents=True, exist_ok=True)
    if jobs:
        from tqdm import tqdm

        workers = num_workers or os.cpu_count() or 1
        bar = tqdm(total=len(jobs), desc="re-encoding", unit="video", disable=not progress)
        results = []
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for result in pool.map(_job, jobs, chunksize=1):
                    results.append(result)
                    bar.update()
        else:
            for job in jobs:
                results.append(_job(job))
                bar.update()
        bar.close()
        for src, dst, error in results:
            if error is None:
                report.encoded += 1
                done[dst] = True
            else:
                report.unreadable.append((src, error))
    for split, split_rows in rows.items():
        lines = []
        for row in split_rows:
            rel = f"videos/{split}/{row.stem}.mp4"
            if done.get(str(out / rel)):
                label = class_ids[row.label_name] if row.label_name else -1
                lines.append(f"{rel} {label}\n")
        if not lines:
            logger.warning("prepare_kinetics: no video of %s was prepared (searched %s); %s.csv not written",
                           csvs[split], ", ".join(searched[split]), split)
            continue
        list_path = out / f"{split}.csv"
        list_path.write_text("".join(lines))
        report.lists[split] = str(list_path)
    (out / "classids.json").write_text(json.dumps(class_ids, indent=1))
    (out / "unreadable.txt").write_text("".join(f"{src}\t{reason}\n" for src, reason in report.unreadable))
    (out / "missing.txt").write_text("".join(f"{stem}\n" for stem in report.missing))
    logger.info("prepare_kinetics: %s; lists in %s", report, out)
    return report

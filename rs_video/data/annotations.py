"""The annotation contract every source shares (:mod:`rs_video.data.sources`: Kinetics, UCF101, HMDB51, SSv2,
Charades): what a source returns (:class:`SplitAnnotations` of :class:`VideoRecord`), its errors
(:class:`AnnotationError` naming the file and line), and the set-up and checks written once for all of them:

* :func:`check_split_request` first (the split, the official split number, the data folder);
* the class list as ``classids.json`` (SlowFast's ``{"class name": index}``: :func:`load_class_ids`,
  :func:`check_class_ids`, :func:`save_class_ids`);
* finding files and videos: :func:`first_file`, :func:`video_root_candidates`, :func:`records_in_tree`
  (``<class>/<video>`` trees), :func:`index_videos` and :func:`videos_by_id` (``<id>.<ext>`` files),
  :func:`numbered_lines`;
* :func:`finish_split` last (the class count fits the model, missing videos reported in one line, at least
  one video exists).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from rs_image.errors import DataError, DataNotFoundError
from rs_image.fileio import atomic_write

__all__ = [
    "VIDEO_EXTENSIONS",
    "DOWNLOAD_EXTENSIONS",
    "SPLIT_ALIASES",
    "RESERVED_FOLDER_NAMES",
    "ANNOTATIONS_FOLDER",
    "CLASS_IDS_FILE",
    "AnnotationError",
    "VideoRecord",
    "SplitAnnotations",
    "check_split_request",
    "video_root_candidates",
    "load_class_ids",
    "check_class_ids",
    "save_class_ids",
    "numbered_lines",
    "report_missing",
    "finish_split",
    "first_file",
    "records_in_tree",
    "index_videos",
    "videos_by_id",
]

logger = logging.getLogger(__name__)

#: What a class tree or an input folder may hold.
VIDEO_EXTENSIONS: Tuple[str, ...] = (".mp4", ".mkv", ".webm", ".avi", ".mov")
#: The containers the official downloaders write (what ``<id>.<ext>`` indexes look for by default).
DOWNLOAD_EXTENSIONS: Tuple[str, ...] = (".mp4", ".mkv", ".webm")
#: File and folder names a split may have.
SPLIT_ALIASES = {"train": ("train",), "val": ("val", "validate", "valid"), "test": ("test",)}
ANNOTATIONS_FOLDER = "annotations"
#: Folders of the layouts themselves, never class names.
RESERVED_FOLDER_NAMES = frozenset(
    [alias for aliases in SPLIT_ALIASES.values() for alias in aliases] + ["videos", ANNOTATIONS_FOLDER]
)
CLASS_IDS_FILE = "classids.json"


class AnnotationError(DataError):
    """A malformed annotation file or line; the message names the file (and line)."""


@dataclass(frozen=True)
class VideoRecord:
    """One video of a split: its path and integer label (-1 when the split has no labels); a multi-label data
    set (Charades) gives the classes present in ``labels`` (possibly none) and ``label`` -1."""

    path: str
    label: int
    labels: Optional[Tuple[int, ...]] = None


@dataclass
class SplitAnnotations:
    """The videos of one split.

    Attributes:
        records: the videos that exist.
        missing: listed paths that do not exist (already reported).
        source: the list file or folder they came from.
        format: "list", "kinetics_csv", "class_folders" (this module), "ucf101", "hmdb51" or "ssv2"
            (:mod:`rs_video.data.sources`).
        class_names: index -> name, where the format has names (None for path-label lists).
    """

    records: List[VideoRecord]
    missing: List[str] = field(default_factory=list)
    source: str = ""
    format: str = ""
    class_names: Optional[List[str]] = None


def load_class_ids(path: str) -> Dict[str, int]:
    """Reads ``classids.json``: ``{"name": index}`` (or a list of names in index order)."""
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if isinstance(content, list):
        content = {str(name): index for index, name in enumerate(content)}
    return check_class_ids(content, path)


def check_class_ids(content: object, path: str) -> Dict[str, int]:
    """``content`` as ``{"class name": index}`` with indices 0..N-1, each once (digit strings count as
    integers, as in Something-Something's ``labels.json``); raises :class:`AnnotationError` naming ``path``."""
    if isinstance(content, dict):
        content = {k: int(v) if isinstance(v, str) and v.strip().isdigit() else v for k, v in content.items()}
    if not isinstance(content, dict) or not all(type(v) is int for v in content.values()):  # bool is not an index
        raise AnnotationError(f"{path}: expected {{\"class name\": integer index}}")
    if sorted(content.values()) != list(range(len(content))):
        raise AnnotationError(f"{path}: class indices must be 0..{len(content) - 1} without gaps or repeats")
    return dict(content)


def save_class_ids(path: str, class_ids: Dict[str, int]) -> bool:
    """Writes ``classids.json`` atomically; returns False (with a warning) when the folder is read-only."""
    try:
        with atomic_write(path, encoding="utf-8") as out:
            json.dump(class_ids, out, indent=1)
        return True
    except OSError as error:
        logger.warning("could not write %s (%s); the class order is still the sorted class names", path, error)
        return False


def first_file(folders: Iterable[str], names: Iterable[str]) -> Optional[str]:
    """The first ``folder/name`` that is a file, folders first, then names in their order; or None."""
    names = list(names)
    for folder in folders:
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    return None


def records_in_tree(
    candidates: Sequence[str], rows: Sequence[Tuple[str, int]]
) -> Tuple[List[VideoRecord], List[str]]:
    """The existing and the missing videos of ``rows`` (``(relative path, label)``) under the first folder of
    ``candidates`` that holds any of them (else the first existing one): where a data set's
    ``<class>/<video>`` tree was unpacked."""
    existing = [folder for folder in candidates if os.path.isdir(folder)]
    root = next((folder for folder in existing if any(os.path.exists(os.path.join(folder, relative))
                                                      for relative, _ in rows)),
                existing[0] if existing else candidates[0])
    records, missing = [], []
    for relative, label in rows:
        path = os.path.join(root, relative)
        if os.path.exists(path):
            records.append(VideoRecord(path, label))
        else:
            missing.append(path)
    return records, missing


def index_videos(folders: Sequence[str], extensions: Sequence[str] = DOWNLOAD_EXTENSIONS) -> Dict[str, str]:
    """File stem -> path of the videos directly in each folder or in its sub-folders (per-class layout).

    Sub-folders with a reserved name are not searched (they are folders of their own, another split's
    included). An earlier folder wins over a later one, an earlier extension over a later one; unfinished
    downloads (``.part``) are ignored.
    """
    index: Dict[str, str] = {}
    preference = {ext: rank for rank, ext in enumerate(extensions)}
    for folder in folders:
        found: Dict[str, Tuple[int, str]] = {}
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
        files = [e for e in entries if e.is_file()]
        for entry in entries:
            if entry.is_dir() and not entry.name.startswith(".") and entry.name.lower() not in RESERVED_FOLDER_NAMES:
                files += sorted((e for e in os.scandir(entry.path) if e.is_file()), key=lambda e: e.name)
        for entry in files:
            stem, ext = os.path.splitext(entry.name)
            rank = preference.get(ext.lower())
            if rank is None or ".part." in entry.name:
                continue
            if stem not in found or rank < found[stem][0]:
                found[stem] = (rank, entry.path)
        for stem, (_, path) in found.items():
            index.setdefault(stem, path)
    return index


def check_split_request(data_dir: str, split: str, split_number: Optional[int] = None, dataset: str = "") -> None:
    """What every source checks first: ``split`` is train, val or test, ``split_number`` (for data sets with
    official splits 1, 2, 3: ``DATA.SPLIT``) is one of them, and ``data_dir`` is a folder."""
    if split not in SPLIT_ALIASES:
        raise ValueError(f"split must be train, val or test, got {split!r}")
    if split_number is not None and split_number not in (1, 2, 3):
        raise ValueError(f"{dataset} has official splits 1, 2 and 3 (DATA.SPLIT), got {split_number}")
    if not os.path.isdir(data_dir):
        raise DataNotFoundError(f"DATA.PATH_TO_DATA_DIR {data_dir!r} is not a folder")


def video_root_candidates(data_dir: str, video_root: str, folders: Sequence[str]) -> List[str]:
    """Where a data set's videos may be: ``DATA.PATH_PREFIX`` when set, else each of its download's
    ``folders`` under ``data_dir`` ("" is ``data_dir`` itself), in order."""
    return [video_root] if video_root else [os.path.join(data_dir, folder) for folder in folders]


def videos_by_id(
    candidates: Sequence[str], rows: Sequence[Tuple[str, Union[int, Tuple[int, ...]]]], extensions: Sequence[str],
    folder_hint: str,
) -> Tuple[List[VideoRecord], List[str], str]:
    """``(records, missing paths, what was searched)`` of ``rows`` (``(video id, label)``; a tuple label is a
    multi-label record's classes) whose videos are ``<id><extension>`` files, directly or one sub-folder down,
    in the first existing folder of ``candidates`` that holds any video (only that one is indexed: ``DIR``
    itself would otherwise index its sub-folders again). ``folder_hint`` ends the search description."""
    folders = [folder for folder in candidates if os.path.isdir(folder)]
    root, available = (folders or list(candidates))[0], {}
    for folder in folders:
        available = index_videos([folder], extensions)
        if available:
            root = folder
            break
    records, missing = [], []
    for video_id, label in rows:
        path = available.get(video_id)
        if path is None:
            missing.append(os.path.join(root, f"{video_id}{extensions[0]}"))
        elif isinstance(label, tuple):
            records.append(VideoRecord(path, -1, label))
        else:
            records.append(VideoRecord(path, label))
    searched = (f"; searched {', '.join(candidates)} and their sub-folders for <id>{'/'.join(extensions)} "
                f"(set DATA.PATH_PREFIX to the folder of the videos{folder_hint})")
    return records, missing, searched


def numbered_lines(path: str) -> Iterator[Tuple[int, str]]:
    """``(line number, stripped line)`` of the non-blank lines of a text annotation file (a UTF-8 byte-order
    mark and Windows line ends are accepted)."""
    with open(path, encoding="utf-8-sig") as handle:
        for line_number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if line:
                yield line_number, line


def report_missing(source: str, missing: Sequence[str], total: int) -> None:
    """One warning line for the listed videos of ``source`` that do not exist."""
    if missing:
        examples = ", ".join(missing[:3])
        logger.warning(
            "%s: %d of %d listed videos are missing and skipped (e.g. %s)", source, len(missing), total, examples
        )


def finish_split(
    records: List[VideoRecord], missing: List[str], source: str, fmt: str, class_names: Optional[List[str]],
    *, num_listed: int, num_classes: Optional[int] = None, class_file: str = "", searched: str = "",
) -> SplitAnnotations:
    """The checks every annotation source ends with: the class list fits ``MODEL.NUM_CLASSES``, missing
    videos are reported in one line, and at least one listed video exists.

    Args:
        num_listed: videos the source lists (existing and missing).
        class_file: the file the class list came from (for the message; default ``source``).
        searched: appended to the "none exists" error (where the videos were looked for).
    """
    if num_classes is not None and class_names is not None and len(class_names) > num_classes:
        raise AnnotationError(
            f"{class_file or source}: {len(class_names)} classes but MODEL.NUM_CLASSES={num_classes}"
        )
    report_missing(source, missing, num_listed)
    if not records:
        raise AnnotationError(f"{source}: none of the {num_listed} listed videos exists{searched}")
    return SplitAnnotations(records, missing, source, fmt, class_names)

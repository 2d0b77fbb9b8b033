"""Kinetics-style annotations (``DATA.DATASET: kinetics``): which video files a split holds and their labels.

This module also holds what every annotation source returns (:class:`VideoRecord`, :class:`SplitAnnotations`)
and the checks they all end with (:func:`finish_split`); the readers of UCF101, HMDB51 and
Something-Something v2 are in :mod:`rs_video.data.sources`.

``DATA.PATH_TO_DATA_DIR`` (``DIR``) may hold any of three layouts:

(a) **path-label lists** (SlowFast / PyTorchVideo): ``{split}.csv`` (or ``.txt``; ``validate``/``valid`` are
    accepted for ``val``) with one ``<path><sep><integer label>`` line per video. ``sep`` is
    ``DATA.PATH_LABEL_SEPARATOR``; any whitespace separator means "any run of whitespace", and the label is
    the last field, so paths may contain spaces. Relative paths are joined to ``DATA.PATH_PREFIX`` when it
    is set (SlowFast), else to the list file's folder. Blank lines and lines starting with ``#`` are
    skipped.
(b) **official Kinetics CSVs**: the same file names, or ``kinetics-400_{split}.csv`` /
    ``kinetics_{split}.csv`` / ``kinetics400_{split}.csv``, starting with the header
    ``label,youtube_id,time_start,time_end,split[,is_cc]`` (test files may lack ``label``). Videos are
    ``{youtube_id}_{time_start:06d}_{time_end:06d}.{mp4,mkv,webm}``, searched in ``BASE/{split}``,
    ``BASE/videos/{split}``, ``BASE/videos`` and ``BASE`` (a video in several of them is taken from the
    first), each directly or in per-class sub-folders; ``BASE`` is ``DATA.PATH_PREFIX`` when set, else
    ``DIR``.
(c) **class folders**: ``DIR/{split}/<class name>/<video>`` (any of .mp4 .mkv .webm .avi .mov), or
    ``DIR/<class name>/<video>`` when ``DIR`` has neither split folders nor annotation files (every split
    then reads the same tree).

Annotation files (a, b) are looked for in ``DIR``, then in ``DIR/annotations`` (the common download
layout: ``DIR/annotations/{train,val,test}.csv`` beside ``DIR/{train,val,test}/``). A split with a file
uses it; a split without one may still be a ``DIR/{split}/<class>/`` tree, but a ``DIR`` that holds
annotation files is never read as a class tree itself. The folder names in :data:`RESERVED_FOLDER_NAMES`
(split folders, ``videos``, ``annotations``) are never class names: a class tree containing one raises
:class:`AnnotationError` naming it.

For (b) and (c) class names become indices through one sorted class list, ``DIR/classids.json``
(``{"class name": index}``, SlowFast's format). It is read when it exists; otherwise it is made from the
class names of *all* the splits' annotation sources that exist (CSV labels, class folders), so train and
val always agree, and written for later runs.

A malformed line raises :class:`AnnotationError` naming the file and line number. Listed videos that do
not exist are dropped and reported in one summary line with their count.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from rs_image.errors import DataError, DataNotFoundError
from rs_image.fileio import atomic_write

__all__ = [
    "VIDEO_EXTENSIONS",
    "RESERVED_FOLDER_NAMES",
    "AnnotationError",
    "VideoRecord",
    "SplitAnnotations",
    "load_split",
    "read_path_label_list",
    "read_kinetics_csv",
    "load_class_ids",
    "check_class_ids",
    "save_class_ids",
    "numbered_lines",
    "report_missing",
    "finish_split",
    "first_file",
    "find_split_file",
    "video_folders",
    "records_in_tree",
    "index_videos",
    "videos_by_id",
    "check_split_request",
]

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS: Tuple[str, ...] = (".mp4", ".mkv", ".webm", ".avi", ".mov")
_OFFICIAL_EXTENSIONS = (".mp4", ".mkv", ".webm")
_SPLIT_ALIASES = {"train": ("train",), "val": ("val", "validate", "valid"), "test": ("test",)}
ANNOTATIONS_FOLDER = "annotations"
# Folders of the layouts themselves, never class names.
RESERVED_FOLDER_NAMES = frozenset(
    [alias for aliases in _SPLIT_ALIASES.values() for alias in aliases] + ["videos", ANNOTATIONS_FOLDER]
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


def _is_whitespace_separator(separator: Optional[str]) -> bool:
    return separator is None or separator == "" or separator.isspace()


def _resolve(path: str, prefix: str, base_dir: str) -> str:
    if prefix:
        return os.path.join(prefix, path)
    return path if os.path.isabs(path) else os.path.join(base_dir, path)


def read_path_label_list(
    list_file: str, path_prefix: str = "", separator: str = " ", num_classes: Optional[int] = None
) -> List[VideoRecord]:
    """Parses a SlowFast/PyTorchVideo ``<path><sep><label>`` list (see module docstring).

    Raises:
        AnnotationError: a line without a path and an integer label, or a label outside
            ``[0, num_classes)`` (``-1``, "no label", is allowed), naming ``file:line``.
    """
    records = []
    base_dir = os.path.dirname(os.path.abspath(list_file))
    whitespace = _is_whitespace_separator(separator)
    with open(list_file, encoding="utf-8") as handle:
        for line_number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.rsplit(None, 1) if whitespace else [f.strip() for f in line.rsplit(separator, 1)]
            where = f"{list_file}:{line_number}"
            shown_sep = "whitespace" if whitespace else repr(separator)
            hint = " (official Kinetics CSVs need their header line)" if line.count(",") >= 3 else ""
            if len(fields) != 2 or not fields[0]:
                raise AnnotationError(
                    f"{where}: expected '<path> <integer label>' separated by {shown_sep}, got {line!r}{hint}"
                )
            try:
                label = int(fields[1])
            except ValueError:
                raise AnnotationError(f"{where}: label {fields[1]!r} is not an integer in {line!r}{hint}") from None
            if label < -1 or (num_classes is not None and label >= num_classes):
                raise AnnotationError(f"{where}: label {label} outside [0, {num_classes}) (MODEL.NUM_CLASSES)")
            records.append(VideoRecord(_resolve(fields[0], path_prefix, base_dir), label))
    if not records:
        raise AnnotationError(f"{list_file}: no videos listed")
    return records


@dataclass(frozen=True)
class _KineticsRow:
    label_name: Optional[str]
    youtube_id: str
    time_start: int
    time_end: int

    @property
    def stem(self) -> str:
        return f"{self.youtube_id}_{self.time_start:06d}_{self.time_end:06d}"


def _is_kinetics_csv(path: str) -> bool:
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().strip().lower()
    columns = [c.strip() for c in header.split(",")]
    return "youtube_id" in columns and "time_start" in columns


def read_kinetics_csv(csv_file: str) -> List[_KineticsRow]:
    """Parses an official Kinetics CSV (``label,youtube_id,time_start,time_end,split[,is_cc]``).

    Raises:
        AnnotationError: missing columns or a malformed row, naming ``file:line``.
    """
    rows = []
    with open(csv_file, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = [c.strip().lower() for c in next(reader)]
        except StopIteration:
            raise AnnotationError(f"{csv_file}: empty file") from None
        needed = ("youtube_id", "time_start", "time_end")
        if any(c not in header for c in needed):
            raise AnnotationError(f"{csv_file}:1: header {header} lacks one of {list(needed)}")
        position = {name: header.index(name) for name in header}
        for fields in reader:
            line_number = reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue
            where = f"{csv_file}:{line_number}"
            if len(fields) != len(header):
                raise AnnotationError(f"{where}: expected {len(header)} comma-separated fields {header}, got {fields}")
            try:
                start = int(float(fields[position["time_start"]]))
                end = int(float(fields[position["time_end"]]))
            except ValueError:
                raise AnnotationError(f"{where}: time_start/time_end are not numbers in {fields}") from None
            youtube_id = fields[position["youtube_id"]].strip()
            if not youtube_id:
                raise AnnotationError(f"{where}: empty youtube_id")
            label = fields[position["label"]].strip() if "label" in position else None
            rows.append(_KineticsRow(label or None, youtube_id, start, end))
    if not rows:
        raise AnnotationError(f"{csv_file}: no videos listed")
    return rows


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


def _split_file_names(split: str) -> List[str]:
    names = []
    for alias in _SPLIT_ALIASES[split]:
        names += [f"{alias}.csv", f"{alias}.txt", f"kinetics-400_{alias}.csv", f"kinetics400_{alias}.csv",
                  f"kinetics_{alias}.csv"]
    return names


def first_file(folders: Iterable[str], names: Iterable[str]) -> Optional[str]:
    """The first ``folder/name`` that is a file, folders first, then names in their order; or None."""
    names = list(names)
    for folder in folders:
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    return None


def find_split_file(data_dir: str, split: str, suffix: str = "") -> Optional[str]:
    """The annotation file of ``split`` in ``data_dir`` or ``data_dir/annotations`` (names ending in
    ``suffix``), or None."""
    return first_file((data_dir, os.path.join(data_dir, ANNOTATIONS_FOLDER)),
                      (name for name in _split_file_names(split) if name.endswith(suffix)))


def _annotation_files(data_dir: str) -> List[str]:
    found = (find_split_file(data_dir, split) for split in _SPLIT_ALIASES)
    return [path for path in found if path is not None]


def _sub_dirs(folder: str) -> List[str]:
    try:
        return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    except FileNotFoundError:
        return []


def _tree_classes(tree: str, data_dir: str) -> List[str]:
    """The class folders of a class tree; a reserved folder name there is an error, never a class."""
    names = _sub_dirs(tree)
    reserved = [name for name in names if name.lower() in RESERVED_FOLDER_NAMES]
    if reserved:
        folder = os.path.join(tree, reserved[0])
        if tree == data_dir:
            reason = (f"{data_dir} holds no annotation files (train.csv, val.csv, ... in it or in "
                      f"{ANNOTATIONS_FOLDER}/) and no train/val/test folders, so it was read as a class tree "
                      f"<class>/<video>")
        else:
            reason = f"{tree} was read as a class tree {os.path.basename(tree)}/<class>/<video>"
        raise AnnotationError(
            f"{folder}: {reason}, but {reserved[0]!r} is a reserved folder name (split folders, 'videos', "
            f"'{ANNOTATIONS_FOLDER}'), not a class; add the annotation files the videos belong to, or rename "
            f"the folder"
        )
    return names


def _find_split_tree(data_dir: str, split: str) -> Optional[str]:
    for alias in _SPLIT_ALIASES[split]:
        folder = os.path.join(data_dir, alias)
        if os.path.isdir(folder) and _sub_dirs(folder):
            return folder
    has_split_dirs = any(os.path.isdir(os.path.join(data_dir, a)) for names in _SPLIT_ALIASES.values() for a in names)
    # A data root holding annotation files is never a class tree (its videos/ would become a class).
    if not has_split_dirs and not _annotation_files(data_dir) and _sub_dirs(data_dir):
        return data_dir
    return None


def _tree_videos(tree: str, data_dir: str) -> List[Tuple[str, str]]:
    """(class name, path) of every video file in ``tree/<class>/``, sorted."""
    found = []
    for name in _tree_classes(tree, data_dir):
        class_dir = os.path.join(tree, name)
        for entry in sorted(os.scandir(class_dir), key=lambda e: e.name):
            if entry.is_file() and os.path.splitext(entry.name)[1].lower() in VIDEO_EXTENSIONS:
                found.append((name, entry.path))
    return found


def video_folders(base: str, split: str) -> List[str]:
    """The existing folders that may hold ``split``'s videos, most specific first: ``base/{split}``,
    ``base/videos/{split}``, ``base/videos``, ``base``."""
    aliases = _SPLIT_ALIASES[split]
    candidates = [os.path.join(base, a) for a in aliases] + [os.path.join(base, "videos", a) for a in aliases]
    candidates += [os.path.join(base, "videos"), base]
    return [c for c in candidates if os.path.isdir(c)]


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


def index_videos(folders: Sequence[str], extensions: Sequence[str] = _OFFICIAL_EXTENSIONS) -> Dict[str, str]:
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


def _split_class_names(data_dir: str, split: str) -> Optional[List[str]]:
    """Class names of a split in layout (b) or (c), or None when the split is absent or a (a) list."""
    split_file = find_split_file(data_dir, split)
    if split_file is not None:
        if not _is_kinetics_csv(split_file):
            return None
        return sorted({row.label_name for row in read_kinetics_csv(split_file) if row.label_name})
    tree = _find_split_tree(data_dir, split)
    if tree is not None:
        return _tree_classes(tree, data_dir)
    return None


def _class_ids_for(data_dir: str, needed: Iterable[str]) -> Dict[str, int]:
    """The data set's class list (read, or made from all splits and saved) covering ``needed``."""
    path = os.path.join(data_dir, CLASS_IDS_FILE)
    if os.path.isfile(path):
        class_ids = load_class_ids(path)
    else:
        names = set()
        for split in _SPLIT_ALIASES:
            names.update(_split_class_names(data_dir, split) or [])
        class_ids = {name: index for index, name in enumerate(sorted(names))}
        if save_class_ids(path, class_ids):
            logger.info("wrote %s (%d classes, sorted names of all splits)", path, len(class_ids))
    unknown = sorted(set(needed) - set(class_ids))
    if unknown:
        raise AnnotationError(f"{path}: has no entry for classes {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    return class_ids


def check_split_request(data_dir: str, split: str) -> None:
    """What every source checks first: ``split`` is train, val or test and ``data_dir`` is a folder."""
    if split not in _SPLIT_ALIASES:
        raise ValueError(f"split must be train, val or test, got {split!r}")
    if not os.path.isdir(data_dir):
        raise DataNotFoundError(f"DATA.PATH_TO_DATA_DIR {data_dir!r} is not a folder")


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


def load_split(
    data_dir: str, split: str, path_prefix: str = "", separator: str = " ", num_classes: Optional[int] = None,
) -> SplitAnnotations:
    """Loads one split in whichever layout ``data_dir`` has (see module docstring).

    Args:
        data_dir: ``DATA.PATH_TO_DATA_DIR``.
        split: "train", "val" or "test".
        path_prefix: ``DATA.PATH_PREFIX``.
        separator: ``DATA.PATH_LABEL_SEPARATOR``.
        num_classes: ``MODEL.NUM_CLASSES``, to reject out-of-range labels early.

    Raises:
        FileNotFoundError: nothing for ``split`` in ``data_dir``.
        AnnotationError: malformed content, or no listed video exists.
    """
    if split not in _SPLIT_ALIASES:
        raise ValueError(f"split must be one of {list(_SPLIT_ALIASES)}, got {split!r}")
    if not os.path.isdir(data_dir):
        raise DataNotFoundError(f"DATA.PATH_TO_DATA_DIR {data_dir!r} is not a folder")
    split_file = find_split_file(data_dir, split)
    class_names = None
    if split_file is not None and not _is_kinetics_csv(split_file):
        listed = read_path_label_list(split_file, path_prefix, separator, num_classes)
        records = [r for r in listed if os.path.exists(r.path)]
        missing = [r.path for r in listed if not os.path.exists(r.path)]
        source, fmt, searched = split_file, "list", ""
        class_ids_path = os.path.join(data_dir, CLASS_IDS_FILE)
        if os.path.isfile(class_ids_path):  # names for logs and reports; the labels stay as listed
            class_ids = load_class_ids(class_ids_path)
            class_names = sorted(class_ids, key=class_ids.get)
            too_large = [r.label for r in listed if r.label >= len(class_names)]
            if too_large:
                raise AnnotationError(
                    f"{split_file}: label {max(too_large)} has no name in {class_ids_path} ({len(class_names)} classes)"
                )
    elif split_file is not None:
        rows = read_kinetics_csv(split_file)
        class_ids = _class_ids_for(data_dir, {r.label_name for r in rows if r.label_name})
        base = path_prefix or data_dir
        folders = video_folders(base, split)
        available = index_videos(folders)
        records, missing = [], []
        for row in rows:
            label = class_ids[row.label_name] if row.label_name else -1
            path = available.get(row.stem)
            if path is None:
                missing.append(os.path.join(folders[0] if folders else base, row.stem + ".mp4"))
            else:
                records.append(VideoRecord(path, label))
        source, fmt, listed = split_file, "kinetics_csv", rows
        where = ", ".join(folders) if folders else f"{base} (not a folder)"
        searched = (f"; searched {where} and their class sub-folders for "
                    f"<youtube_id>_<start:06d>_<end:06d>{'/'.join(_OFFICIAL_EXTENSIONS)}")
        class_names = sorted(class_ids, key=class_ids.get)
    else:
        tree = _find_split_tree(data_dir, split)
        if tree is None:
            aliases = "/".join(_SPLIT_ALIASES[split])
            others = _annotation_files(data_dir)
            has_others = f" (it has {', '.join(others)} for other splits)" if others else ""
            raise DataNotFoundError(
                f"no annotations for split {split!r} in {data_dir}{has_others}: expected {aliases}.csv (path-label "
                f"list or official Kinetics CSV) in it or in {ANNOTATIONS_FOLDER}/, or a {split}/<class>/<video> "
                f"folder tree"
            )
        found = _tree_videos(tree, data_dir)
        class_ids = _class_ids_for(data_dir, {name for name, _ in found})
        records = [VideoRecord(path, class_ids[name]) for name, path in found]
        missing, source, fmt, listed, searched = [], tree, "class_folders", found, ""
        class_names = sorted(class_ids, key=class_ids.get)
    return finish_split(records, missing, source, fmt, class_names, num_listed=len(listed), num_classes=num_classes,
                        class_file=os.path.join(data_dir, CLASS_IDS_FILE), searched=searched)

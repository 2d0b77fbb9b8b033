"""The Kinetics source (``DATA.DATASET: kinetics``, the default): which video files a split holds and their labels.

A source beside the others of :mod:`rs_video.data.sources`; what they all return and share is
:mod:`rs_video.data.annotations`.

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
import logging
import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from rs_image.errors import DataNotFoundError

from ..annotations import (
    ANNOTATIONS_FOLDER, CLASS_IDS_FILE, DOWNLOAD_EXTENSIONS, RESERVED_FOLDER_NAMES, SPLIT_ALIASES, VIDEO_EXTENSIONS,
    AnnotationError, SplitAnnotations, VideoRecord, check_split_request, finish_split, first_file, index_videos,
    load_class_ids, save_class_ids,
)

logger = logging.getLogger(__name__)

__all__ = ["load_kinetics_split", "read_path_label_list", "read_kinetics_csv", "find_split_file", "video_folders"]


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


def _split_file_names(split: str) -> List[str]:
    names = []
    for alias in SPLIT_ALIASES[split]:
        names += [f"{alias}.csv", f"{alias}.txt", f"kinetics-400_{alias}.csv", f"kinetics400_{alias}.csv",
                  f"kinetics_{alias}.csv"]
    return names


def find_split_file(data_dir: str, split: str, suffix: str = "") -> Optional[str]:
    """The annotation file of ``split`` in ``data_dir`` or ``data_dir/annotations`` (names ending in
    ``suffix``), or None."""
    return first_file((data_dir, os.path.join(data_dir, ANNOTATIONS_FOLDER)),
                      (name for name in _split_file_names(split) if name.endswith(suffix)))


def _annotation_files(data_dir: str) -> List[str]:
    found = (find_split_file(data_dir, split) for split in SPLIT_ALIASES)
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
    for alias in SPLIT_ALIASES[split]:
        folder = os.path.join(data_dir, alias)
        if os.path.isdir(folder) and _sub_dirs(folder):
            return folder
    has_split_dirs = any(os.path.isdir(os.path.join(data_dir, a)) for names in SPLIT_ALIASES.values() for a in names)
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
    aliases = SPLIT_ALIASES[split]
    candidates = [os.path.join(base, a) for a in aliases] + [os.path.join(base, "videos", a) for a in aliases]
    candidates += [os.path.join(base, "videos"), base]
    return [c for c in candidates if os.path.isdir(c)]


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
        for split in SPLIT_ALIASES:
            names.update(_split_class_names(data_dir, split) or [])
        class_ids = {name: index for index, name in enumerate(sorted(names))}
        if save_class_ids(path, class_ids):
            logger.info("wrote %s (%d classes, sorted names of all splits)", path, len(class_ids))
    unknown = sorted(set(needed) - set(class_ids))
    if unknown:
        raise AnnotationError(f"{path}: has no entry for classes {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    return class_ids


def _from_path_label_list(split_file: str, data_dir: str, path_prefix: str, separator: str,
                          num_classes: Optional[int]) -> SplitAnnotations:
    """Layout (a): labels as listed; class names from ``classids.json`` when it exists (for logs and reports)."""
    listed = read_path_label_list(split_file, path_prefix, separator, num_classes)
    records = [r for r in listed if os.path.exists(r.path)]
    missing = [r.path for r in listed if not os.path.exists(r.path)]
    class_names = None
    class_ids_path = os.path.join(data_dir, CLASS_IDS_FILE)
    if os.path.isfile(class_ids_path):
        class_ids = load_class_ids(class_ids_path)
        class_names = sorted(class_ids, key=class_ids.get)
        too_large = [r.label for r in listed if r.label >= len(class_names)]
        if too_large:
            raise AnnotationError(
                f"{split_file}: label {max(too_large)} has no name in {class_ids_path} ({len(class_names)} classes)"
            )
    return finish_split(records, missing, split_file, "list", class_names, num_listed=len(listed),
                        num_classes=num_classes, class_file=class_ids_path)


def _from_kinetics_csv(split_file: str, data_dir: str, split: str, path_prefix: str,
                       num_classes: Optional[int]) -> SplitAnnotations:
    """Layout (b): ``<youtube_id>_<start>_<end>.<ext>`` files under the split's video folders."""
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
    where = ", ".join(folders) if folders else f"{base} (not a folder)"
    searched = (f"; searched {where} and their class sub-folders for "
                f"<youtube_id>_<start:06d>_<end:06d>{'/'.join(DOWNLOAD_EXTENSIONS)}")
    return finish_split(records, missing, split_file, "kinetics_csv", sorted(class_ids, key=class_ids.get),
                        num_listed=len(rows), num_classes=num_classes,
                        class_file=os.path.join(data_dir, CLASS_IDS_FILE), searched=searched)


def _from_class_folders(data_dir: str, split: str, num_classes: Optional[int]) -> SplitAnnotations:
    """Layout (c): ``DIR/{split}/<class>/<video>`` or ``DIR/<class>/<video>``."""
    tree = _find_split_tree(data_dir, split)
    if tree is None:
        aliases = "/".join(SPLIT_ALIASES[split])
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
    return finish_split(records, [], tree, "class_folders", sorted(class_ids, key=class_ids.get),
                        num_listed=len(found), num_classes=num_classes, class_file=os.path.join(data_dir, CLASS_IDS_FILE))


def load_kinetics_split(
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
    check_split_request(data_dir, split)
    split_file = find_split_file(data_dir, split)
    if split_file is None:
        return _from_class_folders(data_dir, split, num_classes)
    if _is_kinetics_csv(split_file):
        return _from_kinetics_csv(split_file, data_dir, split, path_prefix, num_classes)
    return _from_path_label_list(split_file, data_dir, path_prefix, separator, num_classes)

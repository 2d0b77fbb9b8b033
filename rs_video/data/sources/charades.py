"""Charades as downloaded (``DATA.DATASET: charades``, multi-label: ``DATA.MULTI_LABEL True``).

``DATA.PATH_TO_DATA_DIR`` (``DIR``) holds::

    DIR/Charades/Charades_v1_train.csv       (Charades.zip; or DIR/ or DIR/annotations/)
    DIR/Charades/Charades_v1_test.csv        id,subject,scene,quality,relevance,verified,script,objects,
                                             descriptions,actions,length; actions "c092 11.90 21.20;c147 0.00 12.60"
    DIR/Charades/Charades_v1_classes.txt     "c000 Holding some clothes": 157 classes, c000 .. c156 in order
    DIR/Charades_v1_480/<id>.mp4             (Charades_v1_480.zip; or DIR/Charades_v1/, DIR/videos/, DIR/)

``train`` reads ``Charades_v1_train.csv``; ``val`` and ``test`` read ``Charades_v1_test.csv`` (the split on
which Charades mAP is published; SlowFast's ``val.csv`` is the same videos).

Label rule: **video level**. A video's labels are every class that occurs in its ``actions`` column (a video
without actions has none), for every split. SlowFast evaluates with the same video-level labels
(``convert_to_video_level_labels`` for val/test) but trains with the classes whose frames fall inside the
sampled clip (its frame lists are per frame); this loader trains with the video-level labels, the labels of
the whole video for every clip (temporal labels are not kept).
"""

from __future__ import annotations

import csv
import os
from typing import Dict, List, Optional, Tuple

from rs_image.errors import DataNotFoundError

from ..annotations import (
    AnnotationError, SplitAnnotations, check_split_request, finish_split, first_file, numbered_lines,
    video_root_candidates, videos_by_id,
)

__all__ = ["ANNOTATION_FOLDERS", "VIDEO_FOLDERS", "read_charades_classes", "read_charades_csv", "load_charades_split"]

ANNOTATION_FOLDERS = ("Charades", "", "annotations")
"""Where the CSV and class files are looked for, relative to ``DIR`` ("" is ``DIR`` itself)."""
VIDEO_FOLDERS = ("Charades_v1_480", "Charades_v1", "videos", "")
"""Where the ``<id>.mp4`` files are looked for when ``DATA.PATH_PREFIX`` is empty."""
FILE_NAMES = {"classes": "Charades_v1_classes.txt", "train": "Charades_v1_train.csv",
              "val": "Charades_v1_test.csv", "test": "Charades_v1_test.csv"}
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv")


def _find(data_dir: str, key: str) -> str:
    path = first_file((os.path.join(data_dir, folder) for folder in ANNOTATION_FOLDERS), (FILE_NAMES[key],))
    if path is not None:
        return path
    where = ", ".join(os.path.join(data_dir, folder) for folder in ANNOTATION_FOLDERS)
    raise DataNotFoundError(f"Charades (DATA.DATASET charades): no {FILE_NAMES[key]} in {where}; unpack Charades.zip "
                            f"(the annotations) into {data_dir}")


def read_charades_classes(path: str) -> Tuple[List[str], Dict[str, int]]:
    """``(class names, {class id: index})`` of ``Charades_v1_classes.txt`` (``c000 Holding some clothes``).

    Raises:
        AnnotationError: a line that is not ``<id> <name>`` or a repeated id, naming ``file:line``.
    """
    names: List[str] = []
    ids: Dict[str, int] = {}
    for line_number, line in numbered_lines(path):
        class_id, _, name = line.partition(" ")
        if not name.strip() or not class_id:
            raise AnnotationError(f"{path}:{line_number}: expected '<class id> <name>' (c000 Holding some clothes), "
                                  f"got {line!r}")
        if class_id in ids:
            raise AnnotationError(f"{path}:{line_number}: class {class_id!r} is listed twice")
        ids[class_id] = len(names)
        names.append(name.strip())
    if not names:
        raise AnnotationError(f"{path}: no classes listed")
    return names, ids


def read_charades_csv(path: str, class_ids: Dict[str, int]) -> List[Tuple[str, Tuple[int, ...]]]:
    """``(video id, sorted class indices)`` of every row of a ``Charades_v1_{train,test}.csv``.

    Raises:
        AnnotationError: no ``id`` / ``actions`` columns, or an action that is not ``<class id> <start> <end>``
            with a class of the class file, naming ``file:line``.
    """
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"id", "actions"} - set(reader.fieldnames or [])
        if missing:
            raise AnnotationError(f"{path}:1: no {' / '.join(sorted(missing))} column; expected Charades' header "
                                  f"id,subject,scene,...,actions,length")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            video_id = (row["id"] or "").strip()
            if not video_id:
                raise AnnotationError(f"{where}: empty id")
            classes = set()
            for action in filter(None, (a.strip() for a in (row["actions"] or "").split(";"))):
                fields = action.split()
                if len(fields) != 3:
                    raise AnnotationError(f"{where}: action {action!r} is not '<class id> <start s> <end s>'")
                if fields[0] not in class_ids:
                    raise AnnotationError(f"{where}: class {fields[0]!r} is not in {FILE_NAMES['classes']}")
                classes.add(class_ids[fields[0]])
            rows.append((video_id, tuple(sorted(classes))))
    if not rows:
        raise AnnotationError(f"{path}: no videos listed")
    return rows


def load_charades_split(
    data_dir: str, split: str, video_root: str = "", num_classes: Optional[int] = None,
) -> SplitAnnotations:
    """One split of Charades in its download layout (module docstring), with video-level multi-label records.

    Args:
        data_dir: ``DATA.PATH_TO_DATA_DIR``.
        split: "train", "val" or "test" ("val" and "test" both read ``Charades_v1_test.csv``).
        video_root: ``DATA.PATH_PREFIX``: the folder of the ``<id>.mp4`` files ("" = search ``DIR``).
        num_classes: ``MODEL.NUM_CLASSES``, to reject a class list that does not fit the model.
    """
    check_split_request(data_dir, split)
    class_file = _find(data_dir, "classes")
    class_names, class_ids = read_charades_classes(class_file)
    split_file = _find(data_dir, split)
    rows = read_charades_csv(split_file, class_ids)
    candidates = video_root_candidates(data_dir, video_root, VIDEO_FOLDERS)
    records, missing, searched = videos_by_id(candidates, rows, VIDEO_EXTENSIONS, ", e.g. Charades_v1_480")
    return finish_split(records, missing, split_file, "charades", class_names, num_listed=len(rows),
                        num_classes=num_classes, class_file=class_file, searched=searched)

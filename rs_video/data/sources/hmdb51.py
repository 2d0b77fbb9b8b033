"""HMDB51 as downloaded (``DATA.DATASET: hmdb51``): the class folders and the official 70/30 splits.

``DATA.PATH_TO_DATA_DIR`` (``DIR``) holds::

    DIR/<class>/<video>.avi                                 (each class's .rar of hmdb51_org.rar unpacked;
                                                             or DIR/videos/<class>/, DIR/hmdb51_org/<class>/)
    DIR/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt
                                                            "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1"

(the split files may also sit in ``DIR/annotations/`` or ``DIR`` itself). Each line of a split file is a
video of that class and a flag: 0 = not in this split, 1 = train, 2 = test. ``DATA.SPLIT`` (1, 2, 3) picks
the files. HMDB51 has no validation set: ``train`` takes the 1s, ``val`` and ``test`` the 2s (as mmaction2's
HMDB51 configs do).

The class list is the sorted class names of the split files (the order of mmaction2's generated
``classInd.txt``, sorted class folders); every class must have a file for the chosen split. Videos are
``DATA.PATH_PREFIX/<class>/<video>`` when the prefix is set, else in the first of ``DIR/videos``,
``DIR/hmdb51_org``, ``DIR`` that holds any listed file.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

from rs_image.errors import DataNotFoundError

from ..annotations import (
    AnnotationError, SplitAnnotations, check_split_request, finish_split, numbered_lines, records_in_tree,
    video_root_candidates,
)

__all__ = ["SPLIT_FOLDERS", "VIDEO_FOLDERS", "FLAGS", "find_split_files", "read_hmdb51_split_file",
           "load_hmdb51_split"]

SPLIT_FOLDERS = ("testTrainMulti_7030_splits", "annotations", "")
"""Where the split files are looked for, relative to ``DIR`` ("" is ``DIR`` itself)."""
VIDEO_FOLDERS = ("videos", "hmdb51_org", "")
"""Where the ``<class>/<video>`` tree is looked for when ``DATA.PATH_PREFIX`` is empty."""
FLAGS = {"train": "1", "val": "2", "test": "2"}
"""The flag of a split file line that puts the video in a split ("0": not used by this split)."""
_SPLIT_FILE = re.compile(r"^(?P<name>.+)_test_split(?P<number>[123])\.txt$")


def find_split_files(data_dir: str) -> Tuple[str, Dict[int, Dict[str, str]]]:
    """The folder of the split files and, per split number, class name -> split file.

    Raises:
        DataNotFoundError: no ``<class>_test_split<n>.txt`` file in any of :data:`SPLIT_FOLDERS`.
    """
    for folder in SPLIT_FOLDERS:
        path = os.path.join(data_dir, folder)
        if not os.path.isdir(path):
            continue
        files: Dict[int, Dict[str, str]] = {}
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            match = _SPLIT_FILE.match(entry.name)
            if match and entry.is_file():
                files.setdefault(int(match["number"]), {})[match["name"]] = entry.path
        if files:
            return path, files
    where = ", ".join(os.path.join(data_dir, folder) for folder in SPLIT_FOLDERS)
    raise DataNotFoundError(
        f"HMDB51 (DATA.DATASET hmdb51): no <class>_test_split<1|2|3>.txt files in {where}; unpack "
        f"test_train_splits.rar into {data_dir} (it makes testTrainMulti_7030_splits/)"
    )


def read_hmdb51_split_file(path: str) -> List[Tuple[str, str]]:
    """``(video file name, flag)`` of every line of one ``<class>_test_split<n>.txt``.

    Raises:
        AnnotationError: a line that is not ``<video> <0|1|2>``, naming ``file:line``.
    """
    rows = []
    for line_number, line in numbered_lines(path):
        fields = line.split()
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise AnnotationError(
                f"{path}:{line_number}: expected '<video>.avi <0|1|2>' (0 not used, 1 train, 2 test), got {line!r}"
            )
        rows.append((fields[0], fields[1]))
    if not rows:
        raise AnnotationError(f"{path}: no videos listed")
    return rows


def load_hmdb51_split(
    data_dir: str, split: str, split_number: int = 1, video_root: str = "", num_classes: Optional[int] = None,
) -> SplitAnnotations:
    """One split of HMDB51 in its download layout (module docstring).

    Args:
        data_dir: ``DATA.PATH_TO_DATA_DIR``.
        split: "train", "val" or "test" ("val" and "test" both take the test videos).
        split_number: ``DATA.SPLIT``, 1, 2 or 3.
        video_root: ``DATA.PATH_PREFIX``: the folder holding the ``<class>/`` folders ("" = search ``DIR``).
        num_classes: ``MODEL.NUM_CLASSES``, to reject a class list that does not fit the model.
    """
    check_split_request(data_dir, split, split_number, "HMDB51")
    folder, files = find_split_files(data_dir)
    source = os.path.join(folder, f"*_test_split{split_number}.txt")
    chosen = files.get(split_number, {})
    every_class = sorted({name for by_class in files.values() for name in by_class})
    lacking = [name for name in every_class if name not in chosen]
    if lacking:  # a class without its file would shift every later label
        raise DataNotFoundError(
            f"{os.path.join(folder, f'{lacking[0]}_test_split{split_number}.txt')}: missing ({len(lacking)} of "
            f"{len(every_class)} classes have no split-{split_number} file, e.g. {', '.join(lacking[:3])})"
        )
    rows: List[Tuple[str, int]] = []
    for label, name in enumerate(every_class):
        rows += [(f"{name}/{video}", label) for video, flag in read_hmdb51_split_file(chosen[name])
                 if flag == FLAGS[split]]
    if not rows:
        raise AnnotationError(f"{source}: no video has flag {FLAGS[split]} ({split})")
    candidates = video_root_candidates(data_dir, video_root, VIDEO_FOLDERS)
    records, missing = records_in_tree(candidates, rows)
    searched = (f"; searched {', '.join(candidates)} for <class>/<video> (set DATA.PATH_PREFIX to the folder of "
                f"HMDB51's class folders)")
    return finish_split(records, missing, source, "hmdb51", every_class, num_listed=len(rows),
                        num_classes=num_classes, searched=searched)

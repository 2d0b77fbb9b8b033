"""UCF101 as downloaded (``DATA.DATASET: ucf101``): ``UCF101.rar`` and the recognition-task split lists.

``DATA.PATH_TO_DATA_DIR`` (``DIR``) holds::

    DIR/UCF-101/<Class>/v_<Class>_gXX_cYY.avi          (UCF101.rar; or DIR/videos/<Class>/, or DIR/<Class>/)
    DIR/ucfTrainTestlist/classInd.txt                  "1 ApplyEyeMakeup": 1-based index and class name
    DIR/ucfTrainTestlist/trainlist0{1,2,3}.txt         "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    DIR/ucfTrainTestlist/testlist0{1,2,3}.txt          "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"

(the lists may also sit in ``DIR/annotations/`` or ``DIR`` itself). ``DATA.SPLIT`` (1, 2, 3) picks the list
pair. UCF101 has no validation set: ``train`` reads the train list, ``val`` and ``test`` the test list (as
mmaction2's UCF101 configs do), so validation during training reports test-split accuracy.

Labels come from the data's own files: ``classInd.txt`` gives the class list (index - 1 is the label);
a train line's 1-based label must agree with its class folder, and a test line's label is its folder's.
Videos are ``DATA.PATH_PREFIX/<Class>/<file>`` when the prefix is set, else in the first of ``DIR/UCF-101``,
``DIR/videos``, ``DIR`` that holds any listed file. Note the official quirk ``HandstandPushups/
v_HandStandPushups_g01_c01.avi``: the folder, which names the class, matches ``classInd.txt``.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

from rs_image.errors import DataNotFoundError

from ..annotations import (
    AnnotationError, SplitAnnotations, check_split_request, finish_split, first_file, numbered_lines, records_in_tree,
    video_root_candidates,
)

__all__ = ["LIST_FOLDERS", "VIDEO_FOLDERS", "read_class_index", "read_ucf101_list", "load_ucf101_split"]

LIST_FOLDERS = ("ucfTrainTestlist", "annotations", "")
"""Where the split lists are looked for, relative to ``DIR`` ("" is ``DIR`` itself)."""
VIDEO_FOLDERS = ("UCF-101", "videos", "")
"""Where the ``<Class>/<video>`` tree is looked for when ``DATA.PATH_PREFIX`` is empty."""


def _find_list(data_dir: str, name: str) -> str:
    path = first_file((os.path.join(data_dir, folder) for folder in LIST_FOLDERS), (name,))
    if path is not None:
        return path
    where = ", ".join(os.path.join(data_dir, folder) for folder in LIST_FOLDERS)
    raise DataNotFoundError(
        f"UCF101 (DATA.DATASET ucf101): no {name} in {where}; unpack UCF101TrainTestSplits-RecognitionTask.zip "
        f"into {data_dir} (it makes ucfTrainTestlist/)"
    )


def read_class_index(path: str) -> List[str]:
    """Class names in label order from ``classInd.txt`` (``<1-based index> <name>`` lines, in order).

    Raises:
        AnnotationError: a line that is not ``index name``, an index out of order, or a repeated name,
            naming ``file:line``.
    """
    names: List[str] = []
    for line_number, line in numbered_lines(path):
        fields = line.split()
        where = f"{path}:{line_number}"
        if len(fields) != 2 or not fields[0].isdigit():
            raise AnnotationError(f"{where}: expected '<1-based index> <class name>', got {line!r}")
        if int(fields[0]) != len(names) + 1:
            raise AnnotationError(f"{where}: expected index {len(names) + 1} (indices count up from 1), got {line!r}")
        if fields[1] in names:
            raise AnnotationError(f"{where}: class {fields[1]!r} is listed twice")
        names.append(fields[1])
    if not names:
        raise AnnotationError(f"{path}: no classes listed")
    return names


def read_ucf101_list(path: str, class_ids: Dict[str, int], labelled: bool) -> List[Tuple[str, int]]:
    """``(relative path, 0-based label)`` of a ``trainlist0N.txt`` (``labelled``: ``<Class>/<file> <label>``)
    or ``testlist0N.txt`` (``<Class>/<file>``, the label is the folder's) file.

    Raises:
        AnnotationError: a malformed line, a class folder not in ``classInd.txt``, or a label that disagrees
            with the folder, naming ``file:line``.
    """
    rows = []
    for line_number, line in numbered_lines(path):
        fields = line.split()
        where = f"{path}:{line_number}"
        expected = "'<Class>/<video>.avi <1-based label>'" if labelled else "'<Class>/<video>.avi'"
        if len(fields) != (2 if labelled else 1):
            raise AnnotationError(f"{where}: expected {expected}, got {line!r}")
        relative = fields[0].replace("\\", "/")
        parts = relative.split("/")
        if len(parts) != 2 or not all(parts):
            raise AnnotationError(f"{where}: expected {expected} (the folder names the class), got {line!r}")
        folder = parts[0]
        if folder not in class_ids:
            raise AnnotationError(f"{where}: class folder {folder!r} is not in classInd.txt")
        label = class_ids[folder]
        if labelled:
            if not fields[1].isdigit():
                raise AnnotationError(f"{where}: label {fields[1]!r} is not a 1-based integer in {line!r}")
            if int(fields[1]) != label + 1:
                raise AnnotationError(
                    f"{where}: label {fields[1]} but folder {folder!r} is class {label + 1} in classInd.txt"
                )
        rows.append((relative, label))
    if not rows:
        raise AnnotationError(f"{path}: no videos listed")
    return rows


def load_ucf101_split(
    data_dir: str, split: str, split_number: int = 1, video_root: str = "", num_classes: Optional[int] = None,
) -> SplitAnnotations:
    """One split of UCF101 in its download layout (module docstring).

    Args:
        data_dir: ``DATA.PATH_TO_DATA_DIR``.
        split: "train", "val" or "test" ("val" and "test" both read the test list).
        split_number: ``DATA.SPLIT``, 1, 2 or 3.
        video_root: ``DATA.PATH_PREFIX``: the folder holding the ``<Class>/`` folders ("" = search ``DIR``).
        num_classes: ``MODEL.NUM_CLASSES``, to reject a class list that does not fit the model.
    """
    check_split_request(data_dir, split, split_number, "UCF101")
    class_file = _find_list(data_dir, "classInd.txt")
    class_names = read_class_index(class_file)
    kind = "train" if split == "train" else "test"
    list_file = _find_list(data_dir, f"{kind}list{split_number:02d}.txt")
    rows = read_ucf101_list(list_file, {name: index for index, name in enumerate(class_names)}, kind == "train")
    candidates = video_root_candidates(data_dir, video_root, VIDEO_FOLDERS)
    records, missing = records_in_tree(candidates, rows)
    searched = (f"; searched {', '.join(candidates)} for <Class>/<video> (set DATA.PATH_PREFIX to the folder of "
                f"UCF-101's class folders)")
    return finish_split(records, missing, list_file, "ucf101", class_names, num_listed=len(rows),
                        num_classes=num_classes, class_file=class_file, searched=searched)

"""Something-Something v2 as downloaded (``DATA.DATASET: ssv2``): the label JSONs and ``<id>.webm`` videos.

``DATA.PATH_TO_DATA_DIR`` (``DIR``) holds::

    DIR/labels/labels.json          {"Approaching something with your camera": "0", ...}: template -> index
    DIR/labels/train.json           [{"id": "78687", "template": "Holding [something] next to [something]", ...}]
    DIR/labels/validation.json
    DIR/20bn-something-something-v2/<id>.webm           (or DIR/videos/<id>.webm, DIR/<id>.webm)

The JSONs may also sit in ``DIR`` or ``DIR/annotations/`` and carry the ``something-something-v2-`` prefix
(``something-something-v2-labels.json``, as SlowFast and mmaction2 name them). ``train`` reads
``train.json``; ``val`` and ``test`` read ``validation.json``: the test set's labels are not in the
download, and published SSv2 accuracies are on the validation set (SlowFast's ``Ssv2`` data set does the
same).

The label of an entry is ``labels[template]`` with the brackets around the placeholders removed
(``"Holding [something] next to [something]"`` -> ``"Holding something next to something"``), which is
how SlowFast (``slowfast/datasets/ssv2.py``) and mmaction2 (``tools/data/parse_file_list.py``,
``parse_sthv2_splits``) read it; ``labels.json`` gives the indices as strings. Videos are
``<id>.webm`` (or ``.mp4`` / ``.mkv`` when re-encoded) in ``DATA.PATH_PREFIX`` when set, else in the
first of ``DIR/20bn-something-something-v2``, ``DIR/videos``, ``DIR`` that holds any video.

Left and right are in the labels ("Pushing something from left to right"), so a horizontal flip makes
a label wrong: ``configs/ssv2/rs3d_50.yaml`` sets ``DATA.RANDOM_FLIP: false`` and the loader warns when
it is on (:mod:`rs_video.data.sources`).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from rs_image.errors import DataNotFoundError

from ..annotations import (
    AnnotationError, SplitAnnotations, check_split_request, check_class_ids, finish_split, first_file, video_root_candidates,
    videos_by_id,
)

__all__ = ["LABEL_FOLDERS", "VIDEO_FOLDERS", "FILE_NAMES", "read_ssv2_labels", "read_ssv2_entries",
           "template_class", "load_ssv2_split"]

LABEL_FOLDERS = ("labels", "", "annotations")
"""Where the JSON files are looked for, relative to ``DIR`` ("" is ``DIR`` itself)."""
VIDEO_FOLDERS = ("20bn-something-something-v2", "videos", "")
"""Where the ``<id>.webm`` files are looked for when ``DATA.PATH_PREFIX`` is empty."""
FILE_NAMES = {"labels": "labels.json", "train": "train.json", "val": "validation.json", "test": "validation.json"}
"""The JSON file of the class list and of each split (also found with the ``something-something-v2-`` prefix)."""
VIDEO_EXTENSIONS = (".webm", ".mp4", ".mkv")
_BETWEEN_ENTRIES = re.compile(r"[\s,]*")


def _find_json(data_dir: str, key: str) -> str:
    names = (FILE_NAMES[key], f"something-something-v2-{FILE_NAMES[key]}")
    path = first_file((os.path.join(data_dir, folder) for folder in LABEL_FOLDERS), names)
    if path is not None:
        return path
    where = ", ".join(os.path.join(data_dir, folder) for folder in LABEL_FOLDERS)
    raise DataNotFoundError(
        f"Something-Something v2 (DATA.DATASET ssv2): no {names[0]} (or {names[1]}) in {where}; unpack the "
        f"labels archive of the download into {data_dir} (it makes labels/)"
    )


def _load_json(path: str) -> Tuple[Any, str]:
    """The parsed content and the text of a JSON file."""
    with open(path, encoding="utf-8-sig") as handle:
        text = handle.read()
    try:
        return json.loads(text), text
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None


def _entry_line(text: str, index: int) -> int:
    """The line on which entry ``index`` of the top-level JSON array ``text`` starts."""
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    start = position
    for _ in range(index + 1):
        start = _BETWEEN_ENTRIES.match(text, position).end()
        _, position = decoder.raw_decode(text, start)
    return text.count("\n", 0, start) + 1


def template_class(template: str) -> str:
    """The ``labels.json`` key of an entry's template: the placeholders' brackets removed."""
    return template.replace("[", "").replace("]", "")


def read_ssv2_labels(path: str) -> List[str]:
    """Class names in label order from ``labels.json`` (``{"template": "index"}``, indices 0..173).

    Raises:
        AnnotationError: not JSON, not a mapping of names to 0..N-1 each once (naming the file).
    """
    content, _ = _load_json(path)
    class_ids = check_class_ids(content, path)
    return sorted(class_ids, key=class_ids.get)


def read_ssv2_entries(path: str, class_ids: Dict[str, int]) -> List[Tuple[str, int]]:
    """``(video id, label)`` of every entry of ``train.json`` / ``validation.json``.

    Raises:
        AnnotationError: not a JSON list, or an entry without a string/integer ``id`` and a string
            ``template`` in ``labels.json``, naming ``file:line`` of the entry.
    """
    entries, text = _load_json(path)
    if not isinstance(entries, list):
        raise AnnotationError(f"{path}: expected a JSON list of {{\"id\", \"template\"}} entries")
    rows = []
    for index, entry in enumerate(entries):
        problem = None
        if not isinstance(entry, dict) or not isinstance(entry.get("template"), str) or not isinstance(
                entry.get("id"), (str, int)) or isinstance(entry.get("id"), bool) or not str(entry["id"]).strip():
            problem = f"expected an entry with a string 'id' and a string 'template', got {json.dumps(entry)[:120]}"
        elif template_class(entry["template"]) not in class_ids:
            problem = (f"template {entry['template']!r} ({template_class(entry['template'])!r} without brackets) "
                       f"is not a class of labels.json")
        if problem:
            raise AnnotationError(f"{path}:{_entry_line(text, index)}: {problem}")
        rows.append((str(entry["id"]).strip(), class_ids[template_class(entry["template"])]))
    if not rows:
        raise AnnotationError(f"{path}: no videos listed")
    return rows


def load_ssv2_split(
    data_dir: str, split: str, video_root: str = "", num_classes: Optional[int] = None,
) -> SplitAnnotations:
    """One split of Something-Something v2 in its download layout (module docstring).

    Args:
        data_dir: ``DATA.PATH_TO_DATA_DIR``.
        split: "train", "val" or "test" ("val" and "test" both read ``validation.json``).
        video_root: ``DATA.PATH_PREFIX``: the folder of the ``<id>.webm`` files ("" = search ``DIR``).
        num_classes: ``MODEL.NUM_CLASSES``, to reject a class list that does not fit the model.
    """
    check_split_request(data_dir, split)
    class_file = _find_json(data_dir, "labels")
    class_names = read_ssv2_labels(class_file)
    split_file = _find_json(data_dir, split)
    rows = read_ssv2_entries(split_file, {name: index for index, name in enumerate(class_names)})
    candidates = video_root_candidates(data_dir, video_root, VIDEO_FOLDERS)
    records, missing, searched = videos_by_id(candidates, rows, VIDEO_EXTENSIONS, "")
    return finish_split(records, missing, split_file, "ssv2", class_names, num_listed=len(rows),
                        num_classes=num_classes, class_file=class_file, searched=searched)

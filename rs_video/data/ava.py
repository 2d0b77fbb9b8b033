"""AVA-format spatio-temporal action annotations, read exactly as AVA v2.2 ships them (docs/detection.md).

* ``ava_{train,val}_v2.2.csv``: one row per (person box, action) at a keyframe,
  ``video_id,timestamp,x1,y1,x2,y2,action_id,person_id``; the box is normalised to [0, 1] (x right, y down),
  the timestamp an integer second of the source video (902..1798 in AVA, the 15-minute segment 900-1800 s).
  Rows of one box (same keyframe, same coordinates) are merged into one box with several actions.
* ``ava_action_list_v2.2_for_activitynet_2019.pbtxt``: the label map, ``item { name: "bend/bow (at the
  waist)" id: 1 }`` blocks (the 60 evaluated classes; the CSVs use ids 1..80).
* ``ava_{train,val}_excluded_timestamps_v2.2.csv``: ``video_id,timestamp`` keyframes the evaluation skips.
* person detections (SlowFast's ``ava_val_predicted_boxes.csv``): ``video_id,timestamp,x1,y1,x2,y2,
  [action_id],score``; boxes above ``AVA.DETECTION_SCORE_THRESH`` are the test proposals.
* frame lists (SlowFast's ``frame_lists/{train,val}.csv``, for extracted frames): a header, then
  ``original_video_id video_idx frame_idx path labels`` separated by spaces.

A malformed line raises :class:`~rs_video.data.annotations.AnnotationError` naming the file and line.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from .annotations import AnnotationError

__all__ = [
    "AVA_FPS", "KeyframeKey", "AvaBox", "read_label_map", "read_excluded_timestamps", "read_box_csv",
    "read_frame_list", "keyframe_key", "merge_box_lists", "video_files",
]

logger = logging.getLogger(__name__)

#: frame rate of AVA's extracted frames (SlowFast's frame folders and frame lists)
AVA_FPS = 30

KeyframeKey = Tuple[str, int]  # (video id, timestamp in seconds)


def keyframe_key(video_id: str, timestamp: int) -> str:
    """The evaluation's image key, ``"video_id,%04d"`` as the ActivityNet code writes it."""
    return f"{video_id},{int(timestamp):04d}"


@dataclass
class AvaBox:
    """One box at a keyframe: normalised (x1, y1, x2, y2), its action ids (1-based, as in the CSV), the
    person id (-1 when absent) and the detector score (1.0 for ground truth)."""

    box: Tuple[float, float, float, float]
    actions: List[int] = field(default_factory=list)
    person_id: int = -1
    score: float = 1.0


_PBTXT_ITEM = re.compile(r"item\s*\{(.*?)\}", re.S)
_PBTXT_NAME = re.compile(r"name:\s*\"((?:[^\"\\]|\\.)*)\"")
_PBTXT_ID = re.compile(r"\bid:\s*(-?\d+)")


def read_label_map(path: str) -> Dict[int, str]:
    """``{action id: name}`` of an AVA ``.pbtxt`` label map, in file order."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as error:
        raise AnnotationError(f"{path}: cannot read the label map ({error.strerror})") from None
    labels: Dict[int, str] = {}
    for m in _PBTXT_ITEM.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        name, ident = _PBTXT_NAME.search(m.group(1)), _PBTXT_ID.search(m.group(1))
        if name is None or ident is None:
            raise AnnotationError(f"{path}:{line}: an item without 'name: \"...\"' and 'id: N'")
        if int(ident.group(1)) in labels:
            raise AnnotationError(f"{path}:{line}: id {ident.group(1)} appears twice")
        labels[int(ident.group(1))] = name.group(1)
    if not labels:
        raise AnnotationError(f"{path}: no 'item {{ name: ... id: ... }}' entries (not an AVA label map)")
    return labels


def _rows(path: str) -> Iterable[Tuple[int, List[str]]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for line_no, row in enumerate(csv.reader(f), start=1):
                if row and any(cell.strip() for cell in row):
                    yield line_no, [cell.strip() for cell in row]
    except OSError as error:
        raise AnnotationError(f"{path}: cannot read ({error.strerror})") from None


def read_excluded_timestamps(path: str) -> Set[KeyframeKey]:
    """The ``(video_id, timestamp)`` keyframes of an excluded-timestamps CSV."""
    keys: Set[KeyframeKey] = set()
    for line_no, row in _rows(path):
        if len(row) != 2:
            raise AnnotationError(f"{path}:{line_no}: expected 'video_id,timestamp', got {','.join(row)!r}")
        keys.add((row[0], _int(row[1], path, line_no, "timestamp")))
    return keys


def _int(text: str, path: str, line_no: int, what: str) -> int:
    try:
        return int(float(text)) if re.fullmatch(r"-?\d+(\.0*)?", text) else int(text)
    except ValueError:
        raise AnnotationError(f"{path}:{line_no}: {what} {text!r} is not an integer") from None


def read_box_csv(
    path: str, *, with_scores: bool = False, score_thresh: float = 0.0, num_classes: Optional[int] = None,
) -> Dict[KeyframeKey, List[AvaBox]]:
    """Boxes per keyframe of an AVA annotation CSV (``with_scores=False``: 8 columns, the last the person id)
    or of a person-detection CSV (``with_scores=True``: the 8th column the score, the action may be empty).

    Rows of the same box at a keyframe are merged (their actions collected). Detections below
    ``score_thresh`` are left out. With ``num_classes``, an action id outside ``1..num_classes`` is an error.
    """
    boxes: Dict[KeyframeKey, Dict[Tuple[float, ...], AvaBox]] = {}
    for line_no, row in _rows(path):
        if len(row) not in (7, 8):
            raise AnnotationError(
                f"{path}:{line_no}: expected 'video_id,timestamp,x1,y1,x2,y2,action_id,"
                f"{'score' if with_scores else 'person_id'}', got {len(row)} fields"
            )
        video_id, timestamp = row[0], _int(row[1], path, line_no, "timestamp")
        try:
            coords = tuple(float(v) for v in row[2:6])
        except ValueError:
            raise AnnotationError(f"{path}:{line_no}: box {row[2:6]} is not four numbers") from None
        x1, y1, x2, y2 = coords
        if not (0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0):
            raise AnnotationError(f"{path}:{line_no}: box {coords} is not a normalised box (0 <= x1 <= x2 <= 1, "
                                  f"0 <= y1 <= y2 <= 1)")
        action = _int(row[6], path, line_no, "action id") if row[6] else None
        if action is not None and num_classes is not None and not 1 <= action <= num_classes:
            raise AnnotationError(f"{path}:{line_no}: action id {action} outside 1..{num_classes} (MODEL.NUM_CLASSES)")
        last = row[7] if len(row) == 8 else ""
        score, person = 1.0, -1
        if with_scores:
            try:
                score = float(last)
            except ValueError:
                raise AnnotationError(f"{path}:{line_no}: score {last!r} is not a number") from None
            if score < score_thresh:
                continue
        elif last:
            person = _int(last, path, line_no, "person id")
        at_key = boxes.setdefault((video_id, timestamp), {})
        entry = at_key.get(coords)
        if entry is None:
            entry = at_key[coords] = AvaBox(coords, [], person, score)
        if action is not None and action not in entry.actions:
            entry.actions.append(action)
    return {key: list(by_box.values()) for key, by_box in boxes.items()}


def read_frame_list(path: str) -> Dict[str, List[str]]:
    """``{video id: [frame paths in frame order]}`` of a SlowFast frame list (space-separated, header)."""
    frames: Dict[str, Dict[int, str]] = {}
    for line_no, row in _rows(path):
        fields = row[0].split() if len(row) == 1 else " ".join(row).split()
        if line_no == 1 and fields and fields[0] == "original_vido_id":
            continue  # SlowFast's header (its spelling)
        if len(fields) < 4:
            raise AnnotationError(f"{path}:{line_no}: expected 'original_vido_id video_idx frame_idx path labels'")
        frames.setdefault(fields[0], {})[_int(fields[2], path, line_no, "frame_idx")] = fields[3]
    return {video: [paths[i] for i in sorted(paths)] for video, paths in frames.items()}


def merge_box_lists(lists: Sequence[Dict[KeyframeKey, List[AvaBox]]]) -> Dict[KeyframeKey, List[AvaBox]]:
    """Several box CSVs (e.g. SlowFast's ``TRAIN_GT_BOX_LISTS``) as one: the boxes of a keyframe concatenated."""
    merged: Dict[KeyframeKey, List[AvaBox]] = {}
    for boxes in lists:
        for key, items in boxes.items():
            merged.setdefault(key, []).extend(items)
    return merged


def video_files(folder: str, extensions: Sequence[str] = (".mp4", ".mkv", ".webm", ".avi", ".mov")) -> Dict[str, str]:
    """``{video id: path}`` of the video files in ``folder`` (the id is the file name without extension)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as error:
        raise AnnotationError(f"{folder}: cannot list the video folder ({error.strerror}); set AVA.VIDEO_DIR") from None
    return {os.path.splitext(n)[0]: os.path.join(folder, n) for n in names if n.lower().endswith(tuple(extensions))}

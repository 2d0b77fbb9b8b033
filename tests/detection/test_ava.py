"""AVA formats as shipped (annotation CSV, pbtxt label map, excluded timestamps, detections, frame lists) and
the frame-level AP of the official protocol, checked against APs computed by hand."""

import math

import numpy as np
import pytest

from rs_video.ava_evaluation import (
    Detection, evaluate_ava, voc_average_precision, write_detections_csv, write_per_class_ap_csv,
)
from rs_video.data.annotations import AnnotationError
from rs_video.data.ava import (
    read_box_csv, read_excluded_timestamps, read_frame_list, read_label_map,
)

LABEL_MAP = '''item {
  name: "bend/bow (at the waist)"
  id: 1
}
item {
  name: "crawl"
  id: 2
}
item { name: "talk to (e.g., self, a person, a group)" id: 3 }
'''

# ava_val_v2.2.csv rows: video_id,timestamp,x1,y1,x2,y2,action_id,person_id
GT_CSV = """v1,0902,0.100,0.100,0.500,0.500,1,0
v1,0902,0.100,0.100,0.500,0.500,2,0
v1,0902,0.100,0.100,0.500,0.500,5,0
v1,0902,0.600,0.600,0.900,0.900,1,1
v1,0903,0.200,0.200,0.600,0.600,1,0
v1,0903,0.200,0.200,0.600,0.600,2,0
v2,0903,0.100,0.100,0.300,0.300,1,4
"""


def write(path, text):
    path.write_text(text)
    return str(path)


@pytest.fixture
def ava_files(tmp_path):
    return dict(
        label_map=write(tmp_path / "ava_action_list_v2.2_for_activitynet_2019.pbtxt", LABEL_MAP),
        gt=write(tmp_path / "ava_val_v2.2.csv", GT_CSV),
        excluded=write(tmp_path / "ava_val_excluded_timestamps_v2.2.csv", "v2,0903\n"),
    )


def test_read_the_real_formats(ava_files, tmp_path):
    assert read_label_map(ava_files["label_map"]) == {
        1: "bend/bow (at the waist)", 2: "crawl", 3: "talk to (e.g., self, a person, a group)"}
    assert read_excluded_timestamps(ava_files["excluded"]) == {("v2", 903)}
    gt = read_box_csv(ava_files["gt"])
    assert sorted(gt) == [("v1", 902), ("v1", 903), ("v2", 903)]
    first = gt[("v1", 902)]
    # The three rows of one box are one box with three actions (5 is not in the label map, kept here).
    assert [(b.box, b.actions, b.person_id) for b in first] == [
        ((0.1, 0.1, 0.5, 0.5), [1, 2, 5], 0), ((0.6, 0.6, 0.9, 0.9), [1], 1)]
    # SlowFast's predicted person boxes: empty action, score last; below the threshold they are left out.
    det = write(tmp_path / "ava_val_predicted_boxes.csv",
                "v1,0902,0.1,0.1,0.5,0.5,,0.95\nv1,0902,0.6,0.6,0.9,0.9,,0.4\n")
    boxes = read_box_csv(det, with_scores=True, score_thresh=0.8)
    assert [(b.box, b.score, b.actions) for b in boxes[("v1", 902)]] == [((0.1, 0.1, 0.5, 0.5), 0.95, [])]
    frames = write(tmp_path / "val.csv", "original_vido_id video_idx frame_idx path labels\n"
                   "v1 0 1 v1/v1_000002.jpg \"\"\nv1 0 0 v1/v1_000001.jpg \"\"\n")
    assert read_frame_list(frames) == {"v1": ["v1/v1_000001.jpg", "v1/v1_000002.jpg"]}


@pytest.mark.parametrize("row, message", [
    ("v1,0902,0.1,0.1,1.2,0.5,1,0", r"ava_bad.csv:2: box .* is not a normalised box"),
    ("v1,0902,0.5,0.1,0.2,0.5,1,0", r"ava_bad.csv:2: box .* is not a normalised box"),
    ("v1,09x2,0.1,0.1,0.2,0.5,1,0", r"ava_bad.csv:2: timestamp '09x2' is not an integer"),
    ("v1,0902,0.1,0.1,0.2,0.5,81,0", r"ava_bad.csv:2: action id 81 outside 1..80"),
    ("v1,0902,0.1,0.1", r"ava_bad.csv:2: expected 'video_id,timestamp"),
])
def test_bad_rows_name_file_and_line(tmp_path, row, message):
    path = write(tmp_path / "ava_bad.csv", "v1,0902,0.1,0.1,0.2,0.5,1,0\n" + row + "\n")
    with pytest.raises(AnnotationError, match=message):
        read_box_csv(path, num_classes=80)


def test_bad_label_map(tmp_path):
    with pytest.raises(AnnotationError, match="no 'item"):
        read_label_map(write(tmp_path / "x.pbtxt", "nothing here"))
    with pytest.raises(AnnotationError, match=r"x.pbtxt:2: an item without"):
        read_label_map(write(tmp_path / "x.pbtxt", "\nitem { name: \"a\" }"))


def test_voc_ap_by_hand():
    # TP FP FP TP FP over 3 ground-truth boxes: envelope 1, .5, .5, .5, .4 -> 1/3 * 1 + 1/3 * .5 = .5
    tp = np.array([1, 0, 0, 1, 0], dtype=float)
    precision = np.cumsum(tp) / np.arange(1, 6)
    assert voc_average_precision(precision, np.cumsum(tp) / 3) == pytest.approx(0.5)
    assert voc_average_precision(np.array([]), np.array([])) == 0.0


def test_frame_ap_against_hand_computed_values(ava_files, tmp_path):
    """Class 1 (3 boxes after the exclusion): d1 TP, d2 FP (its best box is taken), d3 FP (keyframe without
    ground truth), d4 TP (IoU 0.6), d5 FP (IoU 0.21); d6 is on an excluded keyframe. AP = 1/3 + 1/3 * 1/2.
    Class 2 (2 boxes): e1 FP (IoU 0), e2 TP: AP = 1/2 * 1/2. Class 3 has no ground truth: NaN, not averaged.
    Action 5 is not in the label map and counts nowhere."""
    label_map = read_label_map(ava_files["label_map"])
    gt = read_box_csv(ava_files["gt"])
    excluded = read_excluded_timestamps(ava_files["excluded"])
    det = {
        ("v1", 902): [Detection((0.1, 0.1, 0.5, 0.5), 1, 0.9), Detection((0.1, 0.1, 0.5, 0.45), 1, 0.8),
                      Detection((0.75, 0.75, 0.95, 0.95), 1, 0.5), Detection((0.6, 0.6, 0.9, 0.9), 2, 0.9),
                      Detection((0.1, 0.1, 0.5, 0.5), 2, 0.4), Detection((0.1, 0.1, 0.5, 0.5), 3, 0.9),
                      Detection((0.1, 0.1, 0.5, 0.5), 5, 0.99)],
        ("v2", 902): [Detection((0.1, 0.1, 0.3, 0.3), 1, 0.7)],
        ("v1", 903): [Detection((0.3, 0.2, 0.7, 0.6), 1, 0.6)],
        ("v2", 903): [Detection((0.1, 0.1, 0.3, 0.3), 1, 0.95)],
    }
    result = evaluate_ava(gt, det, label_map, excluded)
    assert result.ap[1] == pytest.approx(0.5)
    assert result.ap[2] == pytest.approx(0.25)
    assert math.isnan(result.ap[3])
    assert result.mean_ap == pytest.approx(0.375)
    assert result.num_groundtruth == {1: 3, 2: 2, 3: 0} and result.num_excluded == 1
    # Without the exclusion v2,0903 adds a box and a true positive at the top: 1, 1, .67, .5, .6, .5 over 4.
    assert evaluate_ava(gt, det, label_map).ap[1] == pytest.approx(0.25 + 0.25 + 0.25 * 0.6)
    # Only the 2 best detections of a keyframe count: on v1,0902 d1 and e1; d2, d5, e2 are dropped.
    capped = evaluate_ava(gt, det, label_map, excluded, max_detections_per_keyframe=2)
    assert capped.ap[1] == pytest.approx(1 / 3 + 1 / 3 * 2 / 3) and capped.ap[2] == pytest.approx(0.0)

    write_detections_csv(str(tmp_path / "detections.csv"), det, label_map)
    rows = (tmp_path / "detections.csv").read_text().splitlines()
    assert rows[0] == "v1,0902,0.100,0.100,0.500,0.500,1,0.900000" and len(rows) == 9  # action 5 left out
    write_per_class_ap_csv(str(tmp_path / "per_class.csv"), result)
    assert (tmp_path / "per_class.csv").read_text().splitlines() == [
        "id,name,ap,groundtruth,detections", "1,bend/bow (at the waist),50.0000,3,5", "2,crawl,25.0000,2,2",
        "3,\"talk to (e.g., self, a person, a group)\",,0,1"]

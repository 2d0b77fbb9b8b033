"""Multi-label video classification (Charades): the source reads the files as downloaded, mAP equals a
hand-computed value (SlowFast's rule: classes without positives left out), max ensembling, BCE training and
the test report on a tiny real Charades tree, and clear errors for inconsistent settings."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from rs_image.engine import MultiViewAggregator, load_config
from rs_image.engine.config import ConfigError
from rs_image.engine.launch import train_main
from rs_image.engine.multilabel import multilabel_stats
from rs_image.recipe import build_loss
from rs_video.data.annotations import AnnotationError
from rs_video.data.sources.charades import load_charades_split
from tests.helpers import records as _records, tiny_opts
from tests.videos import write_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")
pytest.importorskip("sklearn")

CLASSES = "c000 Holding some clothes\nc001 Putting clothes somewhere\nc002 Taking a box from somewhere\n"
HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"


def charades_tree(root: Path, train: dict, test: dict, missing: tuple = ()) -> Path:
    """Charades' download layout: Charades/ with the CSVs and class list, Charades_v1_480/<id>.mp4."""
    (root / "Charades").mkdir(parents=True)
    (root / "Charades" / "Charades_v1_classes.txt").write_text(CLASSES)
    for name, rows in (("train", train), ("test", test)):
        lines = [HEADER] + [f'{vid},S1,Kitchen,6,7,Yes,"a script, with a comma",box;clothes,"desc",{acts},30.2\n'
                            for vid, acts in rows.items()]
        (root / "Charades" / f"Charades_v1_{name}.csv").write_text("".join(lines))
        for vid in rows:
            if vid not in missing:
                write_video(root / "Charades_v1_480" / f"{vid}.mp4", num_frames=12, width=48, height=40)
    return root


def test_charades_source_reads_video_level_labels(tmp_path, caplog):
    data = charades_tree(tmp_path, {"AAA01": "c002 1.0 5.5;c000 0.0 12.6;c002 20.1 25.0", "AAA02": ""},
                         {"BBB01": "c001 0.0 3.0", "BBB02": "c001 1.0 2.0"}, missing=("BBB02",))
    train = load_charades_split(str(data), "train", num_classes=3)
    assert train.class_names == ["Holding some clothes", "Putting clothes somewhere", "Taking a box from somewhere"]
    assert [(Path(r.path).name, r.labels) for r in train.records] == [("AAA01.mp4", (0, 2)), ("AAA02.mp4", ())]
    test = load_charades_split(str(data), "val", num_classes=3)
    assert [r.labels for r in test.records] == [(1,)] and len(test.missing) == 1
    with open(data / "Charades" / "Charades_v1_train.csv", "a") as f:
        f.write("AAA03,S1,Kitchen,6,7,Yes,s,o,d,c009 1.0 2.0,30\n")
    with pytest.raises(AnnotationError, match=r"Charades_v1_train.csv:4: class 'c009' is not in Charades_v1_classes"):
        load_charades_split(str(data), "train", num_classes=3)


def test_map_equals_hand_computed_values_with_max_ensembling():
    # class 0: positives at ranks 1 and 3 -> AP (1/1 + 2/3) / 2; class 1: its positive at rank 2 -> 1/2;
    # class 2: no positive -> no AP, left out of the mean (SlowFast's get_map)
    targets = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.float32)
    video_scores = torch.tensor([[0.9, 0.2, 0.5], [0.8, 0.4, 0.1], [0.3, 0.6, 0.2], [0.1, 0.1, 0.9]])
    stats = multilabel_stats(video_scores, targets, ["a", "b", "c"])
    assert stats.ap[:2].tolist() == pytest.approx([100 * (1 + 2 / 3) / 2, 50.0]) and math.isnan(stats.ap[2])
    assert stats.mean_ap == pytest.approx((100 * (1 + 2 / 3) / 2 + 50.0) / 2)
    assert stats.support.tolist() == [2, 1, 0]
    # two views per video whose per-class maximum is video_scores (their sum ranks class 0 differently)
    other = video_scores * torch.tensor([[0.1], [0.5], [1.0], [0.2]])
    agg = MultiViewAggregator(4, 3, "max", "prob", multi_label=True)
    for view, scores in enumerate((video_scores, other)):
        agg.update(scores, targets, torch.arange(4), torch.full((4,), view))
    summary = agg.summarize(views_per_sample=2, class_names=["a", "b", "c"])
    assert summary.multi_label and summary.mAP == pytest.approx(stats.mean_ap) and math.isnan(summary.top1)
    assert summary.as_dict()["per_class"][1] == {"class": 1, "name": "b", "support": 1, "ap": 50.0}


def test_bce_loss_and_settings_that_do_not_fit(tmp_path):
    loss = build_loss(0.0, multi_label=True)
    logits, targets = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]])
    assert loss(logits, targets).item() == pytest.approx((math.log(2) + math.log(1 + math.e ** 2)) / 2)
    opts = ["TASK", "video", "DATA.DATASET", "charades"]
    with pytest.raises(ConfigError, match=r"'DATA.MULTI_LABEL' = False: must be True exactly for a multi-label "
                                          r"DATA.DATASET \(charades\)"):
        load_config(None, opts)
    with pytest.raises(ConfigError, match=r"'DATA.MULTI_LABEL' = True: must be True exactly for a multi-label"):
        load_config(None, ["TASK", "video", "DATA.MULTI_LABEL", "True", "SOLVER.LABEL_SMOOTHING", "0"])
    with pytest.raises(ConfigError, match=r"'SOLVER.LABEL_SMOOTHING' = 0.1: must be 0 with DATA.MULTI_LABEL True"):
        load_config(None, opts + ["DATA.MULTI_LABEL", "True"])
    cfg = load_config(None, opts + ["DATA.MULTI_LABEL", "True", "SOLVER.LABEL_SMOOTHING", "0"])
    assert cfg.TEST.ENSEMBLE_METHOD == "max"  # "auto" for multi-label
    assert load_config(None, ["TASK", "video"]).TEST.ENSEMBLE_METHOD == "sum"


def test_train_and_test_on_a_tiny_charades_tree(tmp_path):
    pytest.importorskip("av")
    data = charades_tree(tmp_path / "data", {f"TR{i:03d}": ["c000 0 1", "c001 0 1;c002 1 2", "c002 0 3", ""][i % 4]
                                            for i in range(4)},
                         {f"TE{i:03d}": ["c000 0 1;c001 0 2", "c001 1 2", "c002 0 3"][i] for i in range(3)})
    out = tmp_path / "out"
    results = train_main(tiny_opts(
        out, "video", "DATA.DATASET", "charades", "DATA.MULTI_LABEL", "True", "SOLVER.LABEL_SMOOTHING", "0",
        "DATA.PATH_TO_DATA_DIR", str(data), "MODEL.NUM_CLASSES", "3", "DATA.TRAIN_JITTER_SCALES", "[40, 48]",
        "DATA.TEST_CROP_SIZE", "40", "TRAIN.EVAL_PERIOD", "1", "DATA.DECODER", "pyav", "TRAIN.MIXED_PRECISION", "none",
        "BN.FREEZE", "True",
    ))
    test = results["test"]
    assert test["multi_label"] and test["method"] == "max" and test["num_evaluated"] == 3 and test["views_per_sample"] == 2
    val = [r for r in _records(out) if r["type"] == "val"][-1]
    assert 0.0 <= val["mAP"] <= 100.0 and 0.0 <= val["ema_mAP"] <= 100.0 and val["num_samples"] == 3
    per_class = list(csv.DictReader(open(out / "per_class.csv")))
    assert [(r["name"], r["support"]) for r in per_class] == [
        ("Holding some clothes", "1"), ("Putting clothes somewhere", "2"), ("Taking a box from somewhere", "1")]
    aps = [float(r["ap"]) for r in per_class]
    assert test["mAP"] == pytest.approx(sum(aps) / 3, abs=0.01)
    saved = json.loads((out / "test_results.json").read_text())
    assert [r["ap"] for r in saved["per_class"]] == pytest.approx(aps, abs=0.005)
    rows = list(csv.DictReader(open(out / "test_predictions.csv")))
    assert [r["label"] for r in rows] == ["0 1", "1", "2"]
    # the reported AP is that of the predictions file's scores (all 3 classes are in its top-3), by scikit-learn
    from sklearn.metrics import average_precision_score

    scores = torch.zeros(3, 3)
    for i, r in enumerate(rows):
        for c, v in zip(r["top3_classes"].split(), r["top3_scores"].split()):
            scores[i, int(c)] = float(v)
    truth = [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert aps == pytest.approx(100 * average_precision_score(truth, scores.numpy(), average=None), abs=0.01)
    assert not (out / "confusion_matrix.csv").exists()

"""The test report and the training curves: per-class results, mean class accuracy, clip vs video accuracy,
confusion counts and the sum / max x prob / logit ensembles on a hand-computed case; the confusion and
training-curve figures read back; run_test / tools/test_net.py on real video files; tools/plot_metrics.py
on a real short run."""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
from pathlib import Path

import pytest
import torch

from rs_image.engine import Trainer, load_config, run_test
from rs_image.engine import logger as engine_logger
from rs_image.engine.class_metrics import write_confusion_csv, write_per_class_csv
from rs_image.engine.evaluator import MultiViewAggregator, view_scores
from rs_image.engine.launch import test_main as cli_test
from rs_image.report import confusion, curves
from rs_image.report.figure import save_png
from tests.helpers import TensorVideoTask, tiny_opts

NAMES = ["walk", "run", "jump", "swim"]  # "swim" has no test video

# 6 videos x 2 views, 4 classes, logits. Video 5 loses its second view: failed, in no per-class number.
# Predicted class of each evaluated video (worked out by hand, see the comments):
#   video label | sum-prob sum-logit max-prob max-logit
#     0     0   |    0        0         0        0
#     1     0   |    1        0         1        1      one huge class-1 logit vs class 0 moderately twice
#     2     1   |    2        2         2        1      view 0 ~ (p1 .62, p2 .38), view 1 p2 .83
#     3     1   |    3        3         3        3      label ranked 3rd in both views: a top-2 miss too
#     4     2   |    2        2         2        2
VIEWS = [
    (0, 0, 0, [4.0, 0.0, 0.0, 0.0]), (0, 1, 0, [3.0, 0.0, 1.0, 0.0]),
    (1, 0, 0, [2.0, 12.0, 0.0, 0.0]), (1, 1, 0, [2.0, -12.0, 0.0, 0.0]),
    (2, 0, 1, [0.0, 10.0, 9.5, 0.0]), (2, 1, 1, [0.0, 1.0, 3.0, -1.0]),
    (3, 0, 1, [0.0, 1.0, 1.5, 2.0]), (3, 1, 1, [0.0, 1.5, 2.0, 2.5]),
    (4, 0, 2, [0.0, 0.0, 3.0, 1.0]), (4, 1, 2, [1.0, 0.0, 2.0, 0.0]),
    (5, 0, 2, [0.0, 0.0, 5.0, 0.0]), (5, 1, 2, [0.0, 0.0, 0.0, 0.0]),
]
FAILED = {(5, 1)}
NAN = float("nan")

# method, scores -> video top-1, per-class top-1 (NaN: no support), confusion rows (true class)
EXPECTED = {
    ("sum", "prob"): (40.0, [50.0, 0.0, 100.0, NAN], [[1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0]]),
    ("sum", "logit"): (60.0, [100.0, 0.0, 100.0, NAN], [[2, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0]]),
    ("max", "prob"): (40.0, [50.0, 0.0, 100.0, NAN], [[1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0]]),
    ("max", "logit"): (60.0, [50.0, 50.0, 100.0, NAN], [[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]]),
}


def _aggregate(method: str, scores: str, batches=((0, 5), (5, 12))) -> MultiViewAggregator:
    agg = MultiViewAggregator(6, 4, method, scores, topk=2)
    for start, stop in batches:  # views arrive in batches that split videos, as from a loader
        rows = VIEWS[start:stop]
        logits = torch.tensor([r[3] for r in rows])
        agg.update(view_scores(logits, scores), torch.tensor([r[2] for r in rows]), torch.tensor([r[0] for r in rows]),
                   torch.tensor([r[1] for r in rows]), torch.tensor([(r[0], r[1]) in FAILED for r in rows]))
    return agg


def _same(a, b) -> bool:
    return all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b)) and len(a) == len(b)


@pytest.mark.parametrize("method,scores", list(EXPECTED))
def test_hand_computed_report(method, scores):
    top1, class_top1, confusion_rows = EXPECTED[(method, scores)]
    s = _aggregate(method, scores).summarize(views_per_sample=2, class_names=NAMES[:3])
    assert (s.num_samples, s.num_evaluated, s.num_failed, s.num_failed_views, s.num_incomplete) == (6, 5, 1, 1, 1)
    assert (s.method, s.scores, s.topk) == (method, scores, 2)
    assert s.top1 == pytest.approx(top1, abs=1e-5)  # float32 mean, as before this report existed
    assert s.top5 == pytest.approx(80.0, abs=1e-5)  # top-2: only video 3 misses, in every ensemble
    # Clip level: each of the 10 views of the 5 evaluated videos alone; video 5's good view is not counted.
    # Top-1 hits per video 2, 1, 1, 0, 2; top-2 hits 2, 2, 2, 0, 2 (the same for probabilities and logits).
    assert (s.clip_top1, s.clip_top5) == (60.0, 80.0)
    pc = s.per_class
    assert pc.names == ["walk", "run", "jump", "3"]  # a class without a name gets its index
    assert pc.support.tolist() == [2, 2, 1, 0]
    assert _same(pc.top1.tolist(), class_top1)
    assert _same(pc.topk.tolist(), [100.0, 50.0, 100.0, NAN])
    assert pc.confusion.tolist() == confusion_rows
    # Over the 3 classes with test videos; mmaction2 would also average in the predicted, absent class 3
    # with accuracy 0 (sum-prob: (50 + 0 + 100 + 0) / 4 = 37.5).
    assert s.mean_class_accuracy == sum(class_top1[:3]) / 3 and s.num_classes_with_support == 3
    assert sum(n * acc for n, acc in zip(pc.support.tolist()[:3], class_top1)) / 5 == pytest.approx(top1)


def test_ensemble_scores_are_the_views_logits_or_probabilities():
    logits = torch.tensor([r[3] for r in VIEWS])
    probs = torch.softmax(logits, dim=1).double()
    agg = _aggregate("sum", "logit")
    assert agg.scores[1].tolist() == [4.0, 0.0, 0.0, 0.0] and agg.scores[5].tolist() == [0.0, 0.0, 5.0, 0.0]
    assert _aggregate("max", "logit").scores[2].tolist() == [0.0, 10.0, 9.5, 0.0]
    torch.testing.assert_close(_aggregate("sum", "prob").scores[2], probs[4] + probs[5])
    torch.testing.assert_close(_aggregate("max", "prob").scores[2], torch.maximum(probs[4], probs[5]))
    # per sample: views whose own top-1 / top-2 was right (video 5: its one decoded view)
    assert agg.view_hits.tolist() == [[2, 2], [1, 2], [1, 2], [0, 0], [2, 2], [1, 1]]
    # how the batches split the views changes nothing
    one_batch = _aggregate("sum", "logit", batches=((0, 12),))
    assert torch.equal(one_batch.scores, agg.scores) and torch.equal(one_batch.view_hits, agg.view_hits)
    with pytest.raises(ValueError, match="ensemble scores must be one of"):
        MultiViewAggregator(2, 4, "sum", "score")


def test_report_files_of_the_hand_computed_case(tmp_path):
    s = _aggregate("sum", "prob").summarize(views_per_sample=2, class_names=NAMES)
    write_per_class_csv(tmp_path / "per_class.csv", s.per_class)
    write_confusion_csv(tmp_path / "confusion_matrix.csv", s.per_class)
    assert (tmp_path / "per_class.csv").read_text().splitlines() == [
        "class,name,support,top1,top2",
        "0,walk,2,50.00,100.00",
        "1,run,2,0.00,50.00",
        "2,jump,1,100.00,100.00",
        "3,swim,0,,",
    ]
    assert (tmp_path / "confusion_matrix.csv").read_text().splitlines() == [
        "true \\ predicted,walk,run,jump,swim",
        "walk,1,1,0,0",
        "run,0,0,1,1",
        "jump,0,0,1,0",
        "swim,0,0,0,0",
    ]
    record = json.loads(json.dumps(s.as_dict()))
    assert record["per_class"][3] == {"class": 3, "name": "swim", "support": 0, "top1": None, "top2": None}
    assert record["per_class"][1] == {"class": 1, "name": "run", "support": 2, "top1": 0.0, "top2": 50.0}
    assert (record["mean_class_accuracy"], record["clip_top1"], record["scores"]) == (50.0, 60.0, "prob")
    assert "per_class" not in s.as_dict(per_class=False)
    assert s.format_details() == [
        "single view (clip level) top-1 60.00%  top-2 80.00%; ensemble of 2 views (video level) top-1 40.00%  "
        "top-2 80.00% (-20.00 top-1 points from the ensemble)",
        "mean class accuracy 50.00% over the 3 classes with test samples (of 4)",
    ]


# ------------------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------------------
def _png_size(path: Path):
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.size


def test_confusion_heatmap_shows_shares_names_and_counts(tmp_path):
    pytest.importorskip("matplotlib")
    counts = [[1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0]]
    fig = confusion.confusion_figure(counts, NAMES)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert ax.get_title() == "Confusion matrix (5 test samples)"
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES == [t.get_text() for t in ax.get_yticklabels()]
    shares = ax.images[0].get_array()
    assert shares.tolist() == [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert sorted((t.get_position(), t.get_text()) for t in ax.texts) == [
        ((0, 0), "1"), ((1, 0), "1"), ((2, 1), "1"), ((2, 2), "1"), ((3, 1), "1")]  # (column, row)
    assert fig.axes[1].get_ylabel() == "share of the true class"  # the colour bar
    width, height = _png_size(save_png(fig, tmp_path / "cm.png"))
    assert (width, height) == (round(fig.get_figwidth() * fig.dpi), round(fig.get_figheight() * fig.dpi))


def test_many_classes_show_the_most_confused_pairs():
    pytest.importorskip("matplotlib")
    num = 70
    counts = torch.eye(num, dtype=torch.long) * 3
    counts[5, 7], counts[9, 2], counts[40, 41], counts[2, 9] = 6, 4, 4, 1
    names = [f"class_{i}" for i in range(num)]
    assert confusion.most_confused_pairs(counts, 3) == [(5, 7, 6), (9, 2, 4), (40, 41, 4)]
    fig = confusion.confusion_figure(counts, names, num_pairs=3)
    ax = fig.axes[0]
    assert not ax.images  # no 70 x 70 grid
    assert ax.get_title() == "The 3 most confused pairs of 70 classes (225 test samples)"
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "class_5 \u2192 class_7", "class_9 \u2192 class_2", "class_40 \u2192 class_41"]
    assert [bar.get_width() for bar in ax.patches] == [6, 4, 4]
    assert [t.get_text() for t in ax.texts] == ["6 of 9", "4 of 7", "4 of 7"]  # of the true class's samples


def _short_run(out: Path) -> Path:
    cfg = load_config(None, tiny_opts(out, "video", "SOLVER.MAX_EPOCH", "2", "TRAIN.MAX_STEPS_PER_EPOCH", "2",
                                      "TRAIN.EVAL_PERIOD", "1", "TEST.ENABLE", "False"))
    Trainer(cfg, TensorVideoTask()).train()
    return out


def test_training_curves_from_a_real_short_run(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from rs_video.cli import plot_metrics

    out = _short_run(tmp_path / "run")
    assert _png_size(out / "training_curves.png") == (900, 900)  # written by train at the end
    records = curves.read_metrics(out / "metrics.jsonl")
    train = [r for r in records if r["type"] == "train"]
    val = [r for r in records if r["type"] == "val"]
    assert len(train) == 4 and len(val) == 2
    fig = curves.training_curves_figure(records)
    ax_loss, ax_lr, ax_top1 = fig.axes[:3]
    assert [ax.get_ylabel() for ax in (ax_loss, ax_lr, ax_top1)] == ["loss", "learning rate", "top-1 (%)"]
    assert ax_top1.get_xlabel() == "global step (optimizer steps)"
    lines = {(ax.get_ylabel(), line.get_label()): line for ax in fig.axes[:3] for line in ax.get_lines()}
    assert sorted(lines) == sorted([
        ("loss", "train (per step)"), ("loss", "train (epoch mean)"), ("loss", "val"), ("loss", "val EMA"),
        ("learning rate", "learning rate (per step)"),
        ("top-1 (%)", "train (per step)"), ("top-1 (%)", "val"), ("top-1 (%)", "val EMA")])

    def data(key):
        line = lines[key]
        return list(line.get_xdata()), list(line.get_ydata())

    assert data(("loss", "train (per step)")) == ([1, 2, 3, 4], [r["loss"] for r in train])
    assert data(("learning rate", "learning rate (per step)")) == ([1, 2, 3, 4], [r["lr"] for r in train])
    assert data(("top-1 (%)", "train (per step)")) == ([1, 2, 3, 4], [r["top1"] for r in train])
    assert data(("top-1 (%)", "val")) == ([2, 4], [r["top1"] for r in val])
    assert data(("top-1 (%)", "val EMA")) == ([2, 4], [r["ema_top1"] for r in val])
    assert data(("loss", "train (epoch mean)"))[0] == [2, 4]
    assert [a.get_xlabel() for a in ax_loss.child_axes] == ["epoch"]  # on top: 2 steps per epoch

    # the CLI draws the same file and says where
    (out / "training_curves.png").unlink()
    assert plot_metrics.main([str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"training curves written to {out / 'training_curves.png'}"
    assert _png_size(out / "training_curves.png") == (900, 900)


def test_plot_metrics_user_errors(tmp_path, capsys):
    from rs_video.cli import plot_metrics

    for setup, message in ((lambda: None, "metrics.jsonl: no such file"),
                           (lambda: (tmp_path / "metrics.jsonl").write_text(""), "no training records"),
                           (lambda: (tmp_path / "metrics.jsonl").write_text('{"type": "train"}\nnot json\n'),
                            "metrics.jsonl:2: not a JSON line")):
        setup()
        with pytest.raises(SystemExit) as info:
            plot_metrics.main([str(tmp_path)])
        err = capsys.readouterr().err.strip()
        assert info.value.code == 2 and len(err.splitlines()) == 1 and message in err, err
        assert err.startswith("plot_metrics: error: ")


def test_resumed_run_records_count_once_per_step():
    records = [{"type": "train", "global_step": s, "loss": float(s)} for s in (1, 2, 3)]
    records += [{"type": "train", "global_step": 3, "loss": 30.0}, {"type": "event", "global_step": 2}]
    assert curves.curve(records, "train", "loss") == ([1, 2, 3], [1.0, 2.0, 30.0])


# ------------------------------------------------------------------------------------------------------
# End to end
# ------------------------------------------------------------------------------------------------------
def test_test_net_report_on_real_videos(tmp_path, caplog):
    pytest.importorskip("av")
    pytest.importorskip("matplotlib")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rs_video.task import VideoTask
    from tests.videos import list_dataset

    data = list_dataset(tmp_path / "data", splits=("test",), num_videos=4, broken=("truncated",), width=48, height=40)
    (data / "classids.json").write_text(json.dumps({"walk": 0, "run": 1, "jump": 2}))  # "jump": no test video
    out = tmp_path / "out"
    opts = tiny_opts(out, "video", "DATA.PATH_TO_DATA_DIR", str(data), "DATA.PATH_PREFIX", str(data),
                     "MODEL.NUM_CLASSES", "3", "DATA.TEST_CROP_SIZE", "40", "DATA.MAX_FAILURE_FRACTION", "0.5",
                     "DATA.DECODER", "pyav", "TENSORBOARD", "True", "TEST.ENSEMBLE_SCORES", "logit")
    cfg = load_config(None, opts)
    torch.save(VideoTask().create_model(cfg).state_dict(), tmp_path / "weights.pth")
    with caplog.at_level(logging.INFO, logger="rs_image"):
        result = cli_test([*opts, "TEST.CHECKPOINT_FILE_PATH", str(tmp_path / "weights.pth")])["test"]
    assert (result["num_evaluated"], result["num_failed"], result["scores"]) == (4, 1, "logit")

    predictions = list(csv.DictReader(open(out / "test_predictions.csv")))
    predicted = [(int(r["label"]), int(r["top3_classes"].split()[0])) for r in predictions if r["views"] == "2"]
    assert len(predicted) == 4  # the truncated file failed: not in any per-class number
    per_class = list(csv.DictReader(open(out / "per_class.csv")))
    assert [(r["class"], r["name"], r["support"]) for r in per_class] == [("0", "walk", "2"), ("1", "run", "2"),
                                                                          ("2", "jump", "0")]
    assert per_class[2]["top1"] == "" and per_class[2]["top3"] == ""
    for c in (0, 1):
        hits = sum(p == c for label, p in predicted if label == c)
        assert float(per_class[c]["top1"]) == 100.0 * hits / 2
    matrix = list(csv.reader(open(out / "confusion_matrix.csv")))
    assert matrix[0] == ["true \\ predicted", "walk", "run", "jump"] and [row[0] for row in matrix[1:]] == NAMES[:3]
    for t in range(3):
        assert [int(v) for v in matrix[1 + t][1:]] == [sum(lp == (t, p) for lp in predicted) for p in range(3)]

    saved = json.loads((out / "test_results.json").read_text())
    assert [c["support"] for c in saved["per_class"]] == [2, 2, 0] and saved["per_class"][2]["top1"] is None
    assert saved["mean_class_accuracy"] == pytest.approx(
        (float(per_class[0]["top1"]) + float(per_class[1]["top1"])) / 2, abs=0.01)
    assert 0 <= saved["clip_top1"] <= 100 and saved["views_per_sample"] == 2
    test_record = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert test_record["type"] == "test" and "per_class" not in test_record
    assert test_record["mean_class_accuracy"] == saved["mean_class_accuracy"]

    assert _png_size(out / "confusion_matrix.png")[0] > 300
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["test/confusion_matrix"]
    assert "single view (clip level) top-1" in caplog.text and "mean class accuracy" in caplog.text
    assert "(sum of the logits of 2 views)" in caplog.text


def test_without_matplotlib_the_csvs_are_written_and_it_is_said_once(tmp_path, caplog, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    monkeypatch.setattr(engine_logger, "_told_no_matplotlib", False)
    cfg = load_config(None, tiny_opts(tmp_path, "video", "TRAIN.MAX_STEPS_PER_EPOCH", "1", "TRAIN.EVAL_PERIOD", "0",
                                      "DATA.MAX_FAILURE_FRACTION", "0.5"))
    with caplog.at_level(logging.INFO, logger="rs_image"):
        Trainer(cfg, TensorVideoTask()).train()
        summary = run_test(cfg, TensorVideoTask())
    assert summary.per_class.support.tolist() == [1, 0, 1, 1]  # 4 videos with labels 0..3, video 1 failed
    assert (tmp_path / "per_class.csv").is_file() and (tmp_path / "confusion_matrix.csv").is_file()
    assert not (tmp_path / "confusion_matrix.png").exists() and not (tmp_path / "training_curves.png").exists()
    told = [r for r in caplog.records if "are not drawn" in r.getMessage()]
    assert len(told) == 1 and told[0].levelno == logging.INFO and "rs-video[plot]" in told[0].getMessage()

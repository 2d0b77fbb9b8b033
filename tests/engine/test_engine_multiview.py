"""Multi-view test aggregation: sum / max of view scores per video, top-1 / top-5, failures, dedup."""

from __future__ import annotations

import csv

import pytest
import torch

from rs_image.engine.evaluator import MultiViewAggregator, write_predictions
from rs_image.engine.samplers import ShardedEvalSampler


def _scores(rows):
    return torch.tensor(rows, dtype=torch.float32)


# 3 videos x 2 views, 6 classes. Values chosen so that sum and max disagree on video 0.
VIEWS = [
    # video, view, label, scores
    (0, 0, 1, [0.00, 0.45, 0.00, 0.55, 0.00, 0.00]),
    (0, 1, 1, [0.00, 0.45, 0.00, 0.10, 0.45, 0.00]),  # sum -> class 1 (0.90 vs 0.65); max -> class 3 (0.55)
    (1, 0, 2, [0.10, 0.20, 0.30, 0.40, 0.00, 0.00]),
    (1, 1, 2, [0.10, 0.20, 0.30, 0.40, 0.00, 0.00]),  # class 2 ranks 2nd: top-5 hit, top-1 miss
    (2, 0, 5, [0.30, 0.25, 0.20, 0.15, 0.10, 0.00]),
    (2, 1, 5, [0.30, 0.25, 0.20, 0.15, 0.10, 0.00]),  # class 5 ranks last: top-5 miss
]


def _feed(agg, items, failed=None):
    v = torch.tensor([i[0] for i in items])
    w = torch.tensor([i[1] for i in items])
    y = torch.tensor([i[2] for i in items])
    agg.update(_scores([i[3] for i in items]), y, v, w, failed)


def test_sum_aggregation_known_scores():
    agg = MultiViewAggregator(3, 6, "sum")
    _feed(agg, VIEWS[:3])
    _feed(agg, VIEWS[3:])
    torch.testing.assert_close(agg.scores[0], torch.tensor([0, 0.9, 0, 0.65, 0.45, 0], dtype=torch.float64))
    s = agg.summarize(views_per_sample=2)
    assert s.top1 == pytest.approx(100 / 3)  # only video 0
    assert s.top5 == pytest.approx(200 / 3)  # videos 0 and 1
    assert (s.num_evaluated, s.num_failed, s.num_failed_views, s.num_incomplete) == (3, 0, 0, 0)
    torch.testing.assert_close(agg.mean_scores()[1], torch.tensor([0.1, 0.2, 0.3, 0.4, 0, 0], dtype=torch.float64))


def test_max_aggregation_known_scores():
    agg = MultiViewAggregator(3, 6, "max")
    _feed(agg, VIEWS)
    torch.testing.assert_close(agg.scores[0], torch.tensor([0, 0.45, 0, 0.55, 0.45, 0], dtype=torch.float64))
    s = agg.summarize(views_per_sample=2)
    assert s.top1 == 0.0  # video 0 now predicts class 3
    assert s.top5 == pytest.approx(200 / 3)


def test_duplicates_failures_and_missing_views(tmp_path):
    agg = MultiViewAggregator(4, 6, "sum")
    _feed(agg, VIEWS)
    _feed(agg, VIEWS[:2])  # a padded sampler repeating views: ignored
    torch.testing.assert_close(agg.scores[0], torch.tensor([0, 0.9, 0, 0.65, 0.45, 0], dtype=torch.float64))
    # video 3: one view failed to decode, the other never arrived -> video failed
    _feed(agg, [(3, 0, 4, [0.0] * 6)], failed=torch.tensor([True]))
    s = agg.summarize(views_per_sample=2)
    assert (s.num_samples, s.num_evaluated, s.num_failed, s.num_failed_views) == (4, 3, 1, 2)
    assert s.top1 == pytest.approx(100 / 3)  # failed videos are not scored
    write_predictions(tmp_path / "pred.csv", agg, names=["a", "b", "c", "d"], views_per_sample=2)
    rows = list(csv.DictReader(open(tmp_path / "pred.csv")))
    assert [r["name"] for r in rows] == ["a", "b", "c", "d"]
    assert rows[0]["top5_classes"].split()[0] == "1" and rows[0]["correct"] == "1"
    assert rows[3]["views"] == "0" and rows[3]["top5_classes"] == "" and rows[3]["failed_views"] == "2"


def test_partially_failed_video_is_failed():
    agg = MultiViewAggregator(2, 6, "sum")
    _feed(agg, [VIEWS[0], VIEWS[1]], failed=torch.tensor([False, True]))
    _feed(agg, VIEWS[2:4])
    s = agg.summarize(views_per_sample=2)
    assert (s.num_evaluated, s.num_failed, s.num_incomplete, s.num_failed_views) == (1, 1, 1, 1)
    assert s.top1 == 0.0 and s.top5 == 100.0  # only video 1 is scored


def test_topk_with_fewer_classes_than_five():
    agg = MultiViewAggregator(2, 3, "sum")
    agg.update(_scores([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]), torch.tensor([2, 1]), torch.tensor([0, 1]))
    s = agg.summarize()
    assert s.topk == 3 and s.top1 == 50.0 and s.top5 == 100.0


def test_sharded_sampler_covers_every_index_once_in_contiguous_blocks():
    shards = [list(ShardedEvalSampler(10, r, 3)) for r in range(3)]
    # Contiguous, so that consecutive views of a video stay on one process (decoded once there).
    assert shards == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert [len(ShardedEvalSampler(10, r, 3)) for r in range(3)] == [4, 3, 3]
    assert [list(ShardedEvalSampler(2, r, 3)) for r in range(3)] == [[0], [1], []]


def test_check_complete_reports_samples_without_exactly_their_views():
    agg = MultiViewAggregator(3, 6, "max")
    _feed(agg, VIEWS[:4])  # videos 0 and 1 complete
    _feed(agg, [(2, 0, 5, [0.0] * 6)], failed=torch.tensor([True]))
    with pytest.raises(RuntimeError, match="1 samples did not get exactly 2 views .sample 2: 1"):
        agg.check_complete(2)
    _feed(agg, [VIEWS[5]])
    agg.check_complete(2)  # one failed + one counted view is complete coverage
    assert agg.summarize(views_per_sample=2).num_failed == 1

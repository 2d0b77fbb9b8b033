"""`make demo` end to end on a tiny moving-shapes set: both runs train, test and report, and --check reports
missed targets through the exit status (rs_video.demo.run, tools/demo.py). (The real targets are measured by the
demo itself, see docs/demo.md.)"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from rs_video.demo.moving_shapes import MovingShapesSpec, generate_moving_shapes
from rs_video.demo.run import RUNS, DemoResult, DemoRow

ROOT = Path(__file__).resolve().parents[2]


def _demo_module():
    from rs_video.cli import demo

    return demo


@pytest.mark.slow
def test_demo_trains_tests_and_reports_both_runs(tmp_path: Path, capsys) -> None:
    data = generate_moving_shapes(
        tmp_path / "data", MovingShapesSpec(num_train=16, num_val=8, num_test=8, size=32, num_frames=8, seed=5),
        num_workers=0,
    )
    status = _demo_module().main([
        "--data", str(data), "--output-dir", str(tmp_path / "runs"), "--check",
        "SOLVER.MAX_EPOCH", "1", "SOLVER.WARMUP_EPOCHS", "0.5", "DATA_LOADER.NUM_WORKERS", "0", "PROGRESS_BAR", "False",
    ])
    out = capsys.readouterr().out
    assert status == 1  # one epoch on 16 videos is far from 90 %: --check must say so
    assert "[MISSED] rs3d held-out top-1" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("rs3d ", "2d "))}
    assert set(rows) == {"rs3d", "2d"}
    assert "8x4 frames, 48px" in rows["rs3d"] and "1 frame, 48px" in rows["2d"]
    (run_dir,) = (tmp_path / "runs").iterdir()
    for name in ("rs3d", "2d"):
        with open(run_dir / name / "test_predictions.csv") as f:
            predictions = list(csv.DictReader(f))
        assert len(predictions) == 8 and all(p["views"] == "4" for p in predictions)


def test_targets_hold_exactly_at_their_bounds() -> None:
    def result(top1_3d: float, top1_2d: float, seconds: float) -> DemoResult:
        rows = [DemoRow(RUNS[0], None, {"top1": top1_3d}, 1.0), DemoRow(RUNS[1], None, {"top1": top1_2d}, 1.0)]
        return DemoResult(MovingShapesSpec(), Path("data"), 0.0, seconds, rows)

    assert [ok for _, ok in result(90.0, 27.5, 180.0).checks()] == [True, True, True]
    assert [ok for _, ok in result(89.9, 27.6, 180.5).checks()] == [False, False, False]
    assert [text for text, _ in result(94.4, 16.2, 169.0).checks()] == [
        "rs3d held-out top-1 94.4% >= 90%",
        "single-frame control 16.2% <= chance + 15 = 27.5%",
        "demo time 169 s <= 180 s",
    ]

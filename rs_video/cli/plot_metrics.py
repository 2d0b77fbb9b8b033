#!/usr/bin/env python
"""Training curves without TensorBoard: ``python tools/plot_metrics.py OUTPUT_DIR [--out PNG]``.

Draws ``OUTPUT_DIR/metrics.jsonl`` (loss, learning rate, train top-1 per step; train loss per epoch;
validation top-1 and loss, raw and EMA, per epoch) into one PNG, by default ``OUTPUT_DIR/training_curves.png``
(``tools/train_net.py`` writes the same file at the end of a run), and prints where. Needs matplotlib
(``pip install 'rs-video[plot]'``). See docs/training.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence



from rs_image.engine.launch import run_cli
from rs_image.report.curves import CURVES_FILE, METRICS_FILE, write_training_curves


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="plot_metrics", description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", help=f"a training OUTPUT_DIR holding {METRICS_FILE}")
    parser.add_argument("--out", default=None, help=f"PNG to write (default OUTPUT_DIR/{CURVES_FILE})")
    args = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        parser.exit(2, "plot_metrics: error: matplotlib is not installed; pip install 'rs-video[plot]'\n")

    def run() -> Path:
        path = write_training_curves(args.output_dir, args.out)
        print(f"training curves written to {path}")
        return path

    run_cli(run, "plot_metrics")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

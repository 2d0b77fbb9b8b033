"""``rs-predict VIDEO [VIDEO ...] --cfg CONFIG --weights W [--topk 5] [--json OUT]``: actions in videos.

Video-level top-k with the test tool's views (equal to ``rs-test``), ``--timeline DIR`` per-window CSV / JSON /
PNG, ``--annotate OUT.mp4`` the video with the predictions drawn on it. See docs/inference.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from rs_image.engine.launch import run_cli
from rs_image.errors import UserError
from rs_image.fileio import atomic_write
from rs_video.inference import annotate_video, compute_timeline, write_timeline

from ._inference_options import build_predictor, command_logging, model_arguments, parse_with_overrides, window_spec

__all__ = ["predict", "main"]


def predict(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    """The command; returns the JSON records. ``rs-predict VIDEO [VIDEO ...] --cfg CFG [--weights W] [--topk 5] [--json OUT] [--timeline DIR]
    [--annotate OUT.mp4]``."""
    parser = argparse.ArgumentParser(usage="%(prog)s VIDEO [VIDEO ...] [options] [KEY VALUE ...]",
                                     description="Predict the action in videos with a trained model (the test "
                                     "tool's views), and optionally a per-window timeline and an annotated video.")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--json", default=None, help="write the predictions (and timelines) as JSON")
    parser.add_argument("--timeline", default=None, help="folder for per-window CSV, JSON and PNG timelines")
    parser.add_argument("--annotate", default=None, help="re-encode the video with the window's top-k drawn on it "
                        "(a .mp4 path for one video, a folder for several)")
    model_arguments(parser)
    args = parse_with_overrides(parser, argv, "videos")
    videos = args.videos

    def main() -> List[Dict[str, Any]]:
        command_logging()
        if args.topk < 1:
            raise UserError(f"--topk must be >= 1, got {args.topk}")
        predictor = build_predictor(args)
        spec = window_spec(args, predictor)
        print(predictor.describe(), flush=True)
        predictions = predictor.predict(videos, topk=args.topk)
        records = []
        for prediction in predictions:
            print(f"{prediction.path}: " + (f"failed ({prediction.reason})" if prediction.failed
                                             else f"{prediction.views} views"))
            for rank, (c, name, score) in enumerate(prediction.topk, 1):
                print(f"  {rank}. {name:<30s} {score:.4f}  (class {c})")
            record = prediction.as_dict()
            if (args.timeline or args.annotate) and not prediction.failed:
                timeline = compute_timeline(predictor, prediction.path, spec, args.crops, args.batch_size,
                                            args.workers or 0)
                if args.timeline:
                    written = write_timeline(timeline, args.timeline, topk=args.topk)
                    print(f"  timeline: {len(timeline.starts)} windows -> {', '.join(written.values())}")
                record["timeline"] = timeline.rows(args.topk)
                if args.annotate:
                    target = Path(args.annotate)
                    if len(videos) > 1 or target.is_dir():
                        target = target / (Path(prediction.path).stem + ".annotated.mp4")
                    print(f"  annotated video -> {annotate_video(timeline, str(target), topk=min(args.topk, 3))}")
            records.append(record)
        if args.json:
            with atomic_write(args.json) as f:
                json.dump(records, f, indent=1)
            print(f"predictions written to {args.json}")
        return records

    return run_cli(main, "predict")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit status 0; a user's mistake ends with one line on stderr and status 2."""
    predict(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Command-line entry points behind ``tools/predict.py`` and ``tools/extract_features.py`` (docs/inference.md).

Expected user errors (a missing file, a file that is not a video, weights of another architecture or class
count, an unknown ``--layer``, ``--fps 0``) end with one line on stderr and exit status 2
(:func:`rs_image.engine.launch.run_cli`).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from rs_image.engine import distributed as du
from rs_image.engine.launch import run_cli
from rs_image.errors import UserError
from rs_image.fileio import atomic_write

from .features import extract_features, find_videos
from .predictor import Predictor
from .stream import LAYERS
from .timeline import annotate_video, compute_timeline, write_timeline
from .windows import WindowSpec

__all__ = ["predict_main", "extract_main"]


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cfg", default=None, help="YAML config (default: the cfg the --weights checkpoint carries)")
    parser.add_argument("--weights", default=None, help="weights: a train_net checkpoint or any file / URL the "
                        "weights resolver reads (default: TEST.CHECKPOINT_FILE_PATH, else the newest checkpoint)")
    parser.add_argument("--model", default=None, help="a registered video model name used at its pretrained cfg "
                        "(frames, crop, mean/std, views; Kinetics class names), with --weights")
    parser.add_argument("--labels", default=None, help="class names: one per line, or a classids.json")
    parser.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"), help="sets DEVICE")
    parser.add_argument("--fps", type=float, default=None, help="resample time to this rate first (windows)")
    parser.add_argument("--stride", type=int, default=None, help="frames between windows (default: the span "
                        "NUM_FRAMES x SAMPLING_RATE)")
    parser.add_argument("--crops", type=int, default=1, choices=(1, 3), help="windows: centre crop, or 3 crops averaged")
    parser.add_argument("--batch-size", type=int, default=0, help="windows per batch (default TEST.BATCH_SIZE)")
    parser.add_argument("--workers", type=int, default=None, help="decoding workers (default DATA_LOADER.NUM_WORKERS)")


_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)*$")


def _parse(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]], positional: str) -> argparse.Namespace:
    """Options anywhere; the positional tokens are ``positional`` (when named) up to the first config key, then
    ``KEY VALUE`` overrides (as train_net / test_net take them)."""
    parser.add_argument("rest", nargs="*", metavar="KEY VALUE", help="config overrides, e.g. TEST.BATCH_SIZE 16")
    args = parser.parse_intermixed_args(argv)
    tokens = [t for t in args.rest if t != "--"]
    first_key = next((i for i, t in enumerate(tokens) if _KEY.match(t)), len(tokens))
    if positional:
        setattr(args, positional, tokens[:first_key])
        if not tokens[:first_key]:
            parser.error(f"give at least one of {positional}")
    elif first_key:
        parser.error(f"unexpected arguments {tokens[:first_key]} (overrides are KEY VALUE pairs)")
    args.opts = tokens[first_key:]
    return args


def _predictor(args: argparse.Namespace) -> Predictor:
    opts = list(args.opts)
    if args.device:
        opts += ["DEVICE", args.device]
    if args.model:
        if not args.weights:
            raise UserError("--model NAME needs --weights (the released weights of that model)")
        return Predictor.from_pretrained(args.model, args.weights, opts, labels=args.labels)
    return Predictor.from_config(args.cfg, args.weights, opts, labels=args.labels)


def _spec(args: argparse.Namespace, predictor: Predictor) -> WindowSpec:
    if args.fps is not None and not args.fps > 0:
        raise UserError(f"--fps must be > 0, got {args.fps:g}")
    if args.stride is not None and args.stride < 1:
        raise UserError(f"--stride must be >= 1 frame, got {args.stride}")
    cfg = predictor.cfg
    return WindowSpec(int(cfg.DATA.NUM_FRAMES), int(cfg.DATA.SAMPLING_RATE), args.stride, args.fps)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for name in ("rs_image", "rs_video"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("rs_video.inference").setLevel(logging.INFO)


def predict_main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    """``tools/predict.py VIDEO [VIDEO ...] --cfg CFG [--weights W] [--topk 5] [--json OUT] [--timeline DIR]
    [--annotate OUT.mp4]``."""
    parser = argparse.ArgumentParser(usage="%(prog)s VIDEO [VIDEO ...] [options] [KEY VALUE ...]",
                                     description="Predict the action in videos with a trained model (the test "
                                     "tool's views), and optionally a per-window timeline and an annotated video.")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--json", default=None, help="write the predictions (and timelines) as JSON")
    parser.add_argument("--timeline", default=None, help="folder for per-window CSV, JSON and PNG timelines")
    parser.add_argument("--annotate", default=None, help="re-encode the video with the window's top-k drawn on it "
                        "(a .mp4 path for one video, a folder for several)")
    _model_arguments(parser)
    args = _parse(parser, argv, "videos")
    videos = args.videos

    def main() -> List[Dict[str, Any]]:
        _logging()
        if args.topk < 1:
            raise UserError(f"--topk must be >= 1, got {args.topk}")
        predictor = _predictor(args)
        spec = _spec(args, predictor)
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


def extract_main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/extract_features.py --cfg CFG [--weights W] --videos DIR|LIST --out DIR``; returns the exit status
    (1 with ``--strict`` when a video failed)."""
    parser = argparse.ArgumentParser(description="Extract per-window clip features of videos (one .npy and a "
                                     ".json sidecar per video; resumable; torchrun shards the videos).")
    parser.add_argument("--videos", required=True, help="a folder (searched recursively) or a list file of paths")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--layer", default="pre_logits", help=f"one of {', '.join(LAYERS)}")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16"))
    parser.add_argument("--overwrite", action="store_true", help="recompute outputs whose settings differ")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any video failed")
    parser.add_argument("--progress", default=None, action=argparse.BooleanOptionalAction,
                        help="tqdm bar (default: when stderr is a terminal)")
    _model_arguments(parser)
    args = _parse(parser, argv, "")

    def main() -> int:
        _logging()
        videos, root = find_videos(args.videos)
        predictor = _predictor(args)
        try:
            spec = _spec(args, predictor)
            if du.is_main_process():
                print(predictor.describe(), flush=True)
            summary = extract_features(
                predictor, videos, root, Path(args.out), layer=args.layer, spec=spec, num_crops=args.crops,
                dtype=args.dtype, overwrite=args.overwrite, batch_size=args.batch_size, num_workers=args.workers,
                progress=args.progress,
            )
        finally:
            du.destroy_distributed()
        if predictor.dist.is_main:
            print(summary.format(Path(args.out)), flush=True)
        return 1 if args.strict and summary.failed else 0

    return run_cli(main, "extract_features")

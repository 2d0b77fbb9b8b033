"""What ``rs-predict`` and ``rs-extract-features`` share: the model options (config, weights, registered
name, labels, device), the window options (``--fps``, ``--stride``, ``--crops``, batch, workers), ``KEY VALUE``
overrides after the positional arguments, and the quiet library logging of a command (docs/inference.md).

Expected user errors (a missing file, a file that is not a video, weights of another architecture or class
count, an unknown ``--layer``, ``--fps 0``) end with one line on stderr and exit status 2
(:func:`rs_image.engine.launch.run_cli`).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from typing import Optional, Sequence

from rs_image.errors import UserError
from rs_video.inference import Predictor, WindowSpec

__all__ = ["model_arguments", "parse_with_overrides", "build_predictor", "window_spec", "command_logging"]


def model_arguments(parser: argparse.ArgumentParser) -> None:
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


def parse_with_overrides(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]], positional: str) -> argparse.Namespace:
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


def build_predictor(args: argparse.Namespace) -> Predictor:
    opts = list(args.opts)
    if args.device:
        opts += ["DEVICE", args.device]
    if args.model:
        if not args.weights:
            raise UserError("--model NAME needs --weights (the released weights of that model)")
        return Predictor.from_pretrained(args.model, args.weights, opts, labels=args.labels)
    return Predictor.from_config(args.cfg, args.weights, opts, labels=args.labels)


def window_spec(args: argparse.Namespace, predictor: Predictor) -> WindowSpec:
    if args.fps is not None and not args.fps > 0:
        raise UserError(f"--fps must be > 0, got {args.fps:g}")
    if args.stride is not None and args.stride < 1:
        raise UserError(f"--stride must be >= 1 frame, got {args.stride}")
    cfg = predictor.cfg
    return WindowSpec(int(cfg.DATA.NUM_FRAMES), int(cfg.DATA.SAMPLING_RATE), args.stride, args.fps)


def command_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for name in ("rs_image", "rs_video"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("rs_video.inference").setLevel(logging.INFO)



"""``rs-extract-features --cfg CONFIG --weights W --videos DIR|LIST --out DIR``: per-window clip features.

One ``.npy`` (num_windows, C) and a ``.json`` sidecar per video; resumable; ``torchrun`` shards the videos.
See docs/inference.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from rs_image.engine import distributed as du
from rs_image.engine.launch import run_cli
from rs_video.inference import LAYERS, extract_features, find_videos

from ._inference_options import build_predictor, command_logging, model_arguments, parse_with_overrides, window_spec

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``rs-extract-features --cfg CFG [--weights W] --videos DIR|LIST --out DIR``; returns the exit status
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
    model_arguments(parser)
    args = parse_with_overrides(parser, argv, "")

    def main() -> int:
        command_logging()
        videos, root = find_videos(args.videos)
        predictor = build_predictor(args)
        try:
            spec = window_spec(args, predictor)
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


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Prepare Kinetics: official CSVs + downloaded videos -> short-side-320 H.264 files and ``path label`` lists.

Example:

    python tools/prepare_kinetics.py --annotations kinetics400/annotations --videos kinetics400/raw \
        --out /data/k400 --short-side 320 --workers 16

Then train with ``DATA.PATH_TO_DATA_DIR /data/k400``. Downloads in any codec FFmpeg decodes (H.264,
HEVC, VP9, AV1) become upright (display rotation baked in) 8-bit H.264. Re-running skips finished videos. Videos are
searched in ``--videos`` and its ``{split}/``, ``videos/`` and ``videos/{split}/`` folders, flat or per
class. See rs_video/data/prepare.py and docs/data.md for the search and the encoding settings.

Exits with status 2 and one line on stderr when there is nothing to prepare (no CSV, a malformed CSV, no
listed video found).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


from rs_video.data.annotations import AnnotationError
from rs_video.data.prepare import prepare_kinetics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotations", required=True,
                        help="folder with the official train/validate/test CSVs, directly or in annotations/")
    parser.add_argument("--videos", required=True,
                        help="folder of downloaded videos (flat, per class, per split, or per split and class)")
    parser.add_argument("--out", required=True, help="output folder (DATA.PATH_TO_DATA_DIR)")
    parser.add_argument("--short-side", type=int, default=320)
    parser.add_argument("--backend", choices=["pyav", "ffmpeg"], default="pyav")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--splits", nargs="+", choices=["train", "val", "test"], default=["train", "val", "test"])
    parser.add_argument("--gop", type=int, default=32, help="keyframe interval (frames)")
    parser.add_argument("--crf", type=int, default=23)
    parser.add_argument("--preset", default="fast", help="x264 preset")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        report = prepare_kinetics(
            args.annotations, args.videos, args.out, short_side=args.short_side, backend=args.backend,
            num_workers=args.workers, splits=args.splits, gop=args.gop, crf=args.crf, preset=args.preset,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, AnnotationError) as error:
        print(f"prepare_kinetics: error: {error}", file=sys.stderr)
        return 2
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``rs-predict VIDEO [VIDEO ...] --cfg CONFIG --weights W [--topk 5] [--json OUT]``: actions in videos.

Video-level top-k with the test tool's views (equal to ``rs-test``), ``--timeline DIR`` per-window CSV / JSON /
PNG, ``--annotate OUT.mp4`` the video with the predictions drawn on it. See docs/inference.md.
"""

from typing import Optional, Sequence

from rs_video.inference.cli import predict_main

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit status 0; errors exit inside (one line and status 2 for a user's mistake)."""
    predict_main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

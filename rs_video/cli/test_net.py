"""``rs-test --cfg CONFIG TEST.CHECKPOINT_FILE_PATH W``: the multi-view test of a trained model.

Prints top-1/top-5 with the numbers of videos evaluated and failed; writes per-video predictions.
See docs/training.md.
"""

from typing import Optional, Sequence

from rs_image.engine.launch import test_main

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit status 0; errors exit inside (one line and status 2 for a user's mistake)."""
    test_main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

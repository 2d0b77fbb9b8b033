"""``rs-train --cfg CONFIG [KEY VALUE ...]``: train a ResNet-RS video or image model.

Multi-GPU / multi-node: ``torchrun --nproc_per_node N [--nnodes M ...] --no-python rs-train --cfg ...`` (or
``torchrun ... -m rs_video.cli.train_net``, or ``tools/train_net.py`` in a checkout). See docs/training.md.
"""

from typing import Optional, Sequence

from rs_image.engine.launch import train_main

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit status 0; errors exit inside (one line and status 2 for a user's mistake)."""
    train_main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

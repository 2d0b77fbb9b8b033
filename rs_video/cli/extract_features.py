"""``rs-extract-features --cfg CONFIG --weights W --videos DIR|LIST --out DIR``: per-window clip features.

One ``.npy`` (num_windows, C) and a ``.json`` sidecar per video; resumable; ``torchrun`` shards the videos.
See docs/inference.md.
"""

from rs_video.inference.cli import extract_main as main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())

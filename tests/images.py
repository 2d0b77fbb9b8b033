"""Helpers for tests that need image files: JPEGs written with PIL (torchvision's image codecs are deprecated).

Import explicitly (``from tests.images import ...``); nothing here is a fixture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

import numpy as np
import torch
from PIL import Image

__all__ = ["write_jpeg", "jpeg_folder"]


def write_jpeg(path: Union[str, Path], rgb: Union[np.ndarray, torch.Tensor], quality: int = 95) -> Path:
    """Write an RGB image, (H, W, 3) array or (3, H, W) uint8 tensor, as a JPEG; parents are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(rgb, torch.Tensor):
        rgb = rgb.permute(1, 2, 0).numpy()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(path, format="JPEG", quality=quality)
    return path


def jpeg_folder(root: Union[str, Path], per_class: Dict[str, int], classes: int = 4) -> Path:
    """``root/<split>/class<c>/<i>.jpg``: ``per_class[split]`` noisy 40x36 JPEGs per class, brighter per class."""
    root = Path(root)
    g = torch.Generator().manual_seed(0)
    for split, n in per_class.items():
        for c in range(classes):
            for i in range(n):
                img = (torch.rand(3, 36, 40, generator=g) * 60).to(torch.uint8) + 40 * c
                write_jpeg(root / split / f"class{c}" / f"{i}.jpg", img)
    return root

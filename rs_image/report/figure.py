"""Figures without pyplot: a matplotlib ``Figure`` drawn by the non-interactive Agg canvas, saved atomically.

matplotlib is the optional ``[plot]`` extra; it is imported inside these functions only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Tuple

from rs_image.fileio import atomic_path

__all__ = ["new_figure", "save_png"]


def new_figure(size: Tuple[float, float], dpi: int = 100) -> Any:
    """A ``matplotlib.figure.Figure`` on an Agg canvas (no pyplot state, no window, any thread), laid out by
    matplotlib's constrained layout (long class names fit without a warning, unlike ``tight_layout``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Any, path: os.PathLike | str) -> Path:
    """Write ``figure`` as a PNG to ``path`` atomically (parents created); returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path

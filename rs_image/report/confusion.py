"""The confusion-matrix figure of a test: a heatmap with class names for up to :data:`MAX_HEATMAP_CLASSES`
classes; with more, a 400 x 400 grid would be unreadable, so the figure shows the most-confused pairs.

Input: counts (C, C), row = true class, column = predicted class (any array-like, e.g. the engine's
``ClassStats.confusion``).
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from .figure import new_figure

__all__ = ["MAX_HEATMAP_CLASSES", "most_confused_pairs", "row_shares", "confusion_figure"]

MAX_HEATMAP_CLASSES = 60


def most_confused_pairs(confusion: Any, n: int = 30) -> List[Tuple[int, int, int]]:
    """The ``n`` largest off-diagonal counts as ``(true, predicted, count)``, largest first (ties: by true,
    then predicted class); pairs with count 0 are left out."""
    counts = np.asarray(confusion, dtype=np.int64).copy()
    np.fill_diagonal(counts, 0)
    true, pred = np.nonzero(counts)
    order = sorted(zip(true.tolist(), pred.tolist()), key=lambda tp: (-counts[tp], tp))[:n]
    return [(t, p, int(counts[t, p])) for t, p in order]


def row_shares(confusion: Any) -> np.ndarray:
    """Each row divided by its sum: the share of a true class's samples predicted as each class (0 for a
    class without samples)."""
    counts = np.asarray(confusion, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def confusion_figure(confusion: Any, names: Sequence[str], *, max_classes: int = MAX_HEATMAP_CLASSES,
                     num_pairs: int = 30, title: Optional[str] = None) -> Any:
    """The confusion matrix as a ``matplotlib.figure.Figure`` (not saved; see :func:`.figure.save_png`).

    Up to ``max_classes`` classes: a heatmap, colour = share of the true class's samples (so rare and
    frequent classes read alike), the count written in each non-zero cell up to 30 classes, class names on
    both axes. More classes: a horizontal bar chart of the ``num_pairs`` most-confused ``true -> predicted``
    pairs (:func:`most_confused_pairs`) with their counts.
    """
    counts = np.asarray(confusion, dtype=np.int64)
    num_classes = counts.shape[0]
    if counts.shape != (num_classes, num_classes) or len(names) != num_classes:
        raise ValueError(f"confusion of shape {counts.shape} and {len(names)} names: expected (C, C) and C names")
    total = int(counts.sum())
    if num_classes <= max_classes:
        return _heatmap(counts, names, title or f"Confusion matrix ({total} test samples)")
    pairs = most_confused_pairs(counts, num_pairs)
    return _pairs(counts, names, pairs, title or f"The {len(pairs)} most confused pairs of {num_classes} classes "
                                                 f"({total} test samples)")


def _heatmap(counts: np.ndarray, names: Sequence[str], title: str) -> Any:
    num_classes = counts.shape[0]
    side = min(4.0 + 0.28 * num_classes, 22.0)
    fontsize = 9 if num_classes <= 20 else 6
    # Room for the tick labels beside and below the grid (long names, e.g. Something-Something's templates).
    labels = min(0.075 * max((len(n) for n in names), default=1) * fontsize / 9, 9.0)
    figure = new_figure((side + 1.5 + labels, side + labels))
    ax = figure.add_subplot()
    shares = row_shares(counts)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ticks = np.arange(num_classes)
    ax.set_xticks(ticks, labels=list(names), rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, labels=list(names), fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if num_classes <= 30:
        for t, p in zip(*np.nonzero(counts)):
            ax.text(p, t, str(counts[t, p]), ha="center", va="center", fontsize=fontsize,
                    color="white" if shares[t, p] > 0.5 else "black")
    return figure


def _pairs(counts: np.ndarray, names: Sequence[str], pairs: List[Tuple[int, int, int]], title: str) -> Any:
    figure = new_figure((10.0, 1.5 + 0.3 * max(len(pairs), 1)))
    ax = figure.add_subplot()
    labels = [f"{names[t]} \u2192 {names[p]}" for t, p, _ in pairs]
    positions = np.arange(len(pairs))
    bars = ax.barh(positions, [c for _, _, c in pairs], color="tab:red")
    support = counts.sum(axis=1)
    ax.bar_label(bars, labels=[f"{c} of {support[t]}" for t, _, c in pairs], padding=3, fontsize=8)
    ax.set_yticks(positions, labels=labels, fontsize=8)
    ax.invert_yaxis()  # the most confused pair on top
    ax.set_xlabel("test samples of the true class (left) predicted as the other (right)")
    if not pairs:
        ax.text(0.5, 0.5, "no sample was predicted as another class", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)
    return figure

"""The accuracy-vs-cost plot: reported Kinetics-400 top-1 against GFLOPs x views, each top-1 only at the input
and views it was reported at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = ["PlotPoint", "plot_points", "top1_input_mismatches", "plot_accuracy_vs_flops"]


@dataclass
class PlotPoint:
    """One marker: a model's GFLOPs x views at its test input and the top-1 ``source`` reported for it."""

    label: str
    family: str
    gmacs_x_views: float
    top1: float
    source: str


def _top1_candidates(rows: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    return [r for r in rows if r["task"] == "video" and r["top1"] is not None and r["input"] != "train"]


def _top1_applies(row: Mapping[str, Any]) -> bool:
    """Whether the row's test input and views are those its top-1 was reported at."""
    return row.get("top1_input") == row["shape"] and row.get("top1_views") == row["views"]


def plot_points(rows: Sequence[Mapping[str, Any]]) -> List[PlotPoint]:
    """Video rows at their test input that carry a reported Kinetics-400 top-1, only where that input and
    the views are the ones the top-1 was reported at (a top-1 measured on 8-frame clips says nothing about
    the cost of 32-frame ones; :func:`top1_input_mismatches` lists the rows left out). The same architecture
    reported twice (our ``slow_r50`` and ``ptv:slow_r50``) is plotted once."""
    points, seen = [], set()
    for r in _top1_candidates(rows):
        if not _top1_applies(r):
            continue
        key = (round(r["gmacs_x_views"], 0), r["top1"])
        if key in seen:
            continue
        seen.add(key)
        points.append(PlotPoint(r["model"], r["family"], r["gmacs_x_views"], r["top1"], r["top1_source"]))
    return points


def top1_input_mismatches(rows: Sequence[Mapping[str, Any]]) -> List[str]:
    """One line per video test row whose reported top-1 is *not* plotted because the row is at another input
    or other views than the top-1 was reported at (e.g. after ``--frames`` / ``--size`` overrides)."""
    out = []
    for r in _top1_candidates(rows):
        if _top1_applies(r):
            continue
        reported = (f"{r['top1_input']}, {r['top1_views']} views" if r.get("top1_input") and r.get("top1_views")
                    else "an unknown input")
        out.append(f"{r['model']}: top-1 {r['top1']:.2f} was reported at {reported}; this row is "
                   f"{r['shape']}, {r['views']} views")
    return out


_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:gray")
_MARKERS = {"rs_video": "o", "rs_image": "o", "pytorchvideo": "s", "torchvision": "^", "timm": "v"}


def _reporter(source: str) -> str:
    # "PyTorchVideo model zoo (8x8, 10x3 views)" -> "PyTorchVideo model zoo"
    return source.split(" (")[0] if source else "unknown"


def _annotate_without_overlap(ax: Any, fig: Any, points: Sequence[PlotPoint], fontsize: int = 8) -> None:
    """Label every point, trying right/left and above/below placements until the label box overlaps no
    earlier label and no other marker."""
    ax.autoscale_view()
    px_per_pt = fig.dpi / 72
    char_w, text_h = 0.6 * fontsize * px_per_pt, fontsize * px_per_pt
    xy = {id(p): ax.transData.transform((p.gmacs_x_views, p.top1)) for p in points}
    placed: List[Tuple[float, float, float, float]] = []
    markers = [(x - 5, y - 5, x + 5, y + 5) for x, y in xy.values()]

    def overlaps(box: Tuple[float, float, float, float]) -> bool:
        return any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed + markers)

    for p in sorted(points, key=lambda p: p.gmacs_x_views):
        x, y = xy[id(p)]
        width = char_w * len(p.label)
        candidates = [(6, 4), (6, -4 - text_h), (-6 - width, 4), (-6 - width, -4 - text_h), (6, 4 + text_h),
                      (6, -4 - 2 * text_h)]
        chosen = candidates[0]
        for dx, dy in candidates:
            box = (x + dx, y + dy, x + dx + width, y + dy + text_h)
            if not overlaps(box):
                chosen = (dx, dy)
                break
        dx, dy = chosen
        placed.append((x + dx, y + dy, x + dx + width, y + dy + text_h))
        ax.annotate(p.label, (p.gmacs_x_views, p.top1), textcoords="offset pixels", xytext=(dx, dy),
                    fontsize=fontsize)


def plot_accuracy_vs_flops(points: Sequence[PlotPoint], path: str, title: Optional[str] = None) -> str:
    """Reported Kinetics-400 top-1 against GFLOPs x views (log scale) as a PNG; returns ``path``.

    Colour = who reported the top-1; marker = which library built the network that was counted (filled
    circles are this library's models). Families of ours (``rs3d_*``, ``rs2plus1d_*``) are joined by lines.
    """
    if not points:
        raise ValueError("nothing to plot: no video model with a reported top-1 among the rows")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=120)
    reporters = list(dict.fromkeys(_reporter(p.source) for p in points))
    color = {r: _COLORS[i % len(_COLORS)] for i, r in enumerate(reporters)}
    series: Dict[Tuple[str, str], List[PlotPoint]] = {}
    for p in points:
        series.setdefault((_reporter(p.source), p.family), []).append(p)
    for (reporter, family), pts in series.items():
        ax.scatter([p.gmacs_x_views for p in pts], [p.top1 for p in pts], s=60, color=color[reporter],
                   marker=_MARKERS.get(family, "D"), label=f"{reporter} (reported); network: {family}", zorder=3)
    lines: Dict[str, List[PlotPoint]] = {}
    for p in points:
        if p.family.startswith("rs_") and "_" in p.label:
            lines.setdefault(p.label.rsplit("_", 1)[0], []).append(p)
    for pts in lines.values():
        if len(pts) > 1:
            pts = sorted(pts, key=lambda p: p.gmacs_x_views)
            ax.plot([p.gmacs_x_views for p in pts], [p.top1 for p in pts], color=color[_reporter(pts[0].source)],
                    alpha=0.5, zorder=2)
    ax.set_xscale("log")
    ax.margins(x=0.1, y=0.06)
    _annotate_without_overlap(ax, fig, points)
    ax.set_xlabel("GFLOPs x views: fvcore multiply-adds (conv + linear) at the test input x clips x crops, measured here")
    ax.set_ylabel("Kinetics-400 top-1 (%), as reported by the authors")
    ax.set_title(title or "Kinetics-400: top-1 reported by the authors (not measured here) vs inference cost")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    notes = sorted({p.source for p in points})
    fig.text(0.01, 0.01, "Top-1 sources (not measured here):\n" + "\n".join(notes), fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.03 + 0.025 * len(notes), 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path

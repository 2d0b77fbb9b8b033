"""Report rows and their writers: one row per model and input (counts) or per timed configuration
(throughput), as markdown, CSV (which :func:`read_csv_rows` parses back) or JSON."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from .catalog import ModelSpec
from .counts import CONVENTION, CountsCache, count_spec, shape_str

__all__ = [
    "count_rows",
    "throughput_rows",
    "FLOPS_PER_MAC",
    "format_mfu",
    "markdown_table",
    "rows_to_markdown",
    "rows_to_csv",
    "rows_to_json",
    "read_csv_rows",
]


def _views_str(views: Sequence[int]) -> str:
    return "x".join(str(v) for v in views)


def count_rows(
    specs: Sequence[ModelSpec],
    *,
    cache: Optional[CountsCache] = None,
    allow_compute: bool = True,
) -> List[Dict[str, Any]]:
    """One row per model and distinct input (``train``, ``test``, or ``train=test``).

    Row keys: ``table`` ("counts"), ``model, family, task, input, shape, clip, params_m, gmacs`` (conv +
    linear), ``bn_gmacs``, ``gmacs_with_bn``, ``activations_m``, ``views`` (1x1 for train rows),
    ``gmacs_x_views``, ``top1``, ``top1_source``, ``top1_input`` and ``top1_views`` (what ``top1`` was
    reported at), ``dataset``.
    """
    rows = []
    for spec in specs:
        inputs = [("train", spec.input_size), ("test", spec.test_input_size)]
        if spec.input_size == spec.test_input_size:
            inputs = [("train=test", spec.input_size)]
        counts = count_spec(spec, [s for _, s in inputs], cache=cache, allow_compute=allow_compute)
        for (label, shape), c in zip(inputs, counts):
            views = (1, 1) if label == "train" else spec.test_views
            gmacs = (c["conv"] + c["linear"]) / 1e9
            rows.append(
                dict(
                    table="counts",
                    model=spec.name,
                    family=spec.family,
                    task=spec.task,
                    input=label,
                    shape=shape_str(shape),
                    clip=spec.clip,
                    params_m=round(c["params"] / 1e6, 4),
                    gmacs=round(gmacs, 4),
                    bn_gmacs=round(c["batch_norm"] / 1e9, 4),
                    gmacs_with_bn=round(c["total"] / 1e9, 4),
                    activations_m=round(c["activations"] / 1e6, 4),
                    views=_views_str(views),
                    gmacs_x_views=round(gmacs * views[0] * views[1], 4),
                    top1=spec.top1,
                    top1_source=spec.top1_source or "",
                    top1_input=shape_str(spec.top1_input_size) if spec.top1_input_size else None,
                    top1_views=_views_str(spec.top1_views) if spec.top1_views else None,
                    dataset=spec.dataset,
                )
            )
    return rows


# Model FLOPs per clip per forward multiply-add (conv + linear): 2 (a multiply and an add) for inference, and
# for a training step 3 x that (the usual convention: the backward pass costs twice the forward).
FLOPS_PER_MAC = {"inference": 2, "train": 6}


def throughput_rows(
    results: Sequence[Any],
    count_rows_: Sequence[Mapping[str, Any]] = (),
    peak_tflops: Optional[float] = None,
) -> List[Dict[str, Any]]:
    """Throughput results (:class:`rs_image.benchmark.throughput.ThroughputResult`: reports show what the
    measurement room measured and never import it) as rows (``table`` = "throughput"), with speed-up over ``eager`` of the same
    model and mode, and, where ``count_rows_`` has the forward MACs at the same input, the time per
    forward GMAC (``ms_per_gmac`` = step time / (batch x GMACs per clip)) for comparing architectures, the
    achieved model TFLOP/s (``achieved_tflops`` = :data:`FLOPS_PER_MAC` x GMACs per clip x clips/s / 1000)
    and, given the device's ``peak_tflops`` (dense bf16, :func:`~rs_image.benchmark.throughput.peak_bf16_tflops`),
    the model FLOP utilisation ``mfu`` = achieved / peak (for every option, fp32 rows included)."""
    gmacs = {(r["model"], r["shape"]): r["gmacs"] for r in count_rows_}
    # A result pooled from rounds can carry an error of one round and still have timed steps.
    timed = {id(r): bool(r.step_times_ms) and math.isfinite(r.median_ms) for r in results}
    base = {(r.model, r.mode): r.median_ms for r in results if r.option == "eager" and timed[id(r)]}
    rows = []
    for r in results:
        row = {"table": "throughput", **r.as_row()}
        b = base.get((r.model, r.mode))
        row["speedup_vs_eager"] = round(b / r.median_ms, 3) if b and timed[id(r)] else None
        g = gmacs.get((r.model, r.input_shape))
        row["gmacs_per_clip"] = g
        row["ms_per_gmac"] = round(r.median_ms / (r.batch_size * g), 3) if g and timed[id(r)] else None
        tflops = FLOPS_PER_MAC[r.mode] * g * r.clips_per_s / 1e3 if g and timed[id(r)] else None
        # 4 significant digits: a CPU reaches ~1e-4 TFLOP/s on tiny inputs, a GPU hundreds.
        row["achieved_tflops"] = float(f"{tflops:.4g}") if tflops is not None else None
        row["peak_tflops"] = peak_tflops
        row["mfu"] = float(f"{tflops / peak_tflops:.4g}") if tflops is not None and peak_tflops else None
        for k in ("median_ms", "min_ms", "max_ms", "clips_per_s", "peak_mem_mib", "cpu_ms", "load_1min"):
            if isinstance(row[k], float) and math.isfinite(row[k]):
                row[k] = round(row[k], 3)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------
# Writers
def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or v == "":
        return "–"
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.{digits}f}"
    return str(v)


def markdown_table(header: Sequence[str], body: Iterable[Sequence[Any]]) -> str:
    """One markdown table; floats with 2 decimals, None and non-finite values as a dash, strings as they are."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def rows_to_markdown(
    counts: Sequence[Mapping[str, Any]],
    throughput: Sequence[Mapping[str, Any]] = (),
    machine: Optional[Mapping[str, Any]] = None,
) -> str:
    """The report as markdown: a counts table (with the convention stated) and, if given, a throughput
    table headed by the machine and versions."""
    parts = []
    if counts:
        parts.append("## Parameters, multiply-adds and activations\n\n" + CONVENTION + "\n")
        body = [
            (
                r["model"], r["family"], r["input"], r["shape"], r["clip"] or "–", r["params_m"], r["gmacs"],
                r["bn_gmacs"], r["activations_m"], r["views"], r["gmacs_x_views"],
                f"{r['top1']:.2f}" if r["top1"] is not None else "–",
            )
            for r in counts
        ]
        header = ["model", "source", "input", "shape", "frames x rate", "params (M)", "GMACs", "BN GMACs (not incl.)",
                  "activations (M)", "views", "GMACs x views", "reported top-1*"]
        parts.append(markdown_table(header, body))
        sources = sorted({r["top1_source"] for r in counts if r["top1"] is not None})
        if sources:
            parts.append("\n*Top-1 as reported by the models' authors, not measured here: " + "; ".join(sources) + ".")
    if throughput:
        if machine:
            parts.append("\n## Throughput\n\nMachine: " + ", ".join(f"{k} {v}" for k, v in machine.items()) + "\n")
        else:
            parts.append("\n## Throughput\n")
        header = ["model", "mode", "option", "device", "batch", "input", "median ms/step", "clips/s", "vs eager",
                  "ms per fwd GMAC", "TFLOP/s", "MFU", "CPU ms/step", "peak mem (MiB)", "memory kind", "load (1 min)"]
        body = [
            (
                r["model"], r["mode"], r["option"], r["device"], r["batch_size"], r["input_shape"],
                r["median_ms"] if not r["error"] else f"{_fmt(r['median_ms'])} (error: {r['error']})", r["clips_per_s"],
                f"{r['speedup_vs_eager']:.2f}x" if r["speedup_vs_eager"] else "–", r["ms_per_gmac"],
                r.get("achieved_tflops"), format_mfu(r.get("mfu")), r.get("cpu_ms"), r["peak_mem_mib"],
                r["peak_mem_kind"], r.get("load_1min"),
            )
            for r in throughput
        ]
        parts.append(markdown_table(header, body))
        peaks = sorted({r["peak_tflops"] for r in throughput if r.get("peak_tflops")})
        peak_note = (f"against a dense bf16 peak of {', '.join(f'{p:g}' for p in peaks)} TFLOP/s, for every option "
                     "(fp32 rows too)") if peaks else "n/a: no bf16 peak known for this device (--peak-tflops sets one)"
        parts.append(
            "\nMedian of the timed steps after warm-up, synchronised; train = forward, cross-entropy, backward and "
            "SGD step. ms per fwd GMAC = step time / (batch x forward GMACs per clip). TFLOP/s = model FLOPs "
            "achieved: 2 x forward MACs (conv + linear, fvcore) x clips/s for inference, 3 x that for training "
            f"(backward = 2 x forward, the usual convention). MFU = TFLOP/s / peak, {peak_note}. CPU ms/step = "
            "process CPU time of a step (all threads); load = 1-minute load average of the machine after the timed "
            "steps."
        )
    return "\n".join(parts) + "\n"


def format_mfu(mfu: Optional[float]) -> str:
    """``0.4123`` -> ``"41.2%"``; None -> ``"n/a"``."""
    return "n/a" if mfu is None else f"{100 * mfu:.1f}%"


def rows_to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """All rows (counts and throughput) in one CSV; the ``table`` column tells them apart and columns a
    row does not have are empty."""
    columns: List[str] = []
    for r in rows:
        columns.extend(k for k in r if k not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        # Lists (per-step times) as JSON so that they parse back as lists.
        writer.writerow({k: _csv_cell(r.get(k)) for k in columns})
    return out.getvalue()


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    return json.dumps(v) if isinstance(v, (list, tuple)) else v


def read_csv_rows(text: str) -> List[Dict[str, Any]]:
    """Parse :func:`rows_to_csv` output back: numbers as numbers, lists as lists, empty cells as None."""

    def convert(v: str) -> Any:
        if v == "":
            return None
        if v.startswith("["):
            return json.loads(v)
        for cast in (int, float):
            try:
                return cast(v)
            except ValueError:
                pass
        return v

    return [{k: convert(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]


def rows_to_json(
    counts: Sequence[Mapping[str, Any]],
    throughput: Sequence[Mapping[str, Any]] = (),
    machine: Optional[Mapping[str, Any]] = None,
) -> str:
    """``{"convention", "machine", "counts": [...], "throughput": [...]}`` as indented JSON."""

    def clean(v: Any) -> Any:
        return None if isinstance(v, float) and not math.isfinite(v) else v

    data = dict(
        convention=CONVENTION,
        machine=dict(machine or {}),
        counts=[{k: clean(v) for k, v in r.items()} for r in counts],
        throughput=[{k: clean(v) for k, v in r.items()} for r in throughput],
    )
    return json.dumps(data, indent=1) + "\n"

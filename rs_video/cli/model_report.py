#!/usr/bin/env python
"""Parameters, fvcore multiply-adds, activations, throughput and peak memory of models, side by side with
PyTorchVideo, torchvision and timm; also writes the model zoo page and the README tables.

Examples::

    python tools/model_report.py --models rs3d_50 rs2plus1d_50 slow_r50 ptv:slow_r50 ptv:x3d_m
    python tools/model_report.py --models rs3d_50 --frames 32 --size 224 --test-size 256 --views 10x3
    python tools/model_report.py --models rs3d_50 slow_r50 --frames 8 --size 224 --throughput --batch-size 2
    python tools/model_report.py --models @video @ptv @tv --plot k400.png --format csv --output report.csv
    python tools/model_report.py --zoo MODEL_ZOO.md --model-table docs/model_table.md

Names: our models bare (``resnetrs350.i320``, ``rs3d_50``), comparisons as ``ptv:``, ``tv:``, ``timm:``;
groups ``@image``, ``@video``, ``@ptv``, ``@tv``, ``@timm``, ``@anchors``, ``@all``. Everything is built at
random init. See docs/model_report.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional, Sequence




import torch

from rs_image.engine.launch import run_cli
from rs_image.errors import UserError
from rs_image.benchmark import throughput
from rs_image.report import catalog, counts, plot, tables, zoo_page
from rs_video.task import SHIPPED_CONFIGS

# The repository (or, installed, the package): the zoo page links configs/<family>/<name>.yaml under it.
ROOT = str(SHIPPED_CONFIGS.resolve().parent)
# The pinned counts of the zoo page, in a checkout; installed there are none (counted with fvcore instead).
DEFAULT_CACHE = os.path.join(ROOT, "docs", "model_counts.json")


def eprint(msg: str) -> None:
    """Progress goes to stderr so that stdout stays a clean table."""
    print(msg, file=sys.stderr, flush=True)


def build_catalog() -> catalog.ModelCatalog:
    """Every registered family (image, video) and the comparison sources."""
    return catalog.default_catalog()


def write_pages(zoo: Optional[str], table: Optional[str], cache: counts.CountsCache) -> None:
    """Regenerate the zoo page and/or README tables; the pinned counts file keeps exactly what they need."""
    models = build_catalog()
    video = models.resolve(["@video"])
    image = models.resolve(models.sources[0].variant_names())
    anchors = models.resolve(["@anchors"])
    for spec, shapes in zoo_page.pinned_count_requests(video, image, anchors):
        counts.count_spec(spec, shapes, cache=cache)
    if zoo:
        with open(zoo, "w") as f:
            f.write(zoo_page.zoo_markdown(video, image, root=ROOT, cache=cache, allow_compute=False))
        eprint(f"wrote {zoo}")
    if table:
        with open(table, "w") as f:
            f.write(zoo_page.model_table_markdown(video, image, cache=cache, allow_compute=False))
        eprint(f"wrote {table}")
    cache.save(prune_unused=True)
    eprint(f"wrote {cache.path}")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["@all"], help="model names and @groups (default: @all)")
    p.add_argument("--frames", type=int, help="video clip length T for train and test inputs")
    p.add_argument("--size", type=int, help="train crop (and test crop unless --test-size)")
    p.add_argument("--test-size", type=int, help="test crop")
    p.add_argument("--views", type=catalog.parse_views, help="video test views CLIPSxCROPS, e.g. 10x3")
    p.add_argument("--throughput", action="store_true", help="also time inference and training steps")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:i]")
    p.add_argument("--batch-size", type=int, default=2, help="clips (images) per step for --throughput")
    p.add_argument("--options", nargs="+", default=["eager", "channels_last", "bf16", "compile"],
                   help="execution options for --throughput: eager, channels_last, bf16, compile, or '+' "
                        "combinations such as channels_last+bf16")
    p.add_argument("--modes", nargs="+", default=["inference", "train"], choices=["inference", "train"])
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    p.add_argument("--repeats", type=int, default=5, help="timed steps per round (median over all reported)")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the whole timing loop, interleaved, and pool the steps (for shared machines)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads for the run")
    p.add_argument("--peak-tflops", type=float,
                   help="dense bf16 peak TFLOP/s of the device, for the MFU column (default: from the GPU's name, "
                        "see rs_image.benchmark.throughput.GPU_PEAK_BF16_TFLOPS; none on CPUs)")
    p.add_argument("--format", choices=["md", "csv", "json"], default="md")
    p.add_argument("--output", help="write the report here instead of stdout")
    p.add_argument("--plot", help="PNG of reported Kinetics-400 top-1 vs GFLOPs x views (each top-1 only at the "
                                  "input and views it was reported at)")
    p.add_argument("--cache", default=DEFAULT_CACHE,
                   help="pinned fvcore counts (used only where the architecture fingerprint matches)")
    p.add_argument("--no-cache", action="store_true", help="recount everything with fvcore")
    p.add_argument("--zoo", help="write the model zoo page (e.g. MODEL_ZOO.md) and update the pinned counts")
    p.add_argument("--model-table", help="write the README tables (e.g. docs/model_table.md)")
    return p.parse_args(argv)


def report(argv: Optional[Sequence[str]] = None) -> int:
    """The command; a user's mistake raises :class:`UserError`."""
    args = parse_args(argv)
    # The library logs its progress (e.g. which model fvcore is counting); show it on stderr.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    if (args.zoo or args.model_table) and not os.path.exists(args.cache):
        raise UserError(f"--zoo / --model-table update the pinned counts, and {args.cache} does not exist; run from a "
                        "checkout or pass --cache FILE")
    use_cache = not args.no_cache and os.path.exists(args.cache)
    cache = counts.CountsCache(args.cache) if use_cache else None
    if args.zoo or args.model_table:
        write_pages(args.zoo, args.model_table, cache or counts.CountsCache(args.cache))
        return 0

    models = build_catalog()
    specs = [s.with_overrides(args.frames, args.size, args.test_size, args.views) for s in models.resolve(args.models)]
    count_rows = tables.count_rows(specs, cache=cache)
    plot_points: List[plot.PlotPoint] = []
    if args.plot:
        # A reported top-1 belongs to the input it was measured at: never pair it with another input's cost.
        plot_points = plot.plot_points(count_rows)
        left_out = plot.top1_input_mismatches(count_rows)
        if not plot_points:
            why = ("; ".join(left_out) + ". Plot without --frames/--size/--test-size/--views overrides") if left_out \
                else "no video model with a reported Kinetics-400 top-1 among the models"
            eprint(f"--plot refused: nothing to plot at the inputs the top-1 numbers were reported at: {why}")
            return 2
        for line in left_out:
            eprint(f"--plot leaves out {line}")

    results: List[throughput.ThroughputResult] = []
    machine = None
    if args.throughput:
        machine = throughput.machine_info(args.device)
        eprint("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
        # Models interleaved per option and everything repeated in rounds, so that drifting load from other
        # processes affects all configurations alike; rounds are pooled by merge_rounds.
        for round_ in range(args.rounds):
            for mode in args.modes:
                for option in args.options:
                    for spec in specs:
                        eprint(f"round {round_ + 1}/{args.rounds}: timing {spec.name} {mode} {option} ...")
                        r = throughput.measure_throughput(
                            spec.build, spec.input_size, mode=mode, option=option, batch_size=args.batch_size,
                            device=args.device, warmup=args.warmup, repeats=args.repeats, name=spec.name,
                        )
                        results.append(r)
                        eprint(f"  {r.median_ms:.1f} ms/step, {r.clips_per_s:.2f} clips/s, load {r.load_1min} "
                                      f"{r.error}")
        results = throughput.merge_rounds(results)
    peak = args.peak_tflops
    if peak is None and machine is not None and isinstance(machine.get("gpu_peak_bf16_tflops"), float):
        peak = machine["gpu_peak_bf16_tflops"]
    if machine is not None and args.peak_tflops is not None:
        machine["gpu_peak_bf16_tflops"] = f"{args.peak_tflops:g} (--peak-tflops)"
    throughput_rows = tables.throughput_rows(results, count_rows, peak_tflops=peak)

    if args.format == "md":
        text = tables.rows_to_markdown(count_rows, throughput_rows, machine)
    elif args.format == "csv":
        text = tables.rows_to_csv(count_rows + throughput_rows)
    else:
        text = tables.rows_to_json(count_rows, throughput_rows, machine)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if args.plot:
        plot.plot_accuracy_vs_flops(plot_points, args.plot)
        eprint(f"wrote {args.plot}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``rs-report``: a user's mistake ends with one line on stderr and exit status 2."""
    return run_cli(lambda: report(argv), "model_report")


if __name__ == "__main__":
    sys.exit(main())

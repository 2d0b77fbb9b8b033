#!/usr/bin/env python
"""``rs-gpu-check``: the CUDA code paths on one GPU, one table (``tools/gpu_check.sh`` adds the nvidia-smi probe).

The checks and their runner are :mod:`rs_video.benchmark.gpu_check` (its docstring lists the rows);
``--dry-run`` (automatic without a GPU) runs the same steps on the CPU at the smallest sizes. The exit
status is 1 when a row failed, else 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

from rs_image.report.tables import markdown_table
from rs_video.benchmark.gpu_check import (CHECK_NAMES, CHECKS, DEFAULT_BUDGET_S, DRY_SIZES, GPU_SIZES,
                                          INJECTED_HANG_TIMEOUT_S, THROUGHPUT_MODELS, Context, Runner,
                                          rank_main, throughput_rows)


# ----------------------------------------------------------------------------------------------------
# The table
def _cell(value: Any, digits: int = 1) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else "–"
    return str(value).replace("|", "/")


def format_table(rows: Sequence[Dict[str, Any]]) -> str:
    """The rows as one markdown table (TFLOP/s to 3 significant digits below 100: tiny on a CPU, large on a GPU)."""
    header = ["check", "what ran", "status", "time (s)", "clips/s", "TFLOP/s", "MFU", "peak mem (MiB)", "detail"]
    body = []
    for r in rows:
        tflops = r.get("tflops")
        if isinstance(tflops, (int, float)):
            tflops = f"{tflops:.0f}" if tflops >= 100 else f"{tflops:.3g}"
        cells = [r["check"], r["what"], r["status"], _cell(r.get("seconds")), _cell(r.get("clips_per_s"), 2),
                 _cell(tflops), _cell(r.get("mfu")),
                 _cell(r.get("peak_mem_mib"), 0), _cell(r.get("detail"))]
        body.append(cells)
    return markdown_table(header, body)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="the same steps on the CPU at the smallest sizes")
    p.add_argument("--expect-gpu", action="store_true", help=argparse.SUPPRESS)  # nvidia-smi saw a GPU
    p.add_argument("--only", nargs="+", choices=CHECK_NAMES + ("throughput",), help="run only these rows")
    p.add_argument("--batch-size", type=int, help="clips per step of the throughput rows (default 8 on a GPU)")
    p.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the GPU for MFU (default: by its name)")
    p.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                   help="time for the whole run; rows that do not fit are skipped (default %(default)s)")
    p.add_argument("--timeout-s", type=float, help="one time-out for every check (default: per check)")
    p.add_argument("--workdir", help="where data, logs and outputs go (default: a temporary folder)")
    p.add_argument("--keep-workdir", action="store_true", help="keep it even when every row passed")
    p.add_argument("--inject-failure", nargs="+", default=[], choices=CHECK_NAMES, metavar="CHECK",
                   help="make these checks raise (to see a failing row)")
    p.add_argument("--inject-hang", nargs="+", default=[], choices=CHECK_NAMES, metavar="CHECK",
                   help=f"make these checks hang (to see a time-out; {INJECTED_HANG_TIMEOUT_S:.0f} s unless --timeout-s)")
    p.add_argument("--rank-check", help=argparse.SUPPRESS)
    p.add_argument("--context", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.rank_check:  # inside torchrun
        with open(args.context) as f:
            rank_main(args.rank_check, Context.from_json(f.read()), args.result)
        return 0

    started = time.monotonic()
    workdir = args.workdir or tempfile.mkdtemp(prefix="gpu_check_")
    os.makedirs(workdir, exist_ok=True)
    ctx = Context(device="cpu", dry_run=True, workdir=workdir, sizes=DRY_SIZES,
                  video_dir=os.path.join(workdir, "data", "videos"), image_dir=os.path.join(workdir, "data", "images"),
                  decode_video=os.path.join(workdir, "data", "decode_320x240.mp4"),
                  inject_failure=tuple(args.inject_failure), inject_hang=tuple(args.inject_hang))
    runner = Runner(ctx, args.budget_s)
    found = runner.run("probe", 120)
    info = found.get("info", {})
    exit_code = 0
    if found["status"] != "pass":
        print(f"gpu_check: the probe failed: {found['detail']}", file=sys.stderr)
        return 1
    if info["cuda_available"] and not args.dry_run:
        sizes = GPU_SIZES if args.batch_size is None else dataclasses.replace(GPU_SIZES, bench_batch=args.batch_size)
        ctx = dataclasses.replace(ctx, device="cuda", dry_run=False, sizes=sizes,
                                  peak_tflops=args.peak_tflops or info.get("peak_bf16_tflops"))
        title = (f"GPU check on {info['gpu']} (compute {info['capability']}, {info['gpu_memory_gib']} GiB): torch "
                 f"{info['torch']}, CUDA {info['torch_cuda']}, cuDNN {info['cudnn']}, NCCL {info['nccl']}, torchcodec "
                 f"{info['torchcodec']}; MFU against a dense bf16 peak of "
                 + (f"{ctx.peak_tflops:g} TFLOP/s" if ctx.peak_tflops else "n/a (unknown GPU; --peak-tflops sets it)"))
    else:
        if info["cuda_available"]:
            why = "--dry-run"
        elif args.expect_gpu:
            why = (f"nvidia-smi lists a GPU but torch {info['torch']} (CUDA {info['torch_cuda']}) cannot use it; "
                   "the GPU paths are NOT checked")
            exit_code = 1
        else:
            why = "no CUDA device"
        print(f"gpu_check: {why}: dry run of the same steps on the CPU", file=sys.stderr)
        if args.batch_size is not None:
            ctx = dataclasses.replace(ctx, sizes=dataclasses.replace(DRY_SIZES, bench_batch=args.batch_size))
        title = (f"GPU check, dry run on the CPU ({why}): torch {info['torch']}, torchcodec {info['torchcodec']}; "
                 "smallest sizes, CUDA-only checks skipped")
    runner.ctx = ctx
    selected = set(args.only or CHECK_NAMES + ("throughput",))

    rows: List[Dict[str, Any]] = []
    prepared = runner.run("prepare_data", 300)
    if prepared["status"] != "pass":
        print(f"gpu_check: could not make the test data: {prepared['detail']} (log {prepared.get('log')})",
              file=sys.stderr)
        return 1
    for check in CHECKS:
        if check.name not in selected:
            continue
        print(f"gpu_check: {check.name} ...", file=sys.stderr, flush=True)
        # An injected hang only needs to show the time-out row: a short limit, the other checks keep theirs.
        limit = args.timeout_s or (INJECTED_HANG_TIMEOUT_S if check.name in ctx.inject_hang else check.timeout_s)
        result = runner.run(check.name, limit)
        what = check.dry_run if ctx.dry_run and check.dry_run != "-" else check.gpu_run
        rows.append(dict(result, check=check.name, what=what))
        print(f"gpu_check: {check.name}: {result['status']} ({result.get('seconds', '–')} s)", file=sys.stderr,
              flush=True)
    if "throughput" in selected:
        print("gpu_check: throughput ...", file=sys.stderr, flush=True)
        rows += throughput_rows(ctx, runner, THROUGHPUT_MODELS)

    failed = [r for r in rows if r["status"] == "FAIL"]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("pass", "skip", "FAIL")}
    print(f"## {title}\n")
    print(format_table(rows))
    print(f"\n{counts['pass']} pass, {counts['skip']} skip, {counts['FAIL']} FAIL in "
          f"{time.monotonic() - started:.0f} s. TFLOP/s: 2 x fvcore forward MACs (conv + linear) x clips/s for "
          "inference, 3 x that for training; MFU = TFLOP/s / dense bf16 peak (fp32 rows too); peak memory: "
          + ("torch.cuda.max_memory_allocated." if ctx.device == "cuda" else "peak resident set size (CPU)."))
    if failed or args.keep_workdir or args.workdir:
        print(f"Logs and outputs: {workdir}" + "".join(f"\n  {r['check']}: {r['log']}" for r in failed if r.get("log")))
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else exit_code


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""``rs-benchmark-trainer``: ms per optimizer step of the engine's Trainer on in-memory data
(:mod:`rs_image.benchmark.trainer`), for one or several checkouts.

Each ``--repo`` is timed in its own process (``python -m rs_image.benchmark.trainer`` with that checkout on
``PYTHONPATH``), the repos interleaved over ``--rounds``; the medians and their ratio to the first repo are
printed.

    rs-benchmark-trainer --repo /path/to/old/checkout --repo . --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path



def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", action="append", required=True, help="checkout to time (repeat to compare)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--log-period", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    results = {repo: [] for repo in args.repo}
    for round_ in range(args.rounds):
        for repo in args.repo:
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(Path(repo).resolve()))
            done = subprocess.run(
                [sys.executable, "-m", "rs_image.benchmark.trainer", str(args.steps), str(args.log_period),
                 str(args.threads)], capture_output=True, text=True, env=env, check=False,
            )
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            results[repo].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {round_ + 1}: {repo}: {results[repo][-1]}", file=sys.stderr)
    load = os.getloadavg()
    print(f"{args.steps} steps, LOG_PERIOD {args.log_period}, {args.threads} thread(s), {args.rounds} rounds, "
          f"load average {load[0]:.1f}/{load[1]:.1f}")
    base = None
    for repo, rows in results.items():
        step = [r["step_ms"] for r in rows]
        loop = [r["loop_ms"] for r in rows]
        med_step, med_loop = statistics.median(step), statistics.median(loop)
        base = base or (med_step, med_loop)
        print(f"{repo}: step {med_step:.2f} ms (range {min(step):.2f}-{max(step):.2f}, x{med_step / base[0]:.3f}), "
              f"loop {med_loop:.2f} ms/step (range {min(loop):.2f}-{max(loop):.2f}, x{med_loop / base[1]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Time the training loop itself: ms per optimizer step of the engine's Trainer on in-memory data.

The data set hands out ready tensors and the model is tiny, so what is timed is the loop around the model
(device transfers, syncs, logging, EMA, scheduler), the part the engine owns. Several checkouts can be
compared in one run: each ``--repo`` is timed in its own subprocess, the repos interleaved over
``--rounds``, and the medians and their ratio to the first repo are printed.

    python tools/benchmark_trainer.py --repo /path/to/old/checkout --repo . --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import json, statistics, sys, tempfile, time, warnings
warnings.filterwarnings("ignore", category=FutureWarning)
sys.path.insert(0, sys.argv[1])
import torch
from torch.utils.data import Dataset
from rs_image.engine import ImageTask, Trainer, load_config

torch.set_num_threads(int(sys.argv[4]))

class Images(Dataset):
    def __len__(self):
        return 4096
    def __getitem__(self, index):
        g = torch.Generator().manual_seed(int(index))
        return {"image": torch.randn(3, 32, 32, generator=g), "label": int(index) % 4, "index": int(index)}

class Task(ImageTask):
    def build_dataset(self, cfg, split):
        return Images()

steps, log_period = int(sys.argv[2]), int(sys.argv[3])
with tempfile.TemporaryDirectory() as out:
    opts = ["TASK", "image", "MODEL.NAME", "resnetrs50", "MODEL.NUM_CLASSES", "4",
            "MODEL.OVERRIDES", "{'stage_widths': (8, 16, 32, 64), 'stage_depths': (1, 1, 1, 1), 'stem_width': 8}",
            "OUTPUT_DIR", out, "DEVICE", "cpu", "DATA_LOADER.NUM_WORKERS", "0", "PROGRESS_BAR", "False",
            "TENSORBOARD", "False", "TRAIN.BATCH_SIZE", "4", "SOLVER.MAX_EPOCH", "1", "SOLVER.WARMUP_EPOCHS", "0",
            "TRAIN.EVAL_PERIOD", "0", "TEST.ENABLE", "False", "LOG_PERIOD", str(log_period),
            "TRAIN.MAX_STEPS_PER_EPOCH", str(steps), "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32"]
    trainer = Trainer(load_config(None, opts), Task())
    times = []
    step = trainer._train_step if hasattr(trainer, "_train_step") else trainer.run_step
    original = step
    def timed(*args, **kwargs):
        tic = time.perf_counter()
        result = original(*args, **kwargs)
        times.append(time.perf_counter() - tic)
        return result
    name = "_train_step" if hasattr(trainer, "_train_step") else "run_step"
    tic = time.perf_counter()
    setattr(trainer, name, timed)
    trainer.train()
    total = time.perf_counter() - tic
print(json.dumps({"step_ms": 1000 * statistics.median(times[5:]), "loop_ms": 1000 * total / steps}))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", action="append", required=True, help="checkout to time (repeat to compare)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--log-period", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    results = {repo: [] for repo in args.repo}
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    for round_ in range(args.rounds):
        for repo in args.repo:
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, str(Path(repo).resolve()), str(args.steps), str(args.log_period),
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

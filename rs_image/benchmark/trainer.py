"""The training loop's own cost: ms per optimizer step of :class:`rs_image.engine.Trainer` on in-memory data.

The data set hands out ready tensors and the model is tiny, so what is timed is the loop around the model
(device transfers, syncs, logging, EMA, scheduler), the part the engine owns. A hook (:class:`StepTimer`)
records the time between consecutive ``after_step`` events; nothing of the trainer is patched.

Run as ``python -m rs_image.benchmark.trainer STEPS LOG_PERIOD THREADS``, it prints one JSON line; that is how
``rs-benchmark-trainer`` times several checkouts side by side (each in a process whose ``PYTHONPATH`` is
the checkout).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

import torch
from torch.utils.data import Dataset

from rs_image.engine import Hook, ImageTask, Trainer, load_config

__all__ = ["StepTimer", "time_training_loop"]


class StepTimer(Hook):
    """Seconds between consecutive ``after_step`` events (the first step is timed from ``before_train``)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: List[float] = []
        self._last: Optional[float] = None

    def before_train(self) -> None:
        self._last = time.perf_counter()

    def after_step(self, epoch: int, step: int) -> None:
        now = time.perf_counter()
        self.times.append(now - self._last)
        self._last = now


class _Images(Dataset):
    def __len__(self) -> int:
        return 4096

    def __getitem__(self, index: int) -> Dict[str, Any]:
        g = torch.Generator().manual_seed(int(index))
        return {"image": torch.randn(3, 32, 32, generator=g), "label": int(index) % 4, "index": int(index)}


class _InMemoryTask(ImageTask):
    def build_dataset(self, cfg, split):
        return _Images()


def time_training_loop(steps: int = 200, log_period: int = 20, threads: int = 1) -> Dict[str, float]:
    """``{"step_ms": median ms per step after 5 warm-up steps, "loop_ms": train() wall time / steps}`` of a tiny
    ResNet-RS at batch 4, 32 px, on the CPU."""
    torch.set_num_threads(threads)
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        opts = ["TASK", "image", "MODEL.NAME", "resnetrs50", "MODEL.NUM_CLASSES", "4",
                "MODEL.OVERRIDES", "{'stage_widths': (8, 16, 32, 64), 'stage_depths': (1, 1, 1, 1), 'stem_width': 8}",
                "OUTPUT_DIR", out, "DEVICE", "cpu", "DATA_LOADER.NUM_WORKERS", "0", "PROGRESS_BAR", "False",
                "TENSORBOARD", "False", "TRAIN.BATCH_SIZE", "4", "SOLVER.MAX_EPOCH", "1", "SOLVER.WARMUP_EPOCHS", "0",
                "TRAIN.EVAL_PERIOD", "0", "TEST.ENABLE", "False", "LOG_PERIOD", str(log_period),
                "TRAIN.MAX_STEPS_PER_EPOCH", str(steps), "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32"]
        trainer = Trainer(load_config(None, opts), _InMemoryTask())
        trainer.register_hooks([timer])
        start = time.perf_counter()
        trainer.train()
        total = time.perf_counter() - start
    return {"step_ms": 1000 * statistics.median(timer.times[5:]), "loop_ms": 1000 * total / steps}


if __name__ == "__main__":
    steps, period, threads = (int(v) for v in sys.argv[1:4])
    print(json.dumps(time_training_loop(steps, period, threads)))

"""Helpers shared by the tests (one place): tiny configs and in-memory tasks for the engine, state
comparisons, the environment of subprocess runs, the one-line CLI error check."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pytest
import torch
from torch.utils.data import Dataset

from rs_image.engine import ImageTask
from rs_video.task import VideoTask

ROOT = Path(__file__).resolve().parents[1]

TINY_ARCH = "{'stage_widths': (8, 16, 32, 64), 'stage_depths': (1, 1, 1, 1), 'stem_width': 8}"


# ------------------------------------------------------------------------------------------------------
# Small in-test data following the item-dict contract of the data builders
# ------------------------------------------------------------------------------------------------------
class TensorSamples(Dataset):
    """Seeded random samples whose mean depends on the label; ``views`` > 1 gives test-mode items."""

    def __init__(self, num: int, key: str, shape: Sequence[int], num_classes: int = 4, seed: int = 0,
                 views: int = 1, failed: Sequence[int] = (), nan_labels: Sequence[int] = ()) -> None:
        self.num, self.key, self.shape, self.num_classes, self.seed = num, key, tuple(shape), num_classes, seed
        self.views, self.failed, self.nan_labels = views, set(failed), set(nan_labels)
        self.test_mode = views > 1 or bool(failed)

    @property
    def num_videos(self) -> int:
        return self.num

    @property
    def num_views(self) -> int:
        return self.views

    def __len__(self) -> int:
        return self.num * self.views

    def __getitem__(self, index: int) -> Dict[str, Any]:
        sample, view = divmod(index, self.views)
        label = sample % self.num_classes
        g = torch.Generator().manual_seed(self.seed * 10_000 + sample * 100 + view)
        x = torch.randn(self.shape, generator=g) * 0.5 + (label - 1.5) * 0.5
        if label in self.nan_labels:
            x = torch.full(self.shape, float("nan"))
        item: Dict[str, Any] = {self.key: x, "label": label}
        if self.key == "video":
            item.update(video_index=sample, view_index=view)
        else:
            item["index"] = sample
        if self.test_mode:
            item["failed"] = sample in self.failed
            if item["failed"]:
                item[self.key] = torch.zeros(self.shape)
        return item


class TensorVideoTask(VideoTask):
    def __init__(self, num_train: int = 8, nan_labels: Sequence[int] = ()) -> None:
        self.num_train, self.nan_labels = num_train, nan_labels

    def build_dataset(self, cfg, split):
        shape = (3, cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE)
        if split == "train":
            return TensorSamples(self.num_train, "video", shape, cfg.MODEL.NUM_CLASSES, seed=1, nan_labels=self.nan_labels)
        if split == "val":
            return TensorSamples(5, "video", shape, cfg.MODEL.NUM_CLASSES, seed=2)
        views = cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS
        return TensorSamples(4, "video", shape, cfg.MODEL.NUM_CLASSES, seed=3, views=views, failed=(1,))


class TensorImageTask(ImageTask):
    def build_dataset(self, cfg, split):
        shape = (3, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE)
        return TensorSamples(12 if split == "train" else 5, "image", shape, cfg.MODEL.NUM_CLASSES,
                             seed=1 if split == "train" else 2)


def tiny_opts(output_dir: Path, task: str = "video", *extra: str) -> List[str]:
    model = "rs3d_50" if task == "video" else "resnetrs50"
    return [
        "TASK", task, "MODEL.NAME", model, "MODEL.NUM_CLASSES", "4", "MODEL.OVERRIDES", TINY_ARCH,
        "OUTPUT_DIR", str(output_dir), "DEVICE", "cpu", "DATA_LOADER.NUM_WORKERS", "0", "PROGRESS_BAR", "False",
        "TENSORBOARD", "False", "TRAIN.BATCH_SIZE", "2", "TEST.BATCH_SIZE", "4", "SOLVER.MAX_EPOCH", "1",
        "SOLVER.WARMUP_EPOCHS", "0", "SOLVER.BASE_LR", "2.56", "DATA.NUM_FRAMES", "4", "DATA.TRAIN_CROP_SIZE", "32",
        "DATA.TEST_CROP_SIZE", "32", "TEST.NUM_ENSEMBLE_VIEWS", "2", "TEST.NUM_SPATIAL_CROPS", "1", "LOG_PERIOD", "1",
        *extra,
    ]



def records(output_dir: Path) -> List[Dict[str, Any]]:
    """The records of a run's ``metrics.jsonl``."""
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


def trainer_state(trainer: Any) -> Dict[str, torch.Tensor]:
    """Weights, EMA weights and SGD momentum of a trainer, copied."""
    state = {f"model.{k}": v.detach().clone() for k, v in trainer.model.state_dict().items()}
    state.update({f"ema.{k}": v.detach().clone() for k, v in trainer.ema.module.state_dict().items()})
    for pid, s in trainer.optimizer.state_dict()["state"].items():
        state[f"momentum.{pid}"] = s["momentum_buffer"].clone()
    return state


def max_diff(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> float:
    """The largest |difference| of the floating-point entries of two state dicts with the same keys."""
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


def subprocess_env() -> Dict[str, str]:
    """One thread per process, and this checkout importable, for the runs the tests start."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def fails_with(main, argv, capsys, *expected: str) -> str:
    """``main(argv)`` ends with exit status 2 and one line on stderr holding every ``expected`` text."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err

"""Gradient accumulation (TRAIN.GRAD_ACCUM_STEPS) and the global batch with several clips per video
(DATA.TRAIN_CROP_NUM_TEMPORAL x AUG.NUM_SAMPLE): the update of N micro-batches equals one batch N times larger
(BN frozen), DDP all-reduces once per optimizer step, the learning rate follows samples per optimizer step,
resume is exact."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from rs_image.engine import ImageTask, Trainer, load_config
from rs_image.engine.hooks import Hook
from tests.distributed import spawn_two_ranks
from tests.helpers import TensorSamples, max_diff as _max_diff, tiny_opts, trainer_state as _state



pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks


class FrozenBN(nn.Module):
    """The model with every BatchNorm kept in eval mode (running statistics, no batch statistics)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def train(self, mode: bool = True) -> "FrozenBN":
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Images16(ImageTask):
    """16 in-memory training images; ``frozen_bn`` wraps the model in :class:`FrozenBN`."""

    def __init__(self, frozen_bn: bool = True) -> None:
        self.frozen_bn = frozen_bn

    def create_model(self, cfg):
        model = super().create_model(cfg)
        return FrozenBN(model) if self.frozen_bn else model

    def build_dataset(self, cfg, split):
        shape = (3, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE)
        return TensorSamples(16, "image", shape, cfg.MODEL.NUM_CLASSES, seed=4)


def _opts(out: Path, batch: int, accum: int, *extra: str):
    # No dropout or drop-path (their masks would be drawn per micro-batch), no validation.
    return tiny_opts(out, "image", "TRAIN.BATCH_SIZE", str(batch), "TRAIN.GRAD_ACCUM_STEPS", str(accum),
                     "MODEL.DROPOUT_RATE", "0", "MODEL.DROP_PATH_RATE", "0", "TRAIN.EVAL_PERIOD", "0",
                     "SOLVER.BASE_LR", "0.4", "SOLVER.BASE_BATCH_SIZE", "8", *extra)


def _train(out: Path, batch: int, accum: int, frozen_bn: bool = True, *extra: str) -> Trainer:
    trainer = Trainer(load_config(None, _opts(out, batch, accum, *extra)), Images16(frozen_bn))
    trainer.initial_state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    return trainer


@pytest.mark.slow
def test_four_micro_batches_of_two_give_the_update_of_one_batch_of_eight(tmp_path):
    large = _train(tmp_path / "large", 8, 1)
    micro = _train(tmp_path / "micro", 2, 4)
    # Same samples per optimizer step: same learning rate rule, same number of steps, schedule and EMA.
    assert (large.global_batch, micro.global_batch) == (8, 8) and large.plan.peak_lr == micro.plan.peak_lr == pytest.approx(0.4)
    assert large.steps_per_epoch == micro.steps_per_epoch == 2 and large.global_step == micro.global_step == 2
    assert micro.ema.num_updates == 2 and micro.scheduler.last_epoch == 2
    assert micro.optimizer.param_groups[0]["lr"] == large.optimizer.param_groups[0]["lr"]
    trained = large.model.state_dict()
    moved = [float((trained[k] - v).abs().max()) for k, v in large.initial_state.items() if v.is_floating_point()]
    assert max(moved) > 1e-2
    assert _max_diff(_state(micro), _state(large)) <= 1e-6
    # The caveat: with BN in train mode each micro-batch is normalised with its own statistics.
    bn_micro, bn_large = _train(tmp_path / "bn_micro", 2, 4, False), _train(tmp_path / "bn_large", 8, 1, False)
    assert _max_diff(_state(bn_micro), _state(bn_large)) > 1e-4


def test_steps_count_optimizer_steps_and_the_log_counts_the_global_batch(tmp_path):
    trainer = _train(tmp_path, 2, 3, True, "TRAIN.CHECKPOINT_STEP_PERIOD", "1")
    assert trainer.steps_per_epoch == 16 // 6 == 2 and trainer.global_step == 2 and trainer.global_batch == 6
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    assert [r["step"] for r in train] == [1, 2]  # LOG_PERIOD 1: one record per optimizer step
    for record in train:
        assert record["samples_per_s"] == pytest.approx(6 / record["step_time"])
    state = torch.load(tmp_path / "checkpoints" / "last.pyth", weights_only=True)
    assert state["sampler"]["grad_accum_steps"] == 3 and state["global_step"] == 2


class _Stop(Exception):
    pass


class StopAfter(Hook):
    """Raises after optimizer step ``step`` of ``epoch`` (after the checkpointer has run): a crash."""

    def __init__(self, epoch: int, step: int) -> None:
        super().__init__()
        self.epoch, self.step = epoch, step

    def after_step(self, epoch, step):
        if (epoch, step) == (self.epoch, self.step):
            raise _Stop


def _video_opts(data: Path, out: Path, workers: int):
    return tiny_opts(
        out, "video", "DATA.PATH_TO_DATA_DIR", str(data), "MODEL.NUM_CLASSES", "2", "DATA.DECODER", "pyav",
        "DATA.TRAIN_JITTER_SCALES", "[40, 48]", "DATA.TEST_CROP_SIZE", "40", "DATA.MAX_FAILURE_FRACTION", "0.5",
        "TRAIN.BATCH_SIZE", "1", "DATA.TRAIN_CROP_NUM_TEMPORAL", "2", "AUG.NUM_SAMPLE", "2",
        "TRAIN.GRAD_ACCUM_STEPS", "2",
        "SOLVER.BASE_LR", "0.8", "SOLVER.BASE_BATCH_SIZE", "16", "TRAIN.EVAL_PERIOD", "0",
        "TRAIN.CHECKPOINT_STEP_PERIOD", "2", "MODEL.DROP_PATH_RATE", "0.2", "MODEL.DROPOUT_RATE", "0.2",
        "DATA_LOADER.NUM_WORKERS", str(workers), "DATA_LOADER.PERSISTENT_WORKERS", "True",
    )


@pytest.mark.slow
def test_several_clips_per_video_and_accumulation_on_real_videos_resume_exactly(tmp_path):
    from tests.videos import list_dataset

    data = list_dataset(tmp_path / "data", splits=("train",), num_videos=6, broken=("truncated",), width=48,
                        height=40)  # 7 items: 3 optimizer steps of 2 micro-batches of 1 video x 2 windows x 2 augs
    reference = Trainer(load_config(None, _video_opts(data, tmp_path / "reference", 0)))
    seen = []
    reference.model.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    assert reference.global_batch == 1 * 4 * 2 and reference.plan.peak_lr == pytest.approx(0.8 * 8 / 16)
    assert reference.steps_per_epoch == 3
    reference.train()
    assert reference.global_step == 3 and seen == [4] * 6  # 3 steps x 2 micro-batches of 4 clips

    out = tmp_path / "crashed"
    crashed = Trainer(load_config(None, _video_opts(data, out, 2)))
    crashed.hooks.append(StopAfter(epoch=0, step=2))
    with pytest.raises(_Stop):
        crashed.train()
    del crashed
    resumed = Trainer(load_config(None, _video_opts(data, out, 2)))
    assert (resumed.start_epoch, resumed.start_step, resumed.global_step) == (0, 2, 2)
    resumed.train()
    assert _max_diff(_state(resumed), _state(reference)) == 0.0  # bit-exact, with 2 workers against none
    assert multiprocessing.active_children() == []  # the persistent workers ended with train(), not at some gc


# ------------------------------------------------------------------------------------------------------
# Two processes, gloo: one all-reduce per optimizer step, the same update as the larger batch
# ------------------------------------------------------------------------------------------------------
def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    from rs_image.engine import distributed as du

    try:
        results = {}
        for batch, accum in ((2, 1), (1, 2)):
            cfg = load_config(None, _opts(Path(out) / f"b{batch}n{accum}", batch, accum))
            trainer = Trainer(cfg, Images16())
            calls = []

            def counting_allreduce(state, bucket, calls=calls):
                calls.append(len(bucket.gradients()))
                return default_hooks.allreduce_hook(state, bucket)

            trainer.train_step.ddp_model.register_comm_hook(None, counting_allreduce)
            trainer.train()
            results[f"{batch}x{accum}"] = {"state": _state(trainer), "calls": calls, "steps": trainer.global_step,
                                           "global_batch": trainer.global_batch}
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        du.destroy_distributed()


@pytest.mark.slow
def test_ddp_all_reduces_once_per_optimizer_step_and_matches_the_larger_batch(tmp_path):
    r0, r1 = spawn_two_ranks(_ddp_worker, tmp_path)
    large, micro = r0["2x1"], r0["1x2"]
    assert large["global_batch"] == micro["global_batch"] == 4 and large["steps"] == micro["steps"] == 4
    # no_sync on the first micro-batch: the gradients go through the all-reduce once per optimizer step.
    params = sum(large["calls"]) // 4
    assert params > 0 and sum(micro["calls"]) == sum(large["calls"]) == 4 * params
    assert _max_diff(micro["state"], large["state"]) <= 1e-6
    assert _max_diff(r0["1x2"]["state"], r1["1x2"]["state"]) == 0.0  # every rank ends with the same network

"""The trainer's parts say what they need: a user hook written as the hooks module documents it, hooks bound by a
weak reference with their settings from the config, the plan frozen, builders that return what they make."""

from __future__ import annotations

import dataclasses
import gc
import json
import weakref
from pathlib import Path

import pytest

from rs_image.engine import Hook, Trainer, load_config
from rs_image.engine.assembly import TrainingPlan, build_model
from rs_image.engine.hooks import Checkpointer, MetricLogger, TrainingCurves, Validator
from rs_image.recipe import current_lr
from tests.helpers import TensorImageTask, tiny_opts

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class LogLearningRate(Hook):
    """A user's hook, as the docstring of rs_image.engine.hooks writes it."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self.seen = []

    def after_step(self, epoch: int, step: int) -> None:
        if self.trainer.global_step % self.every == 0:
            lr = current_lr(self.trainer.optimizer)
            self.seen.append((epoch, step, self.trainer.global_step))
            self.trainer.writer.write("lr", {"lr": lr}, self.trainer.global_step)


def _trainer(out: Path, *extra: str) -> Trainer:
    return Trainer(load_config(None, tiny_opts(out, "image", "SOLVER.MAX_EPOCH", "2", "TRAIN.EVAL_PERIOD", "2",
                                               "TRAIN.CHECKPOINT_STEP_PERIOD", "4", "LOG_PERIOD", "3", *extra)),
                   TensorImageTask())


def test_a_user_hook_runs_after_the_default_ones_and_writes_its_records(tmp_path):
    trainer = _trainer(tmp_path)
    hook = LogLearningRate(every=2)
    trainer.register_hooks([hook])
    assert [type(h) for h in trainer.hooks] == [MetricLogger, Checkpointer, Validator, TrainingCurves, LogLearningRate]
    trainer.train()
    # 12 images, batch 2: 6 steps per epoch, 2 epochs; every second global step
    assert hook.seen == [(0, 2, 2), (0, 4, 4), (0, 6, 6), (1, 2, 8), (1, 4, 10), (1, 6, 12)]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in records if r["type"] == "lr"] == [2, 4, 6, 8, 10, 12]


def test_hooks_take_their_settings_from_the_config_and_hold_the_trainer_weakly(tmp_path):
    trainer = _trainer(tmp_path, "TRAIN.CHECKPOINT_PERIOD", "2", "BN.USE_PRECISE_STATS", "True",
                       "BN.NUM_BATCHES_PRECISE", "3")
    logger_hook, precise, checkpointer, validator, _ = trainer.hooks
    assert (logger_hook.period, precise.num_batches) == (3, 3)
    assert (checkpointer.step_period, checkpointer.epoch_period, validator.period) == (4, 2, 2)
    assert all(h.trainer.plan is trainer.plan for h in trainer.hooks)
    ref = weakref.ref(trainer)
    trainer.close()
    del trainer, logger_hook, precise, checkpointer, validator
    gc.collect()
    assert ref() is None  # no hook keeps a finished trainer (its model, its loaders) alive


def test_the_plan_is_computed_once_and_frozen(tmp_path):
    trainer = _trainer(tmp_path, "TRAIN.GRAD_ACCUM_STEPS", "2", "SOLVER.WARMUP_EPOCHS", "0.5")
    plan = trainer.plan
    # 12 items, batch 2 x 2 micro-batches: 3 optimizer steps per epoch; LR 2.56 per 256 samples x 4 samples
    assert plan == TrainingPlan(batch_size=2, samples_per_item=1, accum_steps=2, world_size=1, global_batch=4,
                                steps_per_epoch=3, max_epoch=2, total_steps=6, warmup_steps=2,
                                peak_lr=pytest.approx(2.56 * 4 / 256))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.steps_per_epoch = 5
    with pytest.raises(AttributeError):
        trainer.steps_per_epoch = 5  # read-only views of the plan
    assert (trainer.steps_per_epoch, trainer.global_batch) == (3, 4)
    trainer.close()


def test_builders_return_what_they_make_and_the_test_model_is_built_the_same_way(tmp_path):
    trainer = _trainer(tmp_path, "MODEL.CHANNELS_LAST", "True")
    model, memory_format = trainer.build_model(initial_weights=False)
    assert memory_format is trainer.memory_format is not None
    cfg, task = trainer.cfg, trainer.task
    same, fmt = build_model(cfg, task, trainer.device)
    assert fmt == memory_format and type(same) is type(model)
    assert [n for n, _ in same.named_parameters()] == [n for n, _ in model.named_parameters()]
    optimizer = trainer.build_optimizer(model)
    assert optimizer is not trainer.optimizer and current_lr(optimizer) == pytest.approx(trainer.plan.peak_lr)
    assert trainer.build_scheduler(optimizer) is not trainer.scheduler and trainer.build_ema(model) is not trainer.ema
    # what the step owns, the trainer shows (checkpoints and hooks read these)
    step = trainer.train_step
    assert (trainer.model, trainer.optimizer, trainer.ema, trainer.global_step) == \
        (step.model, step.optimizer, step.ema, step.global_step)
    trainer.close()

"""What happens around the training loop, as an ordered list of hooks (detectron2's ``HookBase``).

A hook gets its settings in ``__init__`` and a weak reference to the trainer when it is registered
(:meth:`rs_image.engine.Trainer.register_hooks`: ``self.trainer``, a proxy that keeps no trainer alive); the
loop calls its events with no other argument than where it is. The default list
(:meth:`rs_image.engine.Trainer.build_hooks`, settings from the config), in the order every event reaches them:

1. :class:`MetricLogger` ``(period)`` - training metrics every ``LOG_PERIOD`` steps (reduced over processes
   there, the only host sync of the metrics) and the epoch record; it closes the writers last.
2. :class:`PreciseBN` ``(num_batches)`` - recomputes BN statistics with fixed weights (``BN.USE_PRECISE_STATS``); before the
   checkpoint, so that the saved network and the one validated next carry the precise statistics.
3. :class:`Checkpointer` ``(step_period, epoch_period)`` - step checkpoints every ``TRAIN.CHECKPOINT_STEP_PERIOD`` steps and every
   ``TRAIN.CHECKPOINT_MINUTES``, ``last.pyth`` after every epoch, kept copies every ``TRAIN.CHECKPOINT_PERIOD``
   epochs, and the checkpoint of a stop signal; before validation, so that a crash while validating loses
   no training.
4. :class:`Validator` ``(period)`` - single-view validation of the raw and EMA weights every ``TRAIN.EVAL_PERIOD``
   epochs and after the last one, with the training RNG state preserved around it.
5. :class:`TrainingCurves` - at the end, ``training_curves.png`` from ``metrics.jsonl`` (with matplotlib);
   last, so that the file already holds the final validation and the ``done`` record.

Write your own by subclassing :class:`Hook` (override the events you need; read the run through
``self.trainer``: ``global_step``, ``plan``, ``model``, ``optimizer``, ``writer``, ...) and registering it::

    class LogLearningRate(Hook):
        def __init__(self, every: int) -> None:
            super().__init__()
            self.every = every

        def after_step(self, epoch: int, step: int) -> None:
            if self.trainer.global_step % self.every == 0:
                self.trainer.writer.write("lr", {"lr": current_lr(self.trainer.optimizer)}, self.trainer.global_step)

    trainer = Trainer(cfg)
    trainer.register_hooks([LogLearningRate(every=100)])   # after the default ones; or override build_hooks
    trainer.train()
"""

from __future__ import annotations

import logging
import math
import weakref
from typing import Any, Dict

import torch

from rs_image.errors import DataError
from rs_image.recipe import current_lr, ema_decay_at, update_precise_bn
from rs_image.report.curves import write_training_curves

from . import distributed as du
from .logger import plotting_available
from .runtime import preserve_rng

__all__ = ["Hook", "MetricLogger", "PreciseBN", "Checkpointer", "Validator", "TrainingCurves"]

logger = logging.getLogger(__name__)


class Hook:
    """A piece of work around the loop; override the events you need (all do nothing by default).

    Settings come in ``__init__``; ``self.trainer`` is set when the trainer registers the hook (a weak
    proxy: a hook never keeps a finished trainer, its model and its loaders alive)."""

    trainer: Any = None

    def __init__(self) -> None:
        self.trainer = None

    def bind(self, trainer: Any) -> None:
        """Called by :meth:`rs_image.engine.Trainer.register_hooks`."""
        self.trainer = trainer if isinstance(trainer, weakref.ProxyTypes) else weakref.proxy(trainer)

    def before_train(self) -> None:
        """Once, before the first step of this run (also after a resume)."""

    def after_step(self, epoch: int, step: int) -> None:
        """After optimizer step ``step`` (1-based, within 0-based ``epoch``)."""

    def after_epoch(self, epoch: int) -> None:
        """After the last step of ``epoch`` (0-based)."""

    def after_train(self) -> None:
        """Once, after the last epoch (also when training was already complete)."""


def _format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class MetricLogger(Hook):
    """Writes ``train`` records every ``period`` steps (``LOG_PERIOD``) and at the end of each epoch, and a
    ``train_epoch`` record after each epoch.

    The trainer keeps the sums on the device (:attr:`Trainer.step_stats`, :attr:`Trainer.epoch_stats`); they
    are reduced over processes and read here, once per log period, not once per step.
    """

    def __init__(self, period: int) -> None:
        super().__init__()
        self.period = int(period)

    def after_step(self, epoch: int, step: int) -> None:
        trainer = self.trainer
        plan = trainer.plan
        if step % self.period and step != plan.steps_per_epoch:
            return
        loss_sum, count, correct, labelled = du.all_reduce_sum(trainer.step_stats.clone()).tolist()
        trainer.step_stats.zero_()
        times = trainer.timer.pop()
        step_time = times["step"]
        remaining = plan.total_steps - trainer.global_step
        record: Dict[str, Any] = {
            "epoch": epoch + 1,
            "step": step,
            "loss": loss_sum / count if count else float("nan"),
            "lr": current_lr(trainer.optimizer),
            "samples_per_s": plan.global_batch / step_time if step_time else float("nan"),
            "data_time": times["data"],
            "step_time": step_time,
            "eta_s": remaining * step_time if step_time else float("nan"),
        }
        if labelled:
            record["top1"] = 100.0 * correct / labelled
        if trainer.ema is not None:
            record["ema_decay"] = ema_decay_at(trainer.global_step, trainer.cfg.EMA.DECAY, trainer.cfg.EMA.TF_WARMUP)
        trainer.writer.write("train", record, trainer.global_step)
        if trainer.progress is not None:
            trainer.progress.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.3g}")
        else:
            logger.info(
                "epoch %d step %d/%d  loss %.4f  lr %.4g  %.1f samples/s  eta %s", epoch + 1, step,
                plan.steps_per_epoch, record["loss"], record["lr"], record["samples_per_s"],
                _format_eta(record["eta_s"]),
            )

    def after_epoch(self, epoch: int) -> None:
        trainer = self.trainer
        loss_sum, count, failed_reads, fallback_reads = du.all_reduce_sum(trainer.epoch_stats.clone()).tolist()
        trainer.epoch_stats.zero_()
        record = {
            "epoch": epoch + 1,
            "loss": loss_sum / count if count else float("nan"),
            "failed_reads": int(failed_reads),
            "fallback_reads": int(fallback_reads),
            "skipped_steps": trainer.num_skipped_steps,
            "lr": current_lr(trainer.optimizer),
        }
        trainer.writer.write("train_epoch", record, trainer.global_step)
        logger.info("epoch %d/%d done: train loss %.4f, lr %.4g, global step %d", epoch + 1, trainer.plan.max_epoch,
                    record["loss"], record["lr"], trainer.global_step)
        if record["failed_reads"]:
            logger.warning("epoch %d: %d unreadable samples were replaced by others (see the log above for the files)",
                           epoch + 1, record["failed_reads"])
        if record["fallback_reads"]:
            logger.info("epoch %d: %d samples were read by the fallback decoder (the chosen one cannot decode them; "
                        "not failures)", epoch + 1, record["fallback_reads"])
        trainer.last_metrics = {f"train_{k}": v for k, v in record.items()}

    def after_train(self) -> None:
        trainer = self.trainer
        trainer.writer.write("event", {"event": "done", **trainer.last_metrics}, trainer.global_step)
        trainer.writer.close()


class _TaskForward(torch.nn.Module):
    """``net`` called the way the task calls it on a batch (for fvcore's precise BN, which calls ``model(item)``)."""

    def __init__(self, net: torch.nn.Module, task: Any, prepare_input: Any) -> None:
        super().__init__()
        self.net = net
        self.task, self.prepare_input = task, prepare_input

    def forward(self, batch: Dict[str, Any]) -> torch.Tensor:
        return self.task.forward(self.net, self.prepare_input(batch), batch)


class PreciseBN(Hook):
    """Recompute the BN statistics of the raw and EMA networks on ``num_batches`` (``BN.NUM_BATCHES_PRECISE``)
    training batches (fvcore precise BN) of a loader with its own seed, averaged over processes."""

    def __init__(self, num_batches: int) -> None:
        super().__init__()
        self.num_batches = int(num_batches)

    def after_epoch(self, epoch: int) -> None:
        trainer = self.trainer
        loader = trainer.build_train_loader(seed=trainer.cfg.RNG_SEED + 1, epoch=epoch)
        num = min(self.num_batches, len(loader))

        nets = [trainer.model] + ([trainer.ema.module] if trainer.ema is not None else [])
        for net in nets:
            with trainer.autocast(), torch.no_grad():
                # fvcore calls model(item): the wrapper runs the task's forward (a detector takes the boxes too).
                update_precise_bn(_TaskForward(net, trainer.task, trainer.prepare_input), iter(loader), num)
            du.average_bn_buffers(net)
        logger.info("precise BN statistics from %d batches", num)


class Checkpointer(Hook):
    """A step checkpoint inside epochs every ``step_period`` steps (``TRAIN.CHECKPOINT_STEP_PERIOD``, 0: none)
    and when ``TRAIN.CHECKPOINT_MINUTES`` passed (the trainer's ``checkpoint_due``, decided by all ranks),
    ``last.pyth`` after each epoch and a kept copy every ``epoch_period`` epochs (``TRAIN.CHECKPOINT_PERIOD``)
    and after the last; on a stop signal, a checkpoint of the step reached, then
    :class:`~rs_image.engine.preemption.Preempted` (all ranks agreed in the step)."""

    def __init__(self, step_period: int, epoch_period: int) -> None:
        super().__init__()
        self.step_period, self.epoch_period = int(step_period), int(epoch_period)

    def after_step(self, epoch: int, step: int) -> None:
        trainer = self.trainer
        if trainer.stop_requested:  # also after the last step of an epoch: the epoch's hooks run on resume
            trainer.stop_after_step(epoch, step)
        periodic = self.step_period > 0 and step % self.step_period == 0
        if (periodic or trainer.checkpoint_due) and step < trainer.plan.steps_per_epoch:
            trainer.save_checkpoint(epoch, step)

    def after_epoch(self, epoch: int) -> None:
        done = epoch + 1
        keep = done % self.epoch_period == 0 or done == self.trainer.plan.max_epoch
        self.trainer.save_checkpoint(done, 0, keep=keep)


class Validator(Hook):
    """Single-view validation of the raw and the EMA weights every ``period`` epochs (``TRAIN.EVAL_PERIOD``)
    and after the last; logs and records ``val`` metrics."""

    def __init__(self, period: int) -> None:
        super().__init__()
        self.period = int(period)

    def after_epoch(self, epoch: int) -> None:
        trainer = self.trainer
        done = epoch + 1
        if trainer.val_loader is None or self.period <= 0 or not (done % self.period == 0
                                                                   or done == trainer.plan.max_epoch):
            return
        progress = trainer.is_main and trainer.cfg.PROGRESS_BAR
        nets = {"": trainer.model, "ema_": trainer.ema.module if trainer.ema is not None else None}
        results: Dict[str, Dict[str, Any]] = {}
        with preserve_rng():  # validation never changes the training randomness
            for prefix, net in nets.items():
                if net is not None:
                    results[prefix] = trainer.task.evaluate(
                        net, trainer.val_loader, trainer.prepare_input, cfg=trainer.cfg, device=trainer.device,
                        autocast=trainer.autocast(), progress=progress, desc=f"val {prefix.rstrip('_')}".strip(),
                    )
        raw, ema = results[""], results.get("ema_")
        record: Dict[str, Any] = {"epoch": done, **raw}
        if ema is not None:
            record.update({f"ema_{k}": v for k, v in ema.items()})
        trainer.writer.write("val", record, trainer.global_step)
        msg = f"epoch {done} val: {trainer.task.format_metrics(raw)}"
        if ema is not None:
            msg += f" | EMA {trainer.task.format_metrics(ema)}"
        msg += f" ({raw['num_samples']} samples" + (f", {raw['num_failed']} failed)" if raw["num_failed"] else ")")
        logger.info(msg)
        trainer.last_metrics = {f"val_{k}": v for k, v in record.items()}


class TrainingCurves(Hook):
    """``OUTPUT_DIR/training_curves.png`` from ``metrics.jsonl`` after training (rank 0, when matplotlib is
    installed; :func:`rs_image.report.curves.write_training_curves`, also ``tools/plot_metrics.py``)."""

    def after_train(self) -> None:
        trainer = self.trainer
        if not trainer.is_main or not plotting_available():
            return
        try:
            path = write_training_curves(trainer.output_dir)
        except DataError as error:  # e.g. a run that logged no step
            logger.info("training curves not drawn: %s", error)
            return
        logger.info("training curves written to %s", path)

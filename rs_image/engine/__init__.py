"""Training and evaluation engine, task-agnostic: tasks (image here, video in ``rs_video.task``) plug in.

* :mod:`~rs_image.engine.config` - the fvcore ``CfgNode`` defaults, the extension hook, loading and validation
* :mod:`~rs_image.engine.tasks` - the task interface, the registry and the image task
* :class:`~rs_image.engine.trainer.Trainer` - the training loop and the checkpoints, assembled from the builders of
  :mod:`~rs_image.engine.assembly` (the frozen :class:`~rs_image.engine.assembly.TrainingPlan`, the one model
  set-up) around a :class:`~rs_image.engine.train_step.TrainStep` (one optimizer step and what it changes)
* :mod:`~rs_image.engine.hooks` - metrics, precise BN, checkpoints and validation around the loop, with settings
* :func:`~rs_image.engine.inference.run_test` - multi-view testing
* :mod:`~rs_image.engine.runtime`, :mod:`~rs_image.engine.samplers`, :mod:`~rs_image.engine.checkpoint`,
  :mod:`~rs_image.engine.distributed`, :mod:`~rs_image.engine.logger`, :mod:`~rs_image.engine.launch`,
  :mod:`~rs_image.engine.preemption` (stop signals, SLURM requeue)
"""

from rs_image.errors import TooManyFailuresError

from .checkpoint import CheckpointError, find_resume_checkpoint, load_checkpoint
from .config import (
    CfgNode,
    ConfigError,
    ConfigKeyError,
    Rule,
    add_config_extension,
    get_cfg,
    load_config,
    save_config,
    validate_cfg,
)
from .evaluator import MultiViewAggregator, MultiViewSummary, evaluate_single_view
from .hooks import Checkpointer, Hook, MetricLogger, PreciseBN, TrainingCurves, Validator
from .inference import run_test
from .launch import launch, run_cli, test_main, train_main
from .preemption import PREEMPTED_EXIT_CODE, Preempted
from .samplers import ResumableDistributedSampler, ShardedEvalSampler
from .tasks import ImageTask, Task, get_task, register_task
from .train_step import NonFiniteLossError, TrainStep
from .trainer import Trainer

__all__ = [
    "CfgNode", "ConfigError", "ConfigKeyError", "Rule", "add_config_extension", "get_cfg", "load_config",
    "save_config", "validate_cfg", "Trainer", "TrainStep", "NonFiniteLossError", "Hook", "MetricLogger", "PreciseBN",
    "Checkpointer", "Validator", "TrainingCurves", "run_test", "TooManyFailuresError", "Task", "ImageTask", "get_task",
    "register_task", "MultiViewAggregator", "MultiViewSummary", "ShardedEvalSampler", "ResumableDistributedSampler",
    "evaluate_single_view", "CheckpointError", "find_resume_checkpoint", "load_checkpoint", "launch", "run_cli",
    "train_main", "test_main", "Preempted", "PREEMPTED_EXIT_CODE",
]

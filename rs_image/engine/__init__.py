"""Training and evaluation engine shared by the image and the video models.

* :mod:`~rs_image.engine.config` - the fvcore ``CfgNode`` defaults, loading with ``_BASE_`` and validation
* :class:`~rs_image.engine.trainer.Trainer` - the training loop (recipe, DDP, checkpoints, exact resume)
* :func:`~rs_image.engine.inference.run_test` - multi-view testing
* :mod:`~rs_image.engine.tasks` - what differs between images and videos
* :mod:`~rs_image.engine.checkpoint`, :mod:`~rs_image.engine.distributed`, :mod:`~rs_image.engine.logger`
"""

from .checkpoint import CheckpointError, find_resume_checkpoint, load_checkpoint
from .config import CfgNode, ConfigError, ConfigKeyError, get_cfg, load_config, save_config, validate_cfg
from .evaluator import MultiViewAggregator, MultiViewSummary, ShardedEvalSampler, evaluate_single_view
from .inference import TooManyFailuresError, run_test
from .launch import launch, test_main, train_main
from .tasks import ImageTask, Task, VideoTask, get_task, register_task
from .trainer import NonFiniteLossError, Trainer

__all__ = [
    "CfgNode", "ConfigError", "ConfigKeyError", "get_cfg", "load_config", "save_config", "validate_cfg",
    "Trainer", "NonFiniteLossError", "run_test", "TooManyFailuresError", "Task", "ImageTask", "VideoTask",
    "get_task", "register_task", "MultiViewAggregator", "MultiViewSummary", "ShardedEvalSampler",
    "evaluate_single_view", "CheckpointError", "find_resume_checkpoint", "load_checkpoint", "launch",
    "train_main", "test_main",
]

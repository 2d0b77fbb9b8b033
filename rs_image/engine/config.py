"""Configuration: the engine's defaults, one extension hook for tasks, loading with ``_BASE_``, validation.

The configuration is an :class:`fvcore.common.config.CfgNode` (yacs). Key names follow SlowFast where
the meaning is the same (``TRAIN.BATCH_SIZE``, ``SOLVER.BASE_LR``, ...), so a SlowFast user feels at home.
Differences worth knowing:

* ``TRAIN.BATCH_SIZE`` / ``TEST.BATCH_SIZE`` are **per process** (per GPU), not per machine.
* ``SOLVER.BASE_LR`` is the learning rate at ``SOLVER.BASE_BATCH_SIZE`` samples per optimizer step;
  the learning rate actually used is ``BASE_LR * global_batch / BASE_BATCH_SIZE`` (linear scaling rule),
  where ``global_batch = TRAIN.BATCH_SIZE x samples per item (the video task's clips per video) x
  TRAIN.GRAD_ACCUM_STEPS x processes``.
* ``BN.MOMENTUM`` uses the PyTorch convention (``running = (1 - m) * running + m * batch``). TensorFlow's
  ``momentum=0.0`` (used by every released ResNet-RS recipe) is PyTorch ``1.0``; see
  :mod:`rs_image.recipe.batchnorm`.

The defaults below describe no particular task: ``TASK``, ``MODEL.NAME`` and ``MODEL.NUM_CLASSES`` start
unset and a task adds its own keys through :func:`add_config_extension` (SlowFast's
``add_custom_config``): the image task (:mod:`rs_image.engine.tasks`) adds ``DATA.CROP_PCT``, the video task
(``rs_video.task``) frames, decoders and test views.

Loading (:func:`load_config`) is fvcore's merging (``_BASE_`` chains, yacs type checks) with messages that
name the key and the file: an unknown key names the closest valid keys, a value of the wrong type names the
expected and the given type, an int is accepted where a float is expected, a removed key names what
replaced it, and a value outside the allowed set names the allowed values. Values are checked by a table
of rules (:data:`RULES`, extended by tasks).

Example::

    cfg = load_config("configs/kinetics/rs3d_50.yaml", ["TRAIN.BATCH_SIZE", "8", "SOLVER.BASE_LR", "0.1"])
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Tuple

import yaml
from fvcore.common.config import CfgNode

from rs_image.errors import UserError
from rs_image.fileio import atomic_write

__all__ = [
    "CfgNode",
    "ConfigError",
    "ConfigKeyError",
    "Rule",
    "RULES",
    "REMOVED_KEYS",
    "add_config_extension",
    "get_cfg",
    "load_config",
    "CONFIG_DIRS",
    "find_config",
    "register_config_dir",
    "merge_config_dict",
    "merge_config_list",
    "register_choices",
    "resolve_auto_values",
    "require_keys",
    "save_config",
    "validate_cfg",
]


class ConfigError(UserError, ValueError):
    """A configuration file or override is invalid. The message names the key (and file)."""


class ConfigKeyError(ConfigError, KeyError):
    """A configuration key does not exist. The message lists the closest valid keys."""


# ----------------------------------------------------------------------------------------------------
# Defaults of the engine (task-agnostic)
# ----------------------------------------------------------------------------------------------------
_C = CfgNode()

# The task ("image", "video", or one registered by a plug-in); required.
_C.TASK = ""
_C.OUTPUT_DIR = "./output"
# Base seed: model initialisation uses RNG_SEED on every rank; every random choice about a training sample
# comes from (RNG_SEED, epoch, sample index, attempt); dropout and drop-path use RNG_SEED + rank.
_C.RNG_SEED = 1
# "auto" (cuda:LOCAL_RANK when CUDA is available, else cpu), "cpu" or "cuda".
_C.DEVICE = "auto"
# torch.use_deterministic_algorithms(True) and no cuDNN autotuning.
_C.DETERMINISTIC = False
# Intra-op CPU threads of each process (torch.set_num_threads); 0 leaves them as they are (PyTorch's default:
# one per core). On a small CPU, 1 leaves a core to the loader workers: faster for tiny networks (the demo's control).
_C.CPU_THREADS = 0
# Log training metrics every LOG_PERIOD optimizer steps (JSON lines, TensorBoard, text log).
_C.LOG_PERIOD = 10
# tqdm progress bar with rate and ETA on rank 0.
_C.PROGRESS_BAR = True
# TensorBoard event files under OUTPUT_DIR/tensorboard (rank 0).
_C.TENSORBOARD = True

# ---------------------------------------------------------------------------- MODEL
_C.MODEL = CfgNode()
# A registered model of the task (rs_image.list_models(), rs_video.list_models()); required.
_C.MODEL.NAME = ""
# Classifier outputs; required (>= 1).
_C.MODEL.NUM_CLASSES = 0
# -1 keeps the value of the model's pretrained_cfg (the released recipe).
_C.MODEL.DROPOUT_RATE = -1.0
_C.MODEL.DROP_PATH_RATE = -1.0
# "stage": constant within a stage, base * k / 5 for stages k = 2..5 (ResNet-RS code);
# "linear": linear in the block index (timm).
_C.MODEL.DROP_PATH_SCHEDULE = "stage"
# Free-form keyword arguments passed to create_model, e.g. stage_widths, stage_depths, stem_width.
_C.MODEL.OVERRIDES = CfgNode(new_allowed=True)
# Activation (gradient) checkpointing: less memory, ~30% more compute.
_C.MODEL.ACT_CHECKPOINT = False
# channels_last (2D) / channels_last_3d (video) memory format for model and inputs.
_C.MODEL.CHANNELS_LAST = False
# Fine-tuning (mmaction2's frozen_stages): -1 = none, 0 = the stem, k = the stem and the first k stages take no
# gradient and keep their BN frozen.
_C.MODEL.FROZEN_STAGES = -1
# SlowFast's name for BN.FREEZE (either one freezes every BN layer).
_C.MODEL.FROZEN_BN = False

# ---------------------------------------------------------------------------- DATA (any task)
_C.DATA = CfgNode()
# The data set's folder (its layout is the task's: image folders, video lists, ...).
_C.DATA.PATH_TO_DATA_DIR = ""
_C.DATA.TRAIN_CROP_SIZE = 224
_C.DATA.TEST_CROP_SIZE = 256
# Random-resized-crop area fraction and aspect ratio of training crops ("inception" crops).
_C.DATA.INCEPTION_AREA = [0.08, 1.0]
_C.DATA.INCEPTION_ASPECT = [0.75, 1.3333333333]
# Per-channel normalisation on the [0, 1] scale (ImageNet statistics, the ResNet-RS convention).
_C.DATA.MEAN = [0.485, 0.456, 0.406]
_C.DATA.STD = [0.229, 0.224, 0.225]
_C.DATA.RANDOM_FLIP = True
_C.DATA.INTERPOLATION = "bilinear"
# Substitutes tried for an unreadable training sample before giving up.
_C.DATA.NUM_RETRIES = 10
# Testing stops with an error when more than this fraction of the samples could not be loaded.
_C.DATA.MAX_FAILURE_FRACTION = 0.05
# Multi-label classification (SlowFast's key; Charades): multi-hot labels, sigmoid + binary cross-entropy, mAP.
_C.DATA.MULTI_LABEL = False

# ---------------------------------------------------------------------------- AUG / MIXUP
_C.AUG = CfgNode()
_C.AUG.RAND_AUGMENT = False
# TF RandAugment level; -1 = the model's randaugment_magnitude.
_C.AUG.RA_MAGNITUDE = -1
_C.AUG.RA_NUM_OPS = 2

_C.MIXUP = CfgNode()
_C.MIXUP.ENABLE = False
_C.MIXUP.ALPHA = 0.8
_C.MIXUP.CUTMIX_ALPHA = 1.0
_C.MIXUP.PROB = 1.0
_C.MIXUP.SWITCH_PROB = 0.5

# ---------------------------------------------------------------------------- DATA_LOADER
_C.DATA_LOADER = CfgNode()
_C.DATA_LOADER.NUM_WORKERS = 8
_C.DATA_LOADER.PIN_MEMORY = True
_C.DATA_LOADER.PERSISTENT_WORKERS = False
_C.DATA_LOADER.PREFETCH_FACTOR = 2

# ---------------------------------------------------------------------------- TRAIN
_C.TRAIN = CfgNode()
_C.TRAIN.ENABLE = True
# Items per process and micro-batch. Global batch = BATCH_SIZE * samples per item * GRAD_ACCUM_STEPS * WORLD_SIZE.
_C.TRAIN.BATCH_SIZE = 8
# Micro-batches per optimizer step (gradient accumulation); steps, schedules, EMA and checkpoints count
# optimizer steps. BN statistics are still per micro-batch.
_C.TRAIN.GRAD_ACCUM_STEPS = 1
# Single-view validation every EVAL_PERIOD epochs (and after the last epoch); 0 disables it.
_C.TRAIN.EVAL_PERIOD = 10
# Keep a checkpoint every CHECKPOINT_PERIOD epochs (and after the last epoch); "last" is written every epoch.
_C.TRAIN.CHECKPOINT_PERIOD = 10
# Also refresh "last" every N optimizer steps inside an epoch (-1 off); resuming from it is exact.
_C.TRAIN.CHECKPOINT_STEP_PERIOD = -1
# Also write a step checkpoint when this many minutes passed since the last checkpoint (rank 0's clock, one
# decision for all ranks): what a hard kill (node loss, OOM killer) can lose. 0 disables it.
_C.TRAIN.CHECKPOINT_MINUTES = 30.0
# Step checkpoints (checkpoint_epoch_E_step_S.pyth) kept on disk: the newest N; epoch checkpoints all stay.
_C.TRAIN.CHECKPOINT_KEEP_STEPS = 2
# Besides SIGTERM, the signal that makes every rank finish its step, write a checkpoint and exit with status
# 75 (SLURM's --signal=USR1@120); "none" for SIGTERM alone.
_C.TRAIN.PREEMPT_SIGNAL = "SIGUSR1"
# After such a stop under SLURM (SLURM_JOB_ID set), rank 0 runs `scontrol requeue $SLURM_JOB_ID`.
_C.TRAIN.REQUEUE_ON_PREEMPT = False
_C.TRAIN.AUTO_RESUME = True
# Initial weights (native / timm / Keras-converted / our checkpoints, and formats tasks register); "" = random.
_C.TRAIN.CHECKPOINT_FILE_PATH = ""
_C.TRAIN.MIXED_PRECISION = "none"
_C.TRAIN.COMPILE = False
# torch.compile backend: "inductor" (generates kernels), "aot_eager" or "eager" (trace only, for debugging).
_C.TRAIN.COMPILE_BACKEND = "inductor"
# What a non-finite loss does: "stop" the run (with the step) or "skip" the optimizer step.
_C.TRAIN.NONFINITE_LOSS = "stop"
# With NONFINITE_LOSS skip: stop after this many non-finite steps in a row (0 = never stop).
_C.TRAIN.MAX_NONFINITE_STEPS = 10
# Cap on optimizer steps per epoch (-1 = the whole data set); for smoke tests and demos.
_C.TRAIN.MAX_STEPS_PER_EPOCH = -1

# ---------------------------------------------------------------------------- TEST
_C.TEST = CfgNode()
_C.TEST.ENABLE = True
_C.TEST.BATCH_SIZE = 8
# "" = the newest good checkpoint under OUTPUT_DIR/checkpoints.
_C.TEST.CHECKPOINT_FILE_PATH = ""
# How the views of a sample are combined: "sum" or "max" (per class) of their ENSEMBLE_SCORES; "auto" is "max"
# with DATA.MULTI_LABEL (SlowFast's Charades setting) and "sum" otherwise (load_config resolves it).
_C.TEST.ENSEMBLE_METHOD = "auto"
# What is combined: "prob" (softmax probabilities of each view; mmaction2 average_clips='prob', SlowFast)
# or "logit" (the raw logits; mmaction2 average_clips='score'). Single-view (clip) accuracy is the same.
_C.TEST.ENSEMBLE_SCORES = "prob"
# Per-sample predictions (CSV); "" = OUTPUT_DIR/test_predictions.csv. Relative paths are under OUTPUT_DIR.
_C.TEST.SAVE_RESULTS_PATH = ""
# Evaluate the EMA weights when the checkpoint has them.
_C.TEST.USE_EMA = True

# ---------------------------------------------------------------------------- SOLVER
# SGD (momentum, optional Nesterov) with a cosine schedule and linear warm-up: the ResNet-RS recipe.
_C.SOLVER = CfgNode()
# Learning rate at BASE_BATCH_SIZE; used LR = BASE_LR * global_batch / BASE_BATCH_SIZE.
_C.SOLVER.BASE_LR = 0.1
_C.SOLVER.BASE_BATCH_SIZE = 256
_C.SOLVER.MAX_EPOCH = 350
_C.SOLVER.WARMUP_EPOCHS = 5.0
# Warm-up starts here (scaled like BASE_LR) and rises linearly to the cosine value at WARMUP_EPOCHS.
_C.SOLVER.WARMUP_START_LR = 0.0
_C.SOLVER.COSINE_END_LR = 0.0
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = False
# Applied to conv and linear weights only (not BN, not biases); equals TF's wd * sum(w^2) / 2 loss term.
_C.SOLVER.WEIGHT_DECAY = 4e-5
# Gradient clipping by global L2 norm; -1 = off.
_C.SOLVER.CLIP_GRAD_L2NORM = -1.0
_C.SOLVER.LABEL_SMOOTHING = 0.1
# Layer-wise learning-rate decay for fine-tuning (SlowFast, timm): the head learns at the scheduled rate, each
# block closer to the input d times slower, the stem at d ** (blocks + 1); 1.0 = off. See rs_image.recipe.finetune.
_C.SOLVER.LAYER_DECAY = 1.0

# ---------------------------------------------------------------------------- EMA
_C.EMA = CfgNode()
_C.EMA.ENABLE = True
_C.EMA.DECAY = 0.9999
# decay_t = min(DECAY, (1 + t) / (10 + t)) at optimizer step t (TF ExponentialMovingAverage num_updates).
_C.EMA.TF_WARMUP = True
# Average BN running statistics too (needed for the BN-momentum-0 convention).
_C.EMA.INCLUDE_BUFFERS = True

# ---------------------------------------------------------------------------- BN
_C.BN = CfgNode()
# PyTorch convention. 1.0 == TensorFlow momentum 0.0 (running stats = last batch stats, averaged by EMA).
_C.BN.MOMENTUM = 0.1
# Recompute BN statistics with fixed weights before each checkpoint (fvcore precise BN).
_C.BN.USE_PRECISE_STATS = False
_C.BN.NUM_BATCHES_PRECISE = 200
# torch.nn.SyncBatchNorm across processes (CUDA + DDP only).
_C.BN.SYNC = False
# Frozen BN for fine-tuning (SlowFast forks' BN.FREEZE, upstream MODEL.FROZEN_BN, mmaction2 norm_eval): every
# BN layer normalises with its stored statistics and keeps its affine parameters (no gradient), also after
# model.train(), under DDP, precise BN and EMA.
_C.BN.FREEZE = False

REMOVED_KEYS: Dict[str, str] = {
    "NUM_GPUS": "torchrun decides the number of processes (--nproc_per_node, WORLD_SIZE); delete the key",
    "SOLVER.OPTIMIZING_METHOD": "the optimizer is SGD (SOLVER.MOMENTUM, SOLVER.NESTEROV), the ResNet-RS recipe; "
    "delete the key",
    "SOLVER.LR_POLICY": "the schedule is cosine with linear warm-up (SOLVER.WARMUP_EPOCHS, SOLVER.COSINE_END_LR); "
    "delete the key",
}
"""Keys that did nothing and are gone: key -> what to do instead (loading a config that sets one fails)."""


# ----------------------------------------------------------------------------------------------------
# Rules: allowed values and checks, extended by tasks
# ----------------------------------------------------------------------------------------------------
class Rule(NamedTuple):
    """``check(value, cfg)`` must hold for the value of ``key``; ``requirement`` says what it demands."""

    key: str
    check: Callable[[Any, CfgNode], bool]
    requirement: str


def _between(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Tuple[Callable, str]:
    def check(v: Any, _: CfgNode) -> bool:
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return check, f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def _range_pair(v: Any, _: CfgNode) -> bool:
    return len(v) == 2 and 0 < v[0] <= v[1]


_CHOICES: Dict[str, Tuple[str, ...]] = {
    "TASK": ("",),  # tasks add themselves (register_task)
    "DEVICE": ("auto", "cpu", "cuda"),
    "MODEL.DROP_PATH_SCHEDULE": ("stage", "linear"),
    "DATA.INTERPOLATION": ("bilinear", "bicubic"),
    "TRAIN.MIXED_PRECISION": ("none", "bf16", "fp16"),
    "TRAIN.COMPILE_BACKEND": ("inductor", "aot_eager", "eager"),
    "TRAIN.NONFINITE_LOSS": ("stop", "skip"),
    "TRAIN.PREEMPT_SIGNAL": ("SIGUSR1", "SIGUSR2", "SIGINT", "SIGHUP", "none"),
    "TEST.ENSEMBLE_METHOD": ("auto", "sum", "max"),
    "TEST.ENSEMBLE_SCORES": ("prob", "logit"),
}

RULES: List[Rule] = [
    Rule("CPU_THREADS", lambda v, c: v >= 0, ">= 0"),
    Rule("TRAIN.BATCH_SIZE", lambda v, c: v > 0, "> 0"),
    Rule("TRAIN.GRAD_ACCUM_STEPS", lambda v, c: v >= 1, ">= 1"),
    Rule("TEST.BATCH_SIZE", lambda v, c: v > 0, "> 0"),
    Rule("SOLVER.MAX_EPOCH", lambda v, c: v > 0, "> 0"),
    Rule("SOLVER.WARMUP_EPOCHS", lambda v, c: 0 <= v < c.SOLVER.MAX_EPOCH, "in [0, SOLVER.MAX_EPOCH)"),
    Rule("SOLVER.BASE_LR", lambda v, c: v > 0, "> 0"),
    Rule("SOLVER.BASE_BATCH_SIZE", lambda v, c: v > 0, "> 0"),
    Rule("SOLVER.WARMUP_START_LR", lambda v, c: v >= 0, ">= 0"),
    Rule("SOLVER.COSINE_END_LR", lambda v, c: v >= 0, ">= 0"),
    Rule("SOLVER.MOMENTUM", *_between(0, 1, high_open=True)),
    Rule("SOLVER.NESTEROV", lambda v, c: not v or c.SOLVER.MOMENTUM > 0, "False unless SOLVER.MOMENTUM > 0"),
    Rule("SOLVER.WEIGHT_DECAY", lambda v, c: v >= 0, ">= 0"),
    Rule("SOLVER.LABEL_SMOOTHING", *_between(0, 1, high_open=True)),
    Rule("SOLVER.LABEL_SMOOTHING", lambda v, c: v == 0 or not c.DATA.MULTI_LABEL,
         "0 with DATA.MULTI_LABEL True (the binary cross-entropy of SlowFast's Charades recipe has no smoothing)"),
    Rule("MIXUP.ENABLE", lambda v, c: not v or not c.DATA.MULTI_LABEL,
         "False with DATA.MULTI_LABEL True (MixUp/CutMix here mix one label per sample)"),
    Rule("SOLVER.LAYER_DECAY", *_between(0, 1, low_open=True)),
    Rule("MODEL.FROZEN_STAGES", lambda v, c: v >= -1, ">= -1 (-1 = none, 0 = the stem, k = the stem and k stages)"),
    Rule("SOLVER.CLIP_GRAD_L2NORM", lambda v, c: v == -1 or v > 0, "> 0 or -1 (off)"),
    Rule("EMA.DECAY", *_between(0, 1, high_open=True)),
    Rule("BN.MOMENTUM", lambda v, c: 0 <= v <= 1, "in [0, 1] (PyTorch convention)"),
    Rule("BN.NUM_BATCHES_PRECISE", lambda v, c: v > 0, "> 0"),
    Rule("TRAIN.EVAL_PERIOD", lambda v, c: v >= 0, ">= 0 (0 = off)"),
    Rule("TRAIN.CHECKPOINT_PERIOD", lambda v, c: v >= 1, ">= 1"),
    Rule("TRAIN.CHECKPOINT_STEP_PERIOD", lambda v, c: v == -1 or v >= 1, ">= 1 or -1 (off)"),
    Rule("TRAIN.CHECKPOINT_MINUTES", lambda v, c: v >= 0, ">= 0 (0 = off)"),
    Rule("TRAIN.CHECKPOINT_KEEP_STEPS", lambda v, c: v >= 1, ">= 1"),
    Rule("TRAIN.MAX_NONFINITE_STEPS", lambda v, c: v >= 0, ">= 0 (0 = never stop)"),
    Rule("TRAIN.MAX_STEPS_PER_EPOCH", lambda v, c: v == -1 or v >= 1, ">= 1 or -1 (all)"),
    Rule("LOG_PERIOD", lambda v, c: v >= 1, ">= 1"),
    Rule("MODEL.NUM_CLASSES", lambda v, c: v >= 0, ">= 1 (0 = not set yet)"),
    Rule("MODEL.DROPOUT_RATE", lambda v, c: v == -1 or 0 <= v < 1, "in [0, 1) or -1 (model default)"),
    Rule("MODEL.DROP_PATH_RATE", lambda v, c: v == -1 or 0 <= v < 1, "in [0, 1) or -1 (model default)"),
    Rule("DATA.MEAN", lambda v, c: len(v) == 3, "3 values"),
    Rule("DATA.STD", lambda v, c: len(v) == 3 and all(s > 0 for s in v), "3 positive values"),
    Rule("DATA.INCEPTION_AREA", _range_pair, "[min, max] with 0 < min <= max"),
    Rule("DATA.INCEPTION_ASPECT", _range_pair, "[min, max] with 0 < min <= max"),
    Rule("DATA.TRAIN_CROP_SIZE", lambda v, c: v >= 1, ">= 1"),
    Rule("DATA.TEST_CROP_SIZE", lambda v, c: v >= 1, ">= 1"),
    Rule("DATA.NUM_RETRIES", lambda v, c: v >= 0, ">= 0"),
    Rule("DATA.MAX_FAILURE_FRACTION", *_between(0, 1)),
    Rule("DATA_LOADER.NUM_WORKERS", lambda v, c: v >= 0, ">= 0"),
    Rule("MIXUP.PROB", *_between(0, 1)),
    Rule("MIXUP.SWITCH_PROB", *_between(0, 1)),
]
"""Checks of values (beside the allowed choices of string keys), in the order they are reported."""


def register_choices(key: str, *values: str) -> None:
    """Allow more values for a string key (e.g. a new ``TASK`` registered by a plug-in)."""
    _CHOICES[key] = tuple(dict.fromkeys(_CHOICES.get(key, ()) + values))


_EXTENSIONS: Dict[str, Callable[[CfgNode], None]] = {}


def add_config_extension(
    name: str,
    add_defaults: Callable[[CfgNode], None],
    *,
    choices: Mapping[str, Sequence[str]] = (),
    rules: Sequence[Rule] = (),
) -> None:
    """Add a task's (or plug-in's) keys to the defaults, once per ``name`` (SlowFast's ``add_custom_config``).

    Args:
        name: the extension's name (registering the same name again does nothing).
        add_defaults: ``add_defaults(cfg)`` adds keys with their defaults (``cfg.DATA.NUM_FRAMES = 8``).
        choices: allowed values of string keys.
        rules: value checks, appended to :data:`RULES`.
    """
    if name in _EXTENSIONS:
        return
    _EXTENSIONS[name] = add_defaults
    add_defaults(_C)
    for key, values in dict(choices).items():
        register_choices(key, *values)
    RULES.extend(rules)


def get_cfg() -> CfgNode:
    """A fresh, mutable copy of the defaults (with the keys of every registered extension)."""
    return _C.clone()


# ----------------------------------------------------------------------------------------------------
# Merging: fvcore/yacs does it; this layer prepares values and words the errors
# ----------------------------------------------------------------------------------------------------
def _all_keys(node: CfgNode, prefix: str = "") -> List[str]:
    keys = []
    for k, v in node.items():
        keys.append(f"{prefix}{k}")
        if isinstance(v, CfgNode) and not v.is_new_allowed():
            keys.extend(_all_keys(v, f"{prefix}{k}."))
    return keys


def _unknown_key(full_key: str, root: CfgNode, source: str) -> ConfigKeyError:
    candidates = _all_keys(root)
    # A strict match first; a looser one only when nothing is close; then by the last component alone.
    close = difflib.get_close_matches(full_key, candidates, n=3, cutoff=0.8) or difflib.get_close_matches(
        full_key, candidates, n=3, cutoff=0.6
    )
    by_leaf = {c.rsplit(".", 1)[-1]: c for c in candidates}
    for leaf in difflib.get_close_matches(full_key.rsplit(".", 1)[-1], list(by_leaf), n=3, cutoff=0.75):
        if by_leaf[leaf] not in close:
            close.append(by_leaf[leaf])
    hint = f" Did you mean: {', '.join(close[:5])}?" if close else ""
    return ConfigKeyError(f"Unknown config key '{full_key}' ({source}).{hint}")


def _type_error(full_key: str, default: Any, value: Any, source: str) -> ConfigError:
    return ConfigError(
        f"Config key '{full_key}' ({source}) expects {type(default).__name__} (currently {default!r}) "
        f"but got {type(value).__name__} {value!r}."
    )


def _numbers_like(value: Any, default: Any) -> Any:
    """An int where a float is expected becomes a float (and an integral float where an int is expected an
    int), also inside lists; everything else is left to yacs's type check."""
    if isinstance(value, bool) or isinstance(default, bool):
        return value
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if isinstance(default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)) and default:
        return type(value)(_numbers_like(v, default[0]) for v in value)
    return value


def _prepare(values: Mapping[str, Any], node: CfgNode, root: CfgNode, source: str, prefix: str = "") -> Dict[str, Any]:
    """Check the keys of ``values`` against ``node`` and coerce numbers; free-form nodes take anything."""
    out: Dict[str, Any] = {}
    for key, value in values.items():
        full_key = f"{prefix}{key}"
        if full_key in REMOVED_KEYS:
            raise ConfigKeyError(f"Config key '{full_key}' ({source}) was removed: {REMOVED_KEYS[full_key]}.")
        if key not in node:
            raise _unknown_key(full_key, root, source)
        default = node[key]
        if isinstance(value, str):
            # yacs reads every string as a Python literal; a string key keeps its text (a path like "2024").
            value = repr(value) if isinstance(default, str) else CfgNode._decode_cfg_value(value)
        if isinstance(default, CfgNode) and default.is_new_allowed():
            if isinstance(value, (list, tuple)) and len(value) % 2 == 0 and all(isinstance(k, str) for k in value[::2]):
                value = dict(zip(value[0::2], value[1::2]))  # [KEY, VALUE, ...] form
            if not isinstance(value, Mapping):
                raise ConfigError(f"Config key '{full_key}' ({source}) expects a mapping or a [KEY, VALUE, ...] "
                                  f"list, got {value!r}.")
            out[key] = {str(k): CfgNode._decode_cfg_value(v) if isinstance(v, str) else v for k, v in value.items()}
        elif isinstance(default, CfgNode):
            if not isinstance(value, Mapping):
                raise ConfigError(f"Config key '{full_key}' ({source}) is a section; set its sub-keys instead.")
            out[key] = _prepare(value, default, root, source, full_key + ".")
        else:
            out[key] = _numbers_like(value, default)
    return out


def _merge(cfg: CfgNode, values: Mapping[str, Any], source: str) -> None:
    prepared = _prepare(values, cfg, cfg, source)
    try:
        cfg.merge_from_other_cfg(CfgNode(prepared))
    except ValueError as exc:  # yacs: "Type mismatch (...) with values (...) for config key: KEY"
        match = re.search(r"for config key: (\S+)$", str(exc))
        if not match:
            raise ConfigError(f"{source}: {exc}") from None
        key = match.group(1)
        raise _type_error(key, _lookup(cfg, key), _lookup(prepared, key), source) from None


def _lookup(tree: Any, full_key: str) -> Any:
    for part in full_key.split("."):
        tree = tree[part]
    return tree


def merge_config_dict(cfg: CfgNode, values: Mapping[str, Any], source: str) -> None:
    """Merge a nested mapping (e.g. a loaded YAML file) into ``cfg`` with key and type checks."""
    _merge(cfg, values, source)


def merge_config_list(cfg: CfgNode, opts: Sequence[str], source: str = "command line") -> None:
    """Merge ``KEY VALUE`` pairs (command-line overrides) into ``cfg``.

    A value is read as a Python literal (``8``, ``0.1``, ``[256, 320]``, ``True``), except for string keys,
    which take the token as it is (a path like ``2024`` stays a string).
    """
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"Overrides must be KEY VALUE pairs; got an odd number ({len(opts)}): {' '.join(opts)}")
    for key, raw in zip(opts[0::2], opts[1::2]):
        if key == "_BASE_":
            raise ConfigError("_BASE_ can only be used inside config files.")
        parts = key.split(".")
        nested: Dict[str, Any] = {parts[-1]: raw}
        for part in reversed(parts[:-1]):
            nested = {part: nested}
        _merge(cfg, nested, source)


#: Folders of shipped recipes, searched for a ``--cfg`` that is not a file (:func:`find_config`); a package adds its
#: own with :func:`register_config_dir` (``rs_video.task`` adds the repository's ``configs/``, installed with it).
CONFIG_DIRS: List[Path] = []


def register_config_dir(path: str | os.PathLike) -> None:
    """Search ``path`` for config names that are not files (once; later registrations are searched later)."""
    path = Path(path)
    if path not in CONFIG_DIRS:
        CONFIG_DIRS.append(path)


def find_config(name: str | os.PathLike) -> str:
    """The file of ``--cfg name``: a real path wins; otherwise ``name`` relative to a shipped config folder
    (``kinetics/rs3d_50.yaml``, or ``configs/kinetics/rs3d_50.yaml`` as the README writes it, from any folder).

    Raises:
        ConfigError: neither, naming the folders searched.
    """
    path = os.fspath(name)
    if os.path.isfile(path):
        return path
    relative = Path(path)
    if relative.parts and relative.parts[0] == "configs":
        relative = Path(*relative.parts[1:])
    if not relative.is_absolute():
        for folder in CONFIG_DIRS:
            if (folder / relative).is_file():
                return str(folder / relative)
    searched = f" (nor under the shipped configs in {', '.join(map(str, CONFIG_DIRS))})" if CONFIG_DIRS else ""
    raise ConfigError(f"Config file not found: {path}{searched}")


def _read_yaml_with_base(path: str) -> Dict[str, Any]:
    try:
        loaded = CfgNode.load_yaml_with_base(path)  # fvcore resolves _BASE_ (relative to the file)
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {path} (or one of its _BASE_ files) is not valid YAML: {exc}") from exc
    except (OSError, TypeError, AssertionError) as exc:
        # TypeError: an empty file or a _BASE_ that is not a mapping; OSError: a missing _BASE_ file.
        raise ConfigError(f"Cannot load config file {path} (or one of its _BASE_ files): {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"Config file {path} must hold a mapping of keys, got {type(loaded).__name__}.")
    return dict(loaded)


def load_config(cfg_file: str | os.PathLike | None = None, opts: Sequence[str] = ()) -> CfgNode:
    """Defaults, then ``cfg_file`` (with its ``_BASE_`` chain), then ``KEY VALUE`` overrides; validated.

    Args:
        cfg_file: path to a YAML file, or the name of a shipped one (:func:`find_config`), or None for the
            defaults.
        opts: flat list ``[KEY1, VALUE1, KEY2, VALUE2, ...]`` (values as command-line strings).

    Returns:
        A frozen :class:`CfgNode`.

    Raises:
        ConfigKeyError: unknown or removed key (the message lists the closest valid keys / the replacement).
        ConfigError: wrong type, a value outside the allowed set, an unregistered task, or an unreadable file.
    """
    cfg = get_cfg()
    if cfg_file:
        path = find_config(cfg_file)
        values = _read_yaml_with_base(path)
        task = values.get("TASK")
        if isinstance(task, str) and task not in _CHOICES["TASK"]:
            raise ConfigError(
                f"TASK {task!r} (in {path}) is not registered; registered tasks: "
                f"{', '.join(t for t in _CHOICES['TASK'] if t)}. Import the package that provides it first "
                "(the command-line tools do; for the video task: import rs_video.task)."
            )
        merge_config_dict(cfg, values, source=f"in {path}")
    merge_config_list(cfg, opts)
    resolve_auto_values(cfg)
    validate_cfg(cfg)
    cfg.freeze()
    return cfg


def resolve_auto_values(cfg: CfgNode) -> None:
    """Replace ``auto`` values by what they mean for this config: ``TEST.ENSEMBLE_METHOD`` is ``max`` for
    ``DATA.MULTI_LABEL`` and ``sum`` otherwise (the saved ``config.yaml`` shows the value used)."""
    if cfg.TEST.ENSEMBLE_METHOD == "auto":
        cfg.TEST.ENSEMBLE_METHOD = "max" if cfg.DATA.MULTI_LABEL else "sum"


def validate_cfg(cfg: CfgNode) -> None:
    """Check allowed choices and :data:`RULES`. Raises :class:`ConfigError` naming the key."""
    for key, allowed in _CHOICES.items():
        value = _lookup(cfg, key)
        if value not in allowed:
            shown = ", ".join(repr(a) for a in allowed if a != "" or key != "TASK")
            raise ConfigError(f"Config key '{key}' = {value!r} is not one of {shown}.")
    for rule in RULES:
        value = _lookup(cfg, rule.key)
        if not rule.check(value, cfg):
            raise ConfigError(f"Config key '{rule.key}' = {value!r}: must be {rule.requirement}.")


def require_keys(cfg: CfgNode, what: str) -> None:
    """Raise :class:`ConfigError` unless ``TASK``, ``MODEL.NAME`` and ``MODEL.NUM_CLASSES`` are set, which
    the defaults leave open; ``what`` names the action that needs them (for the message)."""
    missing = [key for key, unset in (("TASK", cfg.TASK == ""), ("MODEL.NAME", cfg.MODEL.NAME == ""),
                                      ("MODEL.NUM_CLASSES", cfg.MODEL.NUM_CLASSES < 1)) if unset]
    if missing:
        raise ConfigError(
            f"{what} needs {', '.join(missing)}; set them in the config file or on the command line "
            "(the shipped configs under configs/ set all of them)."
        )


def save_config(cfg: CfgNode, path: str | os.PathLike) -> None:
    """Write the resolved configuration as YAML, atomically."""
    with atomic_write(path) as f:
        f.write(cfg.dump())


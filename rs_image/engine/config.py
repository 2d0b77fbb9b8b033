"""Configuration: the one set of defaults, loading with ``_BASE_`` inheritance, and validation.

The configuration is an :class:`fvcore.common.config.CfgNode` (yacs). Key names follow SlowFast where
the meaning is the same (``TRAIN.BATCH_SIZE``, ``DATA.NUM_FRAMES``, ``SOLVER.BASE_LR``, ...), so a
SlowFast user feels at home. Differences worth knowing:

* ``TRAIN.BATCH_SIZE`` / ``TEST.BATCH_SIZE`` are **per process** (per GPU), not per machine.
* ``SOLVER.BASE_LR`` is the learning rate at ``SOLVER.BASE_BATCH_SIZE`` samples per optimizer step;
  the learning rate actually used is ``BASE_LR * global_batch / BASE_BATCH_SIZE`` (linear scaling rule).
* ``BN.MOMENTUM`` uses the PyTorch convention (``running = (1 - m) * running + m * batch``). TensorFlow's
  ``momentum=0.0`` (used by every released ResNet-RS recipe) is PyTorch ``1.0``; see
  :mod:`rs_image.recipe.batchnorm`.

Loading (:func:`load_config`) differs from plain yacs in its error messages: an unknown key names the
closest valid keys, a value of the wrong type names the key, the expected and the given type, and a value
outside the allowed set names the allowed values.

Example::

    cfg = load_config("configs/kinetics/rs3d_50.yaml", ["TRAIN.BATCH_SIZE", "8", "SOLVER.BASE_LR", "0.1"])
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from fvcore.common.config import CfgNode

from rs_image.errors import UserError
from rs_image.fileio import atomic_write

__all__ = [
    "CfgNode",
    "ConfigError",
    "ConfigKeyError",
    "get_cfg",
    "load_config",
    "merge_config_dict",
    "merge_config_list",
    "validate_cfg",
    "save_config",
    "register_choices",
]


class ConfigError(UserError, ValueError):
    """A configuration file or override is invalid. The message names the key (and file)."""


class ConfigKeyError(ConfigError, KeyError):
    """A configuration key does not exist. The message lists the closest valid keys."""


# ----------------------------------------------------------------------------------------------------
# Defaults
# ----------------------------------------------------------------------------------------------------
_C = CfgNode()

# "video" (rs_video models on Kinetics-style data) or "image" (rs_image models on ImageNet folders).
_C.TASK = "video"
_C.OUTPUT_DIR = "./output"
# Base seed. Model initialisation uses RNG_SEED on every rank; training randomness uses RNG_SEED + rank.
_C.RNG_SEED = 1
# Informational only: torchrun decides the number of processes (WORLD_SIZE).
_C.NUM_GPUS = 1
# "auto" (cuda:LOCAL_RANK when CUDA is available, else cpu), "cpu" or "cuda".
_C.DEVICE = "auto"
# torch.use_deterministic_algorithms(True) and no cuDNN autotuning: bit-exact resume on CPU.
_C.DETERMINISTIC = False
# Log training metrics every LOG_PERIOD optimizer steps (JSON lines, TensorBoard, text log).
_C.LOG_PERIOD = 10
# tqdm progress bar with rate and ETA on rank 0.
_C.PROGRESS_BAR = True
# TensorBoard event files under OUTPUT_DIR/tensorboard (rank 0).
_C.TENSORBOARD = True

# ---------------------------------------------------------------------------- MODEL
_C.MODEL = CfgNode()
_C.MODEL.NAME = "rs3d_50"
_C.MODEL.NUM_CLASSES = 400
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

# ---------------------------------------------------------------------------- DATA
_C.DATA = CfgNode()
_C.DATA.BACKEND = "native"
_C.DATA.PATH_TO_DATA_DIR = ""
_C.DATA.PATH_PREFIX = ""
_C.DATA.PATH_LABEL_SEPARATOR = " "
_C.DATA.DECODER = "auto"
_C.DATA.DECODER_THREADS = 1
_C.DATA.NUM_FRAMES = 8
_C.DATA.SAMPLING_RATE = 8
_C.DATA.TARGET_FPS = 30
_C.DATA.TRAIN_CROP_MODE = "jitter"
_C.DATA.TRAIN_JITTER_SCALES = [256, 320]
_C.DATA.TRAIN_CROP_SIZE = 224
_C.DATA.INCEPTION_AREA = [0.08, 1.0]
_C.DATA.INCEPTION_ASPECT = [0.5, 2.0]
_C.DATA.TEST_CROP_SIZE = 256
_C.DATA.MEAN = [0.45, 0.45, 0.45]
_C.DATA.STD = [0.225, 0.225, 0.225]
_C.DATA.RANDOM_FLIP = True
_C.DATA.INTERPOLATION = "bilinear"
# Image eval crop fraction (resize to size / CROP_PCT, then center crop); -1 = model default.
_C.DATA.CROP_PCT = -1.0
_C.DATA.NUM_RETRIES = 10
_C.DATA.MAX_FAILURE_FRACTION = 0.05
_C.DATA.SHORT_CLIP_POLICY = "repeat_last"
# Video clips out of the data set: "float32" normalised, or "uint8" normalised on the device by the engine.
_C.DATA.OUTPUT_DTYPE = "float32"

# ---------------------------------------------------------------------------- AUG / MIXUP
_C.AUG = CfgNode()
_C.AUG.RAND_AUGMENT = False
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
# Per process. Global batch = BATCH_SIZE * WORLD_SIZE.
_C.TRAIN.BATCH_SIZE = 8
# Single-view validation every EVAL_PERIOD epochs (and after the last epoch); 0 disables it.
_C.TRAIN.EVAL_PERIOD = 10
# Keep a checkpoint every CHECKPOINT_PERIOD epochs (and after the last epoch); "last" is written every epoch.
_C.TRAIN.CHECKPOINT_PERIOD = 10
# Also refresh "last" every N optimizer steps inside an epoch (-1 off); resuming from it is exact.
_C.TRAIN.CHECKPOINT_STEP_PERIOD = -1
_C.TRAIN.AUTO_RESUME = True
# Initial weights (native / timm / Keras-converted / PyTorchVideo / our checkpoints); "" = random init.
_C.TRAIN.CHECKPOINT_FILE_PATH = ""
# Video task: inflate 2D weights from CHECKPOINT_FILE_PATH ("average" or "center"); "" = no inflation.
_C.TRAIN.CHECKPOINT_INFLATE = ""
_C.TRAIN.MIXED_PRECISION = "none"
_C.TRAIN.COMPILE = False
# torch.compile backend: "inductor" (generates kernels), "aot_eager" or "eager" (trace only, for debugging).
_C.TRAIN.COMPILE_BACKEND = "inductor"
# What a non-finite loss does: "stop" the run (with the step) or "skip" the optimizer step.
_C.TRAIN.NONFINITE_LOSS = "stop"
# Cap on optimizer steps per epoch (-1 = the whole data set); for smoke tests and demos.
_C.TRAIN.MAX_STEPS_PER_EPOCH = -1

# ---------------------------------------------------------------------------- TEST
_C.TEST = CfgNode()
_C.TEST.ENABLE = True
_C.TEST.BATCH_SIZE = 8
# "" = the newest good checkpoint under OUTPUT_DIR/checkpoints.
_C.TEST.CHECKPOINT_FILE_PATH = ""
_C.TEST.NUM_ENSEMBLE_VIEWS = 10
_C.TEST.NUM_SPATIAL_CROPS = 3
_C.TEST.ENSEMBLE_METHOD = "sum"
# Per-video predictions (CSV); "" = OUTPUT_DIR/test_predictions.csv. Relative paths are under OUTPUT_DIR.
_C.TEST.SAVE_RESULTS_PATH = ""
# Evaluate the EMA weights when the checkpoint has them.
_C.TEST.USE_EMA = True

# ---------------------------------------------------------------------------- SOLVER
_C.SOLVER = CfgNode()
_C.SOLVER.OPTIMIZING_METHOD = "sgd"
# Learning rate at BASE_BATCH_SIZE; used LR = BASE_LR * global_batch / BASE_BATCH_SIZE.
_C.SOLVER.BASE_LR = 0.1
_C.SOLVER.BASE_BATCH_SIZE = 256
_C.SOLVER.LR_POLICY = "cosine"
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


# Allowed values of string keys. Other modules (tasks) may extend TASK through register_choices.
_CHOICES: dict[str, tuple[str, ...]] = {
    "TASK": ("video", "image"),
    "DEVICE": ("auto", "cpu", "cuda"),
    "MODEL.DROP_PATH_SCHEDULE": ("stage", "linear"),
    "DATA.BACKEND": ("native", "pytorchvideo"),
    "DATA.DECODER": ("auto", "torchcodec", "decord", "pyav"),
    "DATA.TRAIN_CROP_MODE": ("jitter", "inception"),
    "DATA.INTERPOLATION": ("bilinear", "bicubic"),
    "DATA.SHORT_CLIP_POLICY": ("repeat_last", "loop"),
    "DATA.OUTPUT_DTYPE": ("float32", "uint8"),
    "TRAIN.CHECKPOINT_INFLATE": ("", "average", "center"),
    "TRAIN.MIXED_PRECISION": ("none", "bf16", "fp16"),
    "TRAIN.COMPILE_BACKEND": ("inductor", "aot_eager", "eager"),
    "TRAIN.NONFINITE_LOSS": ("stop", "skip"),
    "TEST.ENSEMBLE_METHOD": ("sum", "max"),
    "SOLVER.LR_POLICY": ("cosine",),
    "SOLVER.OPTIMIZING_METHOD": ("sgd",),
}


def register_choices(key: str, *values: str) -> None:
    """Allow more values for a string key (e.g. a new ``TASK`` registered by a plug-in)."""
    _CHOICES[key] = tuple(dict.fromkeys(_CHOICES.get(key, ()) + values))


def get_cfg() -> CfgNode:
    """Return a fresh, mutable copy of the default configuration."""
    return _C.clone()


# ----------------------------------------------------------------------------------------------------
# Merging with helpful errors
# ----------------------------------------------------------------------------------------------------
def _all_keys(node: CfgNode, prefix: str = "") -> list[str]:
    keys = []
    for k, v in node.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, CfgNode) and not v.is_new_allowed():
            keys.extend(_all_keys(v, full + "."))
    return keys


def _suggest(full_key: str, root: CfgNode) -> list[str]:
    """Closest valid keys: by the whole dotted name and by the last component alone."""
    candidates = _all_keys(root)
    # A strict match first; a looser one only when nothing is close.
    close = difflib.get_close_matches(full_key, candidates, n=3, cutoff=0.8) or difflib.get_close_matches(
        full_key, candidates, n=3, cutoff=0.6
    )
    leaf = full_key.rsplit(".", 1)[-1]
    by_leaf = {c.rsplit(".", 1)[-1]: c for c in candidates}
    for name in difflib.get_close_matches(leaf, list(by_leaf), n=3, cutoff=0.75):
        if by_leaf[name] not in close:
            close.append(by_leaf[name])
    return close[:5]


def _unknown_key(full_key: str, root: CfgNode, source: str) -> ConfigKeyError:
    suggestions = _suggest(full_key, root)
    hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
    return ConfigKeyError(f"Unknown config key '{full_key}' ({source}).{hint}")


def _type_name(value: Any) -> str:
    return type(value).__name__


def _coerce(value: Any, default: Any, full_key: str, source: str) -> Any:
    """Return ``value`` converted to the type of ``default`` or raise a :class:`ConfigError`."""

    def mismatch() -> ConfigError:
        return ConfigError(
            f"Config key '{full_key}' ({source}) expects {_type_name(default)} "
            f"(currently {default!r}) but got {_type_name(value)} {value!r}."
        )

    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise mismatch()
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise mismatch()
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise mismatch()
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise mismatch()
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise mismatch()
        if default:  # check elements against the default's element type
            elem = default[0]
            try:
                items = [_coerce(v, elem, full_key, source) for v in value]
            except ConfigError:
                raise ConfigError(
                    f"Config key '{full_key}' ({source}) expects a {_type_name(default)} of "
                    f"{_type_name(elem)} (currently {default!r}) but got {value!r}."
                ) from None
        else:
            items = list(value)
        return type(default)(items)
    if isinstance(value, type(default)):
        return value
    raise mismatch()


def _overrides_from_value(value: Any, full_key: str, source: str) -> dict[str, Any]:
    """A free-form node may be given as a mapping or as a flat [KEY, VALUE, ...] list."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple)) and len(value) % 2 == 0 and all(isinstance(k, str) for k in value[0::2]):
        return dict(zip(value[0::2], value[1::2]))
    raise ConfigError(
        f"Config key '{full_key}' ({source}) expects a mapping or a [KEY, VALUE, ...] list, got {value!r}."
    )


def _set_key(root: CfgNode, full_key: str, value: Any, source: str, *, raw: str | None = None) -> None:
    """Set one dotted key with existence and type checks. ``raw`` is the undecoded CLI token."""
    parts = full_key.split(".")
    node = root
    for i, part in enumerate(parts[:-1]):
        child = node.get(part) if isinstance(node, CfgNode) else None
        if not isinstance(child, CfgNode):
            raise _unknown_key(full_key, root, source)
        node = child
        if node.is_new_allowed():  # free-form sub-tree: everything below is a plain value
            rest = ".".join(parts[i + 1 :])
            node[rest] = CfgNode._decode_cfg_value(value if raw is None else raw)
            return
    leaf = parts[-1]
    if leaf not in node:
        raise _unknown_key(full_key, root, source)
    default = node[leaf]
    if isinstance(default, CfgNode):
        if default.is_new_allowed():
            entries = _overrides_from_value(CfgNode._decode_cfg_value(value), full_key, source)
            for k, v in entries.items():
                default[str(k)] = CfgNode._decode_cfg_value(v)
            return
        raise ConfigError(f"Config key '{full_key}' ({source}) is a section; set its sub-keys instead.")
    if isinstance(default, str) and raw is not None:
        # A string key takes the command-line token as is (a path like "2024" stays a string).
        node[leaf] = raw
        return
    node[leaf] = _coerce(CfgNode._decode_cfg_value(value), default, full_key, source)


def merge_config_dict(cfg: CfgNode, values: Mapping[str, Any], source: str, _prefix: str = "") -> None:
    """Merge a nested mapping (e.g. a loaded YAML file) into ``cfg`` with key and type checks."""
    for key, value in values.items():
        full_key = f"{_prefix}{key}"
        if isinstance(value, Mapping):
            target = _get_node(cfg, full_key)
            if isinstance(target, CfgNode) and not target.is_new_allowed():
                merge_config_dict(cfg, value, source, full_key + ".")
                continue
            if target is None:
                raise _unknown_key(full_key, cfg, source)
        _set_key(cfg, full_key, value, source)


def _get_node(cfg: CfgNode, full_key: str) -> Any:
    node: Any = cfg
    for part in full_key.split("."):
        if not isinstance(node, CfgNode) or part not in node:
            return None
        node = node[part]
    return node


def merge_config_list(cfg: CfgNode, opts: Sequence[str], source: str = "command line") -> None:
    """Merge ``KEY VALUE`` pairs (command-line overrides) into ``cfg``."""
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(
            f"Overrides must be KEY VALUE pairs; got an odd number ({len(opts)}): {' '.join(opts)}"
        )
    for key, raw in zip(opts[0::2], opts[1::2]):
        if key == "_BASE_":
            raise ConfigError("_BASE_ can only be used inside config files.")
        _set_key(cfg, key, raw, source, raw=raw if isinstance(raw, str) else None)


def _read_yaml_with_base(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise ConfigError(f"Config file not found: {path}")
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
        raise ConfigError(f"Config file {path} must hold a mapping of keys, got {_type_name(loaded)}.")
    return dict(loaded)


def load_config(cfg_file: str | os.PathLike | None = None, opts: Sequence[str] = ()) -> CfgNode:
    """Defaults, then ``cfg_file`` (with its ``_BASE_`` chain), then ``KEY VALUE`` overrides; validated.

    Args:
        cfg_file: path to a YAML file, or None for the defaults.
        opts: flat list ``[KEY1, VALUE1, KEY2, VALUE2, ...]`` (values as command-line strings).

    Returns:
        A frozen :class:`CfgNode`.

    Raises:
        ConfigKeyError: unknown key (the message lists the closest valid keys).
        ConfigError: wrong type, a value outside the allowed set, or an unreadable file.
    """
    cfg = get_cfg()
    if cfg_file:
        path = os.fspath(cfg_file)
        merge_config_dict(cfg, _read_yaml_with_base(path), source=f"in {path}")
    merge_config_list(cfg, opts)
    validate_cfg(cfg)
    cfg.freeze()
    return cfg


# ----------------------------------------------------------------------------------------------------
# Validation of values
# ----------------------------------------------------------------------------------------------------
def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def validate_cfg(cfg: CfgNode) -> None:
    """Check values (allowed choices, ranges, lengths). Raises :class:`ConfigError` naming the key."""
    for key, allowed in _CHOICES.items():
        value = _get_node(cfg, key)
        _check(
            value in allowed,
            f"Config key '{key}' = {value!r} is not one of {', '.join(repr(a) for a in allowed)}.",
        )
    s, t, d = cfg.SOLVER, cfg.TRAIN, cfg.DATA
    _check(t.BATCH_SIZE > 0, f"TRAIN.BATCH_SIZE must be > 0, got {t.BATCH_SIZE}.")
    _check(cfg.TEST.BATCH_SIZE > 0, f"TEST.BATCH_SIZE must be > 0, got {cfg.TEST.BATCH_SIZE}.")
    _check(s.MAX_EPOCH > 0, f"SOLVER.MAX_EPOCH must be > 0, got {s.MAX_EPOCH}.")
    _check(
        0 <= s.WARMUP_EPOCHS < s.MAX_EPOCH,
        f"SOLVER.WARMUP_EPOCHS={s.WARMUP_EPOCHS} must be in [0, SOLVER.MAX_EPOCH={s.MAX_EPOCH}).",
    )
    _check(s.BASE_LR > 0, f"SOLVER.BASE_LR must be > 0, got {s.BASE_LR}.")
    _check(s.BASE_BATCH_SIZE > 0, f"SOLVER.BASE_BATCH_SIZE must be > 0, got {s.BASE_BATCH_SIZE}.")
    _check(s.WARMUP_START_LR >= 0, f"SOLVER.WARMUP_START_LR must be >= 0, got {s.WARMUP_START_LR}.")
    _check(s.COSINE_END_LR >= 0, f"SOLVER.COSINE_END_LR must be >= 0, got {s.COSINE_END_LR}.")
    _check(0 <= s.MOMENTUM < 1, f"SOLVER.MOMENTUM must be in [0, 1), got {s.MOMENTUM}.")
    _check(not s.NESTEROV or s.MOMENTUM > 0, "SOLVER.NESTEROV needs SOLVER.MOMENTUM > 0.")
    _check(s.WEIGHT_DECAY >= 0, f"SOLVER.WEIGHT_DECAY must be >= 0, got {s.WEIGHT_DECAY}.")
    _check(0 <= s.LABEL_SMOOTHING < 1, f"SOLVER.LABEL_SMOOTHING must be in [0, 1), got {s.LABEL_SMOOTHING}.")
    _check(
        s.CLIP_GRAD_L2NORM == -1 or s.CLIP_GRAD_L2NORM > 0,
        f"SOLVER.CLIP_GRAD_L2NORM must be > 0 or -1 (off), got {s.CLIP_GRAD_L2NORM}.",
    )
    _check(0 <= cfg.EMA.DECAY < 1, f"EMA.DECAY must be in [0, 1), got {cfg.EMA.DECAY}.")
    _check(0 <= cfg.BN.MOMENTUM <= 1, f"BN.MOMENTUM must be in [0, 1] (PyTorch convention), got {cfg.BN.MOMENTUM}.")
    _check(cfg.BN.NUM_BATCHES_PRECISE > 0, "BN.NUM_BATCHES_PRECISE must be > 0.")
    _check(t.EVAL_PERIOD >= 0, f"TRAIN.EVAL_PERIOD must be >= 0 (0 = off), got {t.EVAL_PERIOD}.")
    _check(t.CHECKPOINT_PERIOD >= 1, f"TRAIN.CHECKPOINT_PERIOD must be >= 1, got {t.CHECKPOINT_PERIOD}.")
    _check(
        t.CHECKPOINT_STEP_PERIOD == -1 or t.CHECKPOINT_STEP_PERIOD >= 1,
        f"TRAIN.CHECKPOINT_STEP_PERIOD must be >= 1 or -1 (off), got {t.CHECKPOINT_STEP_PERIOD}.",
    )
    _check(
        t.MAX_STEPS_PER_EPOCH == -1 or t.MAX_STEPS_PER_EPOCH >= 1,
        f"TRAIN.MAX_STEPS_PER_EPOCH must be >= 1 or -1 (all), got {t.MAX_STEPS_PER_EPOCH}.",
    )
    _check(
        not t.CHECKPOINT_INFLATE or bool(t.CHECKPOINT_FILE_PATH),
        "TRAIN.CHECKPOINT_INFLATE is set but TRAIN.CHECKPOINT_FILE_PATH is empty.",
    )
    _check(
        not t.CHECKPOINT_INFLATE or cfg.TASK == "video",
        "TRAIN.CHECKPOINT_INFLATE only applies to TASK 'video'.",
    )
    _check(cfg.LOG_PERIOD >= 1, f"LOG_PERIOD must be >= 1, got {cfg.LOG_PERIOD}.")
    _check(cfg.MODEL.NUM_CLASSES >= 1, f"MODEL.NUM_CLASSES must be >= 1, got {cfg.MODEL.NUM_CLASSES}.")
    _check(
        cfg.MODEL.DROPOUT_RATE == -1 or 0 <= cfg.MODEL.DROPOUT_RATE < 1,
        f"MODEL.DROPOUT_RATE must be in [0, 1) or -1 (model default), got {cfg.MODEL.DROPOUT_RATE}.",
    )
    _check(
        cfg.MODEL.DROP_PATH_RATE == -1 or 0 <= cfg.MODEL.DROP_PATH_RATE < 1,
        f"MODEL.DROP_PATH_RATE must be in [0, 1) or -1 (model default), got {cfg.MODEL.DROP_PATH_RATE}.",
    )
    for key in ("MEAN", "STD"):
        _check(len(d[key]) == 3, f"DATA.{key} must have 3 values, got {list(d[key])}.")
    _check(all(v > 0 for v in d.STD), f"DATA.STD must be positive, got {list(d.STD)}.")
    _check(
        len(d.TRAIN_JITTER_SCALES) == 2 and 0 < d.TRAIN_JITTER_SCALES[0] <= d.TRAIN_JITTER_SCALES[1],
        f"DATA.TRAIN_JITTER_SCALES must be [min, max] with 0 < min <= max, got {list(d.TRAIN_JITTER_SCALES)}.",
    )
    for key in ("INCEPTION_AREA", "INCEPTION_ASPECT"):
        pair = d[key]
        _check(
            len(pair) == 2 and 0 < pair[0] <= pair[1],
            f"DATA.{key} must be [min, max] with 0 < min <= max, got {list(pair)}.",
        )
    _check(d.NUM_FRAMES >= 1, f"DATA.NUM_FRAMES must be >= 1, got {d.NUM_FRAMES}.")
    _check(d.SAMPLING_RATE >= 1, f"DATA.SAMPLING_RATE must be >= 1, got {d.SAMPLING_RATE}.")
    _check(d.TRAIN_CROP_SIZE >= 1 and d.TEST_CROP_SIZE >= 1, "DATA.TRAIN_CROP_SIZE / DATA.TEST_CROP_SIZE must be >= 1.")
    _check(
        d.CROP_PCT == -1 or 0 < d.CROP_PCT <= 1,
        f"DATA.CROP_PCT must be in (0, 1] or -1 (model default), got {d.CROP_PCT}.",
    )
    _check(
        0 <= d.MAX_FAILURE_FRACTION <= 1, f"DATA.MAX_FAILURE_FRACTION must be in [0, 1], got {d.MAX_FAILURE_FRACTION}."
    )
    _check(cfg.DATA_LOADER.NUM_WORKERS >= 0, "DATA_LOADER.NUM_WORKERS must be >= 0.")
    _check(cfg.TEST.NUM_ENSEMBLE_VIEWS >= 1, "TEST.NUM_ENSEMBLE_VIEWS must be >= 1.")
    _check(cfg.TEST.NUM_SPATIAL_CROPS >= 1, "TEST.NUM_SPATIAL_CROPS must be >= 1.")
    _check(0 <= cfg.MIXUP.PROB <= 1, f"MIXUP.PROB must be in [0, 1], got {cfg.MIXUP.PROB}.")
    _check(0 <= cfg.MIXUP.SWITCH_PROB <= 1, f"MIXUP.SWITCH_PROB must be in [0, 1], got {cfg.MIXUP.SWITCH_PROB}.")


def save_config(cfg: CfgNode, path: str | os.PathLike) -> None:
    """Write the resolved configuration as YAML, atomically."""
    with atomic_write(path) as f:
        f.write(cfg.dump())

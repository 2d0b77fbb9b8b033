"""Config loading: _BASE_ inheritance, KEY VALUE overrides, helpful errors, resolved config on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from rs_image.engine.config import (
    ConfigError,
    ConfigKeyError,
    Rule,
    add_config_extension,
    get_cfg,
    load_config,
    require_keys,
    save_config,
)
from rs_image.engine.launch import parse_args

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture()
def cfg_files(tmp_path: Path):
    base = _write(tmp_path / "base.yaml", """
TASK: image
MODEL:
  NAME: resnetrs50
  NUM_CLASSES: 10
  OVERRIDES:
    stage_widths: [8, 16, 32, 64]
SOLVER:
  BASE_LR: 0.1
  WEIGHT_DECAY: 4e-5
  MAX_EPOCH: 100
""")
    child = _write(tmp_path / "child.yaml", """
_BASE_: base.yaml
SOLVER:
  MAX_EPOCH: 7
MODEL:
  OVERRIDES:
    stem_width: 8
""")
    return base, child


def test_base_inheritance_and_overrides(cfg_files):
    _, child = cfg_files
    cfg = load_config(child, ["SOLVER.BASE_LR", "0.4", "TRAIN.BATCH_SIZE", "3", "OUTPUT_DIR", "2024"])
    assert cfg.TASK == "image" and cfg.MODEL.NAME == "resnetrs50"  # from the base
    assert cfg.SOLVER.MAX_EPOCH == 7  # child wins over base
    assert cfg.SOLVER.BASE_LR == 0.4 and isinstance(cfg.SOLVER.BASE_LR, float)  # command line wins
    assert cfg.SOLVER.WEIGHT_DECAY == pytest.approx(4e-5)  # YAML "4e-5" (a string to YAML) is a float
    assert cfg.OUTPUT_DIR == "2024"  # a string key keeps the token
    assert dict(cfg.MODEL.OVERRIDES) == {"stage_widths": [8, 16, 32, 64], "stem_width": 8}  # free-form merge
    assert cfg.is_frozen()


def test_int_given_for_float_is_accepted():
    cfg = load_config(None, ["SOLVER.BASE_LR", "1", "MODEL.OVERRIDES.stage_depths", "(1, 1, 1, 1)"])
    assert cfg.SOLVER.BASE_LR == 1.0 and isinstance(cfg.SOLVER.BASE_LR, float)
    assert cfg.MODEL.OVERRIDES.stage_depths == (1, 1, 1, 1)


@pytest.mark.parametrize(
    "opts, suggestion",
    [
        (["SOLVER.BASELR", "1"], "SOLVER.BASE_LR"),
        (["BASE_LR", "1"], "SOLVER.BASE_LR"),  # right leaf, missing section
        (["TRAIN.BATCHSIZE", "4"], "TRAIN.BATCH_SIZE"),
        (["DATA.NUM_FRAME", "4"], "DATA.NUM_FRAMES"),
    ],
)
def test_unknown_key_names_key_and_closest(opts, suggestion):
    with pytest.raises(ConfigKeyError) as info:
        load_config(None, opts)
    msg = str(info.value)
    assert f"'{opts[0]}'" in msg and suggestion in msg and "Did you mean" in msg


def test_unknown_key_in_file_names_file(tmp_path):
    bad = _write(tmp_path / "bad.yaml", "SOLVER:\n  MOMENTUMM: 0.9\n")
    with pytest.raises(ConfigKeyError, match=r"SOLVER\.MOMENTUMM.*bad\.yaml.*SOLVER\.MOMENTUM"):
        load_config(bad)


@pytest.mark.parametrize(
    "opts, expected, given",
    [
        (["SOLVER.MAX_EPOCH", "1.5"], "expects int", "got float 1.5"),
        (["TRAIN.BATCH_SIZE", "[1, 2]"], "expects int", "got list"),
        (["EMA.ENABLE", "1"], "expects bool", "got int 1"),
        (["SOLVER.BASE_LR", "True"], "expects float", "got bool True"),
        (["DATA.MEAN", "0.5"], "expects list", "got float"),
    ],
)
def test_wrong_type_names_key_expected_and_given(opts, expected, given):
    with pytest.raises(ConfigError) as info:
        load_config(None, opts)
    msg = str(info.value)
    assert f"'{opts[0]}'" in msg and expected in msg and given in msg


def test_wrong_type_in_yaml(tmp_path):
    bad = _write(tmp_path / "bad.yaml", "TRAIN:\n  BATCH_SIZE: eight\n")
    with pytest.raises(ConfigError, match=r"TRAIN\.BATCH_SIZE.*bad\.yaml.*expects int.*got str 'eight'"):
        load_config(bad)


@pytest.mark.parametrize(
    "opts, match",
    [
        (["TRAIN.MIXED_PRECISION", "fp32"], r"TRAIN\.MIXED_PRECISION.*'none', 'bf16', 'fp16'"),
        (["SOLVER.WARMUP_EPOCHS", "400"], r"SOLVER\.WARMUP_EPOCHS"),
        (["EMA.DECAY", "1.5"], r"EMA\.DECAY"),
        (["TASK", "video", "TRAIN.CHECKPOINT_INFLATE", "average"], r"TRAIN\.CHECKPOINT_FILE_PATH is empty"),
        (["TRAIN.GRAD_ACCUM_STEPS", "0"], r"'TRAIN\.GRAD_ACCUM_STEPS' = 0: must be >= 1"),
        (["TASK", "video", "AUG.NUM_SAMPLE", "0"], r"'AUG\.NUM_SAMPLE' = 0: must be >= 1"),
        (["TASK", "video", "AUG.NUM_SAMPLE", "2", "DATA.BACKEND", "pytorchvideo"],
         r"'AUG\.NUM_SAMPLE' = 2: must be 1 with DATA\.BACKEND 'pytorchvideo'"),
        (["TASK", "video", "DATA.TRAIN_CROP_NUM_TEMPORAL", "0"], r"'DATA\.TRAIN_CROP_NUM_TEMPORAL' = 0: must be >= 1"),
        (["TASK", "video", "DATA.TRAIN_CROP_NUM_TEMPORAL", "2", "DATA.BACKEND", "pytorchvideo"],
         r"'DATA\.TRAIN_CROP_NUM_TEMPORAL' = 2: must be 1 with DATA\.BACKEND 'pytorchvideo'"),
        (["DATA.SAMPLING_MODE", "tsn"], r"'DATA\.SAMPLING_MODE' = 'tsn' is not one of 'dense', 'uniform'"),
        (["TASK", "video", "DATA.SAMPLING_MODE", "uniform", "DATA.BACKEND", "pytorchvideo"],
         r"'DATA\.SAMPLING_MODE' = 'uniform': must be 'dense' with DATA\.BACKEND 'pytorchvideo'"),
        (["SOLVER.BASE_LR"], r"KEY VALUE pairs"),
        (["_BASE_", "x.yaml"], r"_BASE_"),
    ],
)
def test_invalid_values(opts, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, opts)


def test_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    child = _write(tmp_path / "c.yaml", "_BASE_: missing_base.yaml\n")
    with pytest.raises(ConfigError, match="c.yaml"):
        load_config(child)


def test_resolved_config_round_trips(tmp_path, cfg_files):
    _, child = cfg_files
    cfg = load_config(child, ["SOLVER.BASE_LR", "0.25"])
    save_config(cfg, tmp_path / "out" / "config.yaml")
    again = load_config(tmp_path / "out" / "config.yaml")
    assert again == cfg


def test_cli_parsing():
    args = parse_args(["--cfg", "a.yaml", "TRAIN.BATCH_SIZE", "4", "SOLVER.BASE_LR", "0.1"], "x")
    assert args.cfg_file == "a.yaml" and args.opts == ["TRAIN.BATCH_SIZE", "4", "SOLVER.BASE_LR", "0.1"]


def test_every_shipped_config_loads():
    configs = sorted((REPO / "configs").rglob("*.yaml"))
    assert len(configs) >= 20, "configs missing"
    for path in configs:
        cfg = load_config(path)
        if not path.name.startswith("base_"):  # a runnable recipe names its task, model and classes
            require_keys(cfg, str(path))


def test_imagenet_configs_match_released_per_model_values():
    from rs_image.models import IMAGE_MODELS

    names = sorted(p.stem for p in (REPO / "configs" / "imagenet").glob("resnetrs*.yaml"))
    assert len(names) == 11
    for name in names:
        cfg = load_config(REPO / "configs" / "imagenet" / f"{name}.yaml")
        base, variant = IMAGE_MODELS.split_name(cfg.MODEL.NAME)
        assert variant == name.split("_")[1], name
        ref = IMAGE_MODELS.get(base).cfg(variant).to_dict()
        assert cfg.DATA.TRAIN_CROP_SIZE == cfg.DATA.TEST_CROP_SIZE == ref["input_size"][-1], name
        assert cfg.AUG.RA_MAGNITUDE == ref["randaugment_magnitude"], name
        assert cfg.MODEL.DROPOUT_RATE == ref["dropout"], name
        assert cfg.MODEL.DROP_PATH_RATE == ref["drop_path_rate"], name
        assert cfg.BN.MOMENTUM == 1.0 and cfg.EMA.ENABLE and cfg.EMA.INCLUDE_BUFFERS  # TF BN momentum 0 + EMA


def test_kinetics_configs_carry_the_model_garden_recipe():
    import rs_video

    for path in sorted((REPO / "configs" / "kinetics").glob("rs*.yaml")):
        cfg = load_config(path)
        assert cfg.MODEL.NAME in rs_video.list_models(), path
        assert (cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE) == (32, 2)
        assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.BASE_BATCH_SIZE, cfg.SOLVER.NESTEROV) == (0.8, 1024, True)
        assert (cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS, cfg.MODEL.DROPOUT_RATE) == (10, 3, 0.5)
    in1k = load_config(REPO / "configs" / "kinetics" / "rs3d_50_in1k.yaml")
    assert in1k.TRAIN.CHECKPOINT_INFLATE == "average" and in1k.TRAIN.CHECKPOINT_FILE_PATH


def test_defaults_follow_the_recipe_and_name_no_task():
    cfg = get_cfg()
    assert cfg.SOLVER.MOMENTUM == 0.9 and cfg.SOLVER.WEIGHT_DECAY == pytest.approx(4e-5)
    assert cfg.SOLVER.LABEL_SMOOTHING == 0.1 and cfg.EMA.DECAY == 0.9999 and cfg.EMA.TF_WARMUP
    assert cfg.EMA.INCLUDE_BUFFERS
    assert (cfg.TASK, cfg.MODEL.NAME, cfg.MODEL.NUM_CLASSES) == ("", "", 0)
    with pytest.raises(ConfigError, match="training needs TASK, MODEL.NAME, MODEL.NUM_CLASSES"):
        require_keys(load_config(None), "training")


@pytest.mark.parametrize("key, replacement", [
    ("NUM_GPUS", "torchrun"), ("SOLVER.OPTIMIZING_METHOD", "SGD"), ("SOLVER.LR_POLICY", "cosine with linear warm-up"),
])
def test_keys_that_did_nothing_are_gone_with_their_replacement(tmp_path, key, replacement):
    with pytest.raises(ConfigKeyError, match=rf"'{key}' \(command line\) was removed: .*{replacement}"):
        load_config(None, [key, "sgd"])
    section, _, leaf = key.rpartition(".")
    text = f"{section}:\n  {leaf}: sgd\n" if section else f"{leaf}: 1\n"
    with pytest.raises(ConfigKeyError, match=rf"'{key}' \(in .*bad.yaml\) was removed"):
        load_config(_write(tmp_path / "bad.yaml", text))


def test_a_task_that_is_not_registered_is_named(tmp_path):
    bad = _write(tmp_path / "pose.yaml", "TASK: pose\nMODEL:\n  NAME: x\n")
    with pytest.raises(ConfigError, match=r"TASK 'pose' \(in .*pose.yaml\) is not registered; registered tasks: image, video"):
        load_config(bad)


def test_video_keys_and_rules_come_from_the_video_task():
    cfg = load_config(None, ["TASK", "video", "DATA.NUM_FRAMES", "16", "TEST.NUM_ENSEMBLE_VIEWS", "4"])
    assert (cfg.DATA.NUM_FRAMES, cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.DATA.DECODER) == (16, 4, "auto")
    with pytest.raises(ConfigError, match=r"DATA.TRAIN_JITTER_SCALES' = \[200, 320\]: must be .*min >= DATA.TRAIN_CROP_SIZE"):
        load_config(None, ["TASK", "video", "DATA.TRAIN_JITTER_SCALES", "[200, 320]"])  # the 224 crop does not fit
    load_config(None, ["TASK", "image", "DATA.TRAIN_JITTER_SCALES", "[200, 320]"])  # not a key of image runs
    with pytest.raises(ConfigError, match=r"'DATA.DECODER' = 'ffmpeg' is not one of 'auto', 'torchcodec', 'pyav', 'decord'"):
        load_config(None, ["DATA.DECODER", "ffmpeg"])


@pytest.fixture
def config_registry_restored(monkeypatch):
    """An extension changes the process-wide defaults; later tests (and the checkpoints they write and other
    processes read) must not carry this test's keys."""
    from rs_image.engine import config

    monkeypatch.setattr(config, "_C", config._C.clone())
    monkeypatch.setattr(config, "_EXTENSIONS", dict(config._EXTENSIONS))
    monkeypatch.setattr(config, "_CHOICES", dict(config._CHOICES))
    monkeypatch.setattr(config, "RULES", list(config.RULES))


def test_an_extension_adds_keys_choices_and_rules(config_registry_restored):
    def add(cfg):
        cfg.POSE = type(cfg)()
        cfg.POSE.NUM_KEYPOINTS = 17
        cfg.POSE.HEAD = "simple"

    add_config_extension("test-pose", add, choices={"POSE.HEAD": ("simple", "deconv")},
                         rules=[Rule("POSE.NUM_KEYPOINTS", lambda v, c: v > 0, "> 0")])
    add_config_extension("test-pose", add)  # idempotent
    assert load_config(None, ["POSE.NUM_KEYPOINTS", "5"]).POSE.NUM_KEYPOINTS == 5
    with pytest.raises(ConfigError, match=r"'POSE.NUM_KEYPOINTS' = 0: must be > 0"):
        load_config(None, ["POSE.NUM_KEYPOINTS", "0"])
    with pytest.raises(ConfigError, match=r"'POSE.HEAD' = 'big' is not one of 'simple', 'deconv'"):
        load_config(None, ["POSE.HEAD", "big"])

"""The TF Model Garden 3D ResNet-RS, exactly: ``rs3d_*_tf_mg`` against outputs of MG's own network.

``tests/fixtures/mg_resnet3drs`` was written by ``tests/fixtures/make_mg_resnet3drs_fixture.py`` with
tf-models-official 2.20.0 (MG's trainer checkpoint of ``resnet_3d_rs`` at the K400 yaml, a small spec, random
BN statistics and EMA slots, and MG's logits and endpoints '2'..'5' in inference mode for an even-sized and
an odd-sized input). These tests convert that checkpoint without TensorFlow and compare.
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch

import rs_video
from rs_image.models import Ops
from rs_image.models.layers import TFSameConv3d, TFSameMaxPool3d, tf_same_pads
from rs_image.models.weights import WeightsError, load_state_dict_strict, read_tf_checkpoint, resolve_weights
from rs_image.engine.config import load_config
from rs_video.models.model_garden import (
    MODEL_GARDEN_MODELS,
    convert_model_garden_checkpoint,
    create_model_from_model_garden,
    from_model_garden,
    model_garden_arch,
)
from rs_video.cli import convert_tf_checkpoint
from tests.helpers import fails_with

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "mg_resnet3drs"
CKPT = FIXTURE / "ckpt"
TOL = 1e-4
# model.count_params() of MG's own models at the K400 yaml (400 classes), BN moving statistics included,
# and its trainable part (tf-models-official 2.20.0, built at full size by the fixture's author).
MG_COUNTS = {50: (48_183_088, 48_129_840), 101: (85_074_992, 84_969_520), 152: (114_939_696, 114_788_144),
             200: (121_552_688, 121_376_560)}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks


@functools.lru_cache(maxsize=2)
def _converted(ema: bool = False) -> Dict[str, torch.Tensor]:
    """The fixture checkpoint converted once per test session (callers copy before changing it)."""
    return convert_model_garden_checkpoint(CKPT / "ckpt-2", prefer_ema=ema)


@pytest.fixture(scope="module")
def io() -> Dict[str, np.ndarray]:
    with np.load(FIXTURE / "mg_resnet3drs_io.npz") as data:
        return {k: data[k] for k in data.files}


def _clip(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 4, 1, 2, 3)  # NTHWC -> NCTHW


def _max_errors(sd, io, ema: bool, **overrides) -> Dict[str, float]:
    """max |ours - MG| / max(1, max |MG|) of the logits and each endpoint, over both inputs."""
    model = create_model_from_model_garden(sd, **overrides)
    features = create_model_from_model_garden(sd, features_only=True, **overrides)
    prefix = "ema_" if ema else ""
    errors: Dict[str, float] = {}
    with torch.no_grad():
        for s in "ab":
            x = _clip(io[f"input_{s}"])
            outputs = [model(x)] + [f.permute(0, 2, 3, 4, 1) for f in features(x)]
            names = ["logits"] + [f"endpoint{k}" for k in (2, 3, 4, 5)]
            for name, out in zip(names, outputs):
                ref = io[f"{prefix}{name}_{s}"]
                assert out.shape == ref.shape, (name, s)
                err = np.abs(out.numpy() - ref).max() / max(1.0, np.abs(ref).max())
                errors[name] = max(errors.get(name, 0.0), float(err))
    return errors


@pytest.mark.parametrize("ema", [False, True], ids=["raw", "ema"])
def test_converted_checkpoint_matches_model_garden(io, ema):
    errors = _max_errors(_converted(ema), io, ema)
    assert set(errors) == {"logits", "endpoint2", "endpoint3", "endpoint4", "endpoint5"}
    assert max(errors.values()) < TOL, errors


def test_symmetric_padding_would_not_match(io):
    """The fixture sees the padding: the same weights with PyTorch's symmetric padding are far off."""
    errors = _max_errors(_converted(), io, False, ops=Ops(3))
    assert min(errors.values()) > 0.05, errors


def test_raw_and_ema_weights_differ_and_prefer_ema_selects_the_averages():
    raw = resolve_weights(CKPT)
    ema = resolve_weights(CKPT, prefer_ema=True)
    assert raw.format == ema.format == "model_garden" and ema.source.endswith("[ema_state]")
    assert set(raw.state_dict) == set(ema.state_dict) and len(raw.state_dict) == 216
    assert all(not torch.equal(raw.state_dict[k], ema.state_dict[k]) for k in raw.state_dict)


def test_full_size_models_have_model_gardens_parameter_counts():
    for depth, (count_params, trainable) in MG_COUNTS.items():
        with torch.device("meta"):
            model = rs_video.create_model(MODEL_GARDEN_MODELS[depth])
        params = sum(p.numel() for p in model.parameters())
        stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
        assert (params + stats, params) == (count_params, trainable), depth


def test_registered_network_is_model_gardens():
    assert rs_video.list_models("*_tf_mg") == [f"rs3d_{d}_tf_mg" for d in (50, 101, 152, 200)]
    model = rs_video.create_model("rs3d_50_tf_mg", num_classes=7, stage_widths=(8, 16, 24, 32))  # small, fast
    cfg = model.pretrained_cfg
    assert cfg["mean"] == (0.0, 0.0, 0.0) and cfg["std"] == (1.0, 1.0, 1.0) and "inflate_from" not in cfg
    assert (cfg["dropout"], cfg["drop_path_rate"], cfg["drop_path_schedule"]) == (0.5, 0.1, "stage")
    stem = model.stem
    assert not hasattr(stem, "conv4") and isinstance(stem.pool, TFSameMaxPool3d)
    assert (stem.conv1.kernel_size, stem.conv1.stride, stem.pool.kernel_size, stem.pool.stride) == (
        (5, 3, 3), (2, 2, 2), (1, 3, 3), (1, 2, 2))
    # TF 'same' padding only where it differs from PyTorch's: the stem conv, the strided 3x3 convs, the pool.
    tf_same = sorted(n for n, m in model.named_modules() if isinstance(m, (TFSameConv3d, TFSameMaxPool3d)))
    assert tf_same == ["layer2.0.conv2", "layer3.0.conv2", "layer4.0.conv2", "stem.conv1", "stem.pool"]
    for s, stage in enumerate(model.stages):
        first = stage[0].shortcut
        assert isinstance(first.pool, torch.nn.Identity) and first.conv.stride == ((1, 2, 2) if s else (1, 1, 1))
        assert [b.gate is not None for b in stage] == [False] * (len(stage) - 1) + [True]
        assert all(b.conv1.kernel_size[0] == (1, 1, 3, 3)[s] for b in stage)
        assert all(b.se.fc1.out_channels == b.conv1.out_channels for b in stage)  # int(4f x 0.25) = f
        assert all(torch.equal(b.bn3.weight, torch.ones_like(b.bn3.weight)) for b in stage)  # no zero-init
        assert all(b.bn1.eps == 1e-5 for b in stage)
    rates = [b.drop_path.p for stage in model.stages for b in stage[:1]]
    assert rates == pytest.approx([0.1 * (s + 2) / 5 for s in range(4)])


@pytest.mark.parametrize("n,k,s,pads", [
    (8, 5, 2, (1, 2)), (7, 5, 2, (2, 2)), (32, 3, 2, (0, 1)), (33, 3, 2, (1, 1)), (16, 3, 1, (1, 1)),
    (16, 1, 2, (0, 0)), (15, 1, 2, (0, 0)), (16, 3, 3, (1, 1)), (5, 3, 1, (1, 1)),
])
def test_tf_same_pad_amounts(n, k, s, pads):
    """TF: out = ceil(n / s), total = max((out - 1) s + k - n, 0), total // 2 before (SPEC table)."""
    assert tuple(tf_same_pads((n,), (k,), (s,))) == pads


def test_tf_same_ops_in_2d_and_their_errors():
    torch.manual_seed(0)
    conv = Ops(2, padding="tf_same").conv(3, 4, 3, 2)
    pool = Ops(2, padding="tf_same").max_pool(3, 2)
    x = torch.randn(1, 3, 10, 9)
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 0, 1)), conv.weight, stride=2)
    assert torch.equal(conv(x), ref) and set(dict(conv.named_parameters())) == {"weight"}
    assert torch.equal(pool(-x.abs() - 1), torch.nn.functional.max_pool2d(
        torch.nn.functional.pad(-x.abs() - 1, (1, 1, 0, 1), value=float("-inf")), 3, 2))  # padding never wins
    assert type(Ops(2, padding="tf_same").conv(3, 4, 3, 1)) is torch.nn.Conv2d  # stride 1: PyTorch's padding
    with pytest.raises(ValueError, match="Ops.padding must be one of"):
        Ops(3, padding="same")
    with pytest.raises(ValueError, match="'tf_same' padding is for plain convs"):
        Ops(3, factorized=True, padding="tf_same")


def test_layouts_of_other_model_garden_checkpoints_convert_alike():
    sd = resolve_weights(CKPT).state_dict
    raw = read_tf_checkpoint(CKPT)["model_state"]
    # tf.train.Checkpoint(model=model).save(): the backbone under model/layer_with_weights-0/.
    model_only = {re.sub(r"^backbone/", "model/layer_with_weights-0/", k): v for k, v in raw.items()}
    assert from_model_garden(model_only).keys() == sd.keys()
    # tf.train.Checkpoint(backbone=model.backbone): no classifier; loads into a headless model.
    backbone_only = {k: v for k, v in raw.items() if k.startswith("backbone/")}
    features = create_model_from_model_garden(from_model_garden(backbone_only), features_only=True)
    assert features.feature_info.channels() == [16, 32, 48, 64]


def test_converter_lists_every_problem_in_one_error():
    raw = dict(read_tf_checkpoint(CKPT)["model_state"])
    raw["model/layer_with_weights-2/kernel"] = torch.zeros(3)
    raw["backbone/layer_with_weights-7/_spatial_conv/kernel"] = torch.zeros(3, 3, 8, 8)  # a rank-4 Conv3D kernel
    raw["backbone/layer_with_weights-7/_dropout/rate"] = torch.zeros(())
    with pytest.raises(WeightsError) as err:
        from_model_garden(raw)
    text = str(err.value)
    assert text.startswith("3 problem(s) converting a TF Model Garden checkpoint")
    assert "model/layer_with_weights-2/kernel: not a Model Garden backbone" in text
    assert "layer_with_weights-7/_spatial_conv/kernel: shape (3, 3, 8, 8) for layer1.1.conv2" in text
    assert "no rule for '_dropout/rate'" in text


def test_strict_load_names_what_the_checkpoint_lacks():
    sd = dict(_converted())
    del sd["layer2.1.bn2.running_var"]
    model = rs_video.create_model("rs3d_50_tf_mg", **model_garden_arch(sd))
    with pytest.raises(WeightsError, match=r"missing keys \(1\): \['layer2.1.bn2.running_var'\]"):
        load_state_dict_strict(model, sd)
    with pytest.raises(WeightsError, match=r"unexpected keys .*stem.conv4.weight|missing keys .*stem.conv4"):
        # the inflatable network is another network
        create_model_from_model_garden(CKPT, "rs3d_50", stage_depths=(2, 3, 2, 2), stage_widths=(4, 8, 12, 16))


def test_arch_is_read_from_the_checkpoint():
    arch = model_garden_arch(_converted())
    assert arch == dict(stage_depths=(2, 3, 2, 2), stage_widths=(4, 8, 12, 16), stem_width=32, in_chans=3,
                        stem_temporal_kernel=5, temporal_kernels_a=(1, 1, 3, 3), se_ratio=0.25, self_gating=True,
                        num_classes=5)


def test_convert_tool_writes_weights_that_load_as_registered(tmp_path, io, caplog, capsys):
    caplog.set_level(logging.INFO)
    out = tmp_path / "mg.safetensors"
    assert convert_tf_checkpoint.main([str(CKPT), str(out), "--ema"]) == 0
    assert "EMA averages" in caplog.text and "rs3d_50_tf_mg (stage depths (2, 3, 2, 2)" in caplog.text
    arch = model_garden_arch(_converted())
    model = rs_video.create_model("rs3d_50_tf_mg", pretrained=str(out), **arch).eval()
    with torch.no_grad():
        logits = model(_clip(io["input_b"])).numpy()
    assert np.abs(logits - io["ema_logits_b"]).max() < TOL
    fails_with(convert_tf_checkpoint.main, [str(CKPT), str(tmp_path / "x.bin")], capsys,
               "convert_tf_checkpoint: error: the output must end in .safetensors, .pth, .pt: ")
    fails_with(convert_tf_checkpoint.main, [str(tmp_path / "none"), str(out)], capsys, "none")


def test_recipe_feeds_model_gardens_input_convention():
    cfg = load_config(REPO / "configs" / "kinetics" / "rs3d_50_tf_mg.yaml")
    model_cfg = rs_video.models.VIDEO_MODELS.get(cfg.MODEL.NAME).cfg()
    assert cfg.MODEL.NAME == "rs3d_50_tf_mg"
    assert tuple(cfg.DATA.MEAN) == model_cfg.mean == (0.0, 0.0, 0.0)
    assert tuple(cfg.DATA.STD) == model_cfg.std == (1.0, 1.0, 1.0)
    assert (cfg.BN.MOMENTUM, cfg.EMA.ENABLE, cfg.EMA.INCLUDE_BUFFERS, cfg.EMA.DECAY) == (1.0, True, True, 0.9999)
    assert (cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE, cfg.SOLVER.LABEL_SMOOTHING) == (224, 256, 0.1)

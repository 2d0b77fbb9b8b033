"""rs_image models: architecture against the references (params, MACs, timm logits), API, weights."""

import copy
import math

import pytest
import torch
from torchvision.ops import FeaturePyramidNetwork

import rs_image
from torch import nn

from rs_image.models import (
    IMAGE_MODELS, Bottleneck, Ops, ResNetRS, WeightsError, drop_path_rates, make_stages, save_state_dict,
    timm_to_native,
)
from rs_image.report.counts import count_macs, count_params
from tests.conftest import randomize_bn

# Reference parameter counts (M, 1000 classes): TF1 graph = timm = paper.
REFERENCE_PARAMS_M = {
    "resnetrs50": 35.69, "resnetrs101": 63.62, "resnetrs152": 86.62, "resnetrs200": 93.21,
    "resnetrs270": 129.86, "resnetrs350": 163.96, "resnetrs420": 191.89,
}
# Reference multiply-adds of conv + linear (G) at the paper's resolutions.
REFERENCE_GMACS = [
    ("resnetrs50", 160, 2.28), ("resnetrs101", 192, 6.01), ("resnetrs152", 256, 15.53),
    ("resnetrs200", 256, 20.09), ("resnetrs350", 320, 53.68), ("resnetrs420", 320, 63.94),
]


def test_list_models():
    assert rs_image.list_models() == list(REFERENCE_PARAMS_M)
    assert rs_image.list_models("resnetrs1*") == ["resnetrs101", "resnetrs152"]


@pytest.mark.parametrize("name", list(REFERENCE_PARAMS_M))
def test_param_counts_match_reference(name):
    with torch.device("meta"):
        model = rs_image.create_model(name)
    assert abs(count_params(model) / 1e6 - REFERENCE_PARAMS_M[name]) <= 0.01
    assert model.pretrained_cfg["params_m"] == REFERENCE_PARAMS_M[name]


@pytest.mark.slow
@pytest.mark.parametrize("name,res,gmacs", REFERENCE_GMACS)
def test_fvcore_macs_match_reference(name, res, gmacs):
    model = rs_image.create_model(name)
    macs = count_macs(model, torch.zeros(1, 3, res, res))
    assert abs(macs["conv_linear"] / 1e9 - gmacs) / gmacs < 0.01
    # BN is counted separately and is small, never mixed into the zoo number.
    assert 0 < macs["batch_norm"] < 0.01 * macs["conv_linear"]
    assert macs["total"] >= macs["conv_linear"] + macs["batch_norm"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnetrs50", "resnetrs101"])
def test_logits_equal_timm(name, timm):
    torch.manual_seed(0)
    ref = randomize_bn(timm.create_model(name, pretrained=False), seed=1)
    ours = rs_image.create_model(name, dropout=0.0, drop_path_rate=0.0)
    ours.load_state_dict(timm_to_native(ref.state_dict()), strict=True)
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        ref.eval(), ours.eval()
        diff_eval = (ours(x) - ref(x)).abs().max().item()
        ref.train(), ours.train()
        diff_train = (ours(x) - ref(x)).abs().max().item()
    assert diff_eval <= 1e-5
    assert diff_train <= 1e-5


def test_timm_mapping_catches_a_broken_branch(timm):
    """The equivalence check is only meaningful with random BN: prove it fails for a wrong model."""
    ref = randomize_bn(timm.create_model("resnetrs50", pretrained=False), seed=1).eval()
    ours = rs_image.create_model("resnetrs50", se_ratio=0.0).eval()  # no SE: a different network
    sd = {k: v for k, v in timm_to_native(ref.state_dict()).items() if ".se." not in k}
    ours.load_state_dict(sd, strict=True)
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max().item() > 1e-2


@pytest.mark.slow
def test_pretrained_cfg_and_variants():
    m = rs_image.create_model("resnetrs350.i320")
    cfg = m.pretrained_cfg
    assert cfg["input_size"] == (3, 320, 320) and cfg["dropout"] == 0.4 and cfg["drop_path_rate"] == 0.1
    assert m.head.dropout.p == 0.4
    assert rs_image.create_model("resnetrs350").pretrained_cfg["input_size"] == (3, 256, 256)
    cfg50 = rs_image.create_model("resnetrs50").pretrained_cfg
    assert cfg50["randaugment_magnitude"] == 10 and cfg50["drop_path_rate"] == 0.0 and cfg50["top1"] == 78.8
    assert cfg50["gmacs"] == 2.28 and cfg50["architecture"] == "resnetrs50" and cfg50["variant"] == "i160"
    assert cfg50["interpolation"] == "bicubic" and cfg50["mean"] == (0.485, 0.456, 0.406)
    variants = sum(len(IMAGE_MODELS.get(n).variants) for n in rs_image.list_models())
    assert variants == 11
    with pytest.raises(KeyError, match="did you mean resnetrs50"):
        rs_image.create_model("resnetrs5")
    with pytest.raises(TypeError, match="unknown keyword"):
        rs_image.create_model("resnetrs50", dropuot=0.1)


def test_overrides_change_the_architecture():
    m = rs_image.create_model(
        "resnetrs50", stage_depths=(1, 2, 1, 1), stage_widths=(8, 16, 32, 64), width_multiplier=2.0,
        in_chans=1, se_ratio=0.5, num_classes=7, stem_width=8,
    )
    assert len(m.layer2) == 2 and m.num_features == 64 * 2 * 4
    assert m.layer1[0].conv1.out_channels == 16
    assert m.layer4[0].se.fc1.out_channels == int(512 * 0.5)
    assert m.stem.conv1.in_channels == 1
    assert m(torch.randn(2, 1, 64, 64)).shape == (2, 7)


def test_block_details_follow_tf1():
    m = rs_image.create_model("resnetrs50")
    # Zero-init of the last BN gamma, BN eps 1e-5, SE width = 0.25 x block output, with biases.
    assert all(float(b.bn3.weight.detach().abs().sum()) == 0 for s in m.stages for b in s)
    assert m.layer3[0].bn1.eps == 1e-5
    assert m.layer3[0].se.fc1.out_channels == 256 and m.layer3[0].se.fc1.bias is not None
    # Stride on the 3x3 conv; ResNet-D shortcut on strided stages, plain 1x1 conv in stage 1.
    assert m.layer2[0].conv2.stride == (2, 2) and m.layer2[0].conv1.stride == (1, 1)
    assert isinstance(m.layer2[0].shortcut.pool, torch.nn.AvgPool2d) and m.layer2[0].shortcut.conv.stride == (1, 1)
    assert isinstance(m.layer1[0].shortcut.pool, torch.nn.Identity)
    assert m.stem.conv1.stride == (2, 2) and m.stem.conv4.stride == (2, 2) and m.stem.conv3.out_channels == 64


def test_stochastic_depth_schedules():
    stage = drop_path_rates((3, 4, 6, 3), 0.1, "stage")
    assert [len(s) for s in stage] == [3, 4, 6, 3]
    assert [s[0] for s in stage] == pytest.approx([0.04, 0.06, 0.08, 0.1])
    linear = drop_path_rates((3, 4, 6, 3), 0.1, "linear")
    flat = [r for s in linear for r in s]
    assert flat[0] == 0 and math.isclose(flat[-1], 0.1) and len(flat) == 16
    m = rs_image.create_model("resnetrs200")  # base rate 0.1 by default from the registry
    assert m.layer1[0].drop_path.p == pytest.approx(0.04) and m.layer4[2].drop_path.p == pytest.approx(0.1)
    m = rs_image.create_model("resnetrs50", drop_path_rate=0.5, drop_path_schedule="linear", stage_depths=(1, 1, 1, 1),
                              stage_widths=(8, 8, 8, 8), stem_width=8)
    assert isinstance(m.layer1[0].drop_path, torch.nn.Identity) and m.layer4[0].drop_path.p == pytest.approx(0.5)
    # Drop-path is random in training and the identity in eval.
    randomize_bn(m)
    x = torch.randn(4, 3, 32, 32)
    m.train()
    torch.manual_seed(0)
    a = m(x)
    torch.manual_seed(1)
    b = m(x)
    assert not torch.allclose(a, b)
    m.eval()
    assert torch.equal(m(x), m(x))


def test_features_only_into_fpn():
    m = rs_image.create_model("resnetrs50", features_only=True).eval()
    assert m.feature_info.channels() == [256, 512, 1024, 2048]
    assert m.feature_info.reduction() == [4, 8, 16, 32]
    assert m.feature_info.module_name() == ["layer1", "layer2", "layer3", "layer4"]
    x = torch.randn(1, 3, 224, 224)
    feats = m(x)
    assert [tuple(f.shape[1:]) for f in feats] == [(256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]
    fpn = FeaturePyramidNetwork(m.feature_info.channels(), 64)
    outs = fpn({str(i): f for i, f in enumerate(feats)})
    assert [o.shape[1] for o in outs.values()] == [64] * 4
    stem_and_last = rs_image.create_model("resnetrs50", features_only=True, out_indices=(0, 4))
    assert stem_and_last.feature_info.reduction() == [4, 32]
    with pytest.raises(ValueError, match="out_indices"):
        rs_image.create_model("resnetrs50", features_only=True, out_indices=(5,))


def test_head_api():
    m = rs_image.create_model("resnetrs50", stage_widths=(8, 8, 8, 8), stem_width=8).eval()
    x = torch.randn(2, 3, 64, 64)
    feats = m.forward_features(x)
    assert feats.shape == (2, 32, 2, 2)
    assert m.forward_head(feats, pre_logits=True).shape == (2, 32)
    assert torch.equal(m.forward_head(feats), m(x))
    m.reset_classifier(5)
    assert m(x).shape == (2, 5) and m.get_classifier().out_features == 5
    m.reset_classifier(0)
    assert m(x).shape == (2, 32)
    assert isinstance(m.get_classifier(), nn.Identity)


def test_features_only_model_has_no_classifier():
    m = rs_image.create_model("resnetrs50", features_only=True, stage_widths=(8, 8, 8, 8), stem_width=8)
    assert m.head is None and isinstance(m.get_classifier(), nn.Identity)
    with pytest.raises(RuntimeError, match="features_only model has no"):
        m.reset_classifier(5)
    with pytest.raises(RuntimeError, match="features_only model has no head"):
        m.forward_head(torch.zeros(1, 32, 2, 2))


TINY_TABLES = dict(stage_depths=(2, 1, 1, 2), stage_widths=(8, 16, 16, 16))


def _make_tiny_stages(ops=Ops(2), **kw):
    torch.manual_seed(0)
    return make_stages(ops, 16, **TINY_TABLES, se_ratio=0.25, drop_path_rate=0.2, **kw)


def test_make_stages_is_pure():
    stages, info = _make_tiny_stages()
    again, info_again = _make_tiny_stages()
    # Same tables, same result: names, structure, metadata and (under the same seed) weights.
    assert [n for n, _ in stages] == [n for n, _ in again] == ["layer1", "layer2", "layer3", "layer4"]
    assert [repr(m) for _, m in stages] == [repr(m) for _, m in again]
    assert info == info_again == [
        dict(num_chs=32, reduction=4, module="layer1"), dict(num_chs=64, reduction=8, module="layer2"),
        dict(num_chs=64, reduction=16, module="layer3"), dict(num_chs=64, reduction=32, module="layer4"),
    ]
    for (_, a), (_, b) in zip(stages, again):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        # New modules every call, owned by no model.
        assert all(pa is not pb for pa, pb in zip(a.parameters(), b.parameters()))
    assert [type(b) for _, s in stages for b in s] == [Bottleneck] * 6
    # The per-stage stochastic-depth rule, 0.4 / 0.6 / 0.8 / 1.0 x the rate.
    assert [b.drop_path.p for _, s in stages for b in s] == pytest.approx([0.08, 0.08, 0.12, 0.16, 0.2, 0.2])
    # The tables are read, never changed.
    tables = dict(stage_depths=[2, 1, 1, 2], stage_widths=[8, 16, 16, 16], temporal_kernels_a=[1, [3, 1], 3, 1])
    kept = copy.deepcopy(tables)
    make_stages(Ops(3), 16, **tables)
    assert tables == kept
    # ResNetRS is its stem, these stages and its head: the same modules in the same order.
    model = ResNetRS(**TINY_TABLES, stem_width=8, drop_path_rate=0.2, num_classes=3)
    assert [repr(getattr(model, n)) for n, _ in stages] == [repr(m) for _, m in stages]
    assert model.feature_info[1:] == info
    with pytest.raises(ValueError, match="spatial_strides has 3 entries for 4 stages"):
        make_stages(Ops(2), 16, **TINY_TABLES, spatial_strides=(1, 2, 2))
    with pytest.raises(ValueError, match="self_gating has 2 entries"):
        make_stages(Ops(3), 16, **TINY_TABLES, self_gating=(True, False))


def test_make_stages_3d_tables():
    stages, info = _make_tiny_stages(
        Ops(3), temporal_kernels_a=(1, (3, 1), 3, 1), temporal_strides=(1, 2, 1, 1), temporal_pool_after_layer1=2,
        self_gating=(False, True, False, True), temporal_reduction=2,
    )
    layers = dict(stages)
    assert [b.conv1.kernel_size[0] for b in layers["layer1"]] == [1, 1]
    assert layers["layer2"][0].conv1.kernel_size[0] == 3 and layers["layer2"][0].conv2.stride == (2, 2, 2)
    assert [[b.gate is not None for b in s] for _, s in stages] == [[False, False], [True], [False], [False, True]]
    # layer1's map is taken before the temporal pool after it; later stages are pooled (x 2) too.
    assert [f["temporal_reduction"] for f in info] == [2, 8, 8, 8]


def test_temporal_pool_is_built_by_the_ops():
    assert isinstance(Ops(2).temporal_pool(1), nn.Identity)
    assert isinstance(Ops(3).temporal_pool(1), nn.Identity)
    for ops in (Ops(3), Ops(3, factorized=True)):
        pool = ops.temporal_pool(2)
        assert isinstance(pool, nn.MaxPool3d) and pool.kernel_size == pool.stride == (2, 1, 1) and pool.padding == 0
    with pytest.raises(ValueError, match="2D network has no time axis"):
        Ops(2).temporal_pool(2)
    assert isinstance(rs_image.create_model("resnetrs50").temporal_pool, nn.Identity)
    with pytest.raises(ValueError, match="2D network has no time axis"):
        rs_image.create_model("resnetrs50", temporal_pool_after_layer1=2)


@pytest.mark.slow
def test_load_native_and_safetensors(tmp_path):
    src = randomize_bn(rs_image.create_model("resnetrs50")).eval()
    x = torch.randn(1, 3, 64, 64)
    expected = src(x)
    # native .pth inside a training checkpoint, and .safetensors
    torch.save({"model_state": src.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    save_state_dict(src, tmp_path / "w.safetensors")
    for f in ("ckpt.pth", "w.safetensors"):
        m = rs_image.create_model("resnetrs50", pretrained=tmp_path / f).eval()
        assert torch.equal(m(x), expected)
    # features_only models load the backbone only.
    f = rs_image.create_model("resnetrs50", pretrained=tmp_path / "w.safetensors", features_only=True)
    assert torch.equal(f.layer4[0].conv2.weight, src.layer4[0].conv2.weight)


@pytest.mark.slow
def test_load_timm_state_dict_file(tmp_path, caplog, timm):
    x = torch.randn(1, 3, 64, 64)
    ref = randomize_bn(timm.create_model("resnetrs50", pretrained=False)).eval()
    torch.save(ref.state_dict(), tmp_path / "timm.pth")
    m = rs_image.create_model("resnetrs50", pretrained=tmp_path / "timm.pth").eval()
    assert (m(x) - ref(x)).abs().max() <= 1e-5
    # Another number of classes drops the classifier, with a message.
    with caplog.at_level("INFO"):
        m = rs_image.create_model("resnetrs50", pretrained=tmp_path / "timm.pth", num_classes=10)
    assert "dropped the 1000-class classifier" in caplog.text
    assert torch.equal(m.stem.conv1.weight, ref.conv1[0].weight)


@pytest.mark.slow
def test_bad_pretrained_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        rs_image.create_model("resnetrs50", pretrained=tmp_path / "nope.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        rs_image.create_model("resnetrs50", pretrained=tmp_path / "empty.pth")
    (tmp_path / "garbage.pth").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(WeightsError, match="cannot read weights from .*garbage.pth"):
        rs_image.create_model("resnetrs50", pretrained=tmp_path / "garbage.pth")
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "foreign.pth")
    with pytest.raises(WeightsError, match="unrecognised state dict format"):
        rs_image.create_model("resnetrs50", pretrained=tmp_path / "foreign.pth")
    sd = rs_image.create_model("resnetrs50").state_dict()
    sd.pop("layer2.0.conv2.weight")
    sd["layer9.0.extra"] = torch.zeros(1)
    sd["layer1.0.conv1.weight"] = torch.zeros(3, 3, 1, 1)
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(WeightsError) as err:
        rs_image.create_model("resnetrs50", pretrained=tmp_path / "broken.pth")
    msg = str(err.value)
    assert "missing keys (1): ['layer2.0.conv2.weight']" in msg
    assert "unexpected keys (1): ['layer9.0.extra']" in msg
    assert "layer1.0.conv1.weight: file (3, 3, 1, 1) vs model (64, 64, 1, 1)" in msg
    # Another depth: the error lists what does not fit instead of loading partially.
    torch.save(rs_image.create_model("resnetrs50").state_dict(), tmp_path / "rs50.pth")
    with pytest.raises(WeightsError, match="unexpected keys|missing keys"):
        rs_image.create_model("resnetrs101", pretrained=tmp_path / "rs50.pth")
    with pytest.raises(ValueError, match="never does implicitly"):
        rs_image.create_model("resnetrs50", pretrained=True)

"""timm's backbone API on every model: forward_intermediates, prune_intermediate_layers, features_only built on
them; against timm's own ResNet-RS and against the plain module-by-module computation."""

import pytest
import torch
from torch import nn

import rs_image
import rs_video
from rs_image.models import feature_take_indices, load_pretrained, timm_to_native
from rs_image.report.counts import count_params
from tests.conftest import randomize_bn

TINY = dict(stage_widths=(8, 16, 32, 64), stage_depths=(1, 1, 1, 1), stem_width=8)
# (name, create, input): the image model and every video family (3D, (2+1)D, Slow, I3D and C2D's temporal pool).
MODELS = [
    ("resnetrs50", rs_image.create_model, (2, 3, 64, 64)),
    ("rs3d_50", rs_video.create_model, (2, 3, 8, 64, 64)),
    ("rs2plus1d_50", rs_video.create_model, (2, 3, 8, 64, 64)),
    ("slow_r50", rs_video.create_model, (2, 3, 8, 64, 64)),
    ("i3d_r50", rs_video.create_model, (2, 3, 8, 64, 64)),
    ("c2d_r50", rs_video.create_model, (2, 3, 8, 64, 64)),
]


def _tiny(name, create, **kw):
    torch.manual_seed(0)
    return randomize_bn(create(name, **TINY, **kw)).eval()


def _module_by_module(m, x):
    """The five maps written out as module calls: what features_only returned before forward_intermediates."""
    stem = m.stem(x)
    f1 = m.layer1(stem)
    f2 = m.layer2(m.temporal_pool(f1))
    f3 = m.layer3(f2)
    return [stem, f1, f2, f3, m.layer4(f3)]


def test_feature_take_indices_follows_timm(timm):
    from timm.models._features import feature_take_indices as timm_take

    for indices in (None, 1, 3, 5, [0], [4, 1], (-1,), [-2, 0], (2, 2)):
        assert feature_take_indices(5, indices) == timm_take(5, indices), indices
    for bad, match in ((0, r"last-n indices \(0\) out of range 1..5"), (6, "out of range 1..5"),
                       ([5], r"feature indices \[5\] out of range 0..4"), ([-6, 1], r"\[-6\] out of range"),
                       ([], "out of range")):
        with pytest.raises(ValueError, match=match):
            feature_take_indices(5, bad)


def test_forward_intermediates_equals_timm_resnetrs(timm):
    """Same weights, same maps bit for bit at indices 1..4 (same op order as timm). Index 0 differs by
    definition: timm taps the deep stem before its stride-2 conv 'maxpool' (reduction 2), ours after it
    (reduction 4, the stem output, as features_only always had)."""
    torch.manual_seed(0)
    # ResNet-RS-50's architecture, narrower and shallower (timm's channels = our stage widths); two blocks
    # in the first and last stage.
    depths, widths = (2, 1, 1, 2), (8, 16, 32, 64)
    ref = timm.create_model("resnetrs50", pretrained=False, layers=depths, channels=widths, stem_width=8)
    ref = randomize_bn(ref, seed=1).eval()
    ours = rs_image.create_model("resnetrs50", stage_depths=depths, stage_widths=widths, stem_width=8).eval()
    ours.load_state_dict(timm_to_native(ref.state_dict()))
    full_params = count_params(ours)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        last, maps = ours.forward_intermediates(x)
        ref_last, ref_maps = ref.forward_intermediates(x)
        assert [torch.equal(a, b) for a, b in zip(maps[1:], ref_maps[1:])] == [True] * 4
        assert torch.equal(last, ref_last)
        assert torch.equal(maps[0], ref.maxpool(ref_maps[0]))
        assert ours.feature_info.reduction() == [4, 4, 8, 16, 32]
        for kw in (dict(indices=2), dict(indices=[1, 3], stop_early=True), dict(indices=[-3], stop_early=True)):
            a_last, a = ours.forward_intermediates(x, **kw)
            b_last, b = ref.forward_intermediates(x, **kw)
            assert len(a) == len(b) and all(torch.equal(p, q) for p, q in zip(a, b)), kw
            assert torch.equal(a_last, b_last), kw
            only = ours.forward_intermediates(x, intermediates_only=True, **kw)
            assert isinstance(only, list) and all(torch.equal(p, q) for p, q in zip(only, a))
        # Pruning removes the same modules (timm empties the later stages and drops fc): equal counts, and the
        # pruned models compute the same maps and return the last kept stage from forward.
        assert ours.prune_intermediate_layers([1, -3]) == ref.prune_intermediate_layers([1, -3]) == [1, 2]
        assert count_params(ours) == count_params(ref) < 0.25 * full_params
        assert all(torch.equal(p, q) for p, q in zip(ours.forward_intermediates(x, [1, 2])[1],
                                                     ref.forward_intermediates(x, [1, 2])[1]))
        assert torch.equal(ours(x), ref(x)) and ours(x).shape == (2, 64, 8, 8)


@pytest.mark.parametrize("name,create,shape", MODELS, ids=[m[0] for m in MODELS])
def test_forward_intermediates_equals_features_only_bit_for_bit(name, create, shape):
    m = _tiny(name, create, num_classes=5)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = _module_by_module(m, x)
        last, maps = m.forward_intermediates(x)
        assert len(maps) == 5 and all(torch.equal(a, b) for a, b in zip(maps, plain))
        assert all(f.dim() == len(shape) for f in maps)  # 5D maps for video
        assert torch.equal(last, plain[-1]) and torch.equal(m.forward_features(x), plain[-1])
        assert torch.equal(m(x), m.forward_head(plain[-1]))
        # feature_info describes every map forward_intermediates gives, in time too.
        for f, meta in zip(maps, m.feature_info):
            assert f.shape[1] == meta["num_chs"] and f.shape[-1] == shape[-1] // meta["reduction"]
            if len(shape) == 5:
                assert f.shape[2] == shape[2] // meta["temporal_reduction"]
        for out_indices in ((1, 2, 3, 4), (3, 1), (2, 2, 0)):
            backbone = create(name, features_only=True, out_indices=out_indices, **TINY).eval()
            load_pretrained(backbone, m)
            feats = backbone(x)
            # features_only keeps its order (that of out_indices); forward_intermediates gives depth order.
            assert [torch.equal(f, plain[i]) for f, i in zip(feats, out_indices)] == [True] * len(out_indices)
            take = m.forward_intermediates(x, list(out_indices), intermediates_only=True)
            assert [torch.equal(f, plain[i]) for f, i in zip(take, sorted(set(out_indices)))] == [True] * len(take)
        assert all(torch.equal(a, plain[i]) for a, i in zip(m.forward_intermediates(x, 2)[1], (3, 4)))


@pytest.mark.parametrize("name,create,shape", MODELS[:2], ids=[m[0] for m in MODELS[:2]])
def test_stop_early_runs_no_later_stage(name, create, shape):
    m = _tiny(name, create)
    calls = {n: 0 for n in m.stage_names}
    for n in m.stage_names:
        getattr(m, n).register_forward_hook(lambda mod, i, o, n=n: calls.__setitem__(n, calls[n] + 1))
    x = torch.randn(shape)
    with torch.no_grad():
        last, maps = m.forward_intermediates(x, indices=[0, 2], stop_early=True)
        assert calls == {"layer1": 1, "layer2": 1, "layer3": 0, "layer4": 0}
        assert torch.equal(last, maps[-1])
        m.forward_intermediates(x, indices=[0, 2])  # without stop_early every stage runs
        assert calls == {"layer1": 2, "layer2": 2, "layer3": 1, "layer4": 1}
        backbone = create(name, features_only=True, out_indices=(1,), **TINY).eval()
        load_pretrained(backbone, m)
        for n in ("layer2", "layer3", "layer4"):
            getattr(backbone, n).register_forward_hook(lambda *a: pytest.fail("features_only ran a stage it needs not"))
        assert torch.equal(backbone(x)[0], _module_by_module(m, x)[1])


@pytest.mark.parametrize("name,create,shape", MODELS, ids=[m[0] for m in MODELS])
def test_prune_deletes_later_stages_and_the_head(name, create, shape):
    m = _tiny(name, create, num_classes=5)
    x = torch.randn(shape)
    with torch.no_grad():
        plain = _module_by_module(m, x)
    kept_params = count_params(m.stem) + count_params(m.layer1) + count_params(m.layer2)
    assert m.prune_intermediate_layers(indices=(0, 2)) == [0, 2]
    assert count_params(m) == kept_params
    assert m.stage_names == ["layer1", "layer2"] and not hasattr(m, "layer3") and m.head is None
    assert not [k for k in m.state_dict() if k.startswith(("layer3.", "layer4.", "head."))]
    assert m.num_features == 64 and m.feature_info.module_name() == ["stem", "layer1", "layer2"]
    assert isinstance(m.get_classifier(), nn.Identity) and m.num_classes == 0
    with torch.no_grad():
        assert torch.equal(m(x), plain[2])  # no head: forward returns forward_features, the layer2 map
        assert [torch.equal(a, b) for a, b in zip(m.forward_intermediates(x)[1], plain[:3])] == [True] * 3
    with pytest.raises(ValueError, match=r"last-n indices \(4\) out of range 1..3"):
        m.forward_intermediates(x, indices=4)
    with pytest.raises(RuntimeError, match=r"this model \(prune_intermediate_layers\) has no head"):
        m.forward_head(plain[2])
    m.reset_classifier(7)  # a new head on the last kept stage
    assert m.eval()(x).shape == (shape[0], 7) and m.head.fc.in_features == 64


def test_prune_options_and_features_only_models():
    m = _tiny("rs3d_50", rs_video.create_model, num_classes=5)
    full = count_params(m)
    # Keeping the last stage removes only the head (prune_head), or nothing at all.
    assert m.prune_intermediate_layers(indices=1, prune_head=False) == [4]
    assert count_params(m) == full and m.head is not None
    assert m.prune_intermediate_layers(indices=[-1]) == [4]
    assert count_params(m) == full - 5 * 256 - 5 and m.head is None
    # Pruning a stage removes the head even with prune_head=False: it was sized for the last stage.
    assert m.prune_intermediate_layers(indices=[3], prune_head=False) == [3]
    assert m.stage_names == ["layer1", "layer2", "layer3"]
    backbone = rs_video.create_model("rs3d_50", features_only=True, out_indices=(1, 3), **TINY)
    with pytest.raises(ValueError, match=r"would remove out_indices \[3\]"):
        backbone.prune_intermediate_layers(indices=[1, 2])
    assert backbone.prune_intermediate_layers(indices=[1, 3]) == [1, 3]
    assert backbone.stage_names == ["layer1", "layer2", "layer3"]
    assert [f.shape[1] for f in backbone(torch.randn(1, 3, 4, 32, 32))] == [32, 128]


def test_forward_intermediates_options():
    video = _tiny("rs3d_50", rs_video.create_model)
    image = _tiny("resnetrs50", rs_image.create_model)
    clip, img = torch.randn(1, 3, 4, 32, 32), torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        base = video.forward_intermediates(clip, intermediates_only=True)
        # norm: a ResNet has no final norm, so it changes nothing (as in timm's ResNet); NCTHW names 5D maps.
        for kw in (dict(norm=True), dict(output_fmt="NCTHW")):
            maps = video.forward_intermediates(clip, intermediates_only=True, **kw)
            assert all(torch.equal(a, b) for a, b in zip(maps, base))
        image.forward_intermediates(img, output_fmt="NCHW")
    for model, x, fmt in ((image, img, "NCTHW"), (image, img, "NHWC"), (video, clip, "NTHWC")):
        with pytest.raises(ValueError, match="output_fmt must be 'NCHW'"):
            model.forward_intermediates(x, output_fmt=fmt)
    with pytest.raises(ValueError, match=r"feature indices \[5\] out of range 0..4"):
        image.forward_intermediates(img, indices=[1, 5])

"""The weights-source resolver: every source kind gives the same native state dict, and bad sources fail clearly."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import rs_image
from rs_image.models import ResolvedWeights, WeightsError, load_pretrained, resolve_weights, save_state_dict
from rs_image.models.weights import load_state_dict_strict, strip_wrapper_prefixes
from tests.conftest import randomize_bn

TINY = dict(stage_widths=(8, 8, 8, 8), stage_depths=(1, 1, 1, 1), stem_width=8, num_classes=3)
KERAS_H5 = Path(__file__).resolve().parents[1] / "fixtures" / "keras_resnetrs_small.h5"


def _tiny(seed: int = 0, **kw) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_bn(rs_image.create_model("resnetrs50", **{**TINY, **kw}), seed=seed)


def _assert_same(sd, model):
    own = model.state_dict()
    assert sd.keys() == own.keys() and all(torch.equal(sd[k], own[k]) for k in own)


@pytest.mark.parametrize("suffix", [".pth", ".pyth", ".pt", ".safetensors", ".pth.tar"])
def test_state_dict_files(tmp_path, suffix):
    src = _tiny()
    path = tmp_path / f"w{suffix}"
    save_state_dict(src, path)
    resolved = resolve_weights(path)
    assert isinstance(resolved, ResolvedWeights) and resolved.source == str(path) and resolved.format == "native"
    _assert_same(resolved.state_dict, src)


def test_keras_h5_file():
    pytest.importorskip("h5py")
    resolved = resolve_weights(KERAS_H5)
    info = rs_image.models.inspect_keras_h5(KERAS_H5)
    model = rs_image.create_model(info.model_name, **info.model_kwargs())
    assert resolved.state_dict.keys() == model.state_dict().keys() and resolved.describe() == f"{KERAS_H5} (native)"
    assert torch.equal(resolved.state_dict["stem.conv1.weight"], rs_image.models.convert_keras_h5(KERAS_H5)["stem.conv1.weight"])


@pytest.mark.parametrize("entry", ["model_state", "state_dict", "model", "module"])
def test_checkpoint_entries_are_unwrapped(tmp_path, entry):
    src = _tiny()
    torch.save({entry: src.state_dict(), "epoch": 7, "optimizer_state": {"lr": 0.1}}, tmp_path / "ckpt.pyth")
    resolved = resolve_weights(tmp_path / "ckpt.pyth")
    assert resolved.source == f"{tmp_path / 'ckpt.pyth'}[{entry}]"
    _assert_same(resolved.state_dict, src)
    # The same checkpoint dict in memory.
    _assert_same(resolve_weights({entry: src.state_dict(), "epoch": 7}).state_dict, src)


def test_ema_preference(tmp_path, caplog):
    raw, ema = _tiny(0), _tiny(1)
    torch.save({"model_state": raw.state_dict(), "ema_state": ema.state_dict(), "epoch": 3}, tmp_path / "last.pyth")
    path = tmp_path / "last.pyth"
    with_ema = resolve_weights(path, prefer_ema=True)
    assert with_ema.source == f"{path}[ema_state]"
    _assert_same(with_ema.state_dict, ema)
    _assert_same(resolve_weights(path).state_dict, raw)
    # A checkpoint trained without EMA gives its model weights, and says so.
    torch.save({"model_state": raw.state_dict(), "epoch": 3}, tmp_path / "no_ema.pyth")
    with caplog.at_level("INFO", logger="rs_image.models.weights.resolver"):
        _assert_same(resolve_weights(tmp_path / "no_ema.pyth", prefer_ema=True).state_dict, raw)
    assert "has no ema_state" in caplog.text
    # load_pretrained (the engine's initial and test weights) takes the same route.
    model = _tiny(2)
    load_pretrained(model, path, prefer_ema=True)
    _assert_same(model.state_dict(), ema)


def test_ddp_and_compile_prefixes_are_stripped(tmp_path):
    src = _tiny()
    compiled = torch.compile(src)  # compiles lazily: building the wrapper costs nothing
    wrapped = {
        "DataParallel (DDP's key layout)": nn.DataParallel(src),
        "compile": compiled,
        "DataParallel(compile)": nn.DataParallel(compiled),
        "compile(DataParallel)": torch.compile(nn.DataParallel(src)),
    }
    prefixes = {name: next(iter(m.state_dict())).split("stem.")[0] for name, m in wrapped.items()}
    assert prefixes == {"DataParallel (DDP's key layout)": "module.", "compile": "_orig_mod.",
                        "DataParallel(compile)": "module._orig_mod.", "compile(DataParallel)": "_orig_mod.module."}
    for name, module in wrapped.items():
        _assert_same(resolve_weights(module).state_dict, src)
        torch.save({"model_state": module.state_dict()}, tmp_path / "ckpt.pyth")
        _assert_same(resolve_weights(tmp_path / "ckpt.pyth").state_dict, src)
    # Only a prefix that every key shares is a wrapper's.
    assert strip_wrapper_prefixes({"module.a": torch.zeros(1), "b": torch.zeros(1)}).keys() == {"module.a", "b"}


def test_state_dict_and_module_sources():
    src = _tiny()
    resolved = resolve_weights(src.state_dict())
    assert resolved.source == "state dict" and resolved.format == "native"
    _assert_same(resolved.state_dict, src)
    resolved = resolve_weights(src)
    assert resolved.describe() == "ResNetRS module (native)"
    _assert_same(resolved.state_dict, src)


def test_foreign_key_layout_is_mapped(timm):
    ref = timm.create_model("resnetrs50", pretrained=False)
    resolved = resolve_weights(ref)
    assert resolved.format == "timm"
    assert torch.equal(resolved.state_dict["stem.conv4.weight"], ref.maxpool[0].weight)


def test_url_of_any_registered_format(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    src = _tiny()
    save_state_dict(src, tmp_path / "w.safetensors")
    model = rs_image.create_model("resnetrs50", pretrained=(tmp_path / "w.safetensors").as_uri(), **TINY)
    _assert_same(model.state_dict(), src)
    assert (Path(torch.hub.get_dir()) / "checkpoints" / "w.safetensors").is_file()  # torch.hub's cache
    assert str(tmp_path / "hub") in torch.hub.get_dir()
    with pytest.raises(WeightsError, match="cannot download weights from file://.*absent.pth"):
        resolve_weights((tmp_path / "absent.pth").as_uri())


def test_unknown_sources_fail_clearly(tmp_path):
    np.savez(tmp_path / "w.npz", stem=np.zeros(3))
    with pytest.raises(WeightsError, match=r"cannot read weights from .*w\.npz \(torch\); \.npz is not a registered "
                                           r"weights suffix \(\.h5, \.index, \.pt, \.pth, \.pyth, \.safetensors\)"):
        resolve_weights(tmp_path / "w.npz")
    with pytest.raises(WeightsError, match=r"unrecognised state dict format .*first keys: \['fc1.weight'\]"):
        resolve_weights({"fc1.weight": torch.zeros(2, 2)})
    torch.save({"model_state": {"stem.conv1.weight": "not a tensor"}}, tmp_path / "odd.pth")
    with pytest.raises(WeightsError, match=r"odd\.pth\[model_state\] does not hold a state dict of tensors"):
        resolve_weights(tmp_path / "odd.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="list.pth does not hold a state dict of tensors"):
        resolve_weights(tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="must be a path, URL, state dict or nn.Module, got int"):
        resolve_weights(3)


def test_strict_load_drops_a_classifier_the_model_cannot_use(caplog):
    src = _tiny(num_classes=5)
    for kw in (dict(num_classes=0), dict(features_only=True)):
        model = rs_image.create_model("resnetrs50", **{**TINY, **kw})
        with caplog.at_level("INFO", logger="rs_image.models.weights.strict_load"):
            load_state_dict_strict(model, src.state_dict())
        assert "the model has no classifier; the 5-class classifier (head.fc.weight, head.fc.bias)" in caplog.text
        assert torch.equal(model.layer4[0].conv3.weight, src.layer4[0].conv3.weight)
        caplog.clear()
    # A classifier over other features is an architecture difference: reported with everything else.
    other = rs_image.create_model("resnetrs50", **{**TINY, "stage_widths": (8, 8, 8, 16)})
    with pytest.raises(WeightsError, match=r"shape mismatches \(\d+\):.*head\.fc\.weight: file \(3, 32\) vs model \(3, 64\)"):
        load_state_dict_strict(other, src.state_dict() | {"head.fc.weight": torch.zeros(3, 32), "head.fc.bias": torch.zeros(3)})

"""Keras ResNet-RS ``.h5`` conversion, checked against outputs of the real Keras model.

The fixture is a small ResNet-RS built by ``tf_keras.applications.resnet_rs`` with random weights and BN
statistics (``keras_resnetrs_small.h5``), the same weights saved by the original Keras port that wrote
the official files (``keras_resnetrs_small_port.h5``, the official layer names), and the logits Keras
computed for fixed images (``keras_resnetrs_small.npz``); ``tests/fixtures/make_keras_resnetrs_fixture.py``
regenerates them (needs TensorFlow). These tests need only h5py.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")

from rs_image import create_model  # noqa: E402
from rs_image.models import create_model_from_keras_h5  # noqa: E402
from rs_image.models.weights.keras_h5 import (  # noqa: E402
    KERAS_WEIGHT_FILES,
    KerasWeightsError,
    check_keras_h5_md5,
    convert_keras_h5,
    inspect_keras_h5,
    keras_file_variant,
    keras_h5_stage_depths,
    keras_h5_stage_widths,
    keras_layer_to_native,
    keras_pixels_to_input,
)
from rs_image.models.weights import WeightsError, load_pretrained, resolve_weights  # noqa: E402
from tests.helpers import fails_with

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
H5 = FIXTURES / "keras_resnetrs_small.h5"  # layer names of the keras.applications code
PORT_H5 = FIXTURES / "keras_resnetrs_small_port.h5"  # layer names of the official files
NPZ = FIXTURES / "keras_resnetrs_small.npz"
REPO = Path(__file__).resolve().parents[2]
TOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks


@pytest.fixture(scope="module")
def ref() -> Dict[str, np.ndarray]:
    with np.load(NPZ) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def converted() -> Dict[str, torch.Tensor]:
    return convert_keras_h5(H5)


def _build(ref: Dict[str, np.ndarray], **kw) -> torch.nn.Module:
    kw.setdefault("num_classes", int(ref["num_classes"]))
    return create_model(
        "resnetrs50",
        stage_depths=tuple(int(d) for d in ref["stage_depths"]),
        stage_widths=tuple(int(w) for w in ref["stage_widths"]),
        **kw,
    ).eval()


def _max_logit_error(model: torch.nn.Module, ref: Dict[str, np.ndarray], size: int) -> float:
    with torch.no_grad():
        logits = model(keras_pixels_to_input(ref[f"images_{size}"]))
    return (logits - torch.from_numpy(ref[f"logits_{size}"])).abs().max().item()


def _edit_copy(
    tmp_path: Path, edit: Callable[[h5py.File], None], name: str = "edited.h5", source: Path = H5
) -> Path:
    """A copy of a fixture h5 changed by ``edit`` (opened read/write)."""
    path = tmp_path / name
    shutil.copy(source, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def _texts(values) -> list:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _layer_names(f: h5py.File) -> list:
    return _texts(f.attrs["layer_names"])


def _set_layer_names(f: h5py.File, names: list) -> None:
    f.attrs["layer_names"] = np.array([n.encode() for n in names])


def _drop_layer(f: h5py.File, layer: str) -> None:
    _set_layer_names(f, [n for n in _layer_names(f) if n != layer])
    del f[layer]


def _add_layer(f: h5py.File, layer: str, variables: Dict[str, np.ndarray]) -> None:
    group = f.create_group(layer)
    names = []
    for var, value in variables.items():
        full = f"{layer}/{var}:0"
        group.create_dataset(full, data=value)
        names.append(full.encode())
    group.attrs["weight_names"] = np.array(names)
    _set_layer_names(f, _layer_names(f) + [layer])


# ------------------------------------------------------------------------------------------------
# Numerical equivalence with Keras
# ------------------------------------------------------------------------------------------------
def test_fixture_is_small() -> None:
    assert sum(p.stat().st_size for p in (H5, PORT_H5, NPZ)) < 1024 * 1024


@pytest.mark.parametrize("path", [H5, PORT_H5], ids=["keras_apps", "original_port"])
def test_inferred_architecture_matches_fixture(ref, path) -> None:
    info = inspect_keras_h5(path)
    assert info.stage_depths == tuple(ref["stage_depths"].tolist()) == keras_h5_stage_depths(path)
    assert info.stage_widths == tuple(ref["stage_widths"].tolist()) == keras_h5_stage_widths(path)
    assert info.stem_width == int(ref["stem_width"])
    assert info.num_classes == int(ref["num_classes"])
    assert info.in_chans == 3 and info.se_ratio == 0.25
    assert info.depth is None and info.model_name == "resnetrs50"  # not a standard depth


@pytest.mark.parametrize("size", [64, 75])  # 75: odd maps in the stem and in the avg-pool shortcuts
def test_logits_match_keras(ref, converted, size) -> None:
    model = _build(ref)
    model.load_state_dict(converted, strict=True)
    assert _max_logit_error(model, ref, size) <= TOL


def test_official_layer_names_convert_identically(ref, converted) -> None:
    """The official files carry the original port's layer names; same network, same tensors."""
    with h5py.File(PORT_H5) as f:
        names = _layer_names(f)
    assert "c2_block_0_se_reduce" in names and "stem_conv_1" in names
    port = convert_keras_h5(PORT_H5)
    assert list(port) == list(converted)
    assert all(torch.equal(port[k], converted[k]) for k in port)
    model = _build(ref)
    model.load_state_dict(port, strict=True)
    assert _max_logit_error(model, ref, 75) <= TOL


def test_converted_keys_and_layout(ref, converted) -> None:
    assert list(converted) == list(_build(ref).state_dict())  # every key, in model order
    assert converted["stem.conv1.weight"].shape == (32, 3, 3, 3)  # OIHW
    assert converted["head.fc.weight"].shape == (10, 96)  # (out, in)
    assert converted["stem.bn1.num_batches_tracked"].item() == 0
    assert all(v.dtype == torch.float32 for k, v in converted.items() if not k.endswith("num_batches_tracked"))
    with h5py.File(H5) as f:  # values land unchanged, only re-laid out
        kernel = f["BlockGroup3__block_0__conv_2/BlockGroup3__block_0__conv_2/kernel:0"][()]
        var = f["BlockGroup5__block_1__batch_norm_3/BlockGroup5__block_1__batch_norm_3/moving_variance:0"][()]
    assert np.array_equal(converted["layer2.0.conv2.weight"].numpy(), kernel.transpose(3, 2, 0, 1))
    assert np.array_equal(converted["layer4.1.bn3.running_var"].numpy(), var)


@pytest.mark.parametrize(
    "key, change",
    [
        ("layer1.1.bn2.running_mean", lambda t: t.zero_()),
        ("layer3.0.bn1.running_var", lambda t: t.fill_(1.0)),
        ("stem.bn3.weight", lambda t: t.fill_(1.0)),
        ("layer2.0.shortcut.conv.weight", lambda t: t.mul_(0.5)),
        ("layer4.1.se.fc1.bias", lambda t: t.zero_()),
        ("stem.conv4.weight", lambda t: t.copy_(t.transpose(2, 3).clone())),  # H/W swap
    ],
)
def test_fixture_detects_wrong_tensors(ref, converted, key, change) -> None:
    """The comparison can fail: a single wrong tensor moves the logits far beyond the tolerance."""
    sd = {k: v.clone() for k, v in converted.items()}
    change(sd[key])
    model = _build(ref)
    model.load_state_dict(sd, strict=True)
    assert _max_logit_error(model, ref, 64) > 100 * TOL


def test_keras_input_preparation(ref) -> None:
    pixels = ref["images_64"]
    x = keras_pixels_to_input(pixels)
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    expected = (pixels[1, 5, 7, 2] / 255.0 - 0.406) / 0.225  # NHWC pixel -> NCHW normalised
    assert x[1, 2, 5, 7].item() == pytest.approx(expected, abs=1e-6)
    assert keras_pixels_to_input(pixels[0]).shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="pixels"):
        keras_pixels_to_input(np.zeros((64, 64)))


# ------------------------------------------------------------------------------------------------
# Entry points: create_model / load_pretrained / resolve_weights / CLI
# ------------------------------------------------------------------------------------------------
def test_create_model_from_keras_h5(ref) -> None:
    model = create_model_from_keras_h5(H5)
    assert not model.training
    assert _max_logit_error(model, ref, 75) <= TOL


def test_library_loaders_accept_h5(ref) -> None:
    info = inspect_keras_h5(H5)
    model = create_model(info.model_name, pretrained=str(H5), **info.model_kwargs()).eval()
    assert _max_logit_error(model, ref, 64) <= TOL
    other = load_pretrained(_build(ref), H5)
    assert _max_logit_error(other, ref, 64) <= TOL
    resolved = resolve_weights(H5)
    assert set(resolved.state_dict) == set(model.state_dict()) and resolved.describe() == f"{H5} (native)"


def test_notop_file_gives_pooled_features(ref, tmp_path) -> None:
    path = _edit_copy(tmp_path, lambda f: _drop_layer(f, "predictions"), "resnet-rs-small_notop.h5")
    info = inspect_keras_h5(path)
    assert info.num_classes is None and info.model_kwargs()["num_classes"] == 0
    assert not any(k.startswith("head.") for k in convert_keras_h5(path))
    model = create_model_from_keras_h5(path)
    with torch.no_grad():
        features = model(keras_pixels_to_input(ref["images_64"]))
    assert (features - torch.from_numpy(ref["features_64"])).abs().max().item() <= TOL


def test_full_model_h5_layout(ref, tmp_path) -> None:
    """``model.save("x.h5")`` files keep the weights under a ``model_weights`` group."""
    path = tmp_path / "full_model.h5"
    with h5py.File(H5) as src, h5py.File(path, "w") as dst:
        group = dst.create_group("model_weights")
        for key, value in src.attrs.items():
            group.attrs[key] = value
        for name in src:
            src.copy(src[name], group, name=name)
        dst.attrs["model_config"] = "{}"
    sd = convert_keras_h5(path)
    ref_sd = convert_keras_h5(H5)
    assert sd.keys() == ref_sd.keys() and all(torch.equal(sd[k], ref_sd[k]) for k in sd)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_cli_converts_and_saves(ref, tmp_path, suffix, capsys) -> None:
    from rs_video.cli import convert_keras_weights

    out = tmp_path / f"small{suffix}"
    assert convert_keras_weights.main([str(H5), str(out)]) == 0
    model = _build(ref)
    load_pretrained(model, out)
    assert _max_logit_error(model, ref, 64) <= TOL
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    fails_with(convert_keras_weights.main, [str(bad), str(tmp_path / "x.safetensors")], capsys, "bad.h5")
    fails_with(convert_keras_weights.main, [str(H5), str(tmp_path / "x.npz")], capsys,
               "the output must end in .safetensors, .pth, .pt: ")
    assert not (tmp_path / "x.safetensors").exists()
    # An explicit --model is built as registered, so a file of another architecture fails the strict load.
    fails_with(convert_keras_weights.main, [str(H5), str(tmp_path / "y.pth"), "--model", "resnetrs101"], capsys,
               "convert_keras_weights: error: ")
    assert not (tmp_path / "y.pth").exists()


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------
def test_unmapped_weight_is_reported(tmp_path) -> None:
    path = _edit_copy(tmp_path, lambda f: _add_layer(f, "aux_logits", {"kernel": np.zeros((4, 2), np.float32)}))
    with pytest.raises(KerasWeightsError, match=r"no mapping.*aux_logits/kernel"):
        convert_keras_h5(path)


def test_unmapped_variable_in_known_layer_is_reported(tmp_path) -> None:
    def edit(f: h5py.File) -> None:
        layer = "stem_1_stem_conv_1"
        f[layer].create_dataset(f"{layer}/bias:0", data=np.zeros(32, np.float32))
        names = _texts(f[layer].attrs["weight_names"]) + [f"{layer}/bias:0"]
        f[layer].attrs["weight_names"] = np.array([n.encode() for n in names])

    with pytest.raises(KerasWeightsError, match="stem_1_stem_conv_1/bias"):
        convert_keras_h5(_edit_copy(tmp_path, edit))


@pytest.mark.parametrize(
    "source, layer", [(H5, "BlockGroup3__block_0__se_se_expand"), (PORT_H5, "c3_block_0_se_expand")]
)
def test_missing_layer_is_reported(tmp_path, source, layer) -> None:
    path = _edit_copy(tmp_path, lambda f: _drop_layer(f, layer), source=source)
    with pytest.raises(KerasWeightsError, match=r"missing keys \(2\).*layer2\.0\.se\.fc2\.bias.*layer2\.0\.se\.fc2\.weight"):
        convert_keras_h5(path)


def test_missing_variable_is_reported(tmp_path) -> None:
    def edit(f: h5py.File) -> None:
        layer = "BlockGroup2__block_1__batch_norm_2"
        names = [n for n in _texts(f[layer].attrs["weight_names"]) if "moving_variance" not in n]
        f[layer].attrs["weight_names"] = np.array([n.encode() for n in names])

    with pytest.raises(KerasWeightsError, match=r"BlockGroup2__block_1__batch_norm_2.*lacks.*moving_variance"):
        convert_keras_h5(_edit_copy(tmp_path, edit))


def test_missing_block_is_reported(tmp_path) -> None:
    def edit(f: h5py.File) -> None:
        for layer in [n for n in _layer_names(f) if n.startswith("BlockGroup2__block_0_")]:
            _drop_layer(f, layer)

    with pytest.raises(KerasWeightsError, match=r"block group 2 \(layer1\) lacks blocks \[0\]"):
        convert_keras_h5(_edit_copy(tmp_path, edit))


def test_wrong_shape_is_reported(tmp_path) -> None:
    def edit(f: h5py.File) -> None:
        layer = "BlockGroup4__block_0__conv_2"
        del f[f"{layer}/{layer}/kernel:0"]
        f[layer].create_dataset(f"{layer}/kernel:0", data=np.zeros((3, 3, 16, 8), np.float32))

    with pytest.raises(KerasWeightsError, match=r"layer3\.0\.conv2\.weight: file \(8, 16, 3, 3\) vs expected \(16, 16, 3, 3\)"):
        convert_keras_h5(_edit_copy(tmp_path, edit))


def test_duplicate_model_is_reported(tmp_path) -> None:
    def edit(f: h5py.File) -> None:
        _add_layer(f, "stem_2_stem_conv_1", {"kernel": np.zeros((3, 3, 3, 32), np.float32)})

    with pytest.raises(KerasWeightsError, match="both map to stem.conv1"):
        convert_keras_h5(_edit_copy(tmp_path, edit))


def test_preprocessing_layer_weights(tmp_path) -> None:
    imagenet = {
        "mean": np.array([0.485, 0.456, 0.406], np.float32),
        "variance": np.square(np.array([0.229, 0.224, 0.225], np.float32)),
        "count": np.array(0, np.int64),
    }
    ok = _edit_copy(tmp_path, lambda f: _add_layer(f, "normalization_1", imagenet), "ok.h5")
    assert inspect_keras_h5(ok).stage_depths == (2, 1, 1, 2)
    other = dict(imagenet, mean=np.array([0.5, 0.5, 0.5], np.float32))
    bad = _edit_copy(tmp_path, lambda f: _add_layer(f, "normalization_1", other), "bad.h5")
    with pytest.raises(KerasWeightsError, match="normalization_1.*ImageNet"):
        convert_keras_h5(bad)


def test_wrong_files(tmp_path) -> None:
    with pytest.raises(KerasWeightsError, match="not found"):
        convert_keras_h5(tmp_path / "absent.h5")
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(KerasWeightsError, match="not an HDF5 file"):
        convert_keras_h5(text)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(KerasWeightsError, match="not Keras weights"):
        convert_keras_h5(plain)
    keras3 = tmp_path / "model.weights.h5"
    with h5py.File(keras3, "w") as f:  # the layout Keras 3 model.save_weights writes
        f.create_dataset("layers/predictions/vars/0", data=np.zeros((4, 2), np.float32))
        f.create_dataset("layers/predictions/vars/1", data=np.zeros(2, np.float32))
        f.create_group("vars")
    with pytest.raises(KerasWeightsError, match="Keras 3"):
        convert_keras_h5(keras3)
    # Keras weights of another network (keras.applications.ResNet50 layer names).
    other = tmp_path / "resnet50.h5"
    with h5py.File(other, "w") as f:
        f.attrs["layer_names"] = np.array([b"conv1_conv"])
        g = f.create_group("conv1_conv")
        g.create_dataset("conv1_conv/kernel:0", data=np.zeros((7, 7, 3, 64), np.float32))
        g.attrs["weight_names"] = np.array([b"conv1_conv/kernel:0"])
    with pytest.raises(KerasWeightsError, match="conv1_conv/kernel"):
        convert_keras_h5(other)
    assert issubclass(KerasWeightsError, WeightsError)


def test_layer_name_rules() -> None:
    # Original port (official files).
    assert keras_layer_to_native("stem_conv_1") == ("stem.conv1", "conv")
    assert keras_layer_to_native("stem_batch_norm_4") == ("stem.bn4", "bn")
    assert keras_layer_to_native("c2_block_0_batch_norm_1") == ("layer1.0.bn1", "bn")
    assert keras_layer_to_native("c4_block_35_conv_2") == ("layer3.35.conv2", "conv")
    assert keras_layer_to_native("c5_block_0_projection_batch_norm") == ("layer4.0.shortcut.bn", "bn")
    assert keras_layer_to_native("c3_block_7_se_expand") == ("layer2.7.se.fc2", "conv+bias")
    assert keras_layer_to_native("c3_block_1_projection_conv") is None
    # keras.applications code.
    assert keras_layer_to_native("stem_7_stem_conv_3") == ("stem.conv3", "conv")
    assert keras_layer_to_native("BlockGroup2__block_0_batch_norm_1") == ("layer1.0.bn1", "bn")
    assert keras_layer_to_native("BlockGroup5__block_2__batch_norm_3") == ("layer4.2.bn3", "bn")
    assert keras_layer_to_native("BlockGroup3__block_11__se_se_reduce") == ("layer2.11.se.fc1", "conv+bias")
    assert keras_layer_to_native("BlockGroup4__block_0__projection_batch_norm") == ("layer3.0.shortcut.bn", "bn")
    assert keras_layer_to_native("predictions") == ("head.fc", "dense")
    assert keras_layer_to_native("BlockGroup3__block_1__projection_conv") is None  # only block 0 projects
    assert keras_layer_to_native("BlockGroup1__block_0__conv_1") is None
    assert keras_layer_to_native("conv1_conv") is None


def test_official_file_names_and_md5(tmp_path) -> None:
    assert len(KERAS_WEIGHT_FILES) == 22  # 11 variants, with and without classifier
    assert keras_file_variant("/x/resnet-rs-350-i320.h5") == ("resnetrs350", "i320", True)
    assert keras_file_variant("resnet-rs-50-i160_notop.h5") == ("resnetrs50", "i160", False)
    assert keras_file_variant("model.h5") is None
    fake = tmp_path / "resnet-rs-50-i160.h5"
    fake.write_bytes(b"truncated")
    assert check_keras_h5_md5(fake) is False
    assert check_keras_h5_md5(H5) is None
    from rs_image.models.zoo import IMAGE_MODELS

    for name in KERAS_WEIGHT_FILES:  # the registry knows every official variant
        model, variant, _ = keras_file_variant(name)
        assert variant in IMAGE_MODELS.get(model).variants, name

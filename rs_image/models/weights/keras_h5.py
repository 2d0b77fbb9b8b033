"""Convert the official Keras Applications ResNet-RS ``.h5`` weights into our native state dict.

The Keras files (``resnet-rs-{depth}-i{res}[_notop].h5``, see :data:`KERAS_WEIGHT_FILES`) hold the
EMA weights of the TF1 ResNet-RS checkpoints (tensorflow/tpu). They are read with :mod:`h5py` only;
TensorFlow is never imported.

Two spellings of the layer names exist, and both are converted. The official files were written by
the original Keras port (github.com/sebastian-sz/resnet-rs-keras, whose release files have the same
MD5 checksums that ``keras.applications.resnet_rs`` checks) and ``keras.applications`` loads them by
layer order, so they carry the port's names. A model built by the ``keras.applications.resnet_rs``
code and re-saved carries that code's names (original port / ``keras.applications`` spelling below;
``g`` = Keras block group 2..5 = our stage ``s = g - 1``, ``i`` = block index, ``N`` = any layer-name
counter Keras appended):

* ``stem_conv_{k}`` / ``stem_N_stem_conv_{k}`` (k = 1..4) -> ``stem.conv{k}.weight``
* ``stem_batch_norm_{k}`` / ``stem_N_stem_batch_norm_{k}`` -> ``stem.bn{k}.*``
* ``c{g}_block_{i}_conv_{k}`` / ``BlockGroup{g}__block_{i}__conv_{k}`` (k = 1..3)
  -> ``layer{s}.{i}.conv{k}.weight``
* ``c{g}_block_{i}_batch_norm_{k}`` / ``BlockGroup{g}__block_{i}_batch_norm_1`` and
  ``BlockGroup{g}__block_{i}__batch_norm_{2,3}`` -> ``layer{s}.{i}.bn{k}.*``
* ``c{g}_block_{i}_se_reduce`` / ``BlockGroup{g}__block_{i}__se_se_reduce`` -> ``layer{s}.{i}.se.fc1.*``
* ``c{g}_block_{i}_se_expand`` / ``BlockGroup{g}__block_{i}__se_se_expand`` -> ``layer{s}.{i}.se.fc2.*``
* ``c{g}_block_0_projection_conv`` / ``BlockGroup{g}__block_0__projection_conv``
  -> ``layer{s}.0.shortcut.conv.weight``
* ``c{g}_block_0_projection_batch_norm`` / ``BlockGroup{g}__block_0__projection_batch_norm``
  -> ``layer{s}.0.shortcut.bn.*``
* ``predictions`` (absent in ``_notop`` files) -> ``head.fc.weight`` / ``head.fc.bias``

Tensors: conv kernels HWIO -> OIHW, dense kernels (in, out) -> (out, in), BatchNorm
``gamma/beta/moving_mean/moving_variance`` -> ``weight/bias/running_mean/running_var`` (plus
``num_batches_tracked = 0``). Layers without weights (input, Rescaling, ZeroPadding, activations,
pooling, dropout, add, reshape, multiply) are skipped; a weighted layer or variable that has no rule
raises :class:`KerasWeightsError`, as does any expected parameter that the file lacks.

Equivalence of the Keras and the native graphs (checked by ``tests/models/test_keras_weights.py`` against
outputs of the real ``keras.applications`` model, and files written by both Keras codes, at an even
and an odd input size):

* Strided convs: Keras pads explicitly and symmetrically ((k-1)//2 before, the rest after, i.e. 1/1 for
  3x3) and then convolves with 'valid'; stride-1 convs use 'same' (1/1 for 3x3). Both equal PyTorch
  ``padding=k//2``, at every input size.
* ResNet-D shortcut: Keras ``AveragePooling2D(2, 2, padding="same")`` pads one zero row/column at the
  bottom/right of odd-sized maps and does not count it in the average, which is exactly
  ``AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)`` (our :meth:`Ops.avg_pool`).
* BatchNorm epsilon is 1e-5 in both; Keras stores moving statistics that our BN uses in ``eval()``.

Input preprocessing. ``keras.applications.ResNetRS*`` with the default ``include_preprocessing=True``
takes NHWC float pixels in [0, 255] and applies ``Rescaling(1/255)`` and
``Normalization(mean=IMAGENET_MEAN, variance=IMAGENET_STD**2)`` inside the model. These layers have no
weights in the ``.h5``; our models leave normalisation to the data pipeline and take NCHW input
``(pixels / 255 - IMAGENET_MEAN) / IMAGENET_STD``, so feeding :func:`keras_pixels_to_input` of the same
pixels gives the same logits. (With ``include_preprocessing=False`` the Keras model feeds its input
straight to the stem, so it also expects mean/std-normalised input, not the [-1, 1] range that the
Keras docstring mentions; the original port has no preprocessing layers and expects the same.)
Keras ``ResNetRS*`` apply a softmax by default (``classifier_activation``); our models return logits.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..zoo import IMAGENET_MEAN, IMAGENET_STD, STAGE_DEPTHS
from .strict_load import WeightsError, key_mismatch_lines

__all__ = [
    "KerasWeightsError",
    "KerasResNetRSInfo",
    "KERAS_WEIGHTS_URL",
    "KERAS_WEIGHT_FILES",
    "convert_keras_h5",
    "inspect_keras_h5",
    "keras_h5_stage_depths",
    "keras_h5_stage_widths",
    "keras_layer_to_native",
    "keras_pixels_to_input",
    "keras_file_variant",
    "check_keras_h5_md5",
]

PathLike = Union[str, "os.PathLike[str]"]
StateDict = Dict[str, torch.Tensor]

KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet_rs/"

# The 11 official variants x {with classifier, "_notop"} and their MD5 checksums, as published with
# keras.applications.resnet_rs (weights converted from the tensorflow/tpu EMA checkpoints).
KERAS_WEIGHT_FILES: Dict[str, str] = {
    "resnet-rs-50-i160.h5": "69d9d925319f00a8bdd4af23c04e4102",
    "resnet-rs-50-i160_notop.h5": "90daa68cd26c95aa6c5d25451e095529",
    "resnet-rs-101-i160.h5": "544b3434d00efc199d66e9058c7f3379",
    "resnet-rs-101-i160_notop.h5": "82d5b90c5ce9d710da639d6216d0f979",
    "resnet-rs-101-i192.h5": "eb285be29ab42cf4835ff20a5e3b5d23",
    "resnet-rs-101-i192_notop.h5": "f9a0f6b85faa9c3db2b6e233c4eebb5b",
    "resnet-rs-152-i192.h5": "8d72a301ed8a6f11a47c4ced4396e338",
    "resnet-rs-152-i192_notop.h5": "5fbf7ac2155cb4d5a6180ee9e3aa8704",
    "resnet-rs-152-i224.h5": "31a46a92ab21b84193d0d71dd8c3d03b",
    "resnet-rs-152-i224_notop.h5": "dc8b2cba2005552eafa3167f00dc2133",
    "resnet-rs-152-i256.h5": "ba6271b99bdeb4e7a9b15c05964ef4ad",
    "resnet-rs-152-i256_notop.h5": "fa79794252dbe47c89130f65349d654a",
    "resnet-rs-200-i256.h5": "a76930b741884e09ce90fa7450747d5f",
    "resnet-rs-200-i256_notop.h5": "bbdb3994718dfc0d1cd45d7eff3f3d9c",
    "resnet-rs-270-i256.h5": "20d575825ba26176b03cb51012a367a8",
    "resnet-rs-270-i256_notop.h5": "2c42ecb22e35f3e23d2f70babce0a2aa",
    "resnet-rs-350-i256.h5": "f4a039dc3c421321b7fc240494574a68",
    "resnet-rs-350-i256_notop.h5": "6e44b55025bbdff8f51692a023143d66",
    "resnet-rs-350-i320.h5": "7ccb858cc738305e8ceb3c0140bee393",
    "resnet-rs-350-i320_notop.h5": "ab0c1f9079d2f85a9facbd2c88aa6079",
    "resnet-rs-420-i320.h5": "ae0eb9bed39e64fc8d7e0db4018dc7e8",
    "resnet-rs-420-i320_notop.h5": "fe6217c32be8305b1889657172b98884",
}


class KerasWeightsError(WeightsError):
    """A Keras ``.h5`` file that is not (a complete, consistent) Keras ResNet-RS weights file."""


# ------------------------------------------------------------------------------------------------
# Layer-name rules
# ------------------------------------------------------------------------------------------------
# Kinds of weighted layers and the Keras variables each one must hold.
_CONV, _CONV_BIAS, _BN, _DENSE = "conv", "conv+bias", "bn", "dense"
_KERAS_VARIABLES = {
    _CONV: ("kernel",),
    _CONV_BIAS: ("kernel", "bias"),
    _BN: ("gamma", "beta", "moving_mean", "moving_variance"),
    _DENSE: ("kernel", "bias"),
}
_BN_NAMES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}

# Stem: original port "stem_conv_1"; keras.applications "stem_1_stem_conv_1" (counter 1, 2, ...).
_STEM_RE = re.compile(r"^(?:stem_\d+_)?stem_(conv|batch_norm)_([1-4])$")
# Blocks, original port: "c2_block_0_conv_1", "c2_block_0_se_reduce", ...
_PORT_BLOCK_RE = re.compile(
    r"^c(\d+)_block_(\d+)_(conv_[123]|batch_norm_[123]|projection_conv|projection_batch_norm|se_reduce|se_expand)$"
)
# Blocks, keras.applications: "BlockGroup2__block_0__conv_1"; it spells the first BN of a block with one
# underscore ("BlockGroup2__block_0_batch_norm_1") and the others with two; SE layers are "..._se_se_reduce".
_APPS_BLOCK_RE = re.compile(
    r"^BlockGroup(\d+)__block_(\d+)_(_conv_[123]|batch_norm_1|_batch_norm_[23]|_projection_conv|"
    r"_projection_batch_norm|_se_se_reduce|_se_se_expand)$"
)
_BLOCK_PARTS = {
    "conv_1": ("conv1", _CONV),
    "conv_2": ("conv2", _CONV),
    "conv_3": ("conv3", _CONV),
    "batch_norm_1": ("bn1", _BN),
    "batch_norm_2": ("bn2", _BN),
    "batch_norm_3": ("bn3", _BN),
    "projection_conv": ("shortcut.conv", _CONV),
    "projection_batch_norm": ("shortcut.bn", _BN),
    "se_reduce": ("se.fc1", _CONV_BIAS),
    "se_expand": ("se.fc2", _CONV_BIAS),
}
_APPS_PART_TO_PORT = {"se_se_reduce": "se_reduce", "se_se_expand": "se_expand"}
# Keras preprocessing layers are weightless when built by keras.applications; an adapted
# Normalization stores mean/variance/count, which we accept only if they are the ImageNet values.
_NORMALIZATION_RE = re.compile(r"^normalization(_\d+)?$")


def keras_layer_to_native(layer_name: str) -> Optional[Tuple[str, str]]:
    """Native module prefix and layer kind of a weighted Keras ResNet-RS layer, or ``None``.

    >>> keras_layer_to_native("c3_block_0_projection_conv")
    ('layer2.0.shortcut.conv', 'conv')
    >>> keras_layer_to_native("BlockGroup3__block_0__projection_conv")
    ('layer2.0.shortcut.conv', 'conv')
    >>> keras_layer_to_native("stem_1_stem_batch_norm_4")
    ('stem.bn4', 'bn')
    """
    m = _STEM_RE.match(layer_name)
    if m:
        what, k = m.groups()
        return (f"stem.conv{k}", _CONV) if what == "conv" else (f"stem.bn{k}", _BN)
    m = _PORT_BLOCK_RE.match(layer_name) or _APPS_BLOCK_RE.match(layer_name)
    if m:
        group, block = int(m.group(1)), int(m.group(2))
        part = m.group(3).lstrip("_")
        part = _APPS_PART_TO_PORT.get(part, part)
        if group < 2:
            return None  # Keras numbers the stages from group 2 (the stem is group 1)
        if part.startswith("projection") and block != 0:
            return None  # only the first block of a stage has a projection shortcut
        name, kind = _BLOCK_PARTS[part]
        return f"layer{group - 1}.{block}.{name}", kind
    if layer_name == "predictions":
        return "head.fc", _DENSE
    return None


# ------------------------------------------------------------------------------------------------
# h5 reading
# ------------------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _open_h5(path: PathLike) -> Any:
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is in the 'keras' and 'test' extras
        raise KerasWeightsError("reading Keras .h5 weights needs h5py: pip install h5py") from e
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise KerasWeightsError(f"Keras weights file not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise KerasWeightsError(f"{path} is not an HDF5 file (Keras .h5 weights expected): {e}") from e


def _iter_keras_layers(path: PathLike) -> Iterator[Tuple[str, Dict[str, np.ndarray]]]:
    """Yield ``(layer name, {variable name: array})`` for every layer of a legacy Keras h5 file.

    Handles ``model.save_weights(..., save_format="h5")`` files (the official ones) and full-model
    ``model.save("x.h5")`` files (weights under ``model_weights``). Variable names are reduced to their
    last component without the ``:0`` suffix (``"stem_1_stem_conv_1/kernel:0"`` -> ``"kernel"``).
    """
    import h5py

    path = os.fspath(path)
    with _open_h5(path) as f:
        root = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        if "layer_names" not in root.attrs:
            if isinstance(f.get("layers"), h5py.Group):  # Keras 3 layout: layers/<name>/vars/<i>, vars
                raise KerasWeightsError(
                    f"{path} is a Keras 3 '.weights.h5' file; only the legacy Keras h5 layout of the official "
                    "keras.applications ResNet-RS files is supported (load it in Keras and re-save it with "
                    "tf_keras `model.save_weights(path, save_format='h5')`)"
                )
            raise KerasWeightsError(
                f"{path} is an HDF5 file but not Keras weights: no 'layer_names' attribute "
                f"(top-level entries: {sorted(f.keys())[:10]})"
            )
        for raw_name in root.attrs["layer_names"]:
            layer = _text(raw_name)
            group = root[layer]
            variables: Dict[str, np.ndarray] = {}
            for raw_var in group.attrs.get("weight_names", []):
                full = _text(raw_var)
                short = full.rsplit("/", 1)[-1].split(":", 1)[0]
                if short in variables:
                    raise KerasWeightsError(f"{path}: layer {layer!r} holds variable {short!r} twice")
                variables[short] = np.asarray(group[full][()])
            yield layer, variables


# ------------------------------------------------------------------------------------------------
# Conversion
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KerasResNetRSInfo:
    """Architecture of the network stored in a Keras ResNet-RS ``.h5`` file.

    Attributes:
        stage_depths: blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-RS-50.
        stage_widths: bottleneck width f of each stage (block outputs are 4f).
        stem_width: channels of the first stem conv (32 in every official file).
        in_chans: input channels.
        se_ratio: SE reduced width / block output width (0.25).
        num_classes: classifier outputs, ``None`` for ``_notop`` files.
    """

    stage_depths: Tuple[int, ...]
    stage_widths: Tuple[int, ...]
    stem_width: int
    in_chans: int
    se_ratio: float
    num_classes: Optional[int]

    @property
    def depth(self) -> Optional[int]:
        """The ResNet-RS depth (50 ... 420) whose blocks per stage these are, else ``None``."""
        for depth, stages in STAGE_DEPTHS.items():
            if tuple(stages) == self.stage_depths:
                return depth
        return None

    @property
    def model_name(self) -> str:
        """Registry name of the matching model (``resnetrs50`` for non-standard depths, which then
        need :meth:`model_kwargs` as overrides)."""
        return f"resnetrs{self.depth or 50}"

    def model_kwargs(self) -> Dict[str, Any]:
        """``create_model`` keyword arguments that build exactly this network (``num_classes=0`` for
        a file without classifier)."""
        return dict(
            stage_depths=self.stage_depths,
            stage_widths=self.stage_widths,
            stem_width=self.stem_width,
            in_chans=self.in_chans,
            se_ratio=self.se_ratio,
            num_classes=self.num_classes or 0,
        )


def _convert_tensor(kind: str, variable: str, value: np.ndarray, where: str) -> Tuple[str, torch.Tensor]:
    array = np.asarray(value, dtype=np.float32)
    if kind in (_CONV, _CONV_BIAS) and variable == "kernel":
        if array.ndim != 4:
            raise KerasWeightsError(f"{where}: conv kernel must be 4-D HWIO, got shape {array.shape}")
        return "weight", torch.from_numpy(np.ascontiguousarray(array.transpose(3, 2, 0, 1)))  # HWIO -> OIHW
    if kind == _DENSE and variable == "kernel":
        if array.ndim != 2:
            raise KerasWeightsError(f"{where}: dense kernel must be 2-D (in, out), got shape {array.shape}")
        return "weight", torch.from_numpy(np.ascontiguousarray(array.T))  # (in, out) -> (out, in)
    if kind == _BN:
        return _BN_NAMES[variable], torch.from_numpy(array.copy())
    return "bias", torch.from_numpy(array.copy())


def _check_preprocessing_layer(layer: str, variables: Mapping[str, np.ndarray], path: str) -> None:
    """An adapted Keras ``Normalization`` must hold the ImageNet statistics our input pipeline uses."""
    mean = np.asarray(variables.get("mean", np.zeros(0))).reshape(-1)
    var = np.asarray(variables.get("variance", np.zeros(0))).reshape(-1)
    ok = (
        set(variables) <= {"mean", "variance", "count"}
        and mean.shape == (3,)
        and var.shape == (3,)
        and np.allclose(mean, IMAGENET_MEAN, atol=1e-6)
        and np.allclose(var, np.square(IMAGENET_STD), atol=1e-6)
    )
    if not ok:
        raise KerasWeightsError(
            f"{path}: preprocessing layer {layer!r} holds {sorted(variables)} (mean {mean.tolist()}, variance "
            f"{var.tolist()}) instead of the ImageNet mean/variance; our models expect ImageNet mean/std input"
        )


def _expected_shapes(info: KerasResNetRSInfo) -> Dict[str, Tuple[int, ...]]:
    """Every native parameter of the network described by ``info`` and its shape."""
    shapes: Dict[str, Tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    w = info.stem_width
    stem = [(info.in_chans, w, 3), (w, w, 3), (w, 2 * w, 3), (2 * w, 2 * w, 3)]
    for k, (cin, cout, ks) in enumerate(stem, 1):
        shapes[f"stem.conv{k}.weight"] = (cout, cin, ks, ks)
        bn(f"stem.bn{k}", cout)
    cin = 2 * w
    for s, (depth, f) in enumerate(zip(info.stage_depths, info.stage_widths), 1):
        out = 4 * f
        reduced = max(1, int(out * info.se_ratio))
        for i in range(depth):
            p = f"layer{s}.{i}"
            shapes[f"{p}.conv1.weight"] = (f, cin, 1, 1)
            bn(f"{p}.bn1", f)
            shapes[f"{p}.conv2.weight"] = (f, f, 3, 3)
            bn(f"{p}.bn2", f)
            shapes[f"{p}.conv3.weight"] = (out, f, 1, 1)
            bn(f"{p}.bn3", out)
            shapes[f"{p}.se.fc1.weight"] = (reduced, out, 1, 1)
            shapes[f"{p}.se.fc1.bias"] = (reduced,)
            shapes[f"{p}.se.fc2.weight"] = (out, reduced, 1, 1)
            shapes[f"{p}.se.fc2.bias"] = (out,)
            if i == 0:
                shapes[f"{p}.shortcut.conv.weight"] = (out, cin, 1, 1)
                bn(f"{p}.shortcut.bn", out)
            cin = out
    if info.num_classes is not None:
        shapes["head.fc.weight"] = (info.num_classes, cin)
        shapes["head.fc.bias"] = (info.num_classes,)
    return shapes


def _infer_info(sd: Mapping[str, torch.Tensor], path: str) -> KerasResNetRSInfo:
    """Read the architecture off the converted tensors (names and a few shapes)."""
    if "stem.conv1.weight" not in sd:
        found = sorted({k.split(".")[0] for k in sd})
        raise KerasWeightsError(
            f"{path}: no ResNet-RS stem ('stem_conv_1' / 'stem_1_stem_conv_1') found; is this a Keras ResNet-RS "
            "weights file? "
            f"(mapped groups: {found})"
        )
    blocks: Dict[int, set] = {}
    for key in sd:
        m = re.match(r"^layer(\d+)\.(\d+)\.", key)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    stages = sorted(blocks)
    if not stages or stages != list(range(1, len(stages) + 1)):
        groups = [s + 1 for s in stages]
        raise KerasWeightsError(f"{path}: block groups must be 2, 3, ... without gaps, found groups {groups}")
    depths, widths = [], []
    for s in stages:
        ids = sorted(blocks[s])
        if ids != list(range(len(ids))):
            missing = sorted(set(range(max(ids) + 1)) - set(ids))
            raise KerasWeightsError(f"{path}: block group {s + 1} (layer{s}) lacks blocks {missing}")
        depths.append(len(ids))
        conv1 = sd.get(f"layer{s}.0.conv1.weight")
        if conv1 is None:
            raise KerasWeightsError(f"{path}: block group {s + 1} lacks block_0 conv_1 (layer{s}.0.conv1.weight)")
        widths.append(int(conv1.shape[0]))
    fc1, conv3 = sd.get("layer1.0.se.fc1.weight"), sd.get("layer1.0.conv3.weight")
    se_ratio = 0.25
    if fc1 is not None and conv3 is not None:
        se_ratio = float(fc1.shape[0]) / float(conv3.shape[0])
    head = sd.get("head.fc.weight")
    conv1 = sd["stem.conv1.weight"]
    return KerasResNetRSInfo(
        stage_depths=tuple(depths),
        stage_widths=tuple(widths),
        stem_width=int(conv1.shape[0]),
        in_chans=int(conv1.shape[1]),
        se_ratio=se_ratio,
        num_classes=None if head is None else int(head.shape[0]),
    )


def _read_and_convert(path: PathLike) -> Tuple[StateDict, KerasResNetRSInfo]:
    path = os.fspath(path)
    sd: StateDict = {}
    origin: Dict[str, str] = {}  # native prefix -> Keras layer, to report duplicates
    unmapped: List[str] = []
    for layer, variables in _iter_keras_layers(path):
        if not variables:
            continue  # input, Rescaling, ZeroPadding, activations, pooling, dropout, add, reshape, multiply
        if _NORMALIZATION_RE.match(layer):
            _check_preprocessing_layer(layer, variables, path)
            continue
        target = keras_layer_to_native(layer)
        if target is None:
            unmapped.extend(f"{layer}/{v}" for v in variables)
            continue
        prefix, kind = target
        if prefix in origin:
            raise KerasWeightsError(
                f"{path}: layers {origin[prefix]!r} and {layer!r} both map to {prefix}; "
                "does the file hold more than one model?"
            )
        origin[prefix] = layer
        expected = set(_KERAS_VARIABLES[kind])
        extra = sorted(set(variables) - expected)
        unmapped.extend(f"{layer}/{v}" for v in extra)
        lacking = sorted(expected - set(variables))
        if lacking:
            raise KerasWeightsError(f"{path}: layer {layer!r} lacks variable(s) {lacking} (has {sorted(variables)})")
        for variable in _KERAS_VARIABLES[kind]:
            name, tensor = _convert_tensor(kind, variable, variables[variable], f"{path}: {layer}/{variable}")
            sd[f"{prefix}.{name}"] = tensor
        if kind == _BN:
            sd[f"{prefix}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    if unmapped:
        raise KerasWeightsError(
            f"{path}: {len(unmapped)} Keras weight(s) have no mapping to the native ResNet-RS: {unmapped[:30]}"
            + (" ..." if len(unmapped) > 30 else "")
        )
    info = _infer_info(sd, path)
    expected = _expected_shapes(info)
    problems = key_mismatch_lines(expected, sd, "expected", limit=30)
    if problems:
        lines = [f"{path}: inconsistent Keras ResNet-RS weights (stage depths {info.stage_depths}, widths {info.stage_widths}):"]
        lines += problems
        raise KerasWeightsError("\n".join(lines))
    return {k: sd[k] for k in expected}, info


def convert_keras_h5(path: PathLike) -> StateDict:
    """Convert a Keras Applications ResNet-RS ``.h5`` weights file to a native state dict.

    Args:
        path: an official ``resnet-rs-{depth}-i{res}[_notop].h5`` file (or any legacy-format Keras h5
            weights of ``keras.applications.resnet_rs.ResNetRS``, e.g. with custom ``block_args``).

    Returns:
        Native keys (``stem.*``, ``layer{s}.{i}.*``, ``head.fc.*`` unless ``_notop``) in model order,
        float32 tensors, ``num_batches_tracked`` set to 0.

    Raises:
        KerasWeightsError: the file is missing, not HDF5, not Keras weights, holds weights that have no
            native mapping, or lacks (or mis-shapes) parameters the network needs.

    The model that takes these weights is ``create_model(info.model_name, **info.model_kwargs())``
    with ``info = inspect_keras_h5(path)`` (:func:`rs_image.models.create_model_from_keras_h5` does both). Feed it
    ``keras_pixels_to_input(pixels)`` to reproduce the Keras outputs (see the module docstring).
    """
    return _read_and_convert(path)[0]


def inspect_keras_h5(path: PathLike) -> KerasResNetRSInfo:
    """Architecture stored in a Keras ResNet-RS ``.h5`` file (validates the whole file)."""
    return _read_and_convert(path)[1]


def keras_h5_stage_depths(path: PathLike) -> Tuple[int, ...]:
    """Blocks per stage of a Keras ResNet-RS ``.h5``, e.g. ``(3, 4, 6, 3)``."""
    return inspect_keras_h5(path).stage_depths


def keras_h5_stage_widths(path: PathLike) -> Tuple[int, ...]:
    """Bottleneck widths of the stages of a Keras ResNet-RS ``.h5``, e.g. ``(64, 128, 256, 512)``."""
    return inspect_keras_h5(path).stage_widths


def keras_pixels_to_input(
    pixels: Union[np.ndarray, torch.Tensor],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Turn what a Keras ResNet-RS (``include_preprocessing=True``) takes into what ours takes.

    Args:
        pixels: (N, H, W, C) or (H, W, C) pixel values in [0, 255] (uint8 or float), channels last.

    Returns:
        float32 (N, C, H, W) tensor ``(pixels / 255 - mean) / std``, i.e. the Keras ``Rescaling`` and
        ``Normalization`` layers applied outside the model.
    """
    x = torch.as_tensor(np.asarray(pixels) if not isinstance(pixels, torch.Tensor) else pixels)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4:
        raise ValueError(f"expected (N, H, W, C) or (H, W, C) pixels, got shape {tuple(x.shape)}")
    x = x.to(torch.float32).permute(0, 3, 1, 2) / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return ((x - m) / s).contiguous()


_FILE_RE = re.compile(r"^resnet-rs-(\d+)-i(\d+)(_notop)?\.h5$")


def keras_file_variant(path: PathLike) -> Optional[Tuple[str, str, bool]]:
    """``("resnetrs350", "i320", include_top)`` for an official file name, else ``None``."""
    m = _FILE_RE.match(os.path.basename(os.fspath(path)))
    if not m:
        return None
    return f"resnetrs{m.group(1)}", f"i{m.group(2)}", m.group(3) is None


def check_keras_h5_md5(path: PathLike) -> Optional[bool]:
    """Compare an official file's MD5 with :data:`KERAS_WEIGHT_FILES` (``None`` for other names).

    Catches truncated or corrupted downloads before a confusing conversion error.
    """
    name = os.path.basename(os.fspath(path))
    if name not in KERAS_WEIGHT_FILES:
        return None
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest() == KERAS_WEIGHT_FILES[name]

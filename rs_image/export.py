"""Export a model for deployment, each file checked against the eager model it came from.

Three formats:

* ``"export"``: a ``torch.export`` program (``.pt2``), reloaded with ``torch.export.load``.
* ``"onnx"``: ONNX through the dynamo exporter (``torch.onnx.export(..., dynamo=True)``, opset
  :data:`ONNX_OPSET`), run with onnxruntime when it is installed (the ``[onnx]`` extra).
* ``"safetensors"``: the weights, with the model's pretrained cfg as JSON in the file's metadata.

and a Hugging Face Hub folder (:func:`export_hub_folder`: ``model.safetensors``, ``config.json``, a model card
``README.md``; ready for ``huggingface-cli upload``), reloaded the way ``hf-hub:`` names are and compared.

Every export is written to a temporary file, reloaded, run on a seeded random input and compared with the
eager model; only a file whose largest absolute difference is at most the tolerance replaces the target.

Dynamic dimensions (``batch``, ``time``, ``space``: height and width, each its own symbol) work for every
model, from a minimum size: PyTorch's symbolic shapes treat a size of 1 as a special case (broadcasting and
memory-layout rules branch on it), so the exporter assumes that no feature map is 1 frame or 1 pixel wide.
The minima (:func:`min_dynamic_sizes`) are the smallest inputs whose every map is at least 2 wide: time at
least twice the model's temporal reduction, space at least its spatial reduction + 1 (33). The ``.pt2``
program refuses a smaller input (a guard error); an ONNX graph has no such check.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from rs_image.errors import UserError
from rs_image.fileio import atomic_path
from rs_image.models.weights import load_pretrained, save_state_dict, write_hub_folder

__all__ = [
    "FORMATS", "DYNAMIC_DIMS", "ONNX_OPSET", "TOLERANCE", "ExportError", "ExportMismatchError", "ExportCheck",
    "ExportReport", "export_model", "min_dynamic_sizes", "input_shape", "export_hub_folder", "hub_model_card",
]

logger = logging.getLogger(__name__)

#: format -> file suffix
FORMATS: Dict[str, str] = {"export": ".pt2", "onnx": ".onnx", "safetensors": ".safetensors"}
DYNAMIC_DIMS = ("batch", "time", "space")
#: The ONNX opset of the exported graphs (torch's default for the dynamo exporter; onnxruntime >= 1.17).
ONNX_OPSET = 20
#: Largest accepted absolute difference between an export and the eager model.
TOLERANCE = 1e-4

PathLike = Union[str, Path]


class ExportError(UserError, ValueError):
    """An export request that cannot be met as given (format, dynamic dimension, input size, package)."""


class ExportMismatchError(RuntimeError):
    """An exported model computes something else than the eager model (above the tolerance)."""


@dataclass
class ExportCheck:
    """One comparison of an export with the eager model."""

    input_shape: Tuple[int, ...]
    runtime: str  # what ran the export: "torch.export.load", "onnxruntime 1.x (CPU)", ...
    max_abs_diff: Optional[float]  # None: not run (onnxruntime missing)
    max_abs_output: float  # the scale of the eager outputs, for reading the difference


@dataclass
class ExportReport:
    """What :func:`export_model` wrote and how it compares with eager."""

    path: Path
    format: str
    input_shape: Tuple[int, ...]  # the traced input
    dynamic: Dict[str, int]  # dynamic dimension -> smallest size it accepts
    checks: List[ExportCheck] = field(default_factory=list)
    opset: Optional[int] = None
    metadata: Dict[str, str] = field(default_factory=dict)

    @property
    def max_abs_diff(self) -> Optional[float]:
        """The largest difference over the checks that ran (None when none could)."""
        diffs = [c.max_abs_diff for c in self.checks if c.max_abs_diff is not None]
        return max(diffs) if diffs else None


def _is_video(model: nn.Module) -> bool:
    ops = getattr(model, "ops", None)
    return ops is not None and ops.dims == 3


def min_dynamic_sizes(model: nn.Module) -> Dict[str, int]:
    """The smallest size each dimension can take when exported as dynamic (see the module docstring)."""
    # feature_info lists every map the model computes, down to the deepest (features_only: those it returns,
    # the deepest of which is the last it computes).
    info = model.feature_info
    sizes = {"batch": 1, "space": max(f["reduction"] for f in info) + 1}
    if _is_video(model):
        sizes["time"] = 2 * max(f.get("temporal_reduction", 1) for f in info)
    return sizes


def input_shape(model: nn.Module, batch: int = 1, frames: Optional[int] = None, size: Optional[int] = None,
                in_chans: int = 3) -> Tuple[int, ...]:
    """(B, C, [T,] H, W) from the given values, else from the model's ``pretrained_cfg`` input size."""
    cfg_size = tuple(getattr(model, "pretrained_cfg", {}).get("input_size", ()))
    if _is_video(model):
        t = frames if frames is not None else (cfg_size[1] if len(cfg_size) == 4 else None)
        s = size if size is not None else (cfg_size[-1] if cfg_size else None)
        if t is None or s is None:
            raise ExportError("the model has no input size in its pretrained cfg; give frames and size")
        return (batch, in_chans, t, s, s)
    if frames is not None:
        raise ExportError("an image model takes no frames (time axis)")
    s = size if size is not None else (cfg_size[-1] if cfg_size else None)
    if s is None:
        raise ExportError("the model has no input size in its pretrained cfg; give size")
    return (batch, in_chans, s, s)


def _dynamic_axes(model: nn.Module, dynamic: Sequence[str]) -> Dict[str, List[int]]:
    """Dynamic dimension name -> the input axes it makes dynamic; unknown or inapplicable names raise."""
    video = _is_video(model)
    axes = {"batch": [0], "time": [2], "space": [3, 4] if video else [2, 3]}
    unknown = [d for d in dynamic if d not in DYNAMIC_DIMS]
    if unknown:
        raise ExportError(f"unknown dynamic dimension(s) {unknown}; choose from {', '.join(DYNAMIC_DIMS)}")
    if "time" in dynamic and not video:
        raise ExportError("an image model has no time axis to make dynamic")
    return {d: axes[d] for d in DYNAMIC_DIMS if d in dynamic}


def _vary(value: int, smallest: int, step: int) -> int:
    """Another valid size for a second check of a dynamic dimension."""
    return value - step if value - step >= smallest else value + step


def _check_shapes(
    shape: Tuple[int, ...], axes: Mapping[str, List[int]], mins: Mapping[str, int]
) -> List[Tuple[int, ...]]:
    """The traced shape, and (with dynamic dimensions) one that differs in every dynamic axis."""
    if not axes:
        return [shape]
    other = list(shape)
    steps = {"batch": 1, "time": 2, "space": 16}
    for name, dims in axes.items():
        for i, axis in enumerate(dims):
            other[axis] = _vary(shape[axis], mins[name], steps[name] + 8 * i)  # H and W differ from each other
    return [shape, tuple(other)]


def _flat(out: Any) -> List[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flat(o)]
    raise TypeError(f"cannot compare a model output of type {type(out).__name__}")


def _max_abs_diff(expected: Sequence[torch.Tensor], got: Sequence[Any]) -> float:
    if len(expected) != len(got):
        return float("inf")
    diff = 0.0
    for e, g in zip(expected, got):
        g = torch.as_tensor(g)
        if tuple(e.shape) != tuple(g.shape):
            return float("inf")
        diff = max(diff, (e.float() - g.float()).abs().max().item() if e.numel() else 0.0)
    return diff


def _random_input(shape: Tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _torch_dynamic_shapes(axes: Mapping[str, List[int]], mins: Mapping[str, int]) -> Optional[tuple]:
    if not axes:
        return None
    # Dim.DYNAMIC: the exporter derives each symbol's range and keeps guards it cannot prove but that hold
    # (the ceil-mode average pools'), which named Dims with a range would reject.
    spec = {axis: torch.export.Dim.DYNAMIC(min=mins[name]) for name, dims in axes.items() for axis in dims}
    return (spec,)


def _export_program(model, tmp, example, dynamic_shapes, inputs) -> Tuple[List[List[Any]], str]:
    program = torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes)
    torch.export.save(program, str(tmp))
    loaded = torch.export.load(str(tmp)).module()
    with torch.no_grad():
        return [_flat(loaded(x)) for x in inputs], "torch.export.load"


def _export_onnx(
    model, tmp, example, dynamic_shapes, inputs, opset, n_outputs
) -> Tuple[Optional[List[List[Any]]], str]:
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"ONNX export needs {' and '.join(missing)}: pip install 'rs-video[onnx]'")
    output_names = ["output"] if n_outputs == 1 else [f"output_{i}" for i in range(n_outputs)]
    # One self-contained file: every model of the zoo is far below protobuf's 2 GB limit in fp32.
    torch.onnx.export(
        model, (example,), str(tmp), dynamo=True, opset_version=opset, dynamic_shapes=dynamic_shapes,
        input_names=["input"], output_names=output_names, external_data=False, verbose=False,
    )
    import onnx

    onnx.checker.check_model(str(tmp), full_check=True)
    if importlib.util.find_spec("onnxruntime") is None:
        logger.info("onnxruntime is not installed: %s is checked by onnx.checker only", tmp)
        return None, "onnx.checker (onnxruntime not installed)"
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    outs = [session.run(None, {"input": x.numpy()}) for x in inputs]
    return outs, f"onnxruntime {onnxruntime.__version__} (CPU)"


def _export_safetensors(model, tmp, inputs, metadata) -> Tuple[List[List[Any]], str]:
    save_state_dict(model, tmp, metadata=metadata)
    from safetensors import safe_open

    with safe_open(str(tmp), "pt") as f:
        if f.metadata() != metadata:
            raise ExportMismatchError(f"{tmp}: metadata read back differs from what was written")
    # A copy whose every tensor is first spoilt, so that the outputs show that the file holds all of them.
    reloaded = copy.deepcopy(model)
    with torch.no_grad():
        for t in reloaded.state_dict().values():
            t.fill_(float("nan") if t.is_floating_point() else 0)
    load_pretrained(reloaded, str(tmp))
    with torch.no_grad():
        return [_flat(reloaded(x)) for x in inputs], "safetensors reloaded into the model (strict)"


def export_model(
    model: nn.Module,
    path: PathLike,
    fmt: str,
    shape: Sequence[int],
    dynamic: Sequence[str] = (),
    *,
    tolerance: float = TOLERANCE,
    opset: int = ONNX_OPSET,
    metadata: Optional[Mapping[str, str]] = None,
    seed: int = 0,
) -> ExportReport:
    """Export ``model`` (put in eval mode) to ``path`` in format ``fmt`` and check it against eager.

    Args:
        model: any module taking one (B, C, [T,] H, W) tensor; dynamic sizes and the metadata use a
            :class:`~rs_image.models.ResNetRS`'s ``feature_info`` and ``pretrained_cfg``.
        fmt: ``"export"``, ``"onnx"`` or ``"safetensors"`` (:data:`FORMATS`).
        shape: the traced input shape (:func:`input_shape`). With a dynamic batch, a batch of 1 is
            traced as 2 (a traced size 1 would be specialised).
        dynamic: dimensions to keep symbolic: ``"batch"``, ``"time"``, ``"space"`` (not for safetensors,
            which holds weights only).
        tolerance: largest accepted absolute difference to the eager outputs (an absolute bound: each
            check also reports the outputs' scale; onnxruntime's float32 kernels round differently from
            PyTorch's by up to about 1e-5 of it).
        metadata: safetensors: more string entries besides ``pretrained_cfg`` (JSON) and ``format``.
        seed: of the random check inputs.

    Returns:
        The report: file, traced shape, dynamic minima, and one check per input shape (the traced one, and
        with dynamic dimensions a second one that differs in each).

    Raises:
        ExportError: an unknown format or dimension, a traced size below a dynamic minimum, a missing package.
        ExportMismatchError: an output differs by more than ``tolerance``; the target is then not written.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if Path(path).suffix != FORMATS[fmt]:
        raise ExportError(f"the {fmt} format writes {FORMATS[fmt]} files, not {path}")
    if fmt == "safetensors" and dynamic:
        raise ExportError("safetensors holds weights only; dynamic dimensions apply to export and onnx")
    model.eval()
    axes = _dynamic_axes(model, dynamic)
    mins = min_dynamic_sizes(model) if axes else {}
    shape = tuple(int(s) for s in shape)
    if "batch" in axes and shape[0] == 1:
        shape = (2,) + shape[1:]
    for name, dims in axes.items():
        small = [shape[a] for a in dims if shape[a] < mins[name]]
        if small:
            raise ExportError(f"a dynamic {name} is traced at {small[0]}, below its smallest size {mins[name]}")
    shapes = _check_shapes(shape, axes, mins)
    inputs = [_random_input(s, seed + i) for i, s in enumerate(shapes)]
    with torch.no_grad():
        expected = [_flat(model(x)) for x in inputs]
    report = ExportReport(Path(path), fmt, shape, {n: mins[n] for n in axes})
    dynamic_shapes = _torch_dynamic_shapes(axes, mins)
    with atomic_path(path) as tmp:
        if fmt == "export":
            outs, runtime = _export_program(model, tmp, inputs[0], dynamic_shapes, inputs)
        elif fmt == "onnx":
            report.opset = opset
            outs, runtime = _export_onnx(model, tmp, inputs[0], dynamic_shapes, inputs, opset, len(expected[0]))
        else:
            report.metadata = {"format": "pt", **dict(metadata or {})}
            cfg = getattr(model, "pretrained_cfg", None)
            if cfg is not None:
                report.metadata["pretrained_cfg"] = json.dumps(cfg, sort_keys=True)
            outs, runtime = _export_safetensors(model, tmp, inputs, report.metadata)
        for i, s in enumerate(shapes):
            diff = None if outs is None else _max_abs_diff(expected[i], outs[i])
            scale = max(t.abs().max().item() if t.numel() else 0.0 for t in expected[i])
            report.checks.append(ExportCheck(s, runtime, diff, scale))
        if report.max_abs_diff is not None and report.max_abs_diff > tolerance:
            worst = max((c for c in report.checks if c.max_abs_diff is not None), key=lambda c: c.max_abs_diff)
            raise ExportMismatchError(
                f"{fmt} export of {Path(path).name} differs from eager by max |diff| {worst.max_abs_diff:.3g} "
                f"> {tolerance:g} at input {'x'.join(map(str, worst.input_shape))} (outputs up to "
                f"{worst.max_abs_output:.3g}; {worst.runtime}); not written"
            )
    return report


def _markdown_value(value: Any, sizes: bool = False) -> str:
    if isinstance(value, (list, tuple)):
        return ("x" if sizes else ", ").join(map(str, value))
    return str(value)


def hub_model_card(
    model: nn.Module,
    architecture: str,
    *,
    repo_id: str = "ORG/REPO",
    training: Optional[Mapping[str, Any]] = None,
    results: Optional[Mapping[str, Any]] = None,
    label_names: Optional[Sequence[str]] = None,
    model_args: Optional[Mapping[str, Any]] = None,
) -> str:
    """A model card (``README.md``) for the hub folder: what the model is, its numbers, how it was trained, how to
    load it. ``training``: settings to list (e.g. from the checkpoint's config); ``results``: measured numbers
    (e.g. ``test_results.json``); ``model_args``: architecture overrides (the registry's reference numbers are
    then left out, being another network's)."""
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    video = _is_video(model)
    lines = ["---", "library_name: rs-video", "license: apache-2.0",
             f"pipeline_tag: {'video-classification' if video else 'image-classification'}",
             "tags:", "- resnet-rs", f"- {architecture.split('.')[0]}", "---", "",
             f"# {architecture}" + (f" ({cfg['variant']})" if cfg.get("variant") else ""), "",
             f"ResNet-RS ({'3D / (2+1)D video' if video else 'image'}) model from rs_video / rs_image, "
             f"{int(getattr(model, 'num_classes', 0) or 0)} classes, "
             f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters.", "", "## Input", ""]
    for key in ("input_size", "test_input_size", "num_frames", "sampling_rate", "test_views", "mean", "std",
                "interpolation", "crop_pct"):
        if key in cfg:
            lines.append(f"- {key}: {_markdown_value(cfg[key], sizes=key.endswith(('size', 'views')))}")
    if results:
        lines += ["", "## Results (measured by this model's test run)", ""]
        lines += [f"- {k}: {v:.2f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in results.items()]
    if cfg.get("top1") is not None and not model_args:
        lines += ["", f"Registry reference top-1 of the architecture: {cfg['top1']} ({cfg.get('top1_source', '')})"
                      " - a published number, not a measurement of these weights."]
    if training:
        lines += ["", "## Training", ""] + [f"- {k}: {_markdown_value(v)}" for k, v in training.items()]
    if label_names:
        shown = ", ".join(label_names[:20]) + (f", ... ({len(label_names)} in config.json)" if len(label_names) > 20 else "")
        lines += ["", "## Classes", "", shown]
    create = "rs_video.create_model" if video else "rs_image.create_model"
    lines += ["", "## Use", "", "```python", f"import {create.split('.')[0]}", "",
              f'model = {create}("{architecture}", pretrained="hf-hub:{repo_id}").eval()',
              'names = model.pretrained_cfg.get("label_names")', "```", ""]
    return "\n".join(lines)


def export_hub_folder(
    model: nn.Module,
    folder: PathLike,
    *,
    architecture: str,
    model_args: Optional[Mapping[str, Any]] = None,
    label_names: Optional[Sequence[str]] = None,
    model_card: str = "",
    shape: Optional[Sequence[int]] = None,
    seed: int = 0,
) -> ExportReport:
    """Write a Hugging Face Hub folder for ``model`` (:func:`rs_image.models.weights.write_hub_folder`) and check it.

    The folder is first written beside the target, loaded into a spoilt copy of the model the way an ``hf-hub:``
    name is (``config.json``'s architecture checked, strict load) and run on a seeded random input of ``shape``
    (default the model's input size); only an exact match (the same weights) moves its files into ``folder``
    (other files there, e.g. ``.git``, are kept).

    Raises:
        ExportMismatchError: the reloaded model computes something else; nothing is written.
    """
    model.eval()
    folder = Path(folder)
    shape = tuple(shape) if shape is not None else input_shape(model)
    x = _random_input(shape, seed)
    with torch.no_grad():
        expected = _flat(model(x))
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        write_hub_folder(model, tmp, architecture=architecture, model_args=model_args, label_names=label_names,
                         model_card=model_card)
        reloaded = copy.deepcopy(model)
        reloaded.pretrained_cfg = {**getattr(model, "pretrained_cfg", {}), "architecture": architecture.split(".")[0]}
        with torch.no_grad():
            for t in reloaded.state_dict().values():
                t.fill_(float("nan") if t.is_floating_point() else 0)
        load_pretrained(reloaded, str(tmp))
        with torch.no_grad():
            diff = _max_abs_diff(expected, _flat(reloaded(x)))
        scale = max(t.abs().max().item() if t.numel() else 0.0 for t in expected)
        if diff != 0.0:
            raise ExportMismatchError(f"the hub folder reloaded differs from eager by max |diff| {diff:.3g}; not written")
        folder.mkdir(parents=True, exist_ok=True)
        for item in sorted(tmp.iterdir()):
            os.replace(item, folder / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = ExportReport(folder, "hf-hub", shape, {})
    report.checks.append(ExportCheck(shape, "hub folder reloaded into the model (strict)", diff, scale))
    return report

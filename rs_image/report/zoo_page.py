"""The model zoo page (``MODEL_ZOO.md``) and the README model tables (``docs/model_table.md``).

Both pages are generated from the model registries (input sizes, frames x rate, views, reported top-1,
weights) and fvcore counts; ``tools/model_report.py --zoo MODEL_ZOO.md --model-table docs/model_table.md``
writes them, and a test regenerates them from the pinned counts (:class:`~rs_image.report.counts.CountsCache`,
``docs/model_counts.json``) to check that they are current.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

from .catalog import ModelSpec
from .counts import CONVENTION, CountsCache, count_spec, shape_str

__all__ = ["zoo_markdown", "model_table_markdown", "pinned_count_requests", "config_path", "weights_status",
           "ZOO_COMMAND", "TABLE_FRAMES", "TABLE_SIZES"]

ZOO_COMMAND = "python tools/model_report.py --zoo MODEL_ZOO.md --model-table docs/model_table.md"
# The README table puts every video family on the same clip: 32 frames, train crop 224, test crop 256.
TABLE_FRAMES = 32
TABLE_SIZES = (224, 256)

# PyTorchVideo zoo checkpoints that load into our plain 3D ResNet-50s (rs_video's PyTorchVideo converter).
_PTV_CHECKPOINTS = {"slow_r50": "SLOW_8x8_R50.pyth", "i3d_r50": "I3D_8x8_R50.pyth", "c2d_r50": "C2D_8x8_R50.pyth"}
# timm's ResNet-RS weights and the variant (resolution) each was trained at (reference: resnet_rs.md §6).
_TIMM_WEIGHTS = {
    "resnetrs50.i160": "`resnetrs50.tf_in1k`",
    "resnetrs101.i192": "`resnetrs101.tf_in1k`",
    "resnetrs152.i256": "`resnetrs152.tf_in1k`",
    "resnetrs200.i256": "`resnetrs200.tf_in1k` (timm-trained, not the TF port)",
    "resnetrs270.i256": "`resnetrs270.tf_in1k`",
    "resnetrs350.i256": "`resnetrs350.tf_in1k`",
    "resnetrs420.i320": "`resnetrs420.tf_in1k`",
}


def _arch_label(name: str) -> str:
    for pattern, fmt in (
        (r"^rs3d_(\d+)$", "3D ResNet-RS-{}"),
        (r"^rs3d_(\d+)_tf_mg$", "3D ResNet-RS-{}, TF Model Garden's exact network"),
        (r"^rs2plus1d_(\d+)$", "(2+1)D ResNet-RS-{}"),
        (r"^slow_r(\d+)$", "Slow R{} (PyTorchVideo arch.)"),
        (r"^i3d_r(\d+)$", "I3D R{} (PyTorchVideo arch.)"),
        (r"^c2d_r(\d+)$", "C2D R{} (PyTorchVideo arch.)"),
    ):
        m = re.match(pattern, name)
        if m:
            return fmt.format(m.group(1))
    return name


def config_path(spec: ModelSpec, root: str) -> Optional[str]:
    """The training config of a model, relative to ``root``, if it exists: ``configs/kinetics/<name>.yaml``
    for video, ``configs/imagenet/<name>_<variant>.yaml`` for images."""
    if spec.task == "video":
        rel = f"configs/kinetics/{spec.name}.yaml"
    else:
        rel = f"configs/imagenet/{spec.name.replace('.', '_')}.yaml"
    return rel if os.path.exists(os.path.join(root, rel)) else None


def weights_status(spec: ModelSpec) -> str:
    """Where weights for ``spec`` come from (nothing is downloaded by the library)."""
    base = spec.name.split(".")[0]
    if spec.task == "image":
        parts = []
        if spec.cfg.get("keras_weights"):
            parts.append(f"official Keras `{spec.cfg['keras_weights']}` (convert: `tools/convert_keras_weights.py`)")
        if spec.name in _TIMM_WEIGHTS:
            parts.append(f"timm {_TIMM_WEIGHTS[spec.name]}")
        return "; ".join(parts) or "none published"
    if base in _PTV_CHECKPOINTS:
        return f"PyTorchVideo zoo `{_PTV_CHECKPOINTS[base]}` loads with `pretrained=`"
    if base.endswith("_tf_mg"):
        return "none published (Model Garden released none); its TF2 checkpoints convert: `tools/convert_tf_checkpoint.py`"
    if spec.cfg.get("inflate_from"):
        return f"none published; train, or inflate `{spec.cfg['inflate_from']}` ImageNet weights (`inflate_from=`)"
    return "none published"


def _table_size_spec(spec: ModelSpec) -> ModelSpec:
    return spec.with_overrides(frames=TABLE_FRAMES, size=TABLE_SIZES[0], test_size=TABLE_SIZES[1])


def pinned_count_requests(
    video: Sequence[ModelSpec], image: Sequence[ModelSpec], anchors: Sequence[ModelSpec] = ()
) -> List[Tuple[ModelSpec, List[Tuple[int, ...]]]]:
    """Every (spec, input shapes) the pages need, plus the comparison models at their default inputs (so
    that a default report is quick too). These are the entries of the pinned counts file."""
    requests: List[Tuple[ModelSpec, List[Tuple[int, ...]]]] = []

    def add(spec: ModelSpec, shapes: Sequence[Tuple[int, ...]]) -> None:
        unique = []
        for s in shapes:
            if tuple(s) not in unique:
                unique.append(tuple(s))
        requests.append((spec, unique))

    for spec in video:
        table = _table_size_spec(spec)
        add(spec, [spec.input_size, spec.test_input_size, table.input_size, table.test_input_size])
    for spec in list(image) + list(anchors):
        add(spec, [spec.input_size, spec.test_input_size])
    return requests


def _top1_cell(spec: ModelSpec, notes: Dict[str, int]) -> str:
    if spec.top1 is None:
        return "–"
    source = spec.top1_source or "unknown source"
    idx = notes.setdefault(source, len(notes) + 1)
    return f"{spec.top1:.2f} [{idx}]" if isinstance(spec.top1, float) else f"{spec.top1} [{idx}]"


def _f(v: float, digits: int = 2) -> str:
    return f"{v:.{digits}f}"


def zoo_markdown(
    video: Sequence[ModelSpec],
    image: Sequence[ModelSpec],
    *,
    root: str,
    cache: Optional[CountsCache] = None,
    allow_compute: bool = True,
) -> str:
    """``MODEL_ZOO.md``: every video model and every image variant with its inputs, parameters, GFLOPs x
    views, reported top-1 (with source), config file and weights status."""
    notes: Dict[str, int] = {}
    lines = [
        "# Model zoo",
        "",
        f"Generated by `{ZOO_COMMAND}` from the model registries and fvcore; do not edit by hand "
        "(`tests/tools/test_model_report.py` checks that it is current).",
        "",
        "**Conventions.** " + CONVENTION + " Top-1 numbers are those reported by the cited authors for their "
        "own trained networks; they were not measured with this library, and no video weights of ours are "
        "published yet.",
        "",
        "## Video models (Kinetics-400)",
        "",
        "GFLOPs x views: conv + linear GMACs of one view at the test input, times clips x crops. "
        "BN GFLOPs: BatchNorm multiply-adds at the test input (not included in the other columns).",
        "",
        "| model | architecture | frames x rate | train input | test input | params (M) | GFLOPs x views | "
        "BN GFLOPs | train GFLOPs | reported top-1 | config | weights |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in video:
        train, test = count_spec(spec, [spec.input_size, spec.test_input_size], cache=cache,
                                 allow_compute=allow_compute)
        views = spec.test_views[0] * spec.test_views[1]
        cfg_path = config_path(spec, root)
        lines.append(
            "| " + " | ".join([
                f"`{spec.name}`", _arch_label(spec.name), spec.clip, shape_str(spec.input_size[1:]),
                shape_str(spec.test_input_size[1:]), _f(train["params"] / 1e6),
                f"{_f((test['conv'] + test['linear']) / 1e9)} x {views}", _f(test["batch_norm"] / 1e9),
                _f((train["conv"] + train["linear"]) / 1e9), _top1_cell(spec, notes),
                f"[`{cfg_path}`]({cfg_path})" if cfg_path else "–", weights_status(spec),
            ]) + " |"
        )
    lines += [
        "",
        "## Image models (ImageNet-1k)",
        "",
        "ResNet-RS trains and evaluates at the same resolution. GMACs: conv + linear, BN not included; the "
        "paper's GFLOPs are 2 x GMACs.",
        "",
        "| model | input | params (M) | GMACs | paper-style GFLOPs (2 x MACs) | BN GMACs | reported top-1 | config | "
        "weights |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in image:
        (c,) = count_spec(spec, [spec.input_size], cache=cache, allow_compute=allow_compute)
        gmacs = (c["conv"] + c["linear"]) / 1e9
        cfg_path = config_path(spec, root)
        lines.append(
            "| " + " | ".join([
                f"`{spec.name}`", shape_str(spec.input_size[1:]), _f(c["params"] / 1e6), _f(gmacs), _f(2 * gmacs, 1),
                _f(c["batch_norm"] / 1e9), _top1_cell(spec, notes),
                f"[`{cfg_path}`]({cfg_path})" if cfg_path else "–", weights_status(spec),
            ]) + " |"
        )
    lines += ["", "## Sources of the reported top-1", ""]
    lines += [f"{i}. {source}" for source, i in sorted(notes.items(), key=lambda kv: kv[1])]
    return "\n".join(lines) + "\n"


def model_table_markdown(
    video: Sequence[ModelSpec],
    image: Sequence[ModelSpec],
    *,
    cache: Optional[CountsCache] = None,
    allow_compute: bool = True,
) -> str:
    """The README tables: image models (params, GMACs at the train resolution, the paper's top-1) and every
    video model on one clip, 32 x 224^2 (train crop) and 32 x 256^2 (test crop)."""
    t, (s_train, s_test) = TABLE_FRAMES, TABLE_SIZES
    lines = [
        f"<!-- Generated by `{ZOO_COMMAND}`; do not edit by hand. -->",
        "",
        "All counts are fvcore multiply-adds (1 fused multiply-add = 1 FLOP, the PyTorchVideo / SlowFast / "
        "torchvision zoo convention) of conv + linear layers, batch 1; BatchNorm is stated separately and not "
        "included. Full details: [MODEL_ZOO.md](../MODEL_ZOO.md).",
        "",
        "**Image models (ImageNet-1k)**, at the train resolution (= eval resolution). Top-1 is the ResNet-RS "
        "paper's (official TF1 checkpoints), not measured here; the paper's GFLOPs are 2 x GMACs.",
        "",
        "| model | input | params (M) | GMACs | paper top-1 (%) |",
        "|---|---|---|---|---|",
    ]
    for spec in image:
        (c,) = count_spec(spec, [spec.input_size], cache=cache, allow_compute=allow_compute)
        top1 = f"{spec.top1:.1f} (paper)" if spec.top1 is not None else "–"
        lines.append(f"| `{spec.name}` | {shape_str(spec.input_size[1:])} | {_f(c['params'] / 1e6)} | "
                     f"{_f((c['conv'] + c['linear']) / 1e9)} | {top1} |")
    lines += [
        "",
        f"**Video models**, every family on the same clip: {t} x {s_train}^2 (train crop) and {t} x {s_test}^2 "
        f"(test crop, x 30 = 10 clips x 3 crops at test time). `slow_r50` / `i3d_r50` / `c2d_r50` are shown at "
        f"{t} frames for comparison (their PyTorchVideo recipe uses 8).",
        "",
        f"| model | params (M) | GMACs {t}x{s_train}^2 | GMACs {t}x{s_test}^2 | GMACs x 30 views ({s_test}^2) | "
        f"BN GMACs {s_train}^2 / {s_test}^2 (not incl.) |",
        "|---|---|---|---|---|---|",
    ]
    for spec in video:
        table = _table_size_spec(spec)
        train, test = count_spec(spec, [table.input_size, table.test_input_size], cache=cache,
                                 allow_compute=allow_compute)
        g_train = (train["conv"] + train["linear"]) / 1e9
        g_test = (test["conv"] + test["linear"]) / 1e9
        lines.append(
            f"| `{spec.name}` | {_f(train['params'] / 1e6)} | {_f(g_train)} | {_f(g_test)} | {_f(30 * g_test, 1)} | "
            f"{_f(train['batch_norm'] / 1e9)} / {_f(test['batch_norm'] / 1e9)} |"
        )
    return "\n".join(lines) + "\n"

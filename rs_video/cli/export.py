#!/usr/bin/env python
"""Export a model for deployment and check the file against the eager model.

Formats: ``export`` (torch.export program, ``.pt2``, reload with ``torch.export.load``), ``onnx`` (dynamo
exporter, opset 20; run with onnxruntime when installed: ``pip install 'rs-video[onnx]'``) and
``safetensors`` (weights, with the pretrained cfg as JSON metadata). ``--hf-dir DIR`` writes a Hugging Face
Hub folder instead (or as well): ``model.safetensors``, ``config.json`` (timm's fields: architecture,
num_classes, label_names, model_args, pretrained_cfg) and a model card ``README.md`` with the checkpoint's
training settings and ``--results`` numbers, ready for ``huggingface-cli upload ORG/REPO DIR``; load it
with ``create_model(NAME, pretrained="hf-hub:ORG/REPO")``.

Examples::

    python tools/export.py --model rs3d_50 --weights runs/rs3d50/checkpoints/last.pyth --format export \\
        --frames 16 --size 224 --dynamic batch,time,space
    python tools/export.py --model resnetrs50 --weights resnetrs50_i160.safetensors --format onnx --dynamic batch
    python tools/export.py --model rs3d_50 --format safetensors --override stage_widths=(8,16,32,64)
    python tools/export.py --model rs3d_50 --weights runs/charades/checkpoints/last.pyth --hf-dir hub/rs3d_50 \
        --class-names Charades_v1_classes.txt --results runs/charades/test_results.json --repo-id me/rs3d_50_charades

The model is built by name from the image or video registry, at random init or with ``--weights`` (any
weights source: native, timm, Keras, PyTorchVideo, training checkpoints; the classifier size is taken
from the weights unless ``--num-classes`` says otherwise, and weights without one give a model that
returns pooled features). The input defaults to the model's ``input_size``. Every export is run on a
random input and compared with eager (a second input varies each dynamic dimension); the largest
absolute difference is printed, with the outputs' scale. Exit status: 0 done, 1 the export differs from
eager by more than ``--tolerance`` (1e-4; nothing is written), 2 a bad argument (one line on stderr). See
README.md, "Export".
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
from typing import Any, Dict, List, Optional, Sequence


import rs_image
import rs_video  # noqa: F401  (registers the video family)
from rs_image.engine.launch import run_cli
from rs_image.errors import UserError
from rs_image.export import (
    DYNAMIC_DIMS, FORMATS, ONNX_OPSET, TOLERANCE, ExportError, ExportMismatchError, ExportReport, export_hub_folder,
    export_model, hub_model_card, input_shape,
)
from rs_image.models import MODELS, resolve_weights
from rs_image.models.weights import read_weights_file
from rs_video.data.sources.charades import read_charades_classes


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="registry name, e.g. rs3d_50, i3d_r50, resnetrs350.i320")
    p.add_argument("--format", choices=list(FORMATS), help="export (.pt2), onnx or safetensors (optional with --hf-dir)")
    p.add_argument("--hf-dir", help="write a Hugging Face Hub folder (model.safetensors, config.json, README.md) here")
    p.add_argument("--class-names", help="--hf-dir: a file with one class name per line (or Charades' "
                                         "'c000 Name' lines), in index order")
    p.add_argument("--results", help="--hf-dir: a test_results.json whose numbers go into the model card")
    p.add_argument("--repo-id", default="ORG/REPO", help="--hf-dir: the hub repository named in the model card")
    p.add_argument("--weights", help="weights to load (path or URL; default: random init)")
    p.add_argument("--output", help="output file (default: MODEL + the format's suffix, here)")
    p.add_argument("--frames", type=int, help="video: clip length T of the traced input (default: the model's)")
    p.add_argument("--size", type=int, help="height = width of the traced input (default: the model's)")
    p.add_argument("--batch", type=int, default=1, help="batch of the traced input (default 1; 2 with a dynamic batch)")
    p.add_argument("--dynamic", default="", help=f"comma list of dimensions to keep dynamic: {','.join(DYNAMIC_DIMS)}")
    p.add_argument("--num-classes", type=int, help="classifier outputs (default: from --weights, else the registry's)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="architecture keyword of the model, e.g. stage_widths=(8,16,32,64) (repeatable)")
    p.add_argument("--opset", type=int, default=ONNX_OPSET, help=f"ONNX opset (default {ONNX_OPSET})")
    p.add_argument("--seed", type=int, default=0, help="seed of the random check inputs")
    p.add_argument("--tolerance", type=float, default=TOLERANCE,
                   help=f"largest accepted max |export - eager| (default {TOLERANCE:g}, absolute)")
    args = p.parse_args(argv)
    if not args.format and not args.hf_dir:
        p.error("give --format, --hf-dir, or both")
    return args


def parse_overrides(items: Sequence[str]) -> Dict[str, Any]:
    """``KEY=VALUE`` strings -> keywords; a value is a Python literal, or else the string itself."""
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ExportError(f"--override {item!r}: expected KEY=VALUE")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def build_model(name: str, weights: Optional[str], num_classes: Optional[int], overrides: Dict[str, Any]):
    """The named model (any family of :data:`rs_image.models.MODELS`), with ``weights`` loaded strictly."""
    MODELS.family_of(name)  # an unknown name fails here, before the weights are read
    kwargs = dict(overrides)
    state_dict = None
    if weights:
        state_dict = resolve_weights(weights).state_dict
        if num_classes is None:
            fc = state_dict.get("head.fc.weight")
            num_classes = 0 if fc is None else int(fc.shape[0])
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    try:
        return MODELS.create(name, pretrained=state_dict, **kwargs)
    except UserError:
        raise
    except (TypeError, ValueError) as e:
        if not overrides:
            raise
        raise ExportError(f"--override: {e}") from e


def read_class_names(path: str) -> List[str]:
    """One class name per line, or Charades' ``Charades_v1_classes.txt`` (``c000 Holding some clothes``)."""
    try:
        lines = [line.strip() for line in open(path, encoding="utf-8") if line.strip()]
    except OSError as e:
        raise UserError(f"--class-names {path}: {e.strerror}") from e
    if lines and all(re.fullmatch(r"c\d{3} .+", line) for line in lines):
        return read_charades_classes(path)[0]
    return lines


_TRAINING_KEYS = ("MODEL.NAME", "DATA.DATASET", "DATA.NUM_FRAMES", "DATA.SAMPLING_RATE", "DATA.TRAIN_CROP_SIZE",
                  "DATA.MULTI_LABEL", "SOLVER.BASE_LR", "SOLVER.BASE_BATCH_SIZE", "SOLVER.MAX_EPOCH",
                  "SOLVER.WEIGHT_DECAY", "SOLVER.LAYER_DECAY", "MODEL.FROZEN_STAGES", "BN.FREEZE", "EMA.ENABLE",
                  "TRAIN.CHECKPOINT_FILE_PATH")


def training_settings(weights: Optional[str]) -> Dict[str, Any]:
    """The main settings of the run that wrote a training checkpoint (its ``cfg``), for the model card."""
    if not weights or not os.path.isfile(weights):
        return {}
    try:
        import yaml

        obj, _ = read_weights_file(weights)
        cfg = yaml.safe_load(obj["cfg"]) if isinstance(obj, dict) and isinstance(obj.get("cfg"), str) else None
    except Exception:  # noqa: BLE001 - no readable config: the card just lists none
        return {}
    out: Dict[str, Any] = {}
    for key in _TRAINING_KEYS:
        node: Any = cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node not in (None, ""):
            out[key] = node
    if isinstance(obj.get("epoch"), int):
        out["epochs trained"] = obj["epoch"]
    return out


def read_results(path: Optional[str]) -> Dict[str, Any]:
    """The headline numbers of a ``test_results.json`` (top-1/top-5 or mAP, views, samples)."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"--results {path}: {e}") from e
    keys = ("mAP", "top1", "top5", "clip_top1", "mean_class_accuracy", "views_per_sample", "num_evaluated", "split")
    return {k: record[k] for k in keys if record.get(k) is not None}


def describe(report: ExportReport, name: str) -> List[str]:
    kind = {"export": "torch.export", "onnx": f"ONNX opset {report.opset}", "safetensors": "safetensors weights",
            "hf-hub": "Hugging Face Hub folder: model.safetensors, config.json, README.md"}
    dyn = ", ".join(f"{d}>={n}" for d, n in report.dynamic.items())
    lines = [
        f"exported {name} to {report.path} ({kind[report.format]}; traced at "
        f"{'x'.join(map(str, report.input_shape))}; {('dynamic ' + dyn) if dyn else 'static shapes'})"
    ]
    for check in report.checks:
        shape = "x".join(map(str, check.input_shape))
        diff = "not run" if check.max_abs_diff is None else f"max |diff| {check.max_abs_diff:.3g}"
        diff += f" (outputs up to {check.max_abs_output:.3g})"
        lines.append(f"  check {shape} with {check.runtime}: {diff}")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)

    def run() -> int:
        overrides = parse_overrides(args.override)
        dynamic = [d.strip() for d in args.dynamic.split(",") if d.strip()]
        model = build_model(args.model, args.weights, args.num_classes, overrides)
        shape = input_shape(model, args.batch, args.frames, args.size, in_chans=overrides.get("in_chans", 3))
        if args.hf_dir:
            names = read_class_names(args.class_names) if args.class_names else None
            card = hub_model_card(model, args.model, repo_id=args.repo_id, training=training_settings(args.weights),
                                  results=read_results(args.results), label_names=names,
                                  model_args=overrides)
            try:
                report = export_hub_folder(model, args.hf_dir, architecture=args.model, model_args=overrides,
                                           label_names=names, model_card=card, shape=shape, seed=args.seed)
            except ExportMismatchError as e:
                print(f"export: FAILED: {e}", file=sys.stderr, flush=True)
                return 1
            print("\n".join(describe(report, args.model)), flush=True)
        if not args.format:
            return 0
        output = args.output or f"{args.model}{FORMATS[args.format]}"
        metadata = {"model": args.model, "rs_image_version": rs_image.__version__}
        if overrides:
            metadata["overrides"] = json.dumps(overrides, sort_keys=True)
        try:
            report = export_model(
                model, output, args.format, shape, dynamic, tolerance=args.tolerance, opset=args.opset,
                metadata=metadata, seed=args.seed,
            )
        except ExportMismatchError as e:
            print(f"export: FAILED: {e}", file=sys.stderr, flush=True)
            return 1
        print("\n".join(describe(report, args.model)), flush=True)
        if report.max_abs_diff is None:
            print(f"  (onnxruntime is not installed: the graph passed onnx.checker; no numerical check against "
                  f"the {args.tolerance:g} tolerance)", flush=True)
        return 0

    return run_cli(run, "export")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Convert a TF Model Garden 3D ResNet-RS checkpoint into a native ``.safetensors`` / ``.pth`` file.

Example::

    python tools/convert_tf_checkpoint.py model_dir/ckpt-73682 rs3d_50_tf_mg.safetensors --ema
    python -c "import rs_video; m = rs_video.create_model('rs3d_50_tf_mg', pretrained='rs3d_50_tf_mg.safetensors')"

The checkpoint is what Model Garden's trainer writes (``tf.train.Checkpoint`` of model, backbone and
optimizer; give its prefix, ``.index`` file or the model dir with its ``checkpoint`` file). It is read
without TensorFlow, the matching ``rs3d_*_tf_mg`` model is built (``--model``, inferred from the file by
default) and loaded strictly, and its state dict is saved. ``--ema`` takes the EMA averages (the optimizer's
``average`` slots), which Model Garden evaluates. See docs/model_garden.md.
"""

from __future__ import annotations

import argparse
import logging
from typing import List, Optional

from rs_image.errors import UserError, one_line
from rs_image.engine.launch import run_cli
from rs_image.models.weights import check_weights_output, save_state_dict
from rs_video.models.model_garden import create_model_from_model_garden

logger = logging.getLogger("convert_tf_checkpoint")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="checkpoint prefix (model_dir/ckpt-N), its .index file, or the model dir")
    parser.add_argument("output", help="output file: .safetensors (recommended) or .pth")
    parser.add_argument("--ema", action="store_true", help="convert the EMA averages instead of the raw weights")
    parser.add_argument("--model", default=None,
                        help="registry name to build, e.g. rs3d_50_tf_mg (default: inferred from the file)")
    return parser.parse_args(argv)


def convert(args: argparse.Namespace) -> None:
    """The command; a bad checkpoint, output name or ``--model`` raises :class:`UserError`."""
    check_weights_output(args.output)
    try:
        model = create_model_from_model_garden(args.input, args.model, prefer_ema=args.ema)
    except TypeError as error:  # --model names an architecture the checkpoint does not fit
        raise UserError(one_line(error)) from None
    save_state_dict(model, args.output)
    logger.info(
        "%s (%s) -> %s: %s (stage depths %s, widths %s, %s classes), %.2fM parameters",
        args.input, "EMA averages" if args.ema else "raw weights", args.output,
        model.pretrained_cfg.get("architecture"), tuple(len(s) for s in model.stages),
        tuple(s[0].conv1.out_channels for s in model.stages), model.num_classes or "no",
        sum(p.numel() for p in model.parameters()) / 1e6,
    )


def main(argv: Optional[List[str]] = None) -> int:
    """``rs-convert-tf``: a user's mistake ends with one line on stderr and exit status 2."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_cli(lambda: convert(args), "convert_tf_checkpoint")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""Convert official Keras ResNet-RS ``.h5`` weights into a native ``.safetensors`` / ``.pth`` file.

Example::

    wget https://storage.googleapis.com/tensorflow/keras-applications/resnet_rs/resnet-rs-50-i160.h5
    python tools/convert_keras_weights.py resnet-rs-50-i160.h5 resnetrs50_i160.safetensors
    python -c "import rs_image; m = rs_image.create_model('resnetrs50', pretrained='resnetrs50_i160.safetensors')"

The file is converted (h5py only, no TensorFlow), the matching model is built (``--model``, inferred
from the file by default) and loaded strictly, and its state dict is saved. See docs/keras_weights.md.
"""

from __future__ import annotations

import argparse
import logging
from typing import List, Optional

from rs_image.models import create_model_from_keras_h5
from rs_image.errors import UserError, one_line
from rs_image.engine.launch import run_cli
from rs_image.models.weights import KerasWeightsError, check_weights_output, save_state_dict
from rs_image.models.weights.keras_h5 import check_keras_h5_md5

logger = logging.getLogger("convert_keras_weights")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="Keras ResNet-RS weights, e.g. resnet-rs-50-i160.h5")
    parser.add_argument("output", help="output file: .safetensors (recommended) or .pth")
    parser.add_argument(
        "--model",
        default=None,
        help="registry name to build, e.g. resnetrs50 or resnetrs350.i320 (default: inferred from the file)",
    )
    parser.add_argument("--skip-md5", action="store_true", help="do not verify the MD5 of official file names")
    return parser.parse_args(argv)


def convert(args: argparse.Namespace) -> None:
    """The command; a bad file, output name or ``--model`` raises :class:`UserError`."""
    check_weights_output(args.output)
    if not args.skip_md5 and check_keras_h5_md5(args.input) is False:
        raise KerasWeightsError(
            f"{args.input}: MD5 differs from the official file of that name (truncated download?); "
            "re-download it or pass --skip-md5"
        )
    try:
        model = create_model_from_keras_h5(args.input, model_name=args.model)
    except TypeError as error:  # --model names an architecture the file's overrides do not fit
        raise UserError(one_line(error)) from None
    save_state_dict(model, args.output)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info(
        "%s -> %s: %s (stage depths %s, widths %s, %s classes), %.2fM parameters",
        args.input, args.output, model.pretrained_cfg.get("architecture"), tuple(len(s) for s in model.stages),
        tuple(s[0].conv1.out_channels for s in model.stages), model.num_classes or "no", n_params / 1e6,
    )
    if not model.num_classes:
        logger.info("no classifier in the file: build the model with num_classes=0 or features_only=True to load it")


def main(argv: Optional[List[str]] = None) -> int:
    """``rs-convert-keras``: a user's mistake ends with one line on stderr and exit status 2."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_cli(lambda: convert(args), "convert_keras_weights")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

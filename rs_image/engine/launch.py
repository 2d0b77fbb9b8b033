"""Command-line entry points behind ``tools/train_net.py`` and ``tools/test_net.py``.

Usage (one process, or one per GPU with torchrun)::

    python tools/train_net.py --cfg configs/kinetics/rs3d_50.yaml [KEY VALUE ...]
    torchrun --nproc_per_node 8 tools/train_net.py --cfg configs/kinetics/rs3d_50.yaml OUTPUT_DIR runs/rs3d50
    python tools/test_net.py --cfg configs/kinetics/rs3d_50.yaml TEST.CHECKPOINT_FILE_PATH runs/rs3d50/checkpoints/last.pyth
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Callable, Dict, Optional, Sequence, TypeVar

from rs_image.errors import UserError, one_line

from . import distributed as du
from .config import CfgNode, load_config
from .preemption import PREEMPTED_EXIT_CODE, Preempted

__all__ = ["parse_args", "train_main", "test_main", "launch", "run_cli"]

T = TypeVar("T")

logger = logging.getLogger(__name__)


def parse_args(argv: Optional[Sequence[str]], description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Overrides: KEY VALUE pairs after the options, e.g. TRAIN.BATCH_SIZE 16 SOLVER.BASE_LR 0.2",
    )
    parser.add_argument("--cfg", dest="cfg_file", default=None, help="YAML config file (may use _BASE_)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides")
    args = parser.parse_args(argv)
    if args.opts and args.opts[0] == "--":
        args.opts = args.opts[1:]
    return args


def run_cli(main: Callable[[], T], prog: str) -> T:
    """Run a command-line entry point. An expected user error (:class:`rs_image.errors.UserError`: a missing
    file, a malformed line, a wrong key or value) ends it with one line on stderr and exit status 2;
    anything else keeps its traceback. A run stopped by a signal after its checkpoint
    (:class:`~rs_image.engine.preemption.Preempted`) says so on one line (rank 0) and exits with status
    :data:`~rs_image.engine.preemption.PREEMPTED_EXIT_CODE` (75)."""
    try:
        return main()
    except UserError as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except Preempted as stopped:
        if stopped.is_main:
            print(f"{prog}: {stopped}", file=sys.stderr, flush=True)
        raise SystemExit(PREEMPTED_EXIT_CODE) from None


def _load(argv: Optional[Sequence[str]], description: str) -> CfgNode:
    args = parse_args(argv, description)
    return load_config(args.cfg_file, args.opts)


def launch(cfg: CfgNode, *, do_train: bool, do_test: bool) -> Dict[str, Any]:
    """Train and/or test in this process (one rank of a torchrun job); returns the results."""
    from .inference import run_test
    from .trainer import Trainer

    results: Dict[str, Any] = {}
    try:
        if do_train:
            results["train"] = Trainer(cfg).train()
        if do_test:
            results["test"] = run_test(cfg).as_dict()
    finally:
        du.destroy_distributed()
    return results


def train_main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """``tools/train_net.py``: train when ``TRAIN.ENABLE``, then the multi-view test when ``TEST.ENABLE``."""
    def main() -> Dict[str, Any]:
        cfg = _load(argv, "Train a ResNet-RS image or video model (ResNet-RS recipe).")
        return launch(cfg, do_train=cfg.TRAIN.ENABLE, do_test=cfg.TEST.ENABLE)

    return run_cli(main, "train_net")


def test_main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """``tools/test_net.py``: multi-view test of ``TEST.CHECKPOINT_FILE_PATH`` (or the newest checkpoint)."""
    def main() -> Dict[str, Any]:
        cfg = _load(argv, "Multi-view test of a ResNet-RS image or video model.")
        return launch(cfg, do_train=False, do_test=True)

    return run_cli(main, "test_net")


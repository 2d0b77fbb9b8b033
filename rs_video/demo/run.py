"""The demo runner: a small 3D ResNet-RS and its single-frame control, trained and tested on moving shapes.

:func:`run_demo` makes (or completes) the moving-shapes data set, then trains and tests both demo configs
with the engine's :func:`~rs_image.engine.launch.launch` (the code path of ``tools/train_net.py`` and
``tools/test_net.py``) and returns their held-out results; :meth:`DemoResult.checks` says whether the
demo's targets hold. ``tools/demo.py`` prints them beside the FLOP report (docs/demo.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from rs_image.engine.config import load_config
from rs_image.engine.launch import launch

from .. import task  # noqa: F401  (registers TASK video)

from .moving_shapes import MOVING_SHAPES_CLASSES, MovingShapesSpec, default_moving_shapes_dir, generate_moving_shapes

__all__ = [
    "DemoRun",
    "DemoRow",
    "DemoResult",
    "RUNS",
    "CHANCE",
    "TARGET_TOP1_3D",
    "TARGET_TOP1_CONTROL",
    "TARGET_SECONDS",
    "prepare_demo_data",
    "run_demo",
    "train_and_test",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DemoRun:
    """One training of the demo.

    Args:
        name: short name; also the run's sub-folder.
        description: what the network sees.
        config_file: its YAML file, in the demo's config folder (``configs/demo/``).
        opts: ``KEY VALUE`` overrides of this run (e.g. the single-frame control of the detection demo).
    """

    name: str
    description: str
    config_file: str
    opts: Tuple[str, ...] = ()


RUNS: Tuple[DemoRun, ...] = (
    DemoRun("rs3d", "3D ResNet-RS, clips", "moving_shapes_rs3d.yaml"),
    DemoRun("2d", "same net, single frames", "moving_shapes_2d.yaml"),
)
CHANCE = 100.0 / len(MOVING_SHAPES_CLASSES)
TARGET_TOP1_3D = 90.0
TARGET_TOP1_CONTROL = CHANCE + 15.0
TARGET_SECONDS = 180.0


@dataclasses.dataclass
class DemoRow:
    """The outcome of one run: its resolved config, the engine's test results, training + test seconds."""

    run: DemoRun
    cfg: Any
    test: Dict[str, Any]
    seconds: float


@dataclasses.dataclass
class DemoResult:
    """Both runs, the data set they used and the times (data set-up is not counted in ``seconds``)."""

    spec: MovingShapesSpec
    data: Path
    setup_seconds: float
    seconds: float
    rows: List[DemoRow]

    def checks(self) -> List[Tuple[str, bool]]:
        """The demo's targets, each as (statement, whether it holds)."""
        top1 = {row.run.name: float(row.test["top1"]) for row in self.rows}
        top1_3d, top1_2d = top1["rs3d"], top1["2d"]
        return [
            (f"rs3d held-out top-1 {top1_3d:.1f}% >= {TARGET_TOP1_3D:.0f}%", top1_3d >= TARGET_TOP1_3D),
            (f"single-frame control {top1_2d:.1f}% <= chance + 15 = {TARGET_TOP1_CONTROL:.1f}%",
             top1_2d <= TARGET_TOP1_CONTROL),
            (f"demo time {self.seconds:.0f} s <= {TARGET_SECONDS:.0f} s", self.seconds <= TARGET_SECONDS),
        ]


def prepare_demo_data(data: Union[str, Path, None] = None) -> Tuple[MovingShapesSpec, Path]:
    """Makes (or completes) the demo's data set and returns its spec and folder.

    Args:
        data: its folder; a folder that holds a data set made with another spec keeps that spec. Default:
            the default spec's cache folder (:func:`~rs_video.demo.moving_shapes.default_moving_shapes_dir`).
    """
    spec = MovingShapesSpec()
    if data is not None and (Path(data) / "spec.json").exists():
        spec = MovingShapesSpec.from_json(json.loads((Path(data) / "spec.json").read_text()))
    root = Path(data) if data is not None else default_moving_shapes_dir(spec)
    return spec, generate_moving_shapes(root, spec)


def run_demo(
    config_dir: Union[str, Path],
    output_dir: Union[str, Path],
    data: Union[str, Path, None] = None,
    seed: Optional[int] = None,
    opts: Sequence[str] = (),
) -> DemoResult:
    """Trains and tests every run of :data:`RUNS` on the moving-shapes data set.

    Args:
        config_dir: the folder of the runs' YAML files (``configs/demo``).
        output_dir: each call writes its runs to a new time-stamped sub-folder, one folder per run.
        data: the data set's folder (see :func:`prepare_demo_data`).
        seed: ``RNG_SEED`` of both trainings (default: the configs').
        opts: ``KEY VALUE`` config overrides for both runs, applied last.
    """
    start = time.perf_counter()
    spec, root = prepare_demo_data(data)
    setup_seconds = time.perf_counter() - start

    demo_start = time.perf_counter()
    rows = train_and_test(RUNS, config_dir, output_dir, ["DATA.PATH_TO_DATA_DIR", str(root)], seed, opts)
    return DemoResult(spec, root, setup_seconds, time.perf_counter() - demo_start, rows)


def train_and_test(
    runs: Sequence[DemoRun], config_dir: Union[str, Path], output_dir: Union[str, Path], data_opts: Sequence[str],
    seed: Optional[int] = None, opts: Sequence[str] = (),
) -> List[DemoRow]:
    """Train and test each of ``runs`` with the engine in a new time-stamped sub-folder of ``output_dir``;
    ``data_opts`` point the configs at the data, ``opts`` apply last."""
    run_dir = Path(output_dir) / datetime.now().strftime("%Y%m%d-%H%M%S")
    rows = []
    threads = torch.get_num_threads()  # a run's CPU_THREADS must not carry over to the next one
    for run in runs:
        torch.set_num_threads(threads)
        run_opts = [*data_opts, "OUTPUT_DIR", str(run_dir / run.name), *run.opts]
        if seed is not None:
            run_opts += ["RNG_SEED", str(seed)]
        cfg = load_config(Path(config_dir) / run.config_file, run_opts + list(opts))
        logger.info("=== %s: %s (%s) -> %s", run.name, run.description, run.config_file, cfg.OUTPUT_DIR)
        run_start = time.perf_counter()
        results = launch(cfg, do_train=True, do_test=True)
        rows.append(DemoRow(run, cfg, results["test"], time.perf_counter() - run_start))
    torch.set_num_threads(threads)
    return rows

"""The detection demo: a small rs3d action detector and its single-frame control on moving shapes AVA.

:func:`run_detection_demo` makes (or completes) the data set (:mod:`rs_video.demo.moving_shapes_ava`), then
trains and tests both runs of :data:`DETECTION_RUNS` with the engine's :func:`~rs_image.engine.launch.launch`
(the code path of ``tools/train_net.py --cfg configs/demo/moving_shapes_ava.yaml``) and returns their
held-out frame mAP; :meth:`DetectionDemoResult.checks` says whether the demo's targets hold.
``tools/demo.py --detection`` prints them (docs/detection.md).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from .. import task  # noqa: F401  (registers TASK detection)
from .moving_shapes_ava import MovingShapesAvaSpec, default_moving_shapes_ava_dir, generate_moving_shapes_ava
from .run import DemoResult, DemoRun, train_and_test

__all__ = [
    "DETECTION_RUNS", "TARGET_MAP_3D", "TARGET_MAP_CONTROL", "TARGET_SECONDS", "DetectionDemoResult",
    "prepare_detection_data", "run_detection_demo",
]

logger = logging.getLogger(__name__)

CONFIG_FILE = "moving_shapes_ava.yaml"
DETECTION_RUNS: Tuple[DemoRun, ...] = (
    DemoRun("rs3d", "rs3d detector, 8-frame clips", CONFIG_FILE),
    DemoRun("1frame", "same detector, the keyframe alone", CONFIG_FILE, ("DATA.NUM_FRAMES", "1")),
)
TARGET_MAP_3D = 80.0
TARGET_MAP_CONTROL = 50.0
TARGET_SECONDS = 900.0


class DetectionDemoResult(DemoResult):
    """Both runs (their test record holds ``mAP`` in %), the data set and the times (set-up not counted)."""

    def checks(self) -> List[Tuple[str, bool]]:
        """The demo's targets, each as (statement, whether it holds)."""
        found = {row.run.name: float(row.test["mAP"]) for row in self.rows}
        clip, frame = found["rs3d"], found["1frame"]
        return [
            (f"rs3d held-out frame mAP {clip:.1f}% >= {TARGET_MAP_3D:.0f}%", clip >= TARGET_MAP_3D),
            (f"single-frame control {frame:.1f}% <= {TARGET_MAP_CONTROL:.0f}%", frame <= TARGET_MAP_CONTROL),
            (f"demo time {self.seconds:.0f} s <= {TARGET_SECONDS:.0f} s", self.seconds <= TARGET_SECONDS),
        ]


def prepare_detection_data(data: Union[str, Path, None] = None,
                           spec: Optional[MovingShapesAvaSpec] = None) -> Tuple[MovingShapesAvaSpec, Path]:
    """Makes (or completes) the data set and returns its spec and folder; a folder that holds one keeps
    its spec, the default folder is the default spec's cache folder."""
    if spec is None:
        spec = MovingShapesAvaSpec()
        if data is not None and (Path(data) / "spec.json").exists():
            spec = MovingShapesAvaSpec.from_json(json.loads((Path(data) / "spec.json").read_text()))
    root = Path(data) if data is not None else default_moving_shapes_ava_dir(spec)
    return spec, generate_moving_shapes_ava(root, spec)


def run_detection_demo(
    config_dir: Union[str, Path], output_dir: Union[str, Path], data: Union[str, Path, None] = None,
    seed: Optional[int] = None, opts: Sequence[str] = (), spec: Optional[MovingShapesAvaSpec] = None,
) -> DetectionDemoResult:
    """Trains and tests every run of :data:`DETECTION_RUNS` (arguments as :func:`rs_video.demo.run.run_demo`;
    ``spec`` makes a data set of other size, e.g. the test suite's)."""
    start = time.perf_counter()
    spec, root = prepare_detection_data(data, spec)
    setup_seconds = time.perf_counter() - start
    demo_start = time.perf_counter()
    data_opts = ["AVA.VIDEO_DIR", str(root / "videos"), "AVA.ANNOTATION_DIR", str(root / "annotations")]
    rows = train_and_test(DETECTION_RUNS, config_dir, output_dir, data_opts, seed, opts)
    return DetectionDemoResult(spec, root, setup_seconds, time.perf_counter() - demo_start, rows)

"""Logging for training and testing: text log, JSON-lines metrics and TensorBoard events (rank 0)."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

__all__ = ["setup_logging", "MetricWriter", "MeanMeter", "plotting_available"]

_FORMAT = "[%(asctime)s %(levelname)s %(name)s] %(message)s"

logger = logging.getLogger(__name__)
_told_no_matplotlib = False


def plotting_available() -> bool:
    """Whether matplotlib (the ``[plot]`` extra) can be imported; when not, says once per process (INFO)
    that the figures are not drawn."""
    global _told_no_matplotlib
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        if not _told_no_matplotlib:
            _told_no_matplotlib = True
            logger.info("figures (training_curves.png, confusion_matrix.png and its TensorBoard copy) are not drawn: "
                        "%s; pip install 'rs-video[plot]' to get them. The CSV and JSON results are written.", error)
        return False
    return True


def setup_logging(
    output_dir: Optional[Union[str, Path]], rank: int = 0, names: Sequence[str] = ("rs_image",)
) -> logging.Logger:
    """Send the messages of the loggers ``names`` (a task's :attr:`~rs_image.engine.Task.logger_names`) to
    stdout (INFO on rank 0, WARNING elsewhere) and to ``OUTPUT_DIR/log.txt`` on rank 0. Safe to call more
    than once."""
    level = logging.INFO if rank == 0 else logging.WARNING
    formatter = logging.Formatter(_FORMAT, datefmt="%m/%d %H:%M:%S")
    for name in dict.fromkeys(("rs_image", *names)):
        lg = logging.getLogger(name)
        lg.setLevel(level)
        for h in list(lg.handlers):
            if getattr(h, "_rs_engine", False):
                lg.removeHandler(h)
                h.close()
        if not logging.getLogger().handlers:  # no root handler (plain CLI run): print ourselves
            stream = logging.StreamHandler(sys.stdout)
            stream.setFormatter(formatter)
            stream._rs_engine = True  # type: ignore[attr-defined]
            lg.addHandler(stream)
        if rank == 0 and output_dir:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(Path(output_dir) / "log.txt")
            fh.setFormatter(formatter)
            fh._rs_engine = True  # type: ignore[attr-defined]
            lg.addHandler(fh)
    return logging.getLogger("rs_image.engine")


class MeanMeter:
    """Running mean of a scalar, weighted by a count."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0.0

    def update(self, value: float, n: float = 1.0) -> None:
        self.total += float(value) * n
        self.count += n

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")

    def reset(self) -> None:
        self.total, self.count = 0.0, 0.0


class MetricWriter:
    """Append metric records to ``OUTPUT_DIR/metrics.jsonl`` and TensorBoard (``OUTPUT_DIR/tensorboard``).

    Every record is one JSON object per line with a ``"type"`` (``train``, ``train_epoch``, ``val``,
    ``test``, ``event``) and a wall-clock ``"time"``. Numeric fields also go to TensorBoard as
    ``<type>/<field>`` at ``global_step``. A disabled writer (ranks other than 0) does nothing.
    """

    def __init__(self, output_dir: Union[str, Path], enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self._tb = None
        self.path = Path(output_dir) / "metrics.jsonl"
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(Path(output_dir) / "tensorboard"))

    def write(self, kind: str, record: Mapping[str, Any], global_step: Optional[int] = None) -> None:
        if not self.enabled:
            return
        line: Dict[str, Any] = {"type": kind, "time": round(time.time(), 3)}
        if global_step is not None:
            line["global_step"] = int(global_step)
        line.update(record)
        with open(self.path, "a") as f:
            f.write(json.dumps(line, default=_json_default, allow_nan=True) + "\n")
        if self._tb is not None and global_step is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self._tb.add_scalar(f"{kind}/{key}", value, global_step)
            self._tb.flush()

    def add_figure(self, tag: str, figure: Any, global_step: int = 0) -> None:
        """Add a matplotlib figure to TensorBoard as an image (when TensorBoard is on), drawn by Agg."""
        if self._tb is None:
            return
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        self._tb.add_image(tag, np.asarray(canvas.buffer_rgba())[..., :3].copy(), global_step, dataformats="HWC")
        self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)

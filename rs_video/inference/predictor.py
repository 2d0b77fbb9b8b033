"""The video predictor: a model with its input settings and class names, built the way the test tool builds it.

A :class:`Predictor` comes from

* a config and weights (:meth:`Predictor.from_config`): any source :func:`rs_image.models.resolve_weights`
  reads; without a config file, the resolved cfg a ``train_net`` checkpoint carries;
* a registered model name (:meth:`Predictor.from_pretrained`): its ``pretrained_cfg`` gives frames x
  sampling rate, crop size, mean/std, the test views and, for Kinetics weights, the class names.

Video-level prediction (:meth:`Predictor.predict`) is the test tool's computation on the given files: the
same data set class in test mode (:func:`rs_video.data.build_video_dataset` with the files as annotations),
the same model (:func:`rs_image.engine.inference.build_test_model`) and the same scoring loop
(:func:`rs_image.engine.inference.score_test_views`: ``TEST.NUM_ENSEMBLE_VIEWS x TEST.NUM_SPATIAL_CROPS``
views, ``TEST.ENSEMBLE_SCORES`` ensembled by ``TEST.ENSEMBLE_METHOD``). So ``tools/predict.py`` and
``tools/test_net.py`` give one answer for a video. Windows over long videos are :mod:`.stream`.

Class names, first found wins: ``labels`` (a ``--labels`` file: one name a line, or a ``classids.json``
``{"name": index}``), the checkpoint's ``class_names``, the model's ``pretrained_cfg.label_set`` when the
class count matches, the index as a string.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import yaml

from rs_image.engine import distributed as du
from rs_image.engine.config import CfgNode, ConfigError, get_cfg, load_config, merge_config_dict, merge_config_list, validate_cfg
from rs_image.engine.evaluator import MultiViewAggregator
from rs_image.engine.inference import build_test_model, resolve_test_weights, score_test_views
from rs_image.engine.runtime import build_eval_loader
from rs_image.engine.tasks import Task, get_task
from rs_image.errors import DataNotFoundError, UserError
from rs_video.data import SplitAnnotations, VideoDecodeError, VideoRecord, build_video_dataset, create_decoder
from rs_video.models import VIDEO_MODELS
from rs_video.models.labels import load_label_set

__all__ = ["VideoPrediction", "Predictor", "load_predictor_config", "pretrained_config", "read_labels_file",
           "checkpoint_extras"]

logger = logging.getLogger(__name__)


def checkpoint_extras(weights: str) -> Dict[str, Any]:
    """``cfg`` and ``class_names`` of a ``train_net`` checkpoint file ({} for other sources)."""
    if not isinstance(weights, (str, os.PathLike)) or "://" in str(weights) or not Path(weights).is_file():
        return {}
    try:
        obj = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a torch pickle (safetensors, .h5, ...): the weights resolver reads those
        return {}
    if not isinstance(obj, dict):
        return {}
    return {k: obj[k] for k in ("cfg", "class_names") if k in obj}


def load_predictor_config(cfg_file: Optional[str], weights: Optional[str], opts: Sequence[str] = ()) -> CfgNode:
    """The config of a prediction: ``cfg_file`` with ``opts`` (``KEY VALUE`` overrides), else the resolved
    cfg that the checkpoint ``weights`` carries, with ``opts``. Raises :class:`UserError` when neither."""
    if cfg_file:
        return load_config(cfg_file, opts)
    if not weights:
        raise ConfigError("give --cfg CONFIG, --weights of a train_net checkpoint (it carries its cfg), or --model NAME")
    if not Path(weights).is_file():
        raise DataNotFoundError(f"weights file not found: {weights}")
    text = checkpoint_extras(weights).get("cfg")
    if not text:
        raise ConfigError(f"{weights} carries no config (not a train_net checkpoint); pass --cfg CONFIG")
    cfg = get_cfg()
    merge_config_dict(cfg, yaml.safe_load(text) or {}, source=f"the cfg in {weights}")
    merge_config_list(cfg, opts)
    validate_cfg(cfg)
    cfg.freeze()
    return cfg


def pretrained_config(name: str, opts: Sequence[str] = ()) -> CfgNode:
    """The config of the registered video model ``name`` at its ``pretrained_cfg`` (frames x rate, test crop,
    mean/std, interpolation, test views, the class count of its label set), then ``opts``."""
    entry = VIDEO_MODELS.get(name)
    _, variant = VIDEO_MODELS.split_name(name)
    pcfg = entry.cfg(variant)
    cfg = get_cfg()
    cfg.TASK = "video"
    cfg.MODEL.NAME = name
    cfg.MODEL.NUM_CLASSES = len(load_label_set(pcfg.label_set)) if pcfg.label_set else VIDEO_MODELS.default_num_classes
    if pcfg.num_frames:
        cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE = int(pcfg.num_frames), int(pcfg.sampling_rate or 1)
    size = pcfg.test_input_size or pcfg.input_size
    if size:
        cfg.DATA.TEST_CROP_SIZE = int(size[-1])
    if pcfg.mean:
        cfg.DATA.MEAN, cfg.DATA.STD = [float(v) for v in pcfg.mean], [float(v) for v in pcfg.std]
    if pcfg.interpolation:
        cfg.DATA.INTERPOLATION = pcfg.interpolation
    if pcfg.test_views:
        cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS = (int(v) for v in pcfg.test_views)
    merge_config_list(cfg, opts)
    validate_cfg(cfg)
    cfg.freeze()
    return cfg


def read_labels_file(path: str, num_classes: int) -> List[str]:
    """Class names from ``path``: a ``classids.json`` (``{"name": index}``) or one name a line; their count
    must be ``num_classes``."""
    file = Path(path)
    if not file.is_file():
        raise DataNotFoundError(f"--labels file not found: {path}")
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".json":
        try:
            ids = json.loads(text)
            names = [name for name, _ in sorted(ids.items(), key=lambda kv: int(kv[1]))]
        except (ValueError, AttributeError, TypeError) as error:
            raise UserError(f"--labels {path}: not a classids.json mapping of name to index ({error})") from None
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != num_classes:
        raise UserError(f"--labels {path} has {len(names)} class names, the model has {num_classes} outputs")
    return names


@dataclass
class VideoPrediction:
    """A video's ensembled prediction: ``topk`` (class index, name, score) best first, the views scored, and
    whether the video failed (then ``topk`` is empty and ``reason`` says why)."""

    path: str
    topk: List[Tuple[int, str, float]]
    views: int
    failed: bool = False
    reason: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        record: Dict[str, Any] = {
            "path": self.path, "topk": [{"class": c, "name": n, "score": s} for c, n, s in self.topk],
            "views": self.views, "failed": self.failed,
        }
        if self.reason:
            record["reason"] = self.reason
        record.update(self.extra)
        return record


class Predictor:
    """A video model ready for inference (module docstring).

    Args:
        cfg: a validated video config (``TASK video``).
        weights: a weights source for the model (``resolve_weights``); None: ``TEST.CHECKPOINT_FILE_PATH``,
            else the newest checkpoint under ``OUTPUT_DIR`` (as ``test_net``).
        labels: a ``--labels`` file overriding the class names.
    """

    def __init__(self, cfg: CfgNode, weights: Optional[str] = None, labels: Optional[str] = None) -> None:
        if cfg.TASK != "video":
            raise ConfigError(f"the video predictor needs TASK video, the config has TASK {cfg.TASK!r}")
        self.cfg = cfg
        self.task: Task = get_task(cfg.TASK)
        self.dist = du.init_distributed(cfg.DEVICE)
        self.device = self.dist.device
        self.weights = str(weights) if weights is not None else resolve_test_weights(cfg)
        if "://" not in self.weights and not Path(self.weights).is_file():
            raise DataNotFoundError(f"weights file not found: {self.weights}")
        self.model, self.memory_format = build_test_model(cfg, self.task, self.weights, self.device)
        self.num_classes = int(cfg.MODEL.NUM_CLASSES)
        self.class_names = self._class_names(labels)

    @classmethod
    def from_config(cls, cfg_file: Optional[str], weights: Optional[str] = None, opts: Sequence[str] = (),
                    labels: Optional[str] = None) -> "Predictor":
        """From a config file (or the checkpoint's own cfg) and weights (:func:`load_predictor_config`)."""
        return cls(load_predictor_config(cfg_file, weights, opts), weights, labels)

    @classmethod
    def from_pretrained(cls, name: str, weights: str, opts: Sequence[str] = (),
                        labels: Optional[str] = None) -> "Predictor":
        """The registered model ``name`` at its ``pretrained_cfg`` with ``weights`` (:func:`pretrained_config`)."""
        return cls(pretrained_config(name, opts), weights, labels)

    def _class_names(self, labels: Optional[str]) -> List[str]:
        if labels:
            return read_labels_file(labels, self.num_classes)
        names = checkpoint_extras(self.weights).get("class_names")
        if names and len(names) == self.num_classes:
            return [str(n) for n in names]
        label_set = getattr(self.model, "pretrained_cfg", {}).get("label_set")
        if label_set:
            names = load_label_set(label_set)
            if len(names) == self.num_classes:
                return names
        return [str(i) for i in range(self.num_classes)]

    # ------------------------------------------------------------------------------------------------
    def check_video(self, path: str) -> None:
        """Raise :class:`UserError` naming ``path`` when it does not exist or is not a video."""
        if not Path(path).exists():
            raise DataNotFoundError(f"video not found: {path}")
        decoder = create_decoder(self.cfg.DATA.DECODER, int(self.cfg.DATA.DECODER_THREADS))
        try:
            with decoder.open(path):
                pass
        except VideoDecodeError as error:
            raise UserError(f"{path} is not a readable video ({error.reason}: {error.detail})") from None

    @torch.no_grad()
    def predict(self, paths: Sequence[str], topk: int = 5, progress: bool = False) -> List[VideoPrediction]:
        """Video-level top-``topk`` of every file, with the test tool's views and ensemble (module docstring).

        A file that fails while decoding is returned with ``failed`` True (no scores)."""
        for path in paths:
            self.check_video(path)
        records = [VideoRecord(os.fspath(p), -1) for p in paths]
        annotations = SplitAnnotations(records, source="predict", format="list", class_names=self.class_names)
        cfg = self.cfg.clone()
        cfg.defrost()
        cfg.DATA.MAX_FAILURE_FRACTION = 1.0  # a failed file is reported per video, not an error
        cfg.freeze()
        dataset = build_video_dataset(cfg, "test", annotations=annotations)
        loader = build_eval_loader(cfg, dataset, cfg.TEST.BATCH_SIZE, self.device, self.task.collate_fn())
        views = self.task.views_per_sample(dataset)
        aggregator = MultiViewAggregator(len(records), self.num_classes, cfg.TEST.ENSEMBLE_METHOD,
                                         cfg.TEST.ENSEMBLE_SCORES, topk=min(topk, self.num_classes),
                                         multi_label=bool(cfg.DATA.MULTI_LABEL))
        score_test_views(self.model, loader, aggregator, cfg, self.task, self.device, self.memory_format, progress)
        complete = aggregator.complete_mask(views)
        scores = aggregator.mean_scores()
        k = min(topk, self.num_classes)
        out = []
        for i, record in enumerate(records):
            if not bool(complete[i]):
                reason = dataset.failures.get(record.path, "decode error")
                out.append(VideoPrediction(record.path, [], int(aggregator.view_counts[i]), True, reason))
                continue
            top = scores[i].topk(k)
            out.append(VideoPrediction(record.path, [
                (int(c), self.class_names[int(c)], float(s)) for s, c in zip(top.values.tolist(), top.indices.tolist())
            ], views))
        return out

    def describe(self) -> str:
        """One line: model, weights, clip and views."""
        cfg = self.cfg
        return (f"{cfg.MODEL.NAME} ({self.num_classes} classes) weights {self.weights}; clips "
                f"{cfg.DATA.NUM_FRAMES}x{cfg.DATA.SAMPLING_RATE}, crop {cfg.DATA.TEST_CROP_SIZE}; "
                f"{cfg.TEST.NUM_ENSEMBLE_VIEWS}x{cfg.TEST.NUM_SPATIAL_CROPS} views; device {self.device}")


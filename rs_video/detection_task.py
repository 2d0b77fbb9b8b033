"""The AVA action detection task: ``rs_video`` detectors on AVA-format data for ``rs_image``'s engine.

Importing this module (``rs_video.task`` does) registers ``TASK detection`` and adds the ``AVA.*`` keys
(SlowFast's names where SlowFast has the key; docs/detection.md). The engine stays task-agnostic: this task
supplies the targets (multi-hot per box), the loss (sigmoid binary cross-entropy over the classes, mean over
boxes and classes, as SlowFast's ``bce``; ``SOLVER.LABEL_SMOOTHING`` and MixUp do not apply), the forward
(``model(clip, boxes)``), validation and the test protocol (frame-level AP at IoU 0.5 per class and mAP,
:mod:`rs_video.ava_evaluation`). EMA, precise BN, bf16, DDP, gradient accumulation and exact resume are the
engine's, unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from rs_image.engine import distributed as du
from rs_image.engine.config import CfgNode, Rule, require_keys
from rs_image.engine.evaluator import summary_to_json
from rs_image.engine.inference import resolve_test_weights
from rs_image.engine.logger import MetricWriter, setup_logging
from rs_image.engine.runtime import autocast_context, build_eval_loader, configure_determinism, seed_everything
from rs_image.engine.tasks import Task, register_task
from rs_image.recipe import model_kwargs_from_cfg, set_bn_momentum

from .ava_evaluation import (
    AvaEvaluation, Detection, evaluate_ava, write_detections_csv, write_per_class_ap_csv,
)
from .data.ava import KeyframeKey, read_box_csv, read_excluded_timestamps, read_label_map
from .data.ava_dataset import AvaDataset, ava_annotation_path, build_ava_dataset, collate_detection
from .models import create_model

__all__ = ["DetectionTask", "predict_keyframes", "evaluate_detector"]

logger = logging.getLogger(__name__)

DETECTIONS_FILE = "ava_detections.csv"
PER_CLASS_FILE = "per_class_ap.csv"


def _add_ava_config(cfg: CfgNode) -> None:
    cfg.AVA = CfgNode()
    a = cfg.AVA
    # Frames: from the videos in VIDEO_DIR ("<video_id>.<ext>"), or, when FRAME_DIR is set, from extracted
    # frames (FRAME_DIR/<video_id>/...) listed in FRAME_LIST_DIR/{TRAIN,TEST}_LISTS (SlowFast's layout).
    a.VIDEO_DIR = ""
    a.FRAME_DIR = ""
    a.FRAME_LIST_DIR = ""
    a.TRAIN_LISTS = ["train.csv"]
    a.TEST_LISTS = ["val.csv"]
    # Second of the source video at which the files start: 900 for AVA's 15-minute cuts (and the frames
    # extracted from them), 0 for full-length videos (and the demo's videos).
    a.VIDEO_TIME_OFFSET = 900.0
    a.ANNOTATION_DIR = ""
    a.TRAIN_GT_BOX_LISTS = ["ava_train_v2.2.csv"]
    # Person detections (video,timestamp,x1,y1,x2,y2,,score) used as test proposals; [] = the ground-truth boxes.
    a.TEST_PREDICT_BOX_LISTS = ["ava_val_predicted_boxes.csv"]
    a.DETECTION_SCORE_THRESH = 0.8
    a.GROUNDTRUTH_FILE = "ava_val_v2.2.csv"
    a.LABEL_MAP_FILE = "ava_action_list_v2.2_for_activitynet_2019.pbtxt"
    a.EXCLUSION_FILE = "ava_val_excluded_timestamps_v2.2.csv"
    # Detections kept per keyframe by the evaluation: 50 as the official CSV evaluation; 0 keeps all.
    a.MAX_DETECTIONS_PER_KEYFRAME = 50


@torch.no_grad()
def predict_keyframes(
    model: nn.Module, loader: Any, prepare_input: Callable[[Dict[str, Any]], torch.Tensor], dataset: AvaDataset, *,
    device: torch.device, autocast: Any, progress: bool = False, desc: str = "test",
) -> Tuple[Dict[KeyframeKey, List[Detection]], int]:
    """Scores of every class for every proposal box, gathered over processes: ``{keyframe: [Detection]}``
    (boxes in the annotation's normalised coordinates, action ids 1-based) and the number of failed keyframes."""
    was_training = model.training
    model.eval()
    head = getattr(model, "head", None)
    needs_sigmoid = getattr(head, "test_activation", "sigmoid") == "none"
    rows: List[Tuple[int, int, List[float]]] = []
    failed = 0
    try:
        for batch in tqdm(loader, desc=desc, disable=not progress, leave=False, dynamic_ncols=True):
            failed += int(torch.as_tensor(batch["failed"]).sum())
            if batch["boxes"].shape[0] == 0:
                continue
            x = prepare_input(batch)
            with autocast:
                scores = model(x, batch["boxes"].to(device))
            scores = scores.float().sigmoid() if needs_sigmoid else scores.float()
            rows += zip(batch["box_keyframe"].tolist(), batch["box_index"].tolist(), scores.cpu().tolist())
    finally:
        model.train(was_training)
    everything = du.all_gather_object((rows, failed))
    detections: Dict[KeyframeKey, List[Detection]] = {}
    for part, _ in everything:
        for keyframe, box_index, class_scores in part:
            key = dataset.keyframes[keyframe]
            box = dataset.boxes[key][box_index].box
            detections.setdefault(key, []).extend(
                Detection(tuple(box), c + 1, float(s)) for c, s in enumerate(class_scores))
    return detections, sum(f for _, f in everything)


def evaluate_detector(
    cfg: CfgNode, detections: Dict[KeyframeKey, List[Detection]],
) -> AvaEvaluation:
    """The frame-level AP of ``detections`` against ``AVA.GROUNDTRUTH_FILE`` (label map, exclusions: ``AVA.*``)."""
    ava = cfg.AVA
    truth = read_box_csv(ava_annotation_path(cfg, ava.GROUNDTRUTH_FILE))
    label_map = read_label_map(ava_annotation_path(cfg, ava.LABEL_MAP_FILE))
    excluded = read_excluded_timestamps(ava_annotation_path(cfg, ava.EXCLUSION_FILE)) if ava.EXCLUSION_FILE else set()
    cap = int(ava.MAX_DETECTIONS_PER_KEYFRAME)
    return evaluate_ava(truth, detections, label_map, excluded, max_detections_per_keyframe=cap if cap > 0 else 1 << 30)


@register_task
class DetectionTask(Task):
    """Spatio-temporal action detection on AVA-format data (:func:`rs_video.data.ava_dataset.build_ava_dataset`)."""

    name = "detection"
    input_key = "video"
    index_key = "keyframe_index"
    channels_last_format = torch.channels_last_3d
    logger_names = ("rs_image", "rs_video")
    config_rules = (
        Rule("AVA.DETECTION_SCORE_THRESH", lambda v, c: 0.0 <= v <= 1.0, "in [0, 1]"),
        Rule("AVA.MAX_DETECTIONS_PER_KEYFRAME", lambda v, c: v >= 0, ">= 0 (0 keeps all)"),
        Rule("MIXUP.ENABLE", lambda v, c: not v, "False: MixUp/CutMix mix whole clips, not boxes"),
    )
    add_config = staticmethod(_add_ava_config)

    def create_model(self, cfg: Any) -> nn.Module:
        return create_model(cfg.MODEL.NAME, num_classes=cfg.MODEL.NUM_CLASSES, **model_kwargs_from_cfg(cfg))

    def build_dataset(self, cfg: Any, split: str) -> Dataset:
        return build_ava_dataset(cfg, split)

    def collate_fn(self) -> Optional[Callable[[list], Any]]:
        return collate_detection

    def build_mixup(self, cfg: Any) -> None:
        return None

    def targets(self, batch: Dict[str, Any], device: torch.device) -> torch.Tensor:
        """Multi-hot (K, NUM_CLASSES) labels of the batch's K boxes."""
        return batch["labels"].to(device, non_blocking=True).float()

    def build_criterion(self, cfg: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return nn.BCEWithLogitsLoss()

    def forward(self, model: nn.Module, x: torch.Tensor, batch: Dict[str, Any]) -> torch.Tensor:
        return model(x, batch["boxes"].to(x.device, non_blocking=True))

    def evaluate(
        self, model: nn.Module, loader: Any, prepare_input: Callable[[Dict[str, Any]], torch.Tensor], *, cfg: Any,
        device: torch.device, autocast: Any, progress: bool = False, desc: str = "val",
    ) -> Dict[str, Any]:
        """Frame mAP@0.5 (%) of ``model`` on the val keyframes."""
        detections, failed = predict_keyframes(model, loader, prepare_input, loader.dataset, device=device,
                                               autocast=autocast, progress=progress, desc=desc)
        result = evaluate_detector(cfg, detections)
        return {"mAP": 100.0 * result.mean_ap, "num_samples": len(loader.dataset), "num_failed": failed}

    def format_metrics(self, metrics: Dict[str, Any]) -> str:
        return f"frame mAP@0.5 {metrics['mAP']:.2f}%"

    def run_test(self, cfg: Any) -> AvaEvaluation:
        """Score the proposals of every test keyframe, evaluate (frame AP per class, mAP) and write
        ``ava_detections.csv`` (AVA's format; ``TEST.SAVE_RESULTS_PATH`` names it), ``per_class_ap.csv`` and
        ``test_results.json`` to ``OUTPUT_DIR``, and a ``test`` record to ``metrics.jsonl``."""
        require_keys(cfg, "testing")
        dist = du.init_distributed(cfg.DEVICE)
        setup_logging(cfg.OUTPUT_DIR, dist.rank, self.logger_names)
        configure_determinism(cfg.DETERMINISTIC)
        seed_everything(cfg.RNG_SEED)
        model = self.create_model(cfg)
        set_bn_momentum(model, cfg.BN.MOMENTUM)
        weights = resolve_test_weights(cfg)
        self.load_weights_for_test(model, weights, prefer_ema=cfg.TEST.USE_EMA)
        model.to(dist.device).eval()
        memory_format = self.channels_last_format if cfg.MODEL.CHANNELS_LAST else None
        if memory_format is not None:
            model.to(memory_format=memory_format)
        dataset = self.build_dataset(cfg, "test")
        loader = build_eval_loader(cfg, dataset, cfg.TEST.BATCH_SIZE, dist.device, self.collate_fn())
        detections, failed = predict_keyframes(
            model, loader, lambda b: self.prepare_input(b, cfg, dist.device, memory_format), dataset,
            device=dist.device, autocast=autocast_context(cfg.TRAIN.MIXED_PRECISION, dist.device),
            progress=dist.is_main and cfg.PROGRESS_BAR,
        )
        result = evaluate_detector(cfg, detections)
        result.extra.update({"weights": weights, "model": cfg.MODEL.NAME, "split": "test", "num_failed": failed})
        if dist.is_main:
            out = Path(cfg.OUTPUT_DIR)
            det_path = Path(cfg.TEST.SAVE_RESULTS_PATH or DETECTIONS_FILE)
            det_path = det_path if det_path.is_absolute() else out / det_path
            write_detections_csv(str(det_path), detections)
            write_per_class_ap_csv(str(out / PER_CLASS_FILE), result)
            result.extra["detections"] = str(det_path)
            summary_to_json(out / "test_results.json", result.as_dict())
            writer = MetricWriter(out, enabled=True, tensorboard=False)
            writer.write("test", {k: v for k, v in result.as_dict().items() if k != "per_class"})
            writer.close()
            logger.info("Test (%s): %s", cfg.MODEL.NAME, result.format())
            logger.info("detections written to %s; per-class AP to %s", det_path, out / PER_CLASS_FILE)
        return result

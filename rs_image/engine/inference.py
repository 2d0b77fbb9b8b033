"""Multi-view testing (``tools/test_net.py``): load weights, score every view, aggregate per video."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Tuple

import torch
from torch import nn
from tqdm import tqdm

from rs_image.errors import TooManyFailuresError
from rs_image.models import WeightsError, resolve_weights
from rs_image.report.confusion import confusion_figure, most_confused_pairs
from rs_image.report.figure import save_png

from . import distributed as du
from .assembly import build_model
from .checkpoint import CheckpointError, checkpoint_dir, find_resume_checkpoint
from .class_metrics import ClassStats, write_confusion_csv, write_per_class_csv
from .multilabel import write_multilabel_per_class_csv
from .config import CfgNode, require_keys
from .evaluator import (
    MultiViewAggregator,
    MultiViewSummary,
    failed_mask,
    summary_to_json,
    view_scores,
    write_predictions,
)
from .logger import MetricWriter, plotting_available, setup_logging
from .tasks import Task, get_task
from .runtime import autocast_context, build_eval_loader, configure_cpu_threads, configure_determinism, seed_everything

__all__ = ["run_test", "resolve_test_weights", "build_test_model", "score_test_views"]

logger = logging.getLogger(__name__)

PER_CLASS_FILE = "per_class.csv"
CONFUSION_CSV = "confusion_matrix.csv"
CONFUSION_PNG = "confusion_matrix.png"


def resolve_test_weights(cfg: CfgNode) -> str:
    """``TEST.CHECKPOINT_FILE_PATH``, else the newest good checkpoint under ``OUTPUT_DIR/checkpoints``."""
    if cfg.TEST.CHECKPOINT_FILE_PATH:
        return cfg.TEST.CHECKPOINT_FILE_PATH
    found = find_resume_checkpoint(checkpoint_dir(cfg.OUTPUT_DIR)) if du.is_main_process() else None
    path = du.broadcast_object(str(found[0]) if found else None)
    if path is None:
        raise CheckpointError(
            f"no weights to test: TEST.CHECKPOINT_FILE_PATH is empty and {checkpoint_dir(cfg.OUTPUT_DIR)} has no "
            "readable checkpoint"
        )
    return path


def build_test_model(cfg: CfgNode, task: Task, weights: str, device: torch.device
                     ) -> Tuple[nn.Module, Optional[torch.memory_format]]:
    """The model the test scores: ``task.create_model(cfg)`` with ``weights`` loaded as for testing (EMA with
    ``TEST.USE_EMA``), in eval mode on ``device``, and the input memory format (``MODEL.CHANNELS_LAST``).
    :func:`run_test` and the video predictor (``rs_video.inference``) both build their model here."""
    def load(model: nn.Module) -> None:
        _check_classifier(model, weights, cfg.TEST.USE_EMA, cfg.MODEL.NUM_CLASSES)
        task.load_weights_for_test(model, weights, prefer_ema=cfg.TEST.USE_EMA)

    model, memory_format = build_model(cfg, task, device, load)
    return model.eval(), memory_format


def _check_classifier(model: nn.Module, weights: str, prefer_ema: bool, num_classes: int) -> None:
    """Raise :class:`WeightsError` when the weights' classifier has another number of classes than the model:
    loading would drop it for a fresh one (right for fine-tuning, a wrong answer for testing)."""
    prefix = getattr(model, "pretrained_cfg", {}).get("classifier", "head.fc") + "."
    own = {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
    if not own:
        return
    resolved = resolve_weights(weights, prefer_ema=prefer_ema)
    for key, value in own.items():
        theirs = resolved.state_dict.get(key)
        if theirs is not None and tuple(theirs.shape) != tuple(value.shape):
            raise WeightsError(
                f"{resolved.describe()}: the classifier {key} has shape {tuple(theirs.shape)} "
                f"({theirs.shape[0]} classes), the model {tuple(value.shape)} (MODEL.NUM_CLASSES {num_classes}); "
                "these weights are for another class count or architecture"
            )


@torch.no_grad()
def score_test_views(model: nn.Module, loader: Iterable[Dict[str, Any]], aggregator: MultiViewAggregator,
                     cfg: CfgNode, task: Task, device: torch.device,
                     memory_format: Optional[torch.memory_format] = None, progress: bool = False) -> torch.Tensor:
    """Score every view of ``loader`` (items of a test-mode data set) with ``model`` and fold them into
    ``aggregator``: the task's input preparation, ``TRAIN.MIXED_PRECISION`` autocast and the
    ``TEST.ENSEMBLE_SCORES`` of each view (sigmoid probabilities with ``DATA.MULTI_LABEL``). The loop of
    :func:`run_test`, shared with the video predictor. Returns this process's count of samples read by a
    fallback decoder (a float64 tensor on ``device``)."""
    autocast = autocast_context(cfg.TRAIN.MIXED_PRECISION, device)
    multi_label = bool(cfg.DATA.MULTI_LABEL)
    fallback_reads = torch.zeros(1, dtype=torch.float64, device=device)
    for batch in tqdm(loader, desc="test", disable=not progress, dynamic_ncols=True, unit="batch"):
        x = task.prepare_input(batch, cfg, device, memory_format)
        labels = torch.as_tensor(batch["label"])
        if "fallback_reads" in batch:
            fallback_reads += int(torch.as_tensor(batch["fallback_reads"]).sum())
        bad = failed_mask(batch, labels.shape[0])
        with autocast:
            logits = model(x)
        scores = view_scores(logits, cfg.TEST.ENSEMBLE_SCORES, multi_label=multi_label)
        aggregator.update(scores, labels, batch[task.index_key], batch.get("view_index"), bad)
    return fallback_reads


@torch.no_grad()
def run_test(cfg: CfgNode, task: Optional[Task] = None) -> MultiViewSummary:
    """Evaluate on the ``test`` split with ``TEST.NUM_ENSEMBLE_VIEWS x TEST.NUM_SPATIAL_CROPS`` views.

    The softmax probabilities (``TEST.ENSEMBLE_SCORES prob``) or logits (``logit``) of the views of a video
    are summed (``TEST.ENSEMBLE_METHOD sum``) or maximised (``max``); top-1/top-5 are computed over the
    videos whose views were all decoded, at video level (the ensemble) and at clip level (each view alone),
    with per-class results (:mod:`~rs_image.engine.class_metrics`). With ``DATA.MULTI_LABEL`` the views' sigmoid
    probabilities are ensembled and the result is mAP with per-class AP (:mod:`~rs_image.engine.multilabel`;
    ``per_class.csv`` holds the AP, and there is no confusion matrix). Rank 0 logs the result with the numbers
    of videos evaluated and failed and writes to ``OUTPUT_DIR``: per-video predictions (CSV, see
    :func:`~rs_image.engine.evaluator.write_predictions`), ``test_results.json`` (the summary with a
    ``per_class`` list), ``per_class.csv``, ``confusion_matrix.csv``, with matplotlib
    ``confusion_matrix.png`` (and the same figure in TensorBoard when ``TENSORBOARD``), and appends a
    ``test`` record (without the per-class list) to ``metrics.jsonl``.

    Raises:
        TooManyFailuresError: (after writing the results) when the fraction of failed videos exceeds
            ``DATA.MAX_FAILURE_FRACTION``.
    """
    require_keys(cfg, "testing")
    task = task if task is not None else get_task(cfg.TASK)
    own = task.run_test(cfg)  # a task with its own protocol (e.g. AVA detection's frame mAP)
    if own is not None:
        return own
    dist = du.init_distributed(cfg.DEVICE)
    setup_logging(cfg.OUTPUT_DIR, dist.rank, task.logger_names)
    configure_cpu_threads(cfg.CPU_THREADS)
    configure_determinism(cfg.DETERMINISTIC)
    seed_everything(cfg.RNG_SEED)
    device = dist.device

    weights = resolve_test_weights(cfg)
    model, memory_format = build_test_model(cfg, task, weights, device)
    logger.info("testing %s weights %s%s", cfg.MODEL.NAME, weights, " (EMA if present)" if cfg.TEST.USE_EMA else "")

    dataset = task.build_dataset(cfg, "test")
    loader = build_eval_loader(cfg, dataset, cfg.TEST.BATCH_SIZE, device, task.collate_fn())
    num_samples = task.num_test_samples(dataset)
    views = task.views_per_sample(dataset)
    multi_label = bool(cfg.DATA.MULTI_LABEL)
    aggregator = MultiViewAggregator(num_samples, cfg.MODEL.NUM_CLASSES, cfg.TEST.ENSEMBLE_METHOD,
                                     cfg.TEST.ENSEMBLE_SCORES, multi_label=multi_label)
    fallback_reads = score_test_views(model, loader, aggregator, cfg, task, device, memory_format,
                                      progress=dist.is_main and cfg.PROGRESS_BAR)
    aggregator.synchronize()
    summary = aggregator.summarize(views_per_sample=views,
                                   class_names=task.class_names(dataset, cfg.MODEL.NUM_CLASSES))
    summary.extra.update({"weights": weights, "model": cfg.MODEL.NAME, "split": "test",
                          "fallback_reads": int(du.all_reduce_sum(fallback_reads).item())})

    if dist.is_main:
        out = Path(cfg.OUTPUT_DIR)
        pred_path = Path(cfg.TEST.SAVE_RESULTS_PATH or "test_predictions.csv")
        if not pred_path.is_absolute():
            pred_path = out / pred_path
        names = [task.sample_name(dataset, i) for i in range(num_samples)]
        write_predictions(pred_path, aggregator, names, views_per_sample=views)
        summary.extra["predictions"] = str(pred_path)
        summary_to_json(out / "test_results.json", summary.as_dict())
        if summary.per_class_ap is not None:  # multi-label: per-class AP, no confusion matrix
            write_multilabel_per_class_csv(out / PER_CLASS_FILE, summary.per_class_ap)
            writer = MetricWriter(out, enabled=True, tensorboard=cfg.TENSORBOARD and plotting_available())
            writer.write("test", summary.as_dict(per_class=False))
            writer.close()
            logger.info("Test (%s, %d views/sample): %s", cfg.MODEL.NAME, views, summary.format())
            for line in summary.format_details():
                logger.info(line)
            logger.info("predictions written to %s; per-class AP to %s", pred_path, out / PER_CLASS_FILE)
            _check_failures(cfg, summary)
            return summary
        stats = summary.per_class
        write_per_class_csv(out / PER_CLASS_FILE, stats)
        write_confusion_csv(out / CONFUSION_CSV, stats)
        draw = plotting_available()
        writer = MetricWriter(out, enabled=True, tensorboard=cfg.TENSORBOARD and draw)
        writer.write("test", summary.as_dict(per_class=False))
        if draw:
            _draw_confusion(stats, out / CONFUSION_PNG, writer)
        writer.close()
        logger.info("Test (%s, %d views/sample): %s", cfg.MODEL.NAME, views, summary.format())
        if summary.extra["fallback_reads"]:
            logger.info("%d test samples were read by the fallback decoder (the chosen one cannot decode them; "
                        "not failures)", summary.extra["fallback_reads"])
        for line in summary.format_details():
            logger.info(line)
        pairs = most_confused_pairs(stats.confusion, 3)
        if pairs:
            logger.info("most confused (true -> predicted): %s",
                        ", ".join(f"{stats.names[t]} -> {stats.names[p]} ({n})" for t, p, n in pairs))
        logger.info("predictions written to %s; per class to %s; confusion matrix to %s%s", pred_path,
                    out / PER_CLASS_FILE, out / CONFUSION_CSV, f" and {CONFUSION_PNG}" if draw else "")
    _check_failures(cfg, summary)
    return summary


def _check_failures(cfg: CfgNode, summary: MultiViewSummary) -> None:
    failed_fraction = summary.num_failed / max(summary.num_samples, 1)
    if failed_fraction > cfg.DATA.MAX_FAILURE_FRACTION:
        raise TooManyFailuresError(
            f"{summary.num_failed} of {summary.num_samples} test samples ({100 * failed_fraction:.1f}%) could not be "
            f"loaded, more than DATA.MAX_FAILURE_FRACTION={cfg.DATA.MAX_FAILURE_FRACTION}; see the log for the files"
        )


def _draw_confusion(stats: ClassStats, path: Path, writer: MetricWriter) -> None:
    figure = confusion_figure(stats.confusion, stats.names)
    save_png(figure, path)
    writer.add_figure("test/confusion_matrix", figure)


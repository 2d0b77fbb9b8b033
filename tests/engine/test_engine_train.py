"""End-to-end engine tests: short training runs (video and image tasks), multi-view test, non-finite loss,
initial weights with inflation, checkpoint fallback, 2-process DDP (gloo). Exact resume: test_engine_resume.py."""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Dict

import pytest
import torch

from rs_image.engine import NonFiniteLossError, Trainer, load_config, run_test
from rs_image.engine.checkpoint import load_checkpoint
from rs_image.engine.launch import train_main
from tests.distributed import spawn_two_ranks
from tests.helpers import TensorImageTask, TensorVideoTask, records as _records, tiny_opts
from tests.images import jpeg_folder

ROOT = Path(__file__).resolve().parents[2]
def _params(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------------------
def test_two_step_training_video_task_then_multiview_test(tmp_path):
    cfg = load_config(None, tiny_opts(tmp_path, "video", "TRAIN.MAX_STEPS_PER_EPOCH", "2", "TRAIN.EVAL_PERIOD", "1",
                                      "TENSORBOARD", "True", "DATA.MAX_FAILURE_FRACTION", "0.5"))
    trainer = Trainer(cfg, TensorVideoTask())
    before = _params(trainer.model)
    metrics = trainer.train()
    assert trainer.global_step == 2 and trainer.ema.num_updates == 2
    after = trainer.model.state_dict()
    changed = [k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])]
    assert "head.fc.weight" in changed and "stem.conv1.weight" in changed
    ema = trainer.ema.module.state_dict()
    assert not torch.equal(ema["head.fc.weight"], after["head.fc.weight"])  # an average, not a copy

    kinds = [r["type"] for r in _records(tmp_path)]
    assert kinds.count("train") == 2 and "train_epoch" in kinds and "val" in kinds
    val = [r for r in _records(tmp_path) if r["type"] == "val"][0]
    assert val["num_samples"] == 5 and "ema_top1" in val and metrics["val_top1"] == val["top1"]
    assert (tmp_path / "config.yaml").is_file() and list((tmp_path / "tensorboard").glob("events.*"))
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pyth")
    assert state["global_step"] == 2 and state["epoch"] == 1 and state["step_in_epoch"] == 0
    assert (tmp_path / "checkpoints" / "checkpoint_epoch_00001.pyth").is_file()
    for key in ("model_state", "ema_state", "optimizer_state", "scheduler_state", "rng_states", "cfg"):
        assert key in state

    summary = run_test(cfg, TensorVideoTask())
    assert (summary.num_samples, summary.num_evaluated, summary.num_failed, summary.num_failed_views) == (4, 3, 1, 2)
    assert summary.views_per_sample == 2
    rows = list(csv.DictReader(open(tmp_path / "test_predictions.csv")))
    assert len(rows) == 4 and rows[1]["views"] == "0" and rows[0]["views"] == "2"
    result = json.loads((tmp_path / "test_results.json").read_text())
    assert result["num_failed"] == 1 and result["weights"].endswith("last.pyth")
    # The EMA weights were tested: their logits give the written scores.
    model = TensorVideoTask().create_model(cfg)
    model.load_state_dict(state["ema_state"])
    model.eval()
    views = TensorVideoTask().build_dataset(cfg, "test")
    hits = []
    for video in (0, 2, 3):  # video 1 failed
        with torch.no_grad():
            probs = torch.stack([model(views[i]["video"][None]).softmax(1)[0] for i in (2 * video, 2 * video + 1)]).mean(0)
        top = probs.topk(4)
        assert rows[video]["top4_classes"].split() == [str(i) for i in top.indices.tolist()]
        assert [float(v) for v in rows[video]["top4_scores"].split()] == pytest.approx(top.values.tolist(), abs=1e-4)
        hits.append(int(top.indices[0]) == views[2 * video]["label"])
    assert summary.top1 == pytest.approx(100.0 * sum(hits) / 3)


def test_two_step_training_image_task_cli_bf16_precise_bn(tmp_path):
    data = jpeg_folder(tmp_path / "data", {"train": 2, "val": 1})
    # test split = val; in val mode the broken file is replaced by another image, in test mode it fails
    (data / "val" / "class3" / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    results = train_main([
        *tiny_opts(out, "image", "DATA.PATH_TO_DATA_DIR", str(data), "TRAIN.MIXED_PRECISION", "bf16",
                   "BN.USE_PRECISE_STATS", "True", "BN.NUM_BATCHES_PRECISE", "2", "AUG.RAND_AUGMENT", "True",
                   "TRAIN.EVAL_PERIOD", "1", "TEST.NUM_ENSEMBLE_VIEWS", "1", "DATA.MAX_FAILURE_FRACTION", "0.5",
                   "TEST.SAVE_RESULTS_PATH", "preds/image.csv"),
    ])
    assert results["train"]["val_num_samples"] == 5 and results["train"]["val_num_failed"] == 0
    test = results["test"]
    assert (test["num_samples"], test["num_evaluated"], test["num_failed"]) == (5, 4, 1)
    state = load_checkpoint(out / "checkpoints" / "last.pyth")
    assert state["global_step"] == 4  # 8 images / batch 2
    rows = list(csv.DictReader(open(out / "preds" / "image.csv")))
    assert any(r["name"].endswith("broken.jpg") and r["views"] == "0" for r in rows)
    # the report names the image classes by their folders; the broken file is in no class's support
    per_class = list(csv.DictReader(open(out / "per_class.csv")))
    assert [(r["name"], r["support"]) for r in per_class] == [(f"class{c}", "1") for c in range(4)]


def test_video_task_on_real_video_files(tmp_path):
    pytest.importorskip("av")
    from tests.videos import list_dataset

    data = list_dataset(tmp_path / "data", num_videos=4, broken=("truncated",), width=48, height=40)
    cfg = load_config(None, tiny_opts(
        tmp_path / "out", "video", "DATA.PATH_TO_DATA_DIR", str(data), "DATA.PATH_PREFIX", str(data),
        "MODEL.NUM_CLASSES", "2", "DATA.TRAIN_JITTER_SCALES", "[40, 48]", "DATA.TEST_CROP_SIZE", "40",
        "DATA.MAX_FAILURE_FRACTION", "0.5", "TRAIN.EVAL_PERIOD", "1", "DATA.DECODER", "pyav",
    ))
    metrics = Trainer(cfg).train()
    assert metrics["val_num_samples"] == 5  # the broken val entry is replaced by a good video
    summary = run_test(cfg)
    assert (summary.num_samples, summary.num_evaluated, summary.num_failed) == (5, 4, 1)
    assert summary.num_failed_views == 2  # 2 temporal views x 1 crop of the truncated file
    rows = list(csv.DictReader(open(tmp_path / "out" / "test_predictions.csv")))
    assert rows[4]["name"].endswith("test_broken_truncated.mp4") and rows[4]["views"] == "0"


def test_nonfinite_loss_stops_with_step(tmp_path):
    cfg = load_config(None, tiny_opts(tmp_path, "image", "TRAIN.EVAL_PERIOD", "0"))
    trainer = Trainer(cfg, TensorImageTask())
    trainer.train_set.nan_labels = {0, 1, 2, 3}
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 1/6 \(global step 1\)"):
        trainer.train()
    assert not (tmp_path / "checkpoints" / "last.pyth").exists()


def test_nonfinite_loss_skip(tmp_path, caplog):
    cfg = load_config(None, tiny_opts(tmp_path, "image", "TRAIN.EVAL_PERIOD", "0", "TRAIN.NONFINITE_LOSS", "skip"))
    trainer = Trainer(cfg, TensorImageTask())
    trainer.train_set.nan_labels = {0}
    before = _params(trainer.model)
    with caplog.at_level(logging.WARNING):
        trainer.train()
    assert 1 <= trainer.num_skipped_steps < 6 and trainer.global_step == 6
    assert "step skipped" in caplog.text
    after = trainer.model.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert not torch.equal(before["head.fc.weight"], after["head.fc.weight"])


def test_fp16_needs_cuda_and_bn_momentum_1_needs_ema(tmp_path):
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        Trainer(load_config(None, tiny_opts(tmp_path, "image", "TRAIN.MIXED_PRECISION", "fp16")), TensorImageTask())
    with pytest.raises(ValueError, match="EMA.ENABLE"):
        Trainer(load_config(None, tiny_opts(tmp_path, "image", "BN.MOMENTUM", "1.0", "EMA.ENABLE", "False")),
                TensorImageTask())


def test_initial_weights_are_inflated_from_2d(tmp_path):
    import rs_image

    model_2d = rs_image.create_model("resnetrs50", num_classes=10, stage_widths=(8, 16, 32, 64),
                                     stage_depths=(1, 1, 1, 1), stem_width=8)
    torch.save(model_2d.state_dict(), tmp_path / "in1k.pth")
    cfg = load_config(None, tiny_opts(tmp_path / "out", "video", "TRAIN.CHECKPOINT_FILE_PATH", str(tmp_path / "in1k.pth"),
                                      "TRAIN.CHECKPOINT_INFLATE", "center", "TRAIN.EVAL_PERIOD", "0"))
    trainer = Trainer(cfg, TensorVideoTask())
    w3d = trainer.model.stem.conv1.weight  # temporal kernel 5: the 2D kernel sits in the centre tap
    assert torch.equal(w3d[:, :, 2], model_2d.stem.conv1.weight) and w3d[:, :, 0].abs().sum() == 0
    assert torch.equal(trainer.ema.module.stem.conv1.weight, w3d)  # the EMA starts from the loaded weights
    assert trainer.model.head.fc.out_features == 4  # the 10-class classifier was not used


def test_truncated_checkpoint_falls_back_to_previous(tmp_path, caplog):
    opts = tiny_opts(tmp_path, "image", "TRAIN.EVAL_PERIOD", "0", "TRAIN.MAX_STEPS_PER_EPOCH", "1",
                     "TRAIN.CHECKPOINT_PERIOD", "1")
    Trainer(load_config(None, opts + ["SOLVER.MAX_EPOCH", "2"]), TensorImageTask()).train()
    ckpts = tmp_path / "checkpoints"
    for name in ("last.pyth", "checkpoint_epoch_00002.pyth"):
        data = (ckpts / name).read_bytes()
        (ckpts / name).write_bytes(data[: len(data) // 3])
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(load_config(None, opts + ["SOLVER.MAX_EPOCH", "3"]), TensorImageTask())
    assert trainer.resumed_from.name == "checkpoint_epoch_00001.pyth"
    assert (trainer.start_epoch, trainer.global_step) == (1, 1)
    assert "last.pyth" in caplog.text and "checkpoint_epoch_00002.pyth" in caplog.text
    trainer.train()
    assert load_checkpoint(ckpts / "last.pyth")["global_step"] == 3


# ------------------------------------------------------------------------------------------------------
# Two processes, gloo
# ------------------------------------------------------------------------------------------------------
def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from rs_image.engine import distributed as du

    cfg = load_config(None, tiny_opts(Path(out), "image", "TRAIN.EVAL_PERIOD", "1", "SOLVER.MAX_EPOCH", "2",
                                      "MODEL.DROP_PATH_RATE", "0.3", "TRAIN.MAX_STEPS_PER_EPOCH", "2"))
    try:
        trainer = Trainer(cfg, TensorImageTask())
        init = _params(trainer.model)
        metrics = trainer.train()
        torch.save({"model": trainer.model.state_dict(), "ema": trainer.ema.module.state_dict(), "init": init,
                    "metrics": metrics, "steps": trainer.steps_per_epoch},
                   Path(out) / f"rank{rank}.pt")
    finally:
        du.destroy_distributed()


@pytest.mark.slow
def test_ddp_two_processes_identical_weights(tmp_path):
    r0, r1 = spawn_two_ranks(_ddp_worker, tmp_path)
    assert r0["steps"] == 2  # 12 samples / 2 ranks / batch 2 = 3, capped at 2
    for part in ("model", "ema"):
        for key, value in r0[part].items():
            assert torch.equal(value, r1[part][key]), f"{part}.{key} differs between ranks"
    assert not torch.equal(r0["init"]["head.fc.weight"], r0["model"]["head.fc.weight"])
    # validation is reduced over the ranks: every one of the 5 samples counted exactly once, same result
    assert r0["metrics"]["val_num_samples"] == r1["metrics"]["val_num_samples"] == 5
    assert r0["metrics"]["val_top1"] == r1["metrics"]["val_top1"]
    # only rank 0 writes
    assert (tmp_path / "checkpoints" / "last.pyth").is_file()
    train_records = [r for r in _records(tmp_path) if r["type"] == "train"]
    assert len(train_records) == 4  # one writer, LOG_PERIOD 1, 2 epochs x 2 steps

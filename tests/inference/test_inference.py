"""rs_video.inference: predict equals the test tool, the window convention, feature extraction (exact windows,
SIGKILL resume, 1 vs 2 processes, failures, sidecar mismatch), class names through a checkpoint, bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import rs_video.task  # noqa: F401  (registers TASK video)
from rs_image.engine import load_config, run_test
from rs_image.engine.checkpoint import load_checkpoint
from rs_video.data import create_decoder
from rs_video.inference import Predictor, WindowSpec, extract_features, find_videos, pretrained_config
from rs_video.cli.extract_features import main as extract_main
from rs_video.cli.predict import predict as predict_main
from rs_video.inference.stream import window_transform
from rs_video.models.labels import load_label_set
from tests.conftest import randomize_bn
from tests.distributed import free_port
from tests.helpers import fails_with as _fails_with
from tests.helpers import tiny_opts
from tests.videos import list_dataset, write_broken, write_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parents[2]
NAMES = ["waving", "clapping", "running", "jumping"]


def _opts(out: Path, data: Path, *extra: str):
    return tiny_opts(out, "video", "DATA.PATH_TO_DATA_DIR", str(data), "DATA.TEST_CROP_SIZE", "40",
                     "TEST.NUM_SPATIAL_CROPS", "3", "DATA.SAMPLING_RATE", "3", "DATA.DECODER", "pyav", *extra)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Three 40-frame test videos, a checkpoint (random tiny rs3d_50 with random BN statistics) carrying its cfg
    and class names, as train_net writes them."""
    root = tmp_path_factory.mktemp("inference")
    data = list_dataset(root / "data", splits=("test",), num_videos=3, num_frames=40, width=48, height=40)
    cfg = load_config(None, _opts(root / "out", data))
    model = randomize_bn(rs_video.task.VideoTask().create_model(cfg), seed=1)
    ckpt = root / "model.pyth"
    torch.save({"model_state": model.state_dict(), "epoch": 1, "step_in_epoch": 0, "global_step": 1,
                "cfg": cfg.dump(), "class_names": NAMES}, ckpt)
    return root, data, cfg, ckpt


def _predictor(setup, *opts: str) -> Predictor:
    root, data, _, ckpt = setup
    return Predictor.from_config(None, str(ckpt), ["DATA_LOADER.NUM_WORKERS", "0", *opts])


# ------------------------------------------------------------------------------------------------- windows
@pytest.mark.parametrize("n, t, tau, stride, expected", [
    (100, 4, 8, None, [0, 32, 64, 75]),    # span 32; last start 100 - 1 - 24 = 75, not a multiple: one more
    (57, 4, 8, None, [0, 32]),             # last start 32: the regular windows end on the last frame
    (10, 4, 8, None, [0]),                 # shorter than a window: one window, last frame repeated
    (41, 4, 2, 3, list(range(0, 34, 3)) + [34]),  # last start 34 = 11 * 3 + 1
])
def test_window_starts(n, t, tau, stride, expected):
    spec = WindowSpec(t, tau, stride)
    assert spec.starts(n) == expected
    assert spec.frames(expected[-1], n)[-1] == n - 1
    if n == 10:
        assert spec.frames(0, n) == [0, 8, 9, 9]


def test_window_fps_resampling():
    spec = WindowSpec(4, 2, fps=15.0)  # a 30 fps video of 60 frames is 30 frames at 15 fps
    assert spec.native_frames(0, 60, 30.0) == [0, 4, 8, 12]
    assert spec.starts(30) == [0, 8, 16, 23]
    with pytest.raises(ValueError, match="--fps"):
        WindowSpec(4, 2, fps=0.0)


# ---------------------------------------------------------------------------------------- predict = test
def test_predict_equals_test_net(setup, tmp_path):
    root, data, _, ckpt = setup
    cfg = load_config(None, _opts(tmp_path, data, "TEST.CHECKPOINT_FILE_PATH", str(ckpt), "TEST.BATCH_SIZE", "5"))
    run_test(cfg)
    rows = list(csv.DictReader(open(tmp_path / "test_predictions.csv")))
    predictor = _predictor(setup, "TEST.BATCH_SIZE", "2")
    assert predictor.class_names == NAMES  # from the checkpoint
    predictions = predictor.predict([str(data / r["name"]) if not os.path.isabs(r["name"]) else r["name"]
                                     for r in rows], topk=4)
    assert len(predictions) == 3
    for row, prediction in zip(rows, predictions):
        assert prediction.views == 6 and not prediction.failed
        assert [c for c, _, _ in prediction.topk] == [int(c) for c in row["top4_classes"].split()]
        np.testing.assert_allclose([s for _, _, s in prediction.topk],
                                   [float(s) for s in row["top4_scores"].split()], atol=1e-5)
        assert [n for _, n, _ in prediction.topk] == [NAMES[c] for c, _, _ in prediction.topk]


def test_predict_cli_json_timeline_annotate(setup, tmp_path, capsys):
    _, data, _, ckpt = setup
    video = data / "videos" / "test_0.mp4"
    records = predict_main([str(video), "--weights", str(ckpt), "--topk", "2", "--json", str(tmp_path / "p.json"),
                            "--timeline", str(tmp_path / "tl"), "--annotate", str(tmp_path / "a.mp4"),
                            "--stride", "6", "DATA_LOADER.NUM_WORKERS", "0"])
    out = capsys.readouterr().out
    assert "test_0.mp4: 6 views" in out and "timeline: 6 windows" in out
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved == json.loads(json.dumps(records))
    assert set(saved[0]) >= {"path", "topk", "views", "failed", "timeline"}
    assert [w["start_frame"] for w in saved[0]["timeline"]] == [0, 6, 12, 18, 24, 30]  # 40 frames, 4x3, stride 6
    rows = list(csv.DictReader(open(tmp_path / "tl" / "test_0.timeline.csv")))
    assert len(rows) == 6 and rows[-1]["end_frame"] == "39"
    with __import__("av").open(str(tmp_path / "a.mp4")) as annotated:
        assert annotated.streams.video[0].frames == 40


# ------------------------------------------------------------------------------------- feature extraction
def test_window_k_equals_model_on_its_clip(setup, tmp_path):
    """Row k of the features is the model on the independently decoded and transformed clip of window k."""
    _, data, cfg, _ = setup
    predictor = _predictor(setup)
    spec = WindowSpec(4, 3, stride=7)
    summary = extract_features(predictor, [data / "videos" / "test_1.mp4"], data, tmp_path, spec=spec,
                               batch_size=3, num_workers=1)
    assert summary.written == 1 and not summary.failed
    features = np.load(tmp_path / "videos" / "test_1.npy")
    sidecar = json.loads((tmp_path / "videos" / "test_1.json").read_text())
    starts = spec.starts(40)
    assert starts == [0, 7, 14, 21, 28, 30] and sidecar["window_starts"] == starts
    assert features.shape == (6, predictor.model.num_features) and features.dtype == np.float32
    transform = window_transform(cfg, 1)
    model = predictor.model
    for k, start in enumerate(starts):
        with create_decoder("pyav").open(str(data / "videos" / "test_1.mp4")) as video:
            clip = video.get_frames([start + 3 * i for i in range(4)])
        x = predictor.task.prepare_input({"video": transform(clip)[None]}, cfg, torch.device("cpu"))
        with torch.no_grad():
            expected = model.forward_head(model.forward_features(x), pre_logits=True)[0]
        np.testing.assert_allclose(features[k], expected.numpy(), rtol=1e-5, atol=1e-6)


def test_long_video_window_count(setup, tmp_path):
    video = write_video(tmp_path / "long" / "long.mp4", num_frames=500, width=32, height=32)
    predictor = _predictor(setup, "DATA.TEST_CROP_SIZE", "32", "DATA.SAMPLING_RATE", "8")
    extract_features(predictor, [video], tmp_path / "long", tmp_path / "out", layer="logits", batch_size=8)
    # span 4 x 8 = 32; last start 500 - 1 - 24 = 475 = 14 * 32 + 27: 15 regular windows and one at 475
    features = np.load(tmp_path / "out" / "long.npy")
    assert features.shape == (475 // 32 + 2, 4)
    assert json.loads((tmp_path / "out" / "long.json").read_text())["window_starts"][-2:] == [448, 475]


def test_failures_sidecar_mismatch_and_layers(setup, tmp_path, capsys):
    _, data, _, ckpt = setup
    videos = tmp_path / "videos"
    for i in range(2):
        write_video(videos / f"sub/v{i}.mp4", num_frames=20, width=48, height=40)
    write_broken(videos / "broken.mp4", "garbage")
    write_broken(videos / "short.mp4", "truncated")
    base = ["--weights", str(ckpt), "--videos", str(videos), "--out", str(tmp_path / "f"), "--layer", "stage2",
            "DATA_LOADER.NUM_WORKERS", "0"]
    assert extract_main(base) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("4 videos: 2 written, 0 already done, 2 failed")
    failed = list(csv.DictReader(open(tmp_path / "f" / "failed.csv")))
    assert [(Path(r["path"]).name, r["reason"].split(":")[0]) for r in failed] == [
        ("broken.mp4", "unreadable"), ("short.mp4", "unreadable")]
    assert np.load(tmp_path / "f" / "sub" / "v0.npy").shape == (2, 64)  # stage2 of the tiny net: 16 x 4 (bottleneck) channels
    assert extract_main(base + ["--strict"]) == 1
    assert "0 written, 2 already done, 2 failed" in capsys.readouterr().out
    _fails_with(extract_main, base[:-4] + ["--layer", "stage3", "DATA_LOADER.NUM_WORKERS", "0"], capsys,
                "extract_features: error:", str(tmp_path / "f" / "sub" / "v0.json"), "layer='stage2'",
                "layer='stage3'", "--overwrite")
    _fails_with(extract_main, base[:-4] + ["--layer", "stage7"], capsys, "--layer 'stage7' does not exist")
    _fails_with(extract_main, base + ["--fps", "0"], capsys, "--fps must be > 0")


def _extract_args(ckpt, videos, out):
    return [sys.executable, "-m", "rs_video.cli.extract_features", "--weights", str(ckpt), "--videos",
            str(videos), "--out", str(out), "--batch-size", "2", "--workers", "0", "DATA.DECODER", "pyav"]


def _outputs(folder: Path):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*.npy"))}


@pytest.mark.slow
def test_sigkill_resume_and_two_processes_are_bit_identical(setup, tmp_path):
    _, data, _, ckpt = setup
    videos = tmp_path / "videos"
    for i in range(6):
        write_video(videos / f"v{i}.mp4", num_frames=30 + 7 * i, width=48, height=40)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    reference = tmp_path / "ref"
    subprocess.run(_extract_args(ckpt, videos, reference), check=True, env=env, capture_output=True)
    assert len(_outputs(reference)) == 6

    # SIGKILL after the second video is complete, then run again
    killed = tmp_path / "killed"
    process = subprocess.Popen(_extract_args(ckpt, videos, killed), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    def done():
        return len([p for p in killed.glob("v*.json")])

    while done() < 2 and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = done()
    assert 2 <= done_before < 6, "the run finished before it could be killed"
    result = subprocess.run(_extract_args(ckpt, videos, killed), check=True, env=env, capture_output=True, text=True)
    assert f"{6 - done_before} written, {done_before} already done" in result.stdout
    assert _outputs(killed) == _outputs(reference)

    # two gloo processes: every video on one rank, the union equal to the single-process output
    sharded = tmp_path / "two"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                    str(free_port())] + _extract_args(ckpt, videos, sharded)[1:] + ["DEVICE", "cpu"],
                   check=True, env=env, capture_output=True)
    assert _outputs(sharded) == _outputs(reference)


# ------------------------------------------------------------------------------------------- class names
def test_class_names_round_trip_through_a_train_net_checkpoint(tmp_path):
    data = tmp_path / "data"
    for split in ("train", "test"):
        for c, name in enumerate(NAMES):
            write_video(data / split / name / f"{split}_{c}.mp4", num_frames=12, width=40, height=40)
    from rs_image.engine import Trainer

    cfg = load_config(None, tiny_opts(tmp_path / "out", "video", "DATA.PATH_TO_DATA_DIR", str(data),
                                      "TRAIN.EVAL_PERIOD", "0", "TRAIN.MAX_STEPS_PER_EPOCH", "1",
                                      "DATA.TRAIN_JITTER_SCALES", "[32, 40]"))
    Trainer(cfg).train()
    ckpt = tmp_path / "out" / "checkpoints" / "last.pyth"
    state = load_checkpoint(ckpt)
    assert state["class_names"] == sorted(NAMES)
    predictor = Predictor.from_config(None, str(ckpt), ["DATA_LOADER.NUM_WORKERS", "0"])
    assert predictor.class_names == sorted(NAMES) and predictor.cfg.MODEL.NAME == "rs3d_50"
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\n")
    assert Predictor.from_config(None, str(ckpt), ["DATA_LOADER.NUM_WORKERS", "0"], str(labels)).class_names == list("abcd")


def test_kinetics_400_names():
    names = load_label_set("kinetics400")
    assert len(names) == 400 == len(set(names)) and names == sorted(names)
    assert names[:3] == ["abseiling", "air drumming", "answering questions"] and names[-1] == "zumba"


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_input_exits_2_with_one_line(setup, tmp_path, capsys):
    _, data, cfg, ckpt = setup
    video = str(data / "videos" / "test_0.mp4")
    _fails_with(predict_main, [str(tmp_path / "nope.mp4"), "--weights", str(ckpt)], capsys,
                "predict: error: video not found", "nope.mp4")
    garbage = write_broken(tmp_path / "garbage.mp4", "garbage")
    _fails_with(predict_main, [str(garbage), "--weights", str(ckpt)], capsys, "garbage.mp4 is not a readable video")
    _fails_with(predict_main, [video, "--weights", str(ckpt), "--fps", "0"], capsys, "--fps must be > 0")
    _fails_with(predict_main, [video, "--weights", str(tmp_path / "none.pyth")], capsys, "weights file not found")
    other = tmp_path / "other.pyth"  # the same architecture with 3 classes
    state = torch.load(ckpt, weights_only=True)
    state["model_state"] = {k: (v[:3] if k.startswith("head.fc") else v) for k, v in state["model_state"].items()}
    torch.save(state, other)
    _fails_with(predict_main, [video, "--weights", str(other)], capsys, "predict: error:", "head.fc")
    _fails_with(predict_main, [video, "--weights", str(ckpt), "MODEL.NAME", "slow_r50"], capsys, "predict: error:")
    assert not list(tmp_path.glob("*.json"))  # nothing half-written
    with pytest.raises(Exception):
        find_videos(str(tmp_path / "missing_dir"))


def test_registered_kinetics_model_brings_its_input_settings_and_400_names(tmp_path):
    cfg = pretrained_config("slow_r50")
    assert (cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE, cfg.DATA.TEST_CROP_SIZE, cfg.MODEL.NUM_CLASSES) == (8, 8, 256, 400)
    assert (cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS) == (10, 3) and list(cfg.DATA.MEAN) == [0.45] * 3
    tiny = ["MODEL.OVERRIDES", "{'stage_widths': (8, 16, 32, 64), 'stage_depths': (1, 1, 1, 1), 'stem_width': 8}",
            "DEVICE", "cpu"]
    weights = tmp_path / "slow_tiny.pth"  # a state dict without names, as the hub files are
    torch.save(rs_video.task.VideoTask().create_model(pretrained_config("slow_r50", tiny)).state_dict(), weights)
    predictor = Predictor.from_pretrained("slow_r50", str(weights), tiny)
    assert predictor.class_names == load_label_set("kinetics400")

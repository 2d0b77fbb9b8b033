"""The AVA detection task end to end on real files: box-aware transforms, the keyframe data set (videos and
frame folders), bad input, training + test through the engine, exact resume, and the demo learning."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

import rs_video.task  # noqa: F401  (registers TASK video and TASK detection)
from rs_image.engine import get_cfg, launch, load_config
from rs_image.engine.checkpoint import epoch_checkpoint_name, load_checkpoint
from rs_image.data.failures import SampleLoadError
from rs_video.data.annotations import AnnotationError
from rs_video.data.ava_dataset import VideoFrames, build_ava_dataset, build_box_transform, collate_detection
from rs_video.data.decoders import create_decoder
from rs_video.demo.moving_shapes_ava import MovingShapesAvaSpec, generate_moving_shapes_ava, render_moving_shapes_ava_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
DEMO_CFG = ROOT / "configs" / "demo" / "moving_shapes_ava.yaml"
TINY_SPEC = MovingShapesAvaSpec(num_train=4, num_val=2)


@pytest.fixture(scope="module")
def ava_root(tmp_path_factory) -> Path:
    return generate_moving_shapes_ava(tmp_path_factory.mktemp("ava"), TINY_SPEC, workers=0)


def _cfg(root: Path, out: Path, *opts: str):
    return load_config(str(DEMO_CFG), [
        "AVA.VIDEO_DIR", str(root / "videos"), "AVA.ANNOTATION_DIR", str(root / "annotations"), "OUTPUT_DIR", str(out),
        "DATA_LOADER.NUM_WORKERS", "0", "DATA_LOADER.PERSISTENT_WORKERS", "False", "PROGRESS_BAR", "False",
        "TENSORBOARD", "False", "TRAIN.BATCH_SIZE", "4", "SOLVER.MAX_EPOCH", "2", "TRAIN.EVAL_PERIOD", "2",
        "TRAIN.CHECKPOINT_PERIOD", "1", *opts])


def test_box_transforms_move_boxes_with_the_pixels():
    """A bright rectangle and its box through scale jitter + random crop + flip (train) and the resize (test):
    the transformed box still frames the bright pixels; a box that leaves the crop is clipped to it."""
    cfg = get_cfg()
    cfg.DATA.TRAIN_JITTER_SCALES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE = [64, 80], 48, 32
    cfg.DATA.RANDOM_FLIP, cfg.DATA.OUTPUT_DTYPE = True, "uint8"
    from torchvision import tv_tensors

    clip = torch.zeros(2, 3, 64, 96, dtype=torch.uint8)
    clip[:, :, 20:40, 30:60] = 255
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[30.0, 20, 60, 40], [0, 0, 96, 64]]), format="XYXY",
                                     canvas_size=(64, 96))
    for mode in ("train", "test"):
        spatial, finisher = build_box_transform(cfg, mode)
        for seed in range(6):
            torch.manual_seed(seed)
            video, out = spatial(tv_tensors.Video(clip), boxes)
            frame = video[0, 0].float()
            h, w = frame.shape
            assert (mode == "train" and (h, w) == (48, 48)) or (mode == "test" and (h, w) == (32, 48))
            assert out[1].tolist() == [0.0, 0.0, float(w), float(h)]  # the whole-frame box clipped to the crop
            x1, y1, x2, y2 = out[0].round().int().tolist()
            bright = frame > 128
            if bright.any():  # the rectangle's pixels are all inside its box, and the box is mostly bright
                ys, xs = torch.nonzero(bright, as_tuple=True)
                assert x1 - 1 <= xs.min() and xs.max() <= x2 and y1 - 1 <= ys.min() and ys.max() <= y2
                assert frame[y1 + 1:y2 - 1, x1 + 1:x2 - 1].mean() > 200
            assert finisher.finalize(video.as_subclass(torch.Tensor)).shape == (3, 2, h, w)


def test_keyframe_clips_from_videos_and_from_frame_folders(ava_root, tmp_path):
    """Video files (AVA.VIDEO_DIR) and extracted frames with SlowFast's frame lists (AVA.FRAME_DIR) give the
    same keyframes, boxes and labels; the clip is centred on the keyframe."""
    cfg = _cfg(ava_root, tmp_path / "out", "AVA.VIDEO_TIME_OFFSET", "0.0")
    from_videos = build_ava_dataset(cfg, "train")
    spec = TINY_SPEC
    assert len(from_videos) == spec.num_train * (spec.seconds - 1)
    item = from_videos[0]
    assert item["video"].shape == (3, 8, 64, 64) and item["labels"].sum(1).eq(1).all()
    assert item["boxes"].shape == (item["labels"].shape[0], 4)
    # Frame folders: the rendered frames as JPEGs, listed as SlowFast's frame lists (30 fps there, so the
    # demo's 10 fps frames are listed three times each: frame f of second t at index 30 t).
    frames_dir, lists = tmp_path / "frames", tmp_path / "frame_lists"
    lists.mkdir()
    rows = ["original_vido_id video_idx frame_idx path labels"]
    for index in range(spec.num_train):
        video_id = f"train{index:04d}"
        (frames_dir / video_id).mkdir(parents=True)
        frames, _ = render_moving_shapes_ava_video(spec, "train", index)
        for f, frame in enumerate(frames):
            Image.fromarray(frame).save(frames_dir / video_id / f"{f:06d}.jpg", quality=95)
        rows += [f"{video_id} {index} {k} {video_id}/{k // 3:06d}.jpg \"\"" for k in range(3 * len(frames))]
    (lists / "train.csv").write_text("\n".join(rows) + "\n")
    folder_cfg = _cfg(ava_root, tmp_path / "out", "AVA.FRAME_DIR", str(frames_dir), "AVA.FRAME_LIST_DIR", str(lists),
                      "DATA.TARGET_FPS", "30", "DATA.SAMPLING_RATE", "6")
    from_frames = build_ava_dataset(folder_cfg, "train")
    assert from_frames.keyframes == from_videos.keyframes
    torch.manual_seed(0)
    a = from_videos[3]
    b = from_frames[3]
    assert torch.equal(a["labels"], b["labels"]) and torch.allclose(a["boxes"], b["boxes"])
    # The same frames up to the codecs (H.264 in the video, JPEG in the folder).
    assert (a["video"].float() - b["video"].float()).abs().mean() < 4


def test_bad_input_is_one_clear_line_or_counted(ava_root, tmp_path, caplog):
    notes = tmp_path / "notes"
    shutil.copytree(ava_root / "annotations", notes)
    with open(notes / "ava_train_v2.2.csv", "a") as f:
        f.write("ghost0000,0001,0.1,0.1,0.2,0.2,1,0\n")  # a video id with no video: dropped, counted
    cfg = _cfg(ava_root, tmp_path / "out", "AVA.ANNOTATION_DIR", str(notes))
    dataset = build_ava_dataset(cfg, "train")
    assert "1 video ids have no video file (e.g. ghost0000); their 1 keyframes are left out" in caplog.text
    assert all(key[0] != "ghost0000" for key in dataset.keyframes)
    with open(notes / "ava_train_v2.2.csv", "a") as f:
        f.write("train0000,0002,0.1,0.1,0.2,0.2,7,0\n")  # action 7 > MODEL.NUM_CLASSES 4
    lines = len((notes / "ava_train_v2.2.csv").read_text().splitlines())
    with pytest.raises(AnnotationError, match=rf"ava_train_v2.2.csv:{lines}: action id 7 outside 1..4"):
        build_ava_dataset(cfg, "train")
    # A keyframe past the end of its video: a failed load that names the keyframe.
    frames = VideoFrames({"v": str(ava_root / "videos" / "train0000.mp4")}, create_decoder("pyav"), time_offset=0)
    with pytest.raises(SampleLoadError, match="timestamp outside the video"):
        frames.clip("v", 99, 8, 2, 10.0)


@pytest.mark.slow
def test_train_test_and_exact_resume(ava_root, tmp_path):
    """Two epochs through the engine (validation frame mAP each epoch, then the test with its files); a run
    resumed from the epoch-1 checkpoint ends with the same weights as the uninterrupted one."""
    full = launch(_cfg(ava_root, tmp_path / "full", "TEST.ENABLE", "True"), do_train=True, do_test=True)
    assert 0.0 <= full["train"]["val_mAP"] <= 100.0 and full["test"]["mAP"] == pytest.approx(full["train"]["val_mAP"])
    out = tmp_path / "full"
    per_class = (out / "per_class_ap.csv").read_text().splitlines()
    assert per_class[0] == "id,name,ap,groundtruth,detections" and len(per_class) == 5
    detections = (out / "ava_detections.csv").read_text().splitlines()
    video, timestamp, *box, action, score = detections[0].split(",")
    assert video.startswith("val") and len(timestamp) == 4 and len(box) == 4 and 1 <= int(action) <= 4
    assert 0.0 <= float(score) <= 1.0
    # Resume: a new run that finds the epoch-1 checkpoint as its last one.
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copyfile(out / "checkpoints" / epoch_checkpoint_name(1), resumed / "checkpoints" / "last.pyth")
    launch(_cfg(ava_root, resumed, "TEST.ENABLE", "False"), do_train=True, do_test=False)
    a = load_checkpoint(str(out / "checkpoints" / "last.pyth"))["model_state"]
    b = load_checkpoint(str(resumed / "checkpoints" / "last.pyth"))["model_state"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_collate_pads_and_indexes_boxes():
    items = [
        {"video": torch.ones(3, 2, 4, 6), "boxes": torch.tensor([[0.0, 0, 2, 2]]), "labels": torch.tensor([[1.0, 0]]),
         "keyframe_index": 5, "failed": False, "failed_reads": 0},
        {"video": torch.ones(3, 2, 5, 4), "boxes": torch.tensor([[1.0, 1, 3, 3], [0, 0, 4, 5]]),
         "labels": torch.tensor([[0.0, 1], [1, 1]]), "keyframe_index": 2, "failed": False, "failed_reads": 0},
    ]
    batch = collate_detection(items)
    assert batch["video"].shape == (2, 3, 2, 5, 6) and batch["video"][0, :, :, 4].eq(0).all()
    assert batch["boxes"][:, 0].tolist() == [0, 1, 1] and batch["box_keyframe"].tolist() == [5, 2, 2]
    assert batch["box_index"].tolist() == [0, 0, 1] and batch["labels"].shape == (3, 2)


def test_ava_config_loads_and_needs_its_frames():
    cfg = load_config(str(ROOT / "configs" / "ava" / "rs3d_50.yaml"), ["AVA.VIDEO_DIR", "/data/ava/videos_15min"])
    assert cfg.TASK == "detection" and cfg.MODEL.NAME == "rs3d_50_detection" and cfg.AVA.VIDEO_TIME_OFFSET == 900
    from rs_image.errors import DataError

    with pytest.raises(DataError, match=r"AVA.VIDEO_DIR \(the folder of the videos\) or AVA.FRAME_DIR"):
        build_ava_dataset(load_config(str(ROOT / "configs" / "ava" / "rs3d_50.yaml"), []), "train")


@pytest.mark.slow
def test_detection_demo_runs_both_runs_test_sized(tmp_path):
    """The demo's code path at test size: both runs train and test through the engine, the rs3d detector's
    training loss falls, and the report has the three targets."""
    from rs_video.demo.run_detection import run_detection_demo

    result = run_detection_demo(
        ROOT / "configs" / "demo", tmp_path / "runs", data=tmp_path / "data", spec=TINY_SPEC,
        opts=["SOLVER.MAX_EPOCH", "3", "TRAIN.BATCH_SIZE", "4", "DATA_LOADER.NUM_WORKERS", "0",
              "DATA_LOADER.PERSISTENT_WORKERS", "False", "PROGRESS_BAR", "False", "TENSORBOARD", "False",
              "TRAIN.EVAL_PERIOD", "3"])
    assert [row.run.name for row in result.rows] == ["rs3d", "1frame"]
    assert result.rows[1].cfg.DATA.NUM_FRAMES == 1 and result.rows[0].cfg.DATA.NUM_FRAMES == 8
    assert all(0.0 <= row.test["mAP"] <= 100.0 for row in result.rows)
    assert len(result.checks()) == 3
    import json

    losses = [json.loads(line)["loss"] for line in (Path(result.rows[0].cfg.OUTPUT_DIR) / "metrics.jsonl").open()
              if json.loads(line).get("type") == "train_epoch"]
    assert len(losses) == 3 and losses[-1] < losses[0]

"""Fine-tuning data sets as downloaded (DATA.DATASET ucf101 / hmdb51 / ssv2): exact records, labels and class
lists from the data's own files, split selection, malformed lines naming file:line, missing videos counted
once, and one epoch of fine-tuning each from a saved Kinetics-shaped (400-class) checkpoint.

The annotation tests use empty placeholder videos (reading annotations only checks that files exist); the
fine-tuning tests write tiny real ones: MPEG-4 Part 2 in AVI (the codec of the UCF101 and HMDB51 downloads)
and VP9 in WebM (Something-Something v2's).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest
import torch

from rs_image.errors import DataNotFoundError
from rs_video.data import ANNOTATION_SOURCES, load_annotations
from rs_video.data.annotations import AnnotationError
from rs_video.data.sources.hmdb51 import load_hmdb51_split
from rs_video.data.sources.ssv2 import load_ssv2_split
from rs_video.data.sources.ucf101 import load_ucf101_split
from tests.videos import data_cfg

Rows = List[Tuple[str, int]]


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def relative(split, root: Path) -> Rows:
    return [(Path(r.path).relative_to(root).as_posix(), r.label) for r in split.records]


# ------------------------------------------------------------------------------------------------ UCF101
UCF_CLASSES = ["ApplyEyeMakeup", "Basketball", "HandstandPushups"]


def ucf_video(name: str, group: int) -> str:
    stem = "HandStandPushups" if name == "HandstandPushups" else name  # the official file-name quirk
    return f"{name}/v_{stem}_g{group:02d}_c01.avi"


def ucf101_tree(root: Path, make_video: Callable[[Path], None] = touch) -> Dict[int, Dict[str, Rows]]:
    """``root/UCF-101/<Class>/`` and ``root/ucfTrainTestlist/``: each class has groups 1-3; split n tests on
    group n and trains on the others. Returns, per split number, the expected train/test rows."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\r\n" for i, c in enumerate(UCF_CLASSES)))
    expected = {}
    for number in (1, 2, 3):
        train = [(ucf_video(c, g), i) for i, c in enumerate(UCF_CLASSES) for g in (1, 2, 3) if g != number]
        test = [(ucf_video(c, number), i) for i, c in enumerate(UCF_CLASSES)]
        (lists / f"trainlist{number:02d}.txt").write_text("".join(f"{p} {label + 1}\r\n" for p, label in train))
        (lists / f"testlist{number:02d}.txt").write_text("".join(f"{p}\r\n" for p, _ in test))
        expected[number] = {"train": train, "test": test}
    for path in sorted({p for rows in expected.values() for p, _ in rows["test"]}):
        make_video(root / "UCF-101" / path)
    return expected


def test_ucf101_records_labels_and_classes_per_split(tmp_path):
    expected = ucf101_tree(tmp_path)
    for number in (1, 2, 3):
        train = load_ucf101_split(str(tmp_path), "train", split_number=number)
        assert train.format == "ucf101" and train.class_names == UCF_CLASSES
        assert train.source == str(tmp_path / "ucfTrainTestlist" / f"trainlist{number:02d}.txt")
        assert relative(train, tmp_path / "UCF-101") == expected[number]["train"]
        for split in ("val", "test"):  # UCF101 has no validation set: val is the test list
            held_out = load_ucf101_split(str(tmp_path), split, split_number=number)
            assert relative(held_out, tmp_path / "UCF-101") == expected[number]["test"]
            assert held_out.source.endswith(f"testlist{number:02d}.txt")
    # The config path: DATA.DATASET ucf101 + DATA.SPLIT, videos found under DATA.PATH_PREFIX when set.
    cfg = data_cfg(tmp_path, DATA__DATASET="ucf101", DATA__SPLIT=2, MODEL__NUM_CLASSES=3)
    assert relative(load_annotations(cfg, "test"), tmp_path / "UCF-101") == expected[2]["test"]
    cfg = data_cfg(tmp_path, DATA__DATASET="ucf101", DATA__PATH_PREFIX=str(tmp_path / "UCF-101"), MODEL__NUM_CLASSES=3)
    assert relative(load_annotations(cfg, "train"), tmp_path / "UCF-101") == expected[1]["train"]
    with pytest.raises(AnnotationError, match=r"classInd.txt: 3 classes but MODEL.NUM_CLASSES=2"):
        load_annotations(data_cfg(tmp_path, DATA__DATASET="ucf101"), "train")


@pytest.mark.parametrize("file, line, message", [
    ("trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi",
     r"trainlist01.txt:2: expected '<Class>/<video>.avi <1-based label>'"),
    ("trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi 2",
     r"trainlist01.txt:2: label 2 but folder 'ApplyEyeMakeup' is class 1"),
    ("trainlist01.txt", "v_ApplyEyeMakeup_g02_c01.avi 1",
     r"trainlist01.txt:2: expected .* \(the folder names the class\)"),
    ("testlist01.txt", "Juggling/v_Juggling_g01_c01.avi",
     r"testlist01.txt:2: class folder 'Juggling' is not in classInd.txt"),
    ("testlist01.txt", "Basketball/v_Basketball_g01_c01.avi 2",
     r"testlist01.txt:2: expected '<Class>/<video>.avi', got"),
    ("classInd.txt", "3 Basketball", r"classInd.txt:2: expected index 2 \(indices count up from 1\)"),
])
def test_ucf101_malformed_line_names_file_and_line(tmp_path, file, line, message):
    ucf101_tree(tmp_path)
    path = tmp_path / "ucfTrainTestlist" / file
    lines = path.read_text().splitlines()
    lines[1] = line
    path.write_text("\n".join(lines) + "\n")
    split = "train" if file.startswith("train") else "test"
    with pytest.raises(AnnotationError, match=message) as info:
        load_ucf101_split(str(tmp_path), split)
    assert str(info.value).startswith(str(path))


def test_ucf101_missing_videos_counted_once_and_missing_lists_named(tmp_path, caplog):
    ucf101_tree(tmp_path)
    gone = tmp_path / "UCF-101" / ucf_video("Basketball", 1)
    gone.unlink()
    with caplog.at_level(logging.WARNING, logger="rs_video"):
        split = load_ucf101_split(str(tmp_path), "test")
    assert split.missing == [str(gone)] and len(split.records) == 2
    warnings = [r.getMessage() for r in caplog.records if "missing" in r.getMessage()]
    assert len(warnings) == 1 and "1 of 3 listed videos are missing" in warnings[0] and str(gone) in warnings[0]
    # the test-mode data set counts the missing video as one failure
    from rs_video.data import build_video_dataset

    cfg = data_cfg(tmp_path, DATA__DATASET="ucf101", MODEL__NUM_CLASSES=3, DATA__MAX_FAILURE_FRACTION=0.5)
    test_set = build_video_dataset(cfg, "test")
    assert test_set.num_videos == 2 and test_set.num_failed == 1 and test_set.missing == [str(gone)]
    import shutil

    shutil.rmtree(tmp_path / "UCF-101")
    with pytest.raises(AnnotationError, match=r"testlist01.txt: none of the 3 listed videos exists; searched "
                                              r".*UCF-101, .*videos, .* for <Class>/<video>"):
        load_ucf101_split(str(tmp_path), "test")
    (tmp_path / "ucfTrainTestlist" / "testlist03.txt").unlink()
    with pytest.raises(DataNotFoundError, match=r"no testlist03.txt in .*ucfTrainTestlist"):
        load_ucf101_split(str(tmp_path), "test", split_number=3)


# ------------------------------------------------------------------------------------------------ HMDB51
HMDB_CLASSES = ["brush_hair", "sword", "sword_exercise"]  # sorted as strings: "sword" before "sword_exercise"


def hmdb51_tree(root: Path, make_video: Callable[[Path], None] = touch) -> Dict[int, Dict[str, Rows]]:
    """``root/<class>/`` and ``root/testTrainMulti_7030_splits/``: each class has clips 0-3; split n tests
    on clip n-1, leaves clip 3 out (flag 0) and trains on the rest."""
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    expected = {}
    for number in (1, 2, 3):
        expected[number] = {"train": [], "test": []}
        for label, name in enumerate(HMDB_CLASSES):
            lines = []
            for clip in range(4):
                flag = 2 if clip == number - 1 else 0 if clip == 3 else 1
                video = f"{name}_clip_{clip}.avi"
                lines.append(f"{video} {flag} \n")  # the official files end lines with a space
                if flag:
                    expected[number]["train" if flag == 1 else "test"].append((f"{name}/{video}", label))
            (splits / f"{name}_test_split{number}.txt").write_text("".join(lines))
    for name in HMDB_CLASSES:
        for clip in range(4):
            make_video(root / name / f"{name}_clip_{clip}.avi")
    return expected


def test_hmdb51_records_labels_and_classes_per_split(tmp_path):
    expected = hmdb51_tree(tmp_path)
    for number in (1, 2, 3):
        train = load_hmdb51_split(str(tmp_path), "train", split_number=number)
        assert train.format == "hmdb51" and train.class_names == HMDB_CLASSES
        assert relative(train, tmp_path) == expected[number]["train"]
        for split in ("val", "test"):  # no validation set: val is the test videos (flag 2)
            assert relative(load_hmdb51_split(str(tmp_path), split, split_number=number), tmp_path) == \
                expected[number]["test"]
    cfg = data_cfg(tmp_path, DATA__DATASET="hmdb51", DATA__SPLIT=3, MODEL__NUM_CLASSES=3)
    assert relative(load_annotations(cfg, "train"), tmp_path) == expected[3]["train"]


def test_hmdb51_malformed_line_missing_split_file_and_missing_videos(tmp_path, caplog):
    hmdb51_tree(tmp_path)
    split_file = tmp_path / "testTrainMulti_7030_splits" / "sword_test_split1.txt"
    good = split_file.read_text()
    split_file.write_text(good.replace("sword_clip_2.avi 1", "sword_clip_2.avi 3"))
    with pytest.raises(AnnotationError, match=r"sword_test_split1.txt:3: expected '<video>.avi <0\|1\|2>'"):
        load_hmdb51_split(str(tmp_path), "train")
    split_file.write_text(good)
    (tmp_path / "testTrainMulti_7030_splits" / "sword_exercise_test_split2.txt").unlink()
    with pytest.raises(DataNotFoundError, match=r"sword_exercise_test_split2.txt: missing \(1 of 3 classes"):
        load_hmdb51_split(str(tmp_path), "train", split_number=2)
    gone = tmp_path / "brush_hair" / "brush_hair_clip_1.avi"
    gone.unlink()
    with caplog.at_level(logging.WARNING, logger="rs_video"):
        train = load_hmdb51_split(str(tmp_path), "train")
    assert train.missing == [str(gone)] and len(train.records) == 5
    warnings = [r.getMessage() for r in caplog.records if "missing" in r.getMessage()]
    assert len(warnings) == 1 and "1 of 6 listed videos are missing" in warnings[0]


# ---------------------------------------------------------------------------------- Something-Something v2
SSV2_LABELS = {
    "Approaching something with your camera": "0",
    "Pushing something from left to right": "1",
    "Putting something similar to other things that are already on the table": "2",
}
SSV2_TEMPLATES = ["Approaching [something] with your camera", "Pushing [something] from left to right",
                  "Putting [something similar to other things that are already on the table]"]


def ssv2_tree(root: Path, make_video: Callable[[Path], None] = touch, prefixed: bool = False) -> Dict[str, Rows]:
    """``root/labels/*.json`` (or ``root/something-something-v2-*.json``) and
    ``root/20bn-something-something-v2/<id>.webm``; train ids 100-105, validation ids 200-202."""
    labels = root if prefixed else root / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    prefix = "something-something-v2-" if prefixed else ""
    (labels / f"{prefix}labels.json").write_text(json.dumps(SSV2_LABELS, indent=1))
    expected = {}
    for split, file, first, count in (("train", "train.json", 100, 6), ("val", "validation.json", 200, 3)):
        entries = [{"id": str(first + k), "label": "a label with its objects", "template": SSV2_TEMPLATES[k % 3],
                    "placeholders": ["cup"]} for k in range(count)]
        (labels / f"{prefix}{file}").write_text(json.dumps(entries, indent=1))  # an entry spans several lines
        expected[split] = [(f"{first + k}.webm", k % 3) for k in range(count)]
        for name, _ in expected[split]:
            make_video(root / "20bn-something-something-v2" / name)
    return expected


@pytest.mark.parametrize("prefixed", [False, True])
def test_ssv2_records_labels_and_classes(tmp_path, prefixed):
    expected = ssv2_tree(tmp_path, prefixed=prefixed)
    videos = tmp_path / "20bn-something-something-v2"
    train = load_ssv2_split(str(tmp_path), "train")
    assert train.format == "ssv2" and train.class_names == list(SSV2_LABELS)
    assert relative(train, videos) == expected["train"]
    for split in ("val", "test"):  # test labels are not published: test is the validation set
        held_out = load_ssv2_split(str(tmp_path), split)
        assert relative(held_out, videos) == expected["val"] and held_out.source.endswith("validation.json")


def test_ssv2_malformed_entries_name_file_and_line_and_missing_videos(tmp_path, caplog):
    ssv2_tree(tmp_path)
    train_file = tmp_path / "labels" / "train.json"
    entries = json.loads(train_file.read_text())
    entries[4]["template"] = "Pushing [something] from right to left"
    train_file.write_text(json.dumps(entries, indent=1))
    starts = [i + 1 for i, text in enumerate(train_file.read_text().splitlines()) if text == " {"]
    line = starts[4]  # where entry 4 starts
    with pytest.raises(AnnotationError, match=rf"train.json:{line}: template 'Pushing \[something\] from right "
                                              r"to left' \('Pushing something from right to left' without"):
        load_ssv2_split(str(tmp_path), "train")
    del entries[4]["template"]
    train_file.write_text(json.dumps(entries, indent=1))
    with pytest.raises(AnnotationError, match=rf"train.json:{line}: expected an entry with a string 'id' and"):
        load_ssv2_split(str(tmp_path), "train")
    train_file.write_text(train_file.read_text()[:-10])
    with pytest.raises(AnnotationError, match=r"train.json:\d+: not valid JSON"):
        load_ssv2_split(str(tmp_path), "train")
    (tmp_path / "labels" / "labels.json").write_text(json.dumps({"a": "0", "b": "2"}))
    with pytest.raises(AnnotationError, match=r"labels.json: class indices must be 0..1"):
        load_ssv2_split(str(tmp_path), "val")
    (tmp_path / "labels" / "labels.json").write_text(json.dumps(SSV2_LABELS))
    (tmp_path / "20bn-something-something-v2" / "201.webm").unlink()
    with caplog.at_level(logging.WARNING, logger="rs_video"):
        val = load_ssv2_split(str(tmp_path), "val")
    assert val.missing == [str(tmp_path / "20bn-something-something-v2" / "201.webm")] and len(val.records) == 2
    assert sum("1 of 3 listed videos are missing" in r.getMessage() for r in caplog.records) == 1


def test_ssv2_flip_warning_and_split_rule(tmp_path, caplog):
    ssv2_tree(tmp_path)
    with caplog.at_level(logging.WARNING, logger="rs_video"):
        load_annotations(data_cfg(tmp_path, DATA__DATASET="ssv2", MODEL__NUM_CLASSES=3), "train")
    assert sum("DATA.RANDOM_FLIP is on for DATA.DATASET ssv2" in r.getMessage() for r in caplog.records) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rs_video"):
        load_annotations(data_cfg(tmp_path, DATA__DATASET="ssv2", MODEL__NUM_CLASSES=3, DATA__RANDOM_FLIP=False),
                         "train")
    assert not [r for r in caplog.records if "RANDOM_FLIP" in r.getMessage()]
    from rs_image.engine import ConfigError, load_config

    assert [n for n, s in ANNOTATION_SOURCES.items() if s.splits == (1, 2, 3)] == ["ucf101", "hmdb51"]
    with pytest.raises(ConfigError, match=r"'DATA.SPLIT' = 2: must be an official split of DATA.DATASET: kinetics 1,"):
        load_config(None, ["TASK", "video", "DATA.DATASET", "ssv2", "DATA.SPLIT", "2"])
    with pytest.raises(ConfigError, match=r"'DATA.DATASET' = 'ucf' is not one of 'kinetics', 'ucf101'"):
        load_config(None, ["TASK", "video", "DATA.DATASET", "ucf"])


# ------------------------------------------------------------------------------ fine-tuning from Kinetics
@pytest.fixture(scope="module")
def kinetics_checkpoint(tmp_path_factory) -> Path:
    """``last.pyth`` of a (one-step) 400-class training run of the tiny rs3d_50, as the video task writes it."""
    from rs_image.engine import Trainer, load_config
    from tests.helpers import TensorVideoTask, tiny_opts

    out = tmp_path_factory.mktemp("kinetics")
    cfg = load_config(None, tiny_opts(out, "video", "MODEL.NUM_CLASSES", "400", "TRAIN.MAX_STEPS_PER_EPOCH", "1",
                                      "TRAIN.EVAL_PERIOD", "0"))
    Trainer(cfg, TensorVideoTask(num_train=2)).train()
    return out / "checkpoints" / "last.pyth"


def _mpeg4_avi(path: Path) -> None:
    from tests.videos import write_video

    write_video(path, num_frames=16, fps=25, width=64, height=48, codec="mpeg4")


def _vp9_webm(path: Path) -> None:
    from tests.videos import write_video

    write_video(path, num_frames=16, fps=12, width=64, height=48)


FINE_TUNE = {  # builder, video writer, extra options, (train videos, held-out videos)
    "ucf101": (ucf101_tree, _mpeg4_avi, ["DATA.SPLIT", "2"], (6, 3)),
    "hmdb51": (hmdb51_tree, _mpeg4_avi, ["DATA.SPLIT", "2"], (6, 3)),
    "ssv2": (ssv2_tree, _vp9_webm, ["DATA.RANDOM_FLIP", "False", "DATA.TARGET_FPS", "12"], (6, 3)),
}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", list(FINE_TUNE))
def test_one_epoch_fine_tune_from_a_kinetics_checkpoint(tmp_path, kinetics_checkpoint, dataset, caplog):
    pytest.importorskip("av")
    from rs_image.engine import Trainer, load_config, run_test
    from rs_image.engine.checkpoint import load_checkpoint
    from tests.helpers import tiny_opts

    build, write, extra, (num_train, num_held_out) = FINE_TUNE[dataset]
    data = tmp_path / "data"
    build(data, make_video=write)
    opts = tiny_opts(tmp_path / "out", "video", "DATA.DATASET", dataset, "DATA.PATH_TO_DATA_DIR", str(data),
                     "MODEL.NUM_CLASSES", "3", "TRAIN.CHECKPOINT_FILE_PATH", str(kinetics_checkpoint),
                     "DATA.TRAIN_JITTER_SCALES", "[32, 40]", "TRAIN.EVAL_PERIOD", "1", "DATA.DECODER", "pyav",
                     "TEST.NUM_ENSEMBLE_VIEWS", "1", "TRAIN.BATCH_SIZE", "3", *extra)
    cfg = load_config(None, opts)
    kinetics = load_checkpoint(kinetics_checkpoint)
    ema, raw = kinetics["ema_state"]["stem.conv1.weight"], kinetics["model_state"]["stem.conv1.weight"]
    assert not torch.equal(ema, raw) and kinetics["model_state"]["head.fc.weight"].shape[0] == 400
    with caplog.at_level(logging.INFO, logger="rs_image"):
        trainer = Trainer(cfg)
    assert torch.equal(trainer.model.stem.conv1.weight.detach(), ema)  # the EMA weights, not model_state
    assert trainer.model.head.fc.out_features == 3
    assert any("dropped the 400-class classifier" in r.getMessage() for r in caplog.records)
    assert len(trainer.train_set) == num_train and trainer.train_set.class_names is not None
    metrics = trainer.train()
    assert metrics["val_num_samples"] == num_held_out
    state = load_checkpoint(tmp_path / "out" / "checkpoints" / "last.pyth")
    assert state["epoch"] == 1 and state["global_step"] == num_train // 3  # batch 3
    assert state["model_state"]["head.fc.weight"].shape == (3, kinetics["model_state"]["head.fc.weight"].shape[1])
    summary = run_test(cfg)
    assert (summary.num_samples, summary.num_evaluated, summary.num_failed) == (num_held_out, num_held_out, 0)


def test_fine_tune_configs_start_from_kinetics_with_the_rs_regularisation():
    from rs_image.engine import load_config

    root = Path(__file__).resolve().parents[2]
    kinetics = load_config(root / "configs" / "kinetics" / "rs3d_50.yaml")
    expected = {"ucf101/rs3d_50_ft.yaml": ("ucf101", 101), "hmdb51/rs3d_50_ft.yaml": ("hmdb51", 51),
                "ssv2/rs3d_50.yaml": ("ssv2", 174)}
    for name, (dataset, num_classes) in expected.items():
        cfg = load_config(root / "configs" / name)
        assert (cfg.DATA.DATASET, cfg.MODEL.NUM_CLASSES, cfg.MODEL.NAME) == (dataset, num_classes, "rs3d_50"), name
        assert cfg.TRAIN.CHECKPOINT_FILE_PATH == f"{kinetics.OUTPUT_DIR}/checkpoints/last.pyth", name
        assert not cfg.TRAIN.CHECKPOINT_INFLATE, name
        per_sample, kinetics_per_sample = (c.SOLVER.BASE_LR / c.SOLVER.BASE_BATCH_SIZE for c in (cfg, kinetics))
        assert per_sample < kinetics_per_sample / 3 and cfg.SOLVER.MAX_EPOCH < kinetics.SOLVER.MAX_EPOCH, name
        assert (cfg.MODEL.DROPOUT_RATE, cfg.MODEL.DROP_PATH_RATE, cfg.SOLVER.LABEL_SMOOTHING) == (0.5, 0.1, 0.1), name
        assert cfg.EMA.ENABLE and cfg.EMA.DECAY == kinetics.EMA.DECAY and cfg.BN.MOMENTUM == kinetics.BN.MOMENTUM
        assert cfg.DATA.RANDOM_FLIP == (dataset != "ssv2"), name

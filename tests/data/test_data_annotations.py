"""Annotations: path-label lists, official Kinetics CSVs (+ flat or per-class video folders), class trees,
the download layouts people have, and one epoch of training on two of them.

Annotation loading only checks that files exist, so most tests use empty placeholder files; the training
tests write tiny real videos.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from rs_video.data import AnnotationError, load_kinetics_split

HEADER = "label,youtube_id,time_start,time_end,split\n"


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# ------------------------------------------------------------------------------------- (a) lists


def test_path_label_list_relative_to_the_list_and_with_prefix(tmp_path):
    touch(tmp_path / "clips" / "a b.mp4")  # spaces in paths work: the label is the last field
    touch(tmp_path / "clips" / "c.webm")
    (tmp_path / "train.csv").write_text("# comment\nclips/a b.mp4 3\n\nclips/c.webm\t0\n")
    split = load_kinetics_split(str(tmp_path), "train")
    assert split.format == "list" and split.class_names is None
    assert [(Path(r.path).name, r.label) for r in split.records] == [("a b.mp4", 3), ("c.webm", 0)]
    assert Path(split.records[0].path).parent == tmp_path / "clips"

    prefixed = tmp_path / "elsewhere"
    touch(prefixed / "clips" / "a b.mp4")
    touch(prefixed / "clips" / "c.webm")
    split = load_kinetics_split(str(tmp_path), "train", path_prefix=str(prefixed))
    assert all(r.path.startswith(str(prefixed)) for r in split.records)


def test_list_takes_class_names_from_classids_json(tmp_path):
    touch(tmp_path / "a.mp4")
    (tmp_path / "train.csv").write_text("a.mp4 1\n")
    (tmp_path / "classids.json").write_text(json.dumps({"jump": 1, "run": 0}))
    assert load_kinetics_split(str(tmp_path), "train").class_names == ["run", "jump"]
    (tmp_path / "train.csv").write_text("a.mp4 2\n")
    with pytest.raises(AnnotationError, match="label 2 has no name"):
        load_kinetics_split(str(tmp_path), "train")


def test_custom_separator_and_validate_alias(tmp_path):
    touch(tmp_path / "v1.mp4")
    (tmp_path / "validate.csv").write_text("v1.mp4,1\n")
    split = load_kinetics_split(str(tmp_path), "val", separator=",")
    assert [(Path(r.path).name, r.label) for r in split.records] == [("v1.mp4", 1)]


@pytest.mark.parametrize(
    "line, message",
    [
        ("only_a_path.mp4", "expected '<path> <integer label>'"),
        ("video.mp4 walking", "label 'walking' is not an integer"),
        ("video.mp4 7", r"label 7 outside \[0, 5\)"),
        ("spaghetti,--3ouPhoy2A,20,30,train", "official Kinetics CSVs need their header"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, message):
    touch(tmp_path / "ok.mp4")
    (tmp_path / "train.csv").write_text(f"ok.mp4 1\nok.mp4 2\n{line}\n")
    with pytest.raises(AnnotationError, match=message) as info:
        load_kinetics_split(str(tmp_path), "train", num_classes=5)
    assert f"{tmp_path / 'train.csv'}:3:" in str(info.value)


def test_missing_videos_are_dropped_and_summarised_in_one_line(tmp_path, caplog):
    touch(tmp_path / "here.mp4")
    (tmp_path / "train.csv").write_text("here.mp4 0\ngone1.mp4 1\ngone2.mp4 1\n")
    with caplog.at_level(logging.WARNING):
        split = load_kinetics_split(str(tmp_path), "train")
    assert len(split.records) == 1 and len(split.missing) == 2
    lines = [r.getMessage() for r in caplog.records if "missing" in r.getMessage()]
    assert len(lines) == 1 and "2 of 3 listed videos are missing" in lines[0] and "gone1.mp4" in lines[0]


def test_nothing_found_and_nothing_existing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no annotations for split 'test'"):
        load_kinetics_split(str(tmp_path), "test")
    (tmp_path / "train.csv").write_text("gone.mp4 0\n")
    with pytest.raises(AnnotationError, match="none of the 1 listed videos exists"):
        load_kinetics_split(str(tmp_path), "train")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_kinetics_split(str(tmp_path / "nope"), "train")


# ------------------------------------------------------------------------------- (b) Kinetics CSVs


def kinetics_layout(root: Path, per_class: bool) -> None:
    (root / "train.csv").write_text(
        HEADER
        + "zumba,aaa,0,10,train\n"
        + "abseiling,bbb,20,30,train\n"
        + '"passing American football (in game)",ccc,5,15,train\n'
        + "zumba,ddd,1,11,train\n"
    )
    (root / "validate.csv").write_text(HEADER + "bowling,eee,3,13,val\n" + "zumba,fff,0,10,val\n")
    videos = {"train": [("zumba", "aaa_000000_000010.mp4"), ("abseiling", "bbb_000020_000030.mkv"),
                        ("passing American football (in game)", "ccc_000005_000015.webm")],
              "val": [("bowling", "eee_000003_000013.mp4"), ("zumba", "fff_000000_000010.mp4")]}
    for split, entries in videos.items():
        for label, name in entries:
            touch(root / split / (label if per_class else "") / name)


@pytest.mark.parametrize("per_class", [False, True])
def test_official_kinetics_csv_flat_or_per_class(tmp_path, per_class, caplog):
    kinetics_layout(tmp_path, per_class)
    with caplog.at_level(logging.WARNING):
        train = load_kinetics_split(str(tmp_path), "train")
    val = load_kinetics_split(str(tmp_path), "val")
    assert train.format == "kinetics_csv"
    # One sorted class list over all splits (bowling only occurs in val), saved beside the data.
    classes = ["abseiling", "bowling", "passing American football (in game)", "zumba"]
    assert json.loads((tmp_path / "classids.json").read_text()) == {n: i for i, n in enumerate(classes)}
    assert train.class_names == val.class_names == classes
    assert [(Path(r.path).name, r.label) for r in train.records] == [
        ("aaa_000000_000010.mp4", 3), ("bbb_000020_000030.mkv", 0), ("ccc_000005_000015.webm", 2)]
    assert [r.label for r in val.records] == [1, 3]
    assert len(train.missing) == 1 and train.missing[0].endswith("ddd_000001_000011.mp4")
    assert sum("1 of 4 listed videos are missing" in r.getMessage() for r in caplog.records) == 1


def test_existing_classids_json_wins_and_unknown_classes_are_errors(tmp_path):
    kinetics_layout(tmp_path, per_class=False)
    order = ["zumba", "passing American football (in game)", "bowling", "abseiling"]
    (tmp_path / "classids.json").write_text(json.dumps({n: i for i, n in enumerate(order)}))
    train = load_kinetics_split(str(tmp_path), "train")
    assert [r.label for r in train.records] == [0, 3, 1]
    (tmp_path / "classids.json").write_text(json.dumps({"zumba": 0}))
    with pytest.raises(AnnotationError, match="classids.json: has no entry for classes"):
        load_kinetics_split(str(tmp_path), "train")


def test_malformed_kinetics_row_and_unlabelled_test_csv(tmp_path):
    (tmp_path / "train.csv").write_text(HEADER + "zumba,aaa,0,10,train\nzumba,bbb,zero,10,train\n")
    with pytest.raises(AnnotationError, match=r"train.csv:3: time_start/time_end are not numbers"):
        load_kinetics_split(str(tmp_path), "train")
    (tmp_path / "train.csv").write_text(HEADER + "zumba,aaa,0,10\n")
    with pytest.raises(AnnotationError, match=r"train.csv:2: expected 5 comma-separated fields"):
        load_kinetics_split(str(tmp_path), "train")
    (tmp_path / "train.csv").unlink()
    (tmp_path / "test.csv").write_text("youtube_id,time_start,time_end,split\nqqq,4,14,test\n")
    touch(tmp_path / "videos" / "qqq_000004_000014.mp4")
    test = load_kinetics_split(str(tmp_path), "test")
    assert [(Path(r.path).name, r.label) for r in test.records] == [("qqq_000004_000014.mp4", -1)]


# ----------------------------------------------------------------------------------- (c) class trees


def test_class_folder_tree_with_mkv_and_webm(tmp_path):
    for split, entries in {"train": [("b_class", "x.mkv"), ("a_class", "y.webm"), ("a_class", "z.mp4")],
                           "val": [("c_class", "v.mp4")]}.items():
        for label, name in entries:
            touch(tmp_path / split / label / name)
    touch(tmp_path / "train" / "a_class" / "notes.txt")  # not a video
    train = load_kinetics_split(str(tmp_path), "train")
    val = load_kinetics_split(str(tmp_path), "val")
    assert train.format == "class_folders" and train.class_names == ["a_class", "b_class", "c_class"]
    assert [(Path(r.path).name, r.label) for r in train.records] == [("y.webm", 0), ("z.mp4", 0), ("x.mkv", 1)]
    assert [r.label for r in val.records] == [2]


def test_tree_without_split_folders_is_used_for_any_split(tmp_path):
    touch(tmp_path / "dancing" / "1.mp4")
    touch(tmp_path / "archery" / "2.mkv")
    split = load_kinetics_split(str(tmp_path), "test")
    assert [r.label for r in split.records] == [0, 1]



def test_reserved_folder_in_a_class_tree_is_an_error_naming_it(tmp_path):
    touch(tmp_path / "dancing" / "1.mp4")
    touch(tmp_path / "videos" / "2.mp4")  # no annotation files: DIR/videos must not become a class
    with pytest.raises(AnnotationError, match="reserved folder name") as info:
        load_kinetics_split(str(tmp_path), "train")
    assert str(info.value).startswith(f"{tmp_path / 'videos'}: {tmp_path} holds no annotation files")
    assert not (tmp_path / "classids.json").exists()

    split_tree = tmp_path / "split_tree"
    touch(split_tree / "train" / "dancing" / "1.mp4")
    touch(split_tree / "train" / "val" / "2.mp4")  # a val folder inside train is not a class "val"
    touch(split_tree / "val" / "dancing" / "3.mp4")
    for split in ("train", "val"):  # val's class list reads train's tree too
        with pytest.raises(AnnotationError, match="'val' is a reserved folder name") as info:
            load_kinetics_split(str(split_tree), split)
        assert str(info.value).startswith(f"{split_tree / 'train' / 'val'}: {split_tree / 'train'} was read as")


# ------------------------------------------------------------------------- the layouts people download


def official_without_test(root: Path) -> None:
    """DIR/{train,val}.csv, videos under DIR/videos/{split}/<class>/, no test split."""
    (root / "train.csv").write_text(HEADER + "zumba,aaa,0,10,train\nabseiling,bbb,2,12,train\n")
    (root / "val.csv").write_text(HEADER + "bowling,ccc,3,13,val\n")
    touch(root / "videos" / "train" / "zumba" / "aaa_000000_000010.mp4")
    touch(root / "videos" / "train" / "abseiling" / "bbb_000002_000012.mkv")
    touch(root / "videos" / "val" / "bowling" / "ccc_000003_000013.webm")


def test_official_csvs_without_test_split_never_read_videos_as_a_class(tmp_path):
    official_without_test(tmp_path)
    train = load_kinetics_split(str(tmp_path), "train", num_classes=3)
    val = load_kinetics_split(str(tmp_path), "val", num_classes=3)
    assert json.loads((tmp_path / "classids.json").read_text()) == {"abseiling": 0, "bowling": 1, "zumba": 2}
    assert [(Path(r.path).relative_to(tmp_path).as_posix(), r.label) for r in train.records] == [
        ("videos/train/zumba/aaa_000000_000010.mp4", 2), ("videos/train/abseiling/bbb_000002_000012.mkv", 0)]
    assert [r.label for r in val.records] == [1]
    with pytest.raises(FileNotFoundError, match="no annotations for split 'test'") as info:
        load_kinetics_split(str(tmp_path), "test")
    assert f"it has {tmp_path / 'train.csv'}, {tmp_path / 'val.csv'} for other splits" in str(info.value)


def download_layout(root: Path) -> None:
    """The common download: DIR/annotations/{train,val,test}.csv, flat DIR/{train,val,test}/."""
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "train.csv").write_text(HEADER + "zumba,aaa,0,10,train\nabseiling,bbb,2,12,train\n")
    (root / "annotations" / "val.csv").write_text(HEADER + "bowling,ccc,3,13,val\n")
    (root / "annotations" / "test.csv").write_text(HEADER + "zumba,ddd,1,11,test\n")
    for split, name in [("train", "aaa_000000_000010.mp4"), ("train", "bbb_000002_000012.webm"),
                        ("val", "ccc_000003_000013.mp4"), ("test", "ddd_000001_000011.mkv")]:
        touch(root / split / name)


def test_annotations_folder_with_flat_split_folders(tmp_path):
    download_layout(tmp_path)
    train = load_kinetics_split(str(tmp_path), "train", num_classes=3)
    assert train.source == str(tmp_path / "annotations" / "train.csv") and train.format == "kinetics_csv"
    assert [(Path(r.path).relative_to(tmp_path).as_posix(), r.label) for r in train.records] == [
        ("train/aaa_000000_000010.mp4", 2), ("train/bbb_000002_000012.webm", 0)]
    assert [r.label for r in load_kinetics_split(str(tmp_path), "test").records] == [2]
    assert json.loads((tmp_path / "classids.json").read_text()) == {"abseiling": 0, "bowling": 1, "zumba": 2}
    # An unlabelled official test CSV (no label column) still loads, with label -1.
    (tmp_path / "annotations" / "test.csv").write_text("youtube_id,time_start,time_end,split\nddd,1,11,test\n")
    assert [r.label for r in load_kinetics_split(str(tmp_path), "test").records] == [-1]


def test_listed_videos_searched_in_split_folders_and_named_when_none_exists(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "val.csv").write_text(HEADER + "bowling,ccc,3,13,val\n")
    touch(tmp_path / "train" / "ccc_000003_000013.mp4")  # another split's folder is not searched
    (tmp_path / "videos" / "val").mkdir(parents=True)
    with pytest.raises(AnnotationError, match="none of the 1 listed videos exists") as info:
        load_kinetics_split(str(tmp_path), "val")
    message = str(info.value)
    assert message.startswith(str(tmp_path / "annotations" / "val.csv"))
    assert f"searched {tmp_path / 'videos' / 'val'}, {tmp_path / 'videos'}, {tmp_path} and their class" in message
    assert "<youtube_id>_<start:06d>_<end:06d>.mp4/.mkv/.webm" in message
    # Found in a per-class folder of DIR/val, preferred to a copy directly in DIR.
    touch(tmp_path / "val" / "bowling" / "ccc_000003_000013.mp4")
    touch(tmp_path / "ccc_000003_000013.mp4")
    val = load_kinetics_split(str(tmp_path), "val")
    assert [Path(r.path).relative_to(tmp_path).as_posix() for r in val.records] == [
        "val/bowling/ccc_000003_000013.mp4"]


@pytest.mark.parametrize("layout", ["official_without_test", "download_layout"])
def test_one_epoch_of_training_on_real_videos_with_the_right_class_list(tmp_path, layout):
    pytest.importorskip("av")
    from rs_image.engine import Trainer, load_config
    from rs_image.engine.checkpoint import load_checkpoint
    from tests.helpers import tiny_opts
    from tests.videos import write_video

    data = tmp_path / "data"
    data.mkdir()
    {"official_without_test": official_without_test, "download_layout": download_layout}[layout](data)
    for placeholder in sorted(p for p in data.rglob("*") if p.suffix in (".mp4", ".mkv", ".webm")):
        write_video(placeholder, num_frames=20, width=64, height=48, fps=30)  # a real file in its place
    cfg = load_config(None, tiny_opts(
        tmp_path / "out", "video", "DATA.PATH_TO_DATA_DIR", str(data), "MODEL.NUM_CLASSES", "3",
        "DATA.TRAIN_JITTER_SCALES", "[32, 40]", "TRAIN.EVAL_PERIOD", "1", "DATA.DECODER", "pyav",
    ))
    metrics = Trainer(cfg).train()
    assert json.loads((data / "classids.json").read_text()) == {"abseiling": 0, "bowling": 1, "zumba": 2}
    assert metrics["val_num_samples"] == 1
    state = load_checkpoint(tmp_path / "out" / "checkpoints" / "last.pyth")
    assert state["epoch"] == 1 and state["global_step"] == 1  # 2 training videos, batch 2
    assert state["model_state"]["head.fc.weight"].shape[0] == 3

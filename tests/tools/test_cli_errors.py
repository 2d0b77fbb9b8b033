"""Expected user errors end a CLI with one clear line on stderr and exit status 2, without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rs_image.engine.launch import test_main as cli_test, train_main as cli_train
from rs_image.errors import DataError, one_line
from tests.images import jpeg_folder
from tests.helpers import fails_with as _fails_with, tiny_opts
from tests.videos import list_dataset, write_list

ROOT = Path(__file__).resolve().parents[2]


def test_no_weights_to_test(tmp_path, capsys):
    data = list_dataset(tmp_path / "data", splits=("test",), num_videos=2)
    _fails_with(cli_test, tiny_opts(tmp_path / "out", "video", "DATA.PATH_TO_DATA_DIR", str(data)), capsys,
                "test_net: error: no weights to test", str(tmp_path / "out" / "checkpoints"))


def test_wrong_data_folders(tmp_path, capsys):
    _fails_with(cli_train, tiny_opts(tmp_path / "out", "video", "DATA.PATH_TO_DATA_DIR", str(tmp_path / "nope")),
                capsys, "train_net: error: DATA.PATH_TO_DATA_DIR", "is not a folder")
    (tmp_path / "empty").mkdir()
    _fails_with(cli_train, tiny_opts(tmp_path / "out", "video", "DATA.PATH_TO_DATA_DIR", str(tmp_path / "empty")),
                capsys, "no annotations for split 'train'")
    _fails_with(cli_train, tiny_opts(tmp_path / "out", "image", "DATA.PATH_TO_DATA_DIR", str(tmp_path / "empty")),
                capsys, "no train/ folder for split 'train'")


def test_class_count_mismatch(tmp_path, capsys):
    data = jpeg_folder(tmp_path / "images", {"train": 1}, classes=5)
    _fails_with(cli_train, tiny_opts(tmp_path / "out", "image", "DATA.PATH_TO_DATA_DIR", str(data)), capsys,
                "has 5 classes but MODEL.NUM_CLASSES is 4")


def test_malformed_annotation_line(tmp_path, capsys):
    data = list_dataset(tmp_path / "data", splits=("train",), num_videos=2)
    with open(data / "train.csv", "a") as f:
        f.write("videos/train_0.mp4 not-a-label\n")
    _fails_with(cli_train, tiny_opts(tmp_path / "out", "video", "DATA.PATH_TO_DATA_DIR", str(data)), capsys,
                f"{data / 'train.csv'}:3: label 'not-a-label' is not an integer")


def test_missing_config_file_and_unknown_model(tmp_path, capsys):
    _fails_with(cli_train, ["--cfg", str(tmp_path / "nope.yaml")], capsys, "Config file not found")
    data = list_dataset(tmp_path / "data", splits=("train",), num_videos=2)
    _fails_with(cli_train, tiny_opts(tmp_path / "out", "video", "DATA.PATH_TO_DATA_DIR", str(data),
                                      "MODEL.NAME", "rs3d_5O", "TRAIN.EVAL_PERIOD", "0"), capsys, "unknown video model 'rs3d_5O'", "rs3d_50")


@pytest.mark.slow
def test_a_real_cli_run_prints_one_line_and_exits_2(tmp_path):
    write_list(tmp_path / "train.csv", [("missing.mp4", 0)])  # listed, but no video exists
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "train_net.py"), *tiny_opts(tmp_path / "out", "video"),
         "DATA.PATH_TO_DATA_DIR", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"train_net: error: {tmp_path / 'train.csv'}: none of the 1 listed videos exists"
        + done.stderr.strip().split("none of the 1 listed videos exists", 1)[1]
    ]
    assert "Warning" not in done.stdout + done.stderr  # a normal start shows no warning the user cannot act on


def test_one_line_keeps_the_original_message_of_a_worker_error():
    wrapped = DataError(
        "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nrs_image.errors.DataError: x.csv:3: bad label'
    )
    assert one_line(wrapped) == "x.csv:3: bad label"
    assert one_line(DataError("a\n  b")) == "a b"

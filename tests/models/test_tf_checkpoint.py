"""The TensorFlow-free TF2 checkpoint reader (rs_image.models.weights.tf_checkpoint), on the checkpoint that
TF Model Garden's trainer wrote for ``tests/fixtures/mg_resnet3drs`` (its ``metadata.json`` lists every entry
as ``tf.train.load_checkpoint`` saw it), and on damaged copies of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rs_image.models.weights import TFCheckpoint, TFCheckpointError, WeightsError, read_tf_checkpoint
from rs_image.models.weights.files import read_weights_file
from rs_image.models.weights.tf_checkpoint import crc32c

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mg_resnet3drs"
CKPT = FIXTURE / "ckpt"
PREFIX = CKPT / "ckpt-2"
DATA = CKPT / "ckpt-2.data-00000-of-00001"
ATTR = "/.ATTRIBUTES/VARIABLE_VALUE"
TF_DTYPES = {1: "float32", 7: "string", 9: "int64"}


@pytest.fixture(scope="module")
def metadata():
    with open(FIXTURE / "metadata.json") as f:
        return json.load(f)


def _copy(tmp_path: Path, name: str = "ckpt-2") -> Path:
    """The fixture checkpoint copied to ``tmp_path`` under the prefix ``name``."""
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(str(PREFIX) + suffix, tmp_path / f"{name}{suffix}")
    return tmp_path / name


def _bitwise_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def test_crc32c_matches_the_definition():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    rng = np.random.default_rng(0)
    for size in (0, 1, 65535, 65536, 70001, 131072 + 7):  # byte loop and the chunked numpy path
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert crc32c(data) == _bitwise_crc32c(data), size


def test_index_lists_every_entry_as_tensorflow_does(metadata):
    ckpt = TFCheckpoint(PREFIX)
    expected = metadata["checkpoint"]["entries"]
    assert len(expected) == 586 and sorted(ckpt.keys()) == sorted(expected)
    for key, entry in expected.items():
        assert list(ckpt.shape(key)) == entry["shape"], key
        assert TF_DTYPES[ckpt.entries[key].dtype] == entry["dtype"], key


def test_every_tensor_reads_with_its_checksum(metadata):
    ckpt = TFCheckpoint(PREFIX, verify=True)
    numeric = [k for k in ckpt.keys() if ckpt.is_numeric(k)]
    assert len(numeric) == 585  # all but the object graph (a string)
    for key in numeric:
        tensor = ckpt.read(key)
        assert list(tensor.shape) == metadata["checkpoint"]["entries"][key]["shape"]
    assert ckpt.read("global_step" + ATTR).item() == metadata["global_step"] == 2


def test_variables_and_ema_averages():
    ckpt = TFCheckpoint(PREFIX)
    state = read_tf_checkpoint(PREFIX)
    model, ema = state["model_state"], state["ema_state"]
    # 216 model variables (every one with an 'average' slot: trainable_weights_only false) + bookkeeping.
    assert len(model) == len(ema) == 221 and set(model) == set(ema)
    assert not any(".OPTIMIZER_SLOT" in k for k in model)  # momentum slots are optimizer state
    kernel = "backbone/layer_with_weights-0/kernel"
    average = ckpt.read(kernel + "/.OPTIMIZER_SLOT/optimizer/average" + ATTR)
    assert torch.equal(model[kernel], ckpt.read(kernel + ATTR)) and torch.equal(ema[kernel], average)
    assert not torch.equal(ema[kernel], model[kernel])
    assert torch.equal(ema["global_step"], model["global_step"])  # not averaged: kept


def test_ema_checkpointing_file_holds_the_averages_in_its_variables(tmp_path):
    # MG's EMACheckpointing swaps before saving ema_checkpoints/average_weights-N: there the variables
    # are the averages and the 'average' slots the raw weights.
    plain = read_tf_checkpoint(PREFIX)
    swapped = read_tf_checkpoint(_copy(tmp_path, "average_weights-2"))
    for key in plain["model_state"]:
        assert torch.equal(swapped["model_state"][key], plain["ema_state"][key])
        assert torch.equal(swapped["ema_state"][key], plain["model_state"][key])


@pytest.mark.parametrize("form", ["prefix", "index", "data", "folder"])
def test_a_checkpoint_is_named_by_prefix_index_data_file_or_folder(form):
    path = {"prefix": PREFIX, "index": str(PREFIX) + ".index", "data": DATA, "folder": CKPT}[form]
    state, fmt = read_weights_file(path)
    ref = read_tf_checkpoint(PREFIX)
    assert fmt == "tf-checkpoint" and set(state) == {"model_state", "ema_state"}
    for entry in ("model_state", "ema_state"):
        assert all(torch.equal(state[entry][k], v) for k, v in ref[entry].items())


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_data_is_caught_by_the_tensor_checksum(tmp_path):
    prefix = _copy(tmp_path)
    ckpt = TFCheckpoint(prefix)
    key = "backbone/layer_with_weights-0/kernel" + ATTR
    _flip(Path(str(prefix) + ".data-00000-of-00001"), ckpt.entries[key].offset + 7)
    with pytest.raises(TFCheckpointError, match=r"layer_with_weights-0/kernel.*: checksum mismatch"):
        ckpt.read(key)
    assert TFCheckpoint(prefix, verify=False).read(key).shape == (5, 3, 3, 3, 32)  # it is the CRC that caught it
    with pytest.raises(WeightsError, match="checksum mismatch"):
        read_weights_file(prefix)


def test_truncated_and_missing_data_files(tmp_path):
    prefix = _copy(tmp_path)
    data = Path(str(prefix) + ".data-00000-of-00001")
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(TFCheckpointError, match=r"ckpt-2.data-00000-of-00001 is truncated"):
        read_tf_checkpoint(prefix)
    data.unlink()
    with pytest.raises(TFCheckpointError, match=r"data file .*ckpt-2.data-00000-of-00001 is missing"):
        read_tf_checkpoint(prefix)


def test_damaged_truncated_or_foreign_index(tmp_path):
    prefix = _copy(tmp_path)
    index = Path(str(prefix) + ".index")
    good = index.read_bytes()
    _flip(index, 100)  # inside the first data block of the table
    with pytest.raises(TFCheckpointError, match=r"ckpt-2.index: checksum mismatch in the block at byte 0"):
        TFCheckpoint(prefix)
    index.write_bytes(good[:-10])
    with pytest.raises(TFCheckpointError, match="bad table magic"):
        TFCheckpoint(prefix)
    index.write_bytes(good[:20])
    with pytest.raises(TFCheckpointError, match="too short"):
        TFCheckpoint(prefix)
    index.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match="bad table magic"):
        read_weights_file(index)
    with pytest.raises(TFCheckpointError, match="TF checkpoint not found"):
        TFCheckpoint(tmp_path / "ckpt-9")


def test_compressed_index_blocks_are_refused(tmp_path):
    prefix = _copy(tmp_path)
    index = Path(str(prefix) + ".index")
    data = bytearray(index.read_bytes())
    # The index block's handle is the second varint pair of the 48-byte footer; mark that block as
    # snappy-compressed (trailer type 1) with a valid checksum, as a LevelDB writer with compression would.
    footer, values, pos = data[-48:], [], 0
    while len(values) < 4:
        value = shift = 0
        while True:
            byte = footer[pos]
            value, pos, shift = value | (byte & 0x7F) << shift, pos + 1, shift + 7
            if not byte & 0x80:
                break
        values.append(value)
    offset, size = values[2], values[3]
    data[offset + size] = 1
    trailer_crc = _masked(crc32c(bytes(data[offset:offset + size + 1])))
    data[offset + size + 1:offset + size + 5] = trailer_crc.to_bytes(4, "little")
    index.write_bytes(bytes(data))
    with pytest.raises(TFCheckpointError, match=r"compressed table block \(type 1\)"):
        TFCheckpoint(prefix)


def test_folder_with_a_foreign_checkpoint_file(tmp_path):
    (tmp_path / "checkpoint").write_text("this is not TensorFlow's\n")
    with pytest.raises(WeightsError, match="no model_checkpoint_path line"):
        read_weights_file(tmp_path)

"""Read TensorFlow 2 checkpoints (``tf.train.Checkpoint`` / ``CheckpointManager`` files) without TensorFlow.

A checkpoint ``PREFIX`` is a TensorBundle: ``PREFIX.index``, a LevelDB-format table of tensor name ->
``BundleEntryProto`` (dtype, shape, shard, offset, size, masked CRC-32C), and ``PREFIX.data-SSSSS-of-NNNNN``
holding the raw little-endian tensor bytes (tensorflow/core/util/tensor_bundle, core/lib/io/table_builder.cc).
This reader is numpy only: it decodes the table footer, blocks (prefix-compressed keys, restart array) and
the few proto fields by hand, checks the CRC-32C of every index block and, by default, of every tensor it
reads, and rejects what TensorFlow does not write for object-based checkpoints (compressed blocks,
big-endian bundles, sliced variables) with a :class:`TFCheckpointError` naming the file.

:func:`read_tf_checkpoint` is the resolver's file reader (suffix ``.index``; a prefix or a folder with a
``checkpoint`` file resolves to it): it returns ``{"model_state": ...}`` with every variable under its
checkpoint key without the ``/.ATTRIBUTES/VARIABLE_VALUE`` suffix, and ``"ema_state"``, the same variables
with each replaced by its optimizer's ``average`` slot where it has one (the moving-average optimizers of TF
Model Garden and TF Addons keep the EMA there), so that ``prefer_ema`` selects the averages. Other optimizer
slots (momentum) and non-numeric entries (the object graph) are not weights and are left out. Key layouts
of particular models are renamed by key maps (``rs_video`` registers TF Model Garden's).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from math import prod
from typing import Dict, Iterator, Optional, Tuple, Union

import numpy as np
import torch

from .strict_load import WeightsError

__all__ = ["TFCheckpointError", "TFCheckpoint", "read_tf_checkpoint", "tf_checkpoint_index", "crc32c"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
_ATTR = "/.ATTRIBUTES/VARIABLE_VALUE"
_SLOT = "/.OPTIMIZER_SLOT/"
_EMA_SLOT = "average"
# MG's EMACheckpointing writes ema_checkpoints/average_weights-N after swapping: there the variables hold
# the averages and the 'average' slots the raw weights.
_SWAPPED_EMA_FILE = re.compile(r"^average_weights-\d+$")
_DATA_SHARD = re.compile(r"\.data-\d{5}-of-\d{5}$")
# types.proto DataType -> numpy dtype of the stored bytes (little-endian); bfloat16, which numpy lacks, is
# read as uint16 and viewed as torch.bfloat16.
_DTYPES = {
    1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 14: "<u2", 19: "<f2",
}
_BFLOAT16 = 14


class TFCheckpointError(WeightsError):
    """A file that is not a TF2 checkpoint this reader can read, or one that is damaged."""


# ------------------------------------------------------------------------------------------- CRC-32C
def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


_CRC_TABLE = _crc_table()
_CRC_LIST = _CRC_TABLE.tolist()


def _crc_bytes(state: int, data: bytes) -> int:
    for b in data:
        state = _CRC_LIST[(state ^ b) & 0xFF] ^ (state >> 8)
    return state


@lru_cache(maxsize=64)
def _zeros_operator(n_bytes: int) -> np.ndarray:
    """Columns of the GF(2) matrix that advances a CRC register over ``n_bytes`` zero bytes."""
    op = np.array([_crc_bytes(1 << i, b"\0") for i in range(32)], dtype=np.uint32)
    result = np.array([1 << i for i in range(32)], dtype=np.uint32)
    while n_bytes:  # square-and-multiply
        if n_bytes & 1:
            result = _apply(op, result)
        op, n_bytes = _apply(op, op), n_bytes >> 1
    return result


def _apply(op: np.ndarray, registers: np.ndarray) -> np.ndarray:
    out = np.zeros_like(registers)
    for i in range(32):
        out ^= np.where((registers >> np.uint32(i)) & np.uint32(1), op[i], np.uint32(0))
    return out


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``. From 64 KiB on, ~sqrt(n) chunks run in parallel in numpy and are
    merged by the linearity of the CRC (register after chunks a, b = zeros-operator(len b)(reg a) ^ reg b)."""
    if len(data) < 1 << 16:
        return _crc_bytes(0xFFFFFFFF, data) ^ 0xFFFFFFFF
    chunk = 1 << (len(data).bit_length() + 1) // 2  # a power of two near sqrt(n): cached operators
    count = len(data) // chunk
    columns = np.ascontiguousarray(np.frombuffer(data, np.uint8, count * chunk).reshape(count, chunk).T)
    registers = np.zeros(count, dtype=np.uint32)
    registers[0] = 0xFFFFFFFF
    for column in columns:
        registers = _CRC_TABLE[(registers ^ column) & 0xFF] ^ (registers >> np.uint32(8))
    width = 1 << (count - 1).bit_length()  # pad in front with zero registers (they contribute nothing)
    registers = np.concatenate([np.zeros(width - count, dtype=np.uint32), registers])
    span = chunk
    while len(registers) > 1:
        registers = _apply(_zeros_operator(span), registers[0::2]) ^ registers[1::2]
        span *= 2
    return _crc_bytes(int(registers[0]), data[count * chunk:]) ^ 0xFFFFFFFF


def _unmask(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# ------------------------------------------------------------------------------ table and protos
def _varint(buf: bytes, pos: int, where: str) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise TFCheckpointError(f"{where}: truncated or malformed varint")
        b = buf[pos]
        result, pos, shift = result | (b & 0x7F) << shift, pos + 1, shift + 7
        if not b & 0x80:
            return result, pos


def _fields(buf: bytes, where: str) -> Iterator[Tuple[int, Union[int, bytes]]]:
    """(field number, value) of a protobuf message: varints as int, length-delimited as bytes."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos, where)
        wire = tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos, where)
        elif wire == 2:
            n, pos = _varint(buf, pos, where)
            value, pos = buf[pos:pos + n], pos + n
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = int.from_bytes(buf[pos:pos + size], "little"), pos + size
        else:
            raise TFCheckpointError(f"{where}: unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise TFCheckpointError(f"{where}: truncated protobuf message")
        yield tag >> 3, value


@dataclass(frozen=True)
class _Entry:
    """The fields of a ``BundleEntryProto`` a reader needs."""

    dtype: int
    shape: Tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc: Optional[int]
    sliced: bool


def _entry(buf: bytes, where: str) -> _Entry:
    f: Dict[int, Union[int, bytes, Tuple[int, ...]]] = {3: 0, 4: 0, 5: 0}
    for number, value in _fields(buf, where):
        if number == 2:  # TensorShapeProto: dim (2) {size (1)}, unknown_rank (3)
            shape = []
            for n, dim in _fields(value, where):
                if n == 3 and dim:
                    raise TFCheckpointError(f"{where}: tensor of unknown rank")
                if n == 2:
                    shape.append(dict(_fields(dim, where)).get(1, 0))
            value = tuple(shape)
        f[number] = value
    return _Entry(f.get(1, 0), f.get(2, ()), f[3], f[4], f[5], f.get(6), 7 in f)


def _block(fh, offset: int, size: int, where: str) -> bytes:
    fh.seek(offset)
    raw = fh.read(size + 5)
    if len(raw) != size + 5:
        raise TFCheckpointError(f"{where}: truncated (block at byte {offset} ends past the end of the file)")
    if crc32c(raw[:size + 1]) != _unmask(int.from_bytes(raw[size + 1:], "little")):
        raise TFCheckpointError(f"{where}: checksum mismatch in the block at byte {offset} (damaged file)")
    if raw[size] != 0:
        raise TFCheckpointError(f"{where}: compressed table block (type {raw[size]}); TensorFlow writes "
                                "checkpoint indexes uncompressed, so this is not a TF2 checkpoint index")
    return raw[:size]


def _block_items(block: bytes, where: str) -> Iterator[Tuple[bytes, bytes]]:
    if len(block) < 4:
        raise TFCheckpointError(f"{where}: malformed table block")
    restarts = int.from_bytes(block[-4:], "little")
    end, pos, key = len(block) - 4 - 4 * restarts, 0, b""
    while pos < end:
        shared, pos = _varint(block, pos, where)
        own, pos = _varint(block, pos, where)
        length, pos = _varint(block, pos, where)
        key = key[:shared] + block[pos:pos + own]
        yield key, block[pos + own:pos + own + length]
        pos += own + length


# --------------------------------------------------------------------------------------- reader
def tf_checkpoint_index(path: PathLike) -> Optional[str]:
    """The ``.index`` file of a TF2 checkpoint given by its prefix, ``.index`` or ``.data-*`` file, or a
    folder with a ``checkpoint`` state file (its latest checkpoint); ``None`` if ``path`` is none of these."""
    path = os.fspath(path)
    state = os.path.join(path, "checkpoint")
    if os.path.isdir(path) and os.path.isfile(state):
        with open(state, encoding="utf-8") as f:
            m = re.search(r'^model_checkpoint_path:\s*"(.*)"\s*$', f.read(), re.MULTILINE)
        if not m:
            raise TFCheckpointError(f"{state}: no model_checkpoint_path line (not a TF checkpoint state file)")
        path = os.path.join(path, m.group(1))
    path = _DATA_SHARD.sub("", path)
    if path.endswith(".index"):
        return path
    return path + ".index" if os.path.isfile(path + ".index") else None


class TFCheckpoint:
    """The tensors of one TF2 checkpoint: ``keys()``, :meth:`shape`, :meth:`read`.

    Args:
        path: the checkpoint prefix (``model_dir/ckpt-100``), its ``.index`` or ``.data-*`` file, or a
            folder with a ``checkpoint`` state file.
        verify: check the CRC-32C of every tensor read (index blocks are always checked).
    """

    def __init__(self, path: PathLike, verify: bool = True) -> None:
        index = tf_checkpoint_index(path)
        if index is None or not os.path.isfile(index):
            raise TFCheckpointError(f"TF checkpoint not found: {os.fspath(path)} (no {index or 'PREFIX.index'})")
        self.index, self.prefix, self.verify = index, index[: -len(".index")], verify
        with open(index, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() < _FOOTER:
                raise TFCheckpointError(f"{index}: too short for a TF checkpoint index")
            fh.seek(-_FOOTER, os.SEEK_END)
            footer = fh.read(_FOOTER)
            if int.from_bytes(footer[40:], "little") != _TABLE_MAGIC:
                raise TFCheckpointError(f"{index}: bad table magic (not a TF2 checkpoint index)")
            pos = _varint(footer, _varint(footer, 0, index)[1], index)[1]  # skip the metaindex handle
            offset, pos = _varint(footer, pos, index)
            size, _ = _varint(footer, pos, index)
            header, self.entries = None, {}
            for _, handle in _block_items(_block(fh, offset, size, index), index):
                block_offset, p = _varint(handle, 0, index)
                for key, value in _block_items(_block(fh, block_offset, _varint(handle, p, index)[0], index), index):
                    if key:
                        self.entries[key.decode("utf-8")] = _entry(value, f"{index}: {key!r}")
                    else:
                        header = dict(_fields(value, index))
        if header is None:
            raise TFCheckpointError(f"{index}: no bundle header (not a TF2 checkpoint index)")
        if header.get(2, 0) != 0:
            raise TFCheckpointError(f"{index}: big-endian bundle; only little-endian checkpoints are supported")
        version = dict(_fields(header.get(3, b""), index))
        if version.get(2, 0) > 1:
            raise TFCheckpointError(f"{index}: bundle format needs a reader of version {version[2]} (this is 1)")
        self.num_shards = header.get(1, 1)

    def keys(self) -> list:
        return list(self.entries)

    def shape(self, key: str) -> Tuple[int, ...]:
        return self._get(key).shape

    def _get(self, key: str) -> _Entry:
        if key not in self.entries:
            raise TFCheckpointError(f"{self.index}: no tensor {key!r}")
        return self.entries[key]

    def is_numeric(self, key: str) -> bool:
        return self._get(key).dtype in _DTYPES

    def read(self, key: str) -> torch.Tensor:
        """The tensor ``key`` (numeric dtypes; CRC-checked when ``verify``)."""
        e, where = self._get(key), f"{self.prefix}: {key}"
        if e.sliced:
            raise TFCheckpointError(f"{where}: partitioned (sliced) variable; re-save it unpartitioned")
        if e.dtype not in _DTYPES:
            raise TFCheckpointError(f"{where}: unsupported dtype (TF DataType {e.dtype})")
        dtype = np.dtype(_DTYPES[e.dtype])
        if e.size != prod(e.shape) * dtype.itemsize:
            raise TFCheckpointError(f"{where}: {e.size} bytes stored for shape {e.shape} of TF DataType {e.dtype}")
        data_path = f"{self.prefix}.data-{e.shard:05d}-of-{self.num_shards:05d}"
        if not os.path.isfile(data_path):
            raise TFCheckpointError(f"{where}: data file {data_path} is missing")
        with open(data_path, "rb") as fh:
            fh.seek(e.offset)
            data = fh.read(e.size)
        if len(data) != e.size:
            raise TFCheckpointError(f"{where}: {data_path} is truncated ({len(data)} of {e.size} bytes)")
        if self.verify and e.crc is not None and crc32c(data) != _unmask(e.crc):
            raise TFCheckpointError(f"{where}: checksum mismatch in {data_path} (damaged file)")
        tensor = torch.from_numpy(np.frombuffer(data, dtype).reshape(e.shape).astype(dtype.newbyteorder("=")))
        return tensor.view(torch.bfloat16) if e.dtype == _BFLOAT16 else tensor


def read_tf_checkpoint(path: PathLike, verify: bool = True) -> Dict[str, Dict[str, torch.Tensor]]:
    """``{"model_state": variables, "ema_state": variables with their 'average' slots}`` of a TF2
    checkpoint (no ``ema_state`` without such slots); see the module docstring."""
    ckpt = TFCheckpoint(path, verify=verify)
    variables, averages = {}, {}
    for key in ckpt.keys():
        if not key.endswith(_ATTR) or not ckpt.is_numeric(key):
            continue  # the object graph and other non-variable entries
        name = key[: -len(_ATTR)]
        if _SLOT not in name:
            variables[name] = ckpt.read(key)
        elif name.rsplit("/", 1)[-1] == _EMA_SLOT:
            owner = name.split(_SLOT, 1)[0]
            if owner in averages:
                raise TFCheckpointError(f"{ckpt.index}: variable {owner!r} has two '{_EMA_SLOT}' slots")
            averages[owner] = key
    orphans = sorted(set(averages) - set(variables))
    if orphans:
        raise TFCheckpointError(f"{ckpt.index}: '{_EMA_SLOT}' slots of variables not in the file: {orphans[:10]}")
    if not averages:
        return {"model_state": variables}
    ema = {name: ckpt.read(averages[name]) if name in averages else value for name, value in variables.items()}
    if _SWAPPED_EMA_FILE.match(os.path.basename(ckpt.prefix)):
        logger.info("%s: an EMACheckpointing file (variables hold the averages, slots the raw weights)", ckpt.prefix)
        variables, ema = ema, variables
    return {"model_state": variables, "ema_state": ema}

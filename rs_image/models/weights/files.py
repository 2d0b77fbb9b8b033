"""Weight files, by format: readers chosen by the file suffix, and the writer of exported weights.

Built-in readers: torch files (``.pth``/``.pt``/``.pyth``, ``torch.load(weights_only=True)``; any other
suffix is read as a torch file too, since ``torch.save`` files carry any name, e.g. ``.pth.tar``),
``.safetensors``, the official Keras ``.h5`` files (:mod:`.keras_h5`) and TensorFlow 2 checkpoints
(:mod:`.tf_checkpoint`: the ``.index`` file, the checkpoint prefix, or a folder with a ``checkpoint`` state
file). Another package adds a format
with :func:`register_file_reader`. A reader returns what the file holds: a state dict, or a checkpoint
dict that :mod:`.resolver` unwraps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from rs_image.fileio import atomic_path

from .keras_h5 import convert_keras_h5
from .strict_load import WeightsError
from .tf_checkpoint import read_tf_checkpoint, tf_checkpoint_index

__all__ = ["register_file_reader", "read_weights_file", "save_state_dict"]

FileReader = Callable[[str], Any]
_READERS: Dict[str, Tuple[str, FileReader]] = {}  # suffix -> (format name, reader)


def register_file_reader(name: str, suffixes: Iterable[str], reader: FileReader) -> None:
    """Read files ending in ``suffixes`` (e.g. ``(".h5",)``) with ``reader(path)``, named ``name`` in errors."""
    for suffix in suffixes:
        _READERS[suffix.lower()] = (name, reader)


def _read_torch(path: str) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def _read_safetensors(path: str) -> Any:
    from safetensors.torch import load_file

    return load_file(path)


register_file_reader("torch", (".pth", ".pt", ".pyth"), _read_torch)
register_file_reader("safetensors", (".safetensors",), _read_safetensors)
register_file_reader("keras", (".h5",), convert_keras_h5)
register_file_reader("tf-checkpoint", (".index",), read_tf_checkpoint)


def read_weights_file(path: Union[str, os.PathLike]) -> Tuple[Any, str]:
    """What the weights file ``path`` holds and the name of the format it was read as."""
    path = os.fspath(path)
    if not os.path.isfile(path) or Path(path).suffix.startswith(".data-"):
        path = tf_checkpoint_index(path) or path  # a TF checkpoint named by its prefix, folder or data file
    if not os.path.isfile(path):
        raise WeightsError(f"weights file not found: {path}")
    if os.path.getsize(path) == 0:
        raise WeightsError(f"weights file is empty: {path}")
    suffix = Path(path).suffix.lower()
    fmt, reader = _READERS.get(suffix, ("torch", _read_torch))
    try:
        return reader(path), fmt
    except WeightsError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file for the user
        hint = "" if suffix in _READERS else (
            f"; {suffix or 'no suffix'} is not a registered weights suffix ({', '.join(sorted(_READERS))}), "
            "so it was read as a torch file"
        )
        raise WeightsError(f"cannot read weights from {path} ({fmt}){hint}: {type(e).__name__}: {e}") from e


#: The files :func:`save_state_dict` writes.
WEIGHTS_SUFFIXES = (".safetensors", ".pth", ".pt")


def check_weights_output(path: Union[str, os.PathLike]) -> None:
    """Raise :class:`WeightsError` (a user error) unless ``path`` ends in one of :data:`WEIGHTS_SUFFIXES`; the
    converters check it before converting."""
    if not str(path).endswith(WEIGHTS_SUFFIXES):
        raise WeightsError(f"the output must end in {', '.join(WEIGHTS_SUFFIXES)}: {path}")


def save_state_dict(
    model_or_sd: Union[nn.Module, Mapping[str, torch.Tensor]],
    path: Union[str, os.PathLike],
    metadata: Optional[Mapping[str, str]] = None,
) -> None:
    """Write weights as ``.safetensors`` (recommended for export) or a torch file, atomically.

    Args:
        metadata: ``.safetensors`` only: the file's string-to-string header metadata.
    """
    sd = model_or_sd.state_dict() if isinstance(model_or_sd, nn.Module) else dict(model_or_sd)
    sd = {k: v.detach().cpu().contiguous() for k, v in sd.items()}
    if metadata is not None and Path(path).suffix != ".safetensors":
        raise ValueError(f"metadata needs a .safetensors file, not {path}")
    with atomic_path(path) as tmp:
        if tmp.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(sd, str(tmp), metadata=None if metadata is None else dict(metadata))
        else:
            torch.save(sd, tmp)

"""Weights on the Hugging Face Hub, timm's way: ``hf-hub:ORG/REPO[@REVISION]`` names and hub folders.

A hub folder (a model repository, or what ``tools/export.py --hf-dir`` writes for ``huggingface-cli upload``)
holds ``model.safetensors`` (or ``pytorch_model.bin``) and ``config.json`` with timm's fields:

* ``architecture``: the registry name (``"rs3d_50"``, ``"resnetrs350.i320"``);
* ``num_classes``, ``num_features``;
* ``label_names``: the class names in index order (timm's field; ``model.pretrained_cfg["label_names"]``);
* ``model_args``: architecture keywords the model was built with (``create_model(**model_args)``);
* ``pretrained_cfg``: the model's pretrained cfg (input size, frames, mean/std, ...).

``hf-hub:`` names are fetched with ``huggingface_hub.hf_hub_download`` into its cache (``HF_HOME``); with
``HF_HUB_OFFLINE=1`` only the cache is read, and a name that is not there is a :class:`HubError` naming
it. ``huggingface_hub`` is the ``[hub]`` extra, imported only when a hub name is used.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from rs_image.fileio import atomic_write

from .files import read_weights_file, save_state_dict
from .strict_load import WeightsError

__all__ = [
    "HF_HUB_PREFIX", "HubError", "HubWeights", "is_hf_hub_name", "split_hf_hub_name", "hf_hub_folder_files",
    "read_hub_folder", "read_hf_hub", "hub_source", "check_hub_architecture", "write_hub_folder",
]

HF_HUB_PREFIX = "hf-hub:"
CONFIG_NAME = "config.json"
#: weight files looked for, in timm's order of preference
WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")


class HubError(WeightsError):
    """An ``hf-hub:`` name or hub folder that cannot be used (not cached offline, no such file, another
    architecture); the message names it."""


@dataclass(frozen=True)
class HubWeights:
    """What a hub folder holds: its ``config.json`` and the state dict of its weight file."""

    config: Dict[str, Any]
    state_dict: Dict[str, torch.Tensor]
    source: str

    @property
    def architecture(self) -> str:
        return str(self.config.get("architecture", ""))

    @property
    def model_args(self) -> Dict[str, Any]:
        """``model_args`` with JSON lists turned back into the tuples the model signatures use."""
        return {str(k): _tuples(v) for k, v in dict(self.config.get("model_args") or {}).items()}

    @property
    def label_names(self) -> Optional[List[str]]:
        names = self.config.get("label_names")
        return [str(n) for n in names] if names else None


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def is_hf_hub_name(source: Any) -> bool:
    """Whether ``source`` is an ``hf-hub:`` name."""
    return isinstance(source, str) and source.startswith(HF_HUB_PREFIX)


def split_hf_hub_name(name: str) -> Tuple[str, Optional[str]]:
    """``"hf-hub:org/repo@rev"`` -> ``("org/repo", "rev")`` (revision None when not given)."""
    repo = name[len(HF_HUB_PREFIX):]
    repo, _, revision = repo.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise HubError(f"{name!r} is not a hub model name; expected hf-hub:ORG/REPO or hf-hub:ORG/REPO@REVISION")
    return repo, revision or None


def _hub_download(name: str, filename: str) -> Optional[str]:
    """The local path of ``filename`` of the hub repository ``name`` (None when the repository has no such
    file); downloaded into the cache unless offline."""
    try:
        import huggingface_hub
        from huggingface_hub import constants  # a lazy submodule: not an attribute until imported
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError as e:
        raise HubError(f"{name}: hf-hub: names need huggingface_hub; pip install 'rs-video[hub]'") from e
    repo, revision = split_hf_hub_name(name)
    try:
        return huggingface_hub.hf_hub_download(repo, filename, revision=revision, library_name="rs_video")
    except LocalEntryNotFoundError as e:  # (a subclass of EntryNotFoundError)
        offline = constants.is_offline_mode()
        why = ("HF_HUB_OFFLINE is set and it is not in the cache" if offline else
               "it is not in the cache and the Hub could not be reached")
        raise HubError(f"{name}: cannot get {filename}: {why} ({constants.HF_HUB_CACHE}); download "
                       f"it once online (huggingface-cli download {repo}) or unset HF_HUB_OFFLINE") from e
    except EntryNotFoundError:
        return None
    except RepositoryNotFoundError as e:
        raise HubError(f"{name}: no such repository on the Hub (or it is private: huggingface-cli login)") from e
    except Exception as e:  # noqa: BLE001 - a network failure is a bad source for the user
        raise HubError(f"{name}: cannot get {filename}: {type(e).__name__}: {e}") from e


def hf_hub_folder_files(name: str) -> Tuple[str, Optional[str]]:
    """``(weights file, config.json or None)`` of the hub repository ``name``, from the cache or the Hub."""
    for weights_name in WEIGHT_NAMES:
        weights = _hub_download(name, weights_name)
        if weights is not None:
            return weights, _hub_download(name, CONFIG_NAME)
    raise HubError(f"{name}: the repository has none of {', '.join(WEIGHT_NAMES)}")


def _read(weights_file: str, config_file: Optional[str], source: str) -> HubWeights:
    config: Dict[str, Any] = {}
    if config_file is not None:
        try:
            with open(config_file, encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, ValueError) as e:
            raise HubError(f"{source}: cannot read {CONFIG_NAME}: {e}") from e
        if not isinstance(config, dict):
            raise HubError(f"{source}: {CONFIG_NAME} must hold a JSON object")
    state_dict, _ = read_weights_file(weights_file)
    if not isinstance(state_dict, Mapping):
        raise HubError(f"{source}: {os.path.basename(weights_file)} holds no state dict")
    return HubWeights(config, dict(state_dict), source)


def read_hub_folder(folder: Union[str, os.PathLike]) -> HubWeights:
    """A local hub folder (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``)."""
    folder = Path(folder)
    for weights_name in WEIGHT_NAMES:
        if (folder / weights_name).is_file():
            config = folder / CONFIG_NAME
            return _read(str(folder / weights_name), str(config) if config.is_file() else None, str(folder))
    raise HubError(f"{folder}: a hub folder needs one of {', '.join(WEIGHT_NAMES)}")


def read_hf_hub(name: str) -> HubWeights:
    """The hub repository ``hf-hub:ORG/REPO[@REVISION]`` (cached, or downloaded into the cache)."""
    weights, config = hf_hub_folder_files(name)
    return _read(weights, config, name)


def hub_source(weights: Any) -> Optional[HubWeights]:
    """``weights`` read as a hub source when it is one: a :class:`HubWeights`, an ``hf-hub:`` name, or a local
    folder holding a weight file of :data:`WEIGHT_NAMES`; None for any other source."""
    if isinstance(weights, HubWeights):
        return weights
    if is_hf_hub_name(weights):
        return read_hf_hub(weights)
    if isinstance(weights, (str, os.PathLike)) and os.path.isdir(weights) and any(
            os.path.isfile(os.path.join(weights, n)) for n in WEIGHT_NAMES):
        return read_hub_folder(weights)
    return None


def check_hub_architecture(hub: HubWeights, base_name: str) -> None:
    """Refuse weights whose ``config.json`` names another architecture than the registry name ``base_name``."""
    architecture = hub.architecture.split(".")[0]
    if architecture and architecture != base_name:
        raise HubError(f"{hub.source}: its config.json is for architecture {hub.architecture!r}, not {base_name!r}; "
                       f"create_model({hub.architecture!r}, pretrained={hub.source!r})")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def write_hub_folder(
    model: torch.nn.Module,
    folder: Union[str, os.PathLike],
    *,
    architecture: str,
    model_args: Optional[Mapping[str, Any]] = None,
    label_names: Optional[Sequence[str]] = None,
    model_card: str = "",
) -> Dict[str, Any]:
    """Write ``model.safetensors``, ``config.json`` and ``README.md`` (``model_card``) into ``folder``, each
    atomically; returns the config written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    if label_names is not None and len(label_names) != num_classes:
        raise HubError(f"{len(label_names)} class names for a model with {num_classes} classes")
    config: Dict[str, Any] = {
        "architecture": architecture,
        "num_classes": num_classes,
        "num_features": int(getattr(model, "num_features", 0) or 0),
    }
    if label_names is not None:
        config["label_names"] = [str(n) for n in label_names]
    if model_args:
        config["model_args"] = _jsonable(dict(model_args))
    config["pretrained_cfg"] = _jsonable(dict(getattr(model, "pretrained_cfg", {}) or {}))
    save_state_dict(model, folder / WEIGHT_NAMES[0], metadata={"format": "pt"})
    with atomic_write(folder / CONFIG_NAME) as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    if model_card:
        with atomic_write(folder / "README.md") as f:
            f.write(model_card)
    return config

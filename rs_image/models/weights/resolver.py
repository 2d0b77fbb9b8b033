"""The weights-source resolver: a path, URL, state dict or model -> a native state dict.

Steps, the same for every source:

1. the source becomes an object: a file is read by the reader of its format (:mod:`.files`), a URL is
   downloaded once into torch.hub's cache and read the same way, an ``hf-hub:ORG/REPO`` name or a local hub
   folder gives its ``model.safetensors`` (:mod:`.hf_hub`), a model gives its ``state_dict()``, a mapping
   is taken as it is;
2. a training checkpoint is unwrapped: ``ema_state`` when ``prefer_ema`` and present (our
   checkpoints), otherwise the first of ``model_state``, ``state_dict``, ``model``, ``module`` that
   holds a mapping (ours, PyTorchVideo, SlowFast, timm and Lightning train scripts);
3. the prefixes of the wrappers DDP (``module.``) and ``torch.compile`` (``_orig_mod.``) are stripped;
4. foreign key layouts (timm, or maps other packages register) are renamed to native keys (:mod:`.key_maps`).

Every loader goes through :func:`resolve_weights`: ``create_model(pretrained=...)``,
:func:`load_pretrained` (the engine's initial and test weights), 2D -> 3D inflation and the Keras tools.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from .files import read_weights_file
from .hf_hub import HubWeights, check_hub_architecture, hub_source
from .key_maps import to_native
from .strict_load import StateDict, WeightsError, load_state_dict_strict

__all__ = ["WeightsSource", "ResolvedWeights", "resolve_weights", "strip_wrapper_prefixes", "load_pretrained"]

logger = logging.getLogger(__name__)

#: What a weights source may be: a path, URL or ``hf-hub:`` name, a state dict or checkpoint dict, a model, or
#: a read hub folder.
WeightsSource = Union[str, os.PathLike, Mapping[str, Any], nn.Module, HubWeights]

# Checkpoint entries that hold the model's weights, in order of preference.
_CHECKPOINT_KEYS = ("model_state", "state_dict", "model", "module")
_EMA_KEY = "ema_state"
# Prefixes that wrappers add to every key: DDP / DataParallel, torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class ResolvedWeights:
    """A resolved weights source.

    Attributes:
        state_dict: native keys, tensors as read (CPU for files).
        source: what was read, for messages: a path or URL with the checkpoint entry used
            (``"run/last.pyth[ema_state]"``), ``"state dict"`` or ``"ResNetRS module"``.
        format: the key layout found before renaming: ``"native"``, ``"timm"`` or a registered map.
    """

    state_dict: StateDict
    source: str
    format: str

    def describe(self) -> str:
        """``"<source> (<format>)"``, as loaders name the weights in errors."""
        return f"{self.source} ({self.format})"


def _download(url: str) -> str:
    """The local copy of ``url`` in torch.hub's checkpoint cache (downloaded once, atomically)."""
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise WeightsError(f"weights URL has no file name: {url}")
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", name)
    if not os.path.isfile(cached):
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        logger.info("downloading %s to %s", url, cached)
        try:
            torch.hub.download_url_to_file(url, cached, progress=False)
        except Exception as e:  # noqa: BLE001 - any download failure is a bad source for the user
            raise WeightsError(f"cannot download weights from {url}: {type(e).__name__}: {e}") from e
    return cached


def _read_source(weights: WeightsSource) -> Tuple[Any, str]:
    """The object a source holds and its name for messages."""
    if isinstance(weights, nn.Module):
        return weights.state_dict(), f"{type(weights).__name__} module"
    if isinstance(weights, Mapping):
        return weights, "state dict"
    hub = hub_source(weights)
    if hub is not None:
        return hub.state_dict, hub.source
    if isinstance(weights, (str, os.PathLike)):
        source = os.fspath(weights)
        path = _download(source) if "://" in source else source
        return read_weights_file(path)[0], source
    raise WeightsError(
        f"weights must be a path, URL, state dict or nn.Module, got {type(weights).__name__}: {weights!r:.80}"
    )


def _unwrap_checkpoint(obj: Any, prefer_ema: bool, source: str) -> Tuple[Any, Optional[str]]:
    """The model weights inside a training checkpoint and the entry they came from (None: ``obj`` itself)."""
    if not isinstance(obj, Mapping):
        return obj, None
    if prefer_ema:
        if isinstance(obj.get(_EMA_KEY), Mapping):
            return obj[_EMA_KEY], _EMA_KEY
        if isinstance(obj.get("model_state"), Mapping):
            logger.info("%s has no %s (trained without EMA); using its model_state", source, _EMA_KEY)
    for key in _CHECKPOINT_KEYS:
        if isinstance(obj.get(key), Mapping):
            return obj[key], key
    return obj, None


def strip_wrapper_prefixes(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Remove the ``module.`` (DDP) and ``_orig_mod.`` (torch.compile) prefixes that every key shares,
    in whatever order the wrappers were nested."""
    out = dict(sd)
    stripped = True
    while out and stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in out):
                out = {k[len(prefix):]: v for k, v in out.items()}
                stripped = True
    return out


def resolve_weights(weights: WeightsSource, *, prefer_ema: bool = False) -> ResolvedWeights:
    """Resolve a weights source into a native state dict (see the module docstring for the steps).

    Args:
        weights: a file path (torch, ``.safetensors``, Keras ``.h5`` or a registered format), a URL of
            such a file, a state dict or training-checkpoint dict, or a model (native or foreign keys).
        prefer_ema: take the EMA weights (``ema_state``) of a checkpoint that has them.

    Raises:
        WeightsError: the source cannot be read, holds no state dict of tensors, or has keys of no
            known layout.
    """
    obj, source = _read_source(weights)
    obj, entry = _unwrap_checkpoint(obj, prefer_ema, source)
    if entry is not None:
        source = f"{source}[{entry}]"
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{source} does not hold a state dict of tensors")
    native, fmt = to_native(strip_wrapper_prefixes(obj))
    return ResolvedWeights(native, source, fmt)


def load_pretrained(model: nn.Module, weights: WeightsSource, prefer_ema: bool = False) -> nn.Module:
    """Load any weights source into ``model``, strictly (:func:`.strict_load.load_state_dict_strict`).

    A hub source (``hf-hub:`` name or folder) must be for the model's architecture (its ``config.json``);
    its class names become ``model.pretrained_cfg["label_names"]``.
    """
    hub = hub_source(weights)
    if hub is not None:
        architecture = (getattr(model, "pretrained_cfg", None) or {}).get("architecture")
        if architecture:
            check_hub_architecture(hub, architecture)
        weights = hub
    resolved = resolve_weights(weights, prefer_ema=prefer_ema)
    load_state_dict_strict(model, resolved.state_dict, resolved.describe())
    if hub is not None and hub.label_names is not None and isinstance(getattr(model, "pretrained_cfg", None), dict):
        model.pretrained_cfg = {**model.pretrained_cfg, "label_names": hub.label_names}
    return model

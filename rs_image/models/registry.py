"""Model registries: names -> architecture settings and pretrained configs, kept as data.

Both ``rs_image`` and ``rs_video`` keep a :class:`ModelRegistry`; an entry holds the keyword arguments of
:class:`~rs_image.models.resnet_rs.ResNetRS` and a ``pretrained_cfg`` (input sizes, normalisation,
interpolation, crop, RandAugment magnitude, dropout, stochastic depth, reference numbers). Entries may
have named variants (e.g. ResNet-RS-350 at 256 and at 320 px) that override the cfg.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from torch import nn

from rs_image.errors import UserError

from .resnet_rs import ResNetRS

__all__ = ["ModelEntry", "ModelRegistry", "UnknownModelError"]


class UnknownModelError(UserError, KeyError):
    """A model name or variant that no registry knows; the message lists the close names."""

_RESNET_RS_KWARGS = set(inspect.signature(ResNetRS.__init__).parameters) - {"self"}
# Keys of a pretrained cfg that become model defaults when the user does not override them.
_CFG_TO_MODEL = ("dropout", "drop_path_rate")


@dataclass
class ModelEntry:
    """One registered architecture.

    Attributes:
        name: registry name, e.g. ``"resnetrs50"``.
        arch: keyword arguments of :class:`ResNetRS` (besides num_classes and per-call overrides).
        pretrained_cfg: metadata of the default variant (see module docstring).
        variants: named overrides of ``pretrained_cfg`` (e.g. ``{"i320": {...}}``).
        default_variant: the variant used when none is given.
    """

    name: str
    arch: Dict[str, Any]
    pretrained_cfg: Dict[str, Any]
    variants: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    default_variant: Optional[str] = None

    def cfg(self, variant: Optional[str] = None) -> Dict[str, Any]:
        """The pretrained cfg of ``variant`` (default variant when None)."""
        variant = variant or self.default_variant
        cfg = copy.deepcopy(self.pretrained_cfg)
        if variant is not None:
            if variant not in self.variants:
                raise UnknownModelError(f"{self.name} has no variant {variant!r}; variants: {sorted(self.variants)}")
            cfg.update(copy.deepcopy(self.variants[variant]))
            cfg["variant"] = variant
        cfg["architecture"] = self.name
        return cfg


class ModelRegistry:
    """A named collection of :class:`ModelEntry` with a ``create`` that builds :class:`ResNetRS`."""

    def __init__(self, family: str, default_num_classes: int) -> None:
        self.family = family
        self.default_num_classes = default_num_classes
        self._entries: Dict[str, ModelEntry] = {}

    def register(self, entry: ModelEntry) -> ModelEntry:
        if entry.name in self._entries:
            raise ValueError(f"{self.family} model {entry.name!r} is registered twice")
        unknown = set(entry.arch) - _RESNET_RS_KWARGS
        if unknown:
            raise TypeError(f"{entry.name}: unknown architecture keys {sorted(unknown)}")
        self._entries[entry.name] = entry
        return entry

    def list(self, pattern: str = "*") -> List[str]:
        """Registered names matching a shell-style ``pattern``, in registration order."""
        return [n for n in self._entries if fnmatch.fnmatch(n, pattern)]

    def __contains__(self, name: str) -> bool:
        return self.split_name(name)[0] in self._entries

    def split_name(self, name: str) -> tuple:
        """``"resnetrs350.i320"`` or ``"resnetrs350_i320"`` -> ``("resnetrs350", "i320")``."""
        if name in self._entries:
            return name, None
        for sep in (".", "_"):
            base, _, variant = name.rpartition(sep)
            if base in self._entries and variant in self._entries[base].variants:
                return base, variant
        return name, None

    def get(self, name: str) -> ModelEntry:
        base, _ = self.split_name(name)
        if base not in self._entries:
            close = difflib.get_close_matches(base, list(self._entries), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownModelError(f"unknown {self.family} model {name!r}{hint} Known: {', '.join(self._entries)}")
        return self._entries[base]

    def build(
        self,
        name: str,
        *,
        num_classes: Optional[int] = None,
        variant: Optional[str] = None,
        **overrides: Any,
    ) -> nn.Module:
        """Build a randomly initialised model; ``overrides`` replace architecture keys."""
        entry = self.get(name)
        _, name_variant = self.split_name(name)
        cfg = entry.cfg(variant or name_variant)
        unknown = set(overrides) - _RESNET_RS_KWARGS
        if unknown:
            valid = sorted(_RESNET_RS_KWARGS - {"ops", "features_only", "out_indices"})
            raise TypeError(f"{name}: unknown keyword(s) {sorted(unknown)}; valid overrides: {valid}")
        kwargs = dict(entry.arch)
        for key in _CFG_TO_MODEL:
            if key in cfg:
                kwargs[key] = cfg[key]
        kwargs.update(overrides)
        kwargs["num_classes"] = self.default_num_classes if num_classes is None else num_classes
        model = ResNetRS(**kwargs)
        cfg["num_classes"] = kwargs["num_classes"]
        for key in _CFG_TO_MODEL:
            cfg[key] = kwargs.get(key, cfg.get(key))
        model.pretrained_cfg = cfg
        return model

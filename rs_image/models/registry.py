"""Model registries: names -> architecture settings and typed pretrained cfgs, kept as data.

:data:`MODELS` is the one registry of every name: each family (``rs_image``'s image models, ``rs_video``'s video
models and action detectors, registered when ``rs_video`` is imported) adds its :class:`ModelRegistry` and its
``create_model`` with :meth:`Models.add_family`, and :func:`rs_image.create_model` answers any name through
it; hub entry points, export and the reports read it and dispatch nothing themselves. In a family's
:class:`ModelRegistry`, an entry holds the keyword arguments of
:class:`~rs_image.models.resnet_rs.ResNetRS` and a :class:`PretrainedCfg` (timm's idea: what the model
expects as input, its recipe values, its weights and reference numbers). Entries may have named variants
(e.g. ResNet-RS-350 at 256 and at 320 px) that override fields of the cfg. A built model carries its cfg
as a plain dict, ``model.pretrained_cfg`` (:meth:`PretrainedCfg.to_dict`), as timm models do.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from torch import nn

from rs_image.errors import UserError

from .resnet_rs import ResNetRS

__all__ = ["PretrainedCfg", "ModelEntry", "ModelRegistry", "ModelFamily", "Models", "MODELS", "UnknownModelError"]


class UnknownModelError(UserError, KeyError):
    """A model name or variant that no registry knows; the message lists the close names."""


def unknown_model_error(name: str, known: List[str], what: str = "model") -> UnknownModelError:
    """The error for ``name``, with up to three close names of ``known`` and then all of them."""
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UnknownModelError(f"unknown {what} {name!r}{hint} Known: {', '.join(known)}")


@dataclass(frozen=True)
class PretrainedCfg:
    """Metadata of one model (variant): one vocabulary for image and video models.

    ``None`` means "does not apply / not known"; :meth:`to_dict` leaves such fields out. Reference
    numbers (``top1``, ``params_m``, ``gmacs``) are published values, not measurements here.

    Attributes:
        architecture: registry name, e.g. ``"resnetrs350"`` (set by the registry).
        variant: tag of the cfg, e.g. ``"i320"`` (timm's ``tag``; set by the registry).
        num_classes: classifier outputs of the built model (set when a model is built; a registered value
            is the model's default, e.g. 80 for the AVA detectors).
        input_size: training input, (C, H, W) or (C, T, H, W).
        test_input_size: evaluation input (None: ``input_size``).
        num_frames: video: frames per clip.
        sampling_rate: video: stride between sampled frames.
        test_views: video: (temporal clips, spatial crops) of the multi-view test.
        interpolation: resize interpolation, ``"bicubic"`` or ``"bilinear"``.
        crop_pct: images: the evaluation centre crop as a fraction of the resized short side.
        train_crop: video: ``"inception"`` (random resized crop) or ``"jitter"`` (short-side jitter + crop).
        mean: per-channel input mean (inputs in [0, 1]).
        std: per-channel input standard deviation.
        randaugment_magnitude: images: TF RandAugment magnitude of the recipe.
        dropout: dropout before the classifier; the model's default.
        drop_path_rate: stochastic-depth base rate; the model's default.
        drop_path_schedule: ``"stage"`` or ``"linear"`` (see ``drop_path_rates``); the model's default.
        first_conv: name of the first conv (for adapting ``in_chans``); the same for every ResNetRS.
        classifier: name of the classifier, which weight loading drops when the model cannot use it.
        keras_weights: images: the official Keras ``.h5`` file with these weights.
        inflate_from: video: the image model whose weights inflate into this one.
        top1: published top-1 accuracy (%) at ``test_input_size`` and ``test_views``.
        top1_source: who published ``top1``.
        params_m: published parameter count (millions, ``num_classes`` of the registry).
        gmacs: published multiply-adds (G) of one view at ``test_input_size``.
        paper: the paper of the architecture or recipe (arXiv id).
        label_set: the class list the released weights' outputs follow, by name (e.g. ``"kinetics400"``,
            shipped as package data by the family that registers the model).
    """

    architecture: str = ""
    variant: Optional[str] = None
    num_classes: Optional[int] = None
    # Input
    input_size: Optional[Tuple[int, ...]] = None
    test_input_size: Optional[Tuple[int, ...]] = None
    num_frames: Optional[int] = None
    sampling_rate: Optional[int] = None
    test_views: Optional[Tuple[int, int]] = None
    interpolation: Optional[str] = None
    crop_pct: Optional[float] = None
    train_crop: Optional[str] = None
    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None
    # Recipe
    randaugment_magnitude: Optional[int] = None
    dropout: Optional[float] = None
    drop_path_rate: Optional[float] = None
    drop_path_schedule: Optional[str] = None
    # Weights
    first_conv: str = "stem.conv1"
    classifier: str = "head.fc"
    keras_weights: Optional[str] = None
    inflate_from: Optional[str] = None
    # Reference numbers
    top1: Optional[float] = None
    top1_source: Optional[str] = None
    params_m: Optional[float] = None
    gmacs: Optional[float] = None
    paper: Optional[str] = None
    # Classes
    label_set: Optional[str] = None

    def replace(self, **changes: Any) -> "PretrainedCfg":
        """A copy with ``changes``; an unknown field raises a ``TypeError`` naming it."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown pretrained cfg field(s) {sorted(unknown)}; fields: {_FIELD_NAMES}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        """The fields that are set (not None), as a plain dict."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


_FIELD_NAMES = [f.name for f in dataclasses.fields(PretrainedCfg)]
_RESNET_RS_KWARGS = set(inspect.signature(ResNetRS.__init__).parameters) - {"self"}
# Cfg fields that become model defaults when the user does not override them.
_CFG_TO_MODEL = ("dropout", "drop_path_rate", "drop_path_schedule")


@dataclass
class ModelEntry:
    """One registered architecture.

    Attributes:
        name: registry name, e.g. ``"resnetrs50"``.
        arch: keyword arguments of :class:`ResNetRS` (besides num_classes and per-call overrides).
        pretrained_cfg: metadata of the default variant (a mapping is turned into a :class:`PretrainedCfg`).
        variants: named field overrides of ``pretrained_cfg`` (e.g. ``{"i320": {"input_size": ...}}``).
        default_variant: the variant used when none is given.
    """

    name: str
    arch: Dict[str, Any]
    pretrained_cfg: Union[PretrainedCfg, Mapping[str, Any]] = field(default_factory=PretrainedCfg)
    variants: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    default_variant: Optional[str] = None

    def __post_init__(self) -> None:
        base = self.pretrained_cfg
        if not isinstance(base, PretrainedCfg):
            base = PretrainedCfg().replace(**base)
        self.pretrained_cfg = base.replace(architecture=self.name)
        # Built once, so that a misspelt field fails at registration.
        self._variant_cfgs = {v: self.pretrained_cfg.replace(**o, variant=v) for v, o in self.variants.items()}

    def cfg(self, variant: Optional[str] = None) -> PretrainedCfg:
        """The pretrained cfg of ``variant`` (default variant when None)."""
        variant = variant or self.default_variant
        if variant is None:
            return self.pretrained_cfg
        if variant not in self._variant_cfgs:
            raise UnknownModelError(f"{self.name} has no variant {variant!r}; variants: {sorted(self.variants)}")
        return self._variant_cfgs[variant]


class ModelRegistry:
    """A named collection of :class:`ModelEntry` with a ``build`` that makes :class:`ResNetRS`."""

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
            raise unknown_model_error(name, list(self._entries), f"{self.family} model")
        return self._entries[base]

    def build(
        self,
        name: str,
        *,
        num_classes: Optional[int] = None,
        variant: Optional[str] = None,
        **overrides: Any,
    ) -> nn.Module:
        """Build a randomly initialised model; ``overrides`` replace architecture keys.

        The model's ``pretrained_cfg`` is the variant's cfg as a dict, with ``num_classes`` and the
        model defaults (dropout, stochastic depth) it was actually built with.
        """
        entry = self.get(name)
        _, name_variant = self.split_name(name)
        cfg = entry.cfg(variant or name_variant)
        unknown = set(overrides) - _RESNET_RS_KWARGS
        if unknown:
            valid = sorted(_RESNET_RS_KWARGS - {"ops", "features_only", "out_indices"})
            raise TypeError(f"{name}: unknown keyword(s) {sorted(unknown)}; valid overrides: {valid}")
        kwargs = dict(entry.arch)
        for key in _CFG_TO_MODEL:
            if getattr(cfg, key) is not None:
                kwargs[key] = getattr(cfg, key)
        kwargs.update(overrides)
        if num_classes is None:  # the entry's own class count (e.g. AVA's 80), else the family's
            num_classes = cfg.num_classes if cfg.num_classes is not None else self.default_num_classes
        kwargs["num_classes"] = num_classes
        model = ResNetRS(**kwargs)
        built = {key: kwargs.get(key, getattr(cfg, key)) for key in _CFG_TO_MODEL}
        model.pretrained_cfg = cfg.replace(num_classes=kwargs["num_classes"], **built).to_dict()
        return model


@dataclass(frozen=True)
class ModelFamily:
    """One family of :data:`MODELS`: its registry, its ``create_model`` (which may take keywords of its own, e.g.
    the video family's ``inflate_from``) and the input its models take (``"image"`` or ``"video"``)."""

    registry: ModelRegistry
    create: Callable[..., nn.Module]
    task: str

    @property
    def name(self) -> str:
        return self.registry.family

    @property
    def package(self) -> str:
        """The package that registered the family, e.g. ``"rs_video"``."""
        return self.create.__module__.split(".")[0]


class Models:
    """Every registered model name, over the families that registered (:data:`MODELS`)."""

    def __init__(self) -> None:
        self._families: Dict[str, ModelFamily] = {}

    def add_family(self, registry: ModelRegistry, create: Callable[..., nn.Module], task: str) -> None:
        """Register a family (once; a name may belong to one family only)."""
        if registry.family in self._families:
            raise ValueError(f"model family {registry.family!r} is registered twice")
        for name in registry.list():
            if name in self:
                raise ValueError(f"{name!r} of family {registry.family!r} is already a {self.family_of(name).name} model")
        self._families[registry.family] = ModelFamily(registry, create, task)

    def families(self) -> List[ModelFamily]:
        return list(self._families.values())

    def __contains__(self, name: str) -> bool:
        return any(name in f.registry for f in self._families.values())

    def family_of(self, name: str) -> ModelFamily:
        """The family of ``name`` (with or without a variant tag); raises :class:`UnknownModelError` with the close
        names of every family."""
        for family in self._families.values():
            if name in family.registry:
                return family
        raise unknown_model_error(name, self.list())

    def get(self, name: str) -> ModelEntry:
        return self.family_of(name).registry.get(name)

    def create(self, name: str, **kwargs: Any) -> nn.Module:
        """Build ``name`` with its family's ``create_model`` (``kwargs`` are that function's)."""
        return self.family_of(name).create(name, **kwargs)

    def list(self, pattern: str = "*", family: Optional[str] = None) -> List[str]:
        """Names of every family (or of ``family``), in registration order."""
        return [n for f in self._families.values() if family in (None, f.name) for n in f.registry.list(pattern)]


#: The one registry of every model name (module docstring).
MODELS = Models()

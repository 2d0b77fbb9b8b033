"""The models a report can name: :class:`ModelSpec` and the sources that make specs, in a :class:`ModelCatalog`.

A spec says how to build a model at random init, its train and test inputs, its test views and the top-1
its authors reported. Sources:

* :class:`RegistrySource` wraps a :class:`~rs_image.models.ModelRegistry` (our image models here; the
  video registry is added by ``rs_video`` users, e.g. ``tools/model_report.py``, since ``rs_image`` never
  imports ``rs_video``). Names are bare: ``resnetrs50``, ``resnetrs350.i320``, ``rs3d_50``.
* :class:`PyTorchVideoSource` (``ptv:slow_r50`` ...), :class:`TorchvisionVideoSource` (``tv:r3d_18`` ...)
  and :class:`TimmSource` (``timm:resnetrs50`` ...) are the comparison rows, built at random init.

A spec's :meth:`~ModelSpec.fingerprint` (:func:`model_fingerprint`) identifies its architecture, so that
pinned counts (:class:`~rs_image.report.counts.CountsCache`) are used only for the model they were made from.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from rs_image.errors import UserError
from rs_image.models import IMAGE_MODELS, MODELS
from rs_image.upstream import quiet_upstream_import

__all__ = [
    "UnknownModelError",
    "NotReportableError",
    "ModelSpec",
    "RegistrySource",
    "PyTorchVideoSource",
    "TorchvisionVideoSource",
    "TimmSource",
    "ModelCatalog",
    "default_catalog",
    "model_fingerprint",
    "parse_views",
]


class UnknownModelError(UserError, KeyError):
    """A model name or ``@group`` that no source knows (the message suggests close names)."""


class NotReportableError(UserError, ValueError):
    """A name the reports cannot count (an action detector) or a malformed option such as ``--views``."""


def parse_views(text: str) -> Tuple[int, int]:
    """``"10x3"`` -> ``(10, 3)`` (temporal clips x spatial crops)."""
    try:
        clips, crops = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise NotReportableError(f"views must look like CLIPSxCROPS, e.g. 10x3; got {text!r}") from None
    if clips < 1 or crops < 1:
        raise NotReportableError(f"views must be positive, got {text!r}")
    return clips, crops


def model_fingerprint(model: nn.Module) -> str:
    """A hash of the architecture: the module tree with every layer's hyper-parameters (``repr``) and the
    names and shapes of parameters and buffers. Weights do not enter, so a meta-device build matches."""
    h = hashlib.sha256(repr(model).encode())
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        h.update(f"{name}:{tuple(t.shape)};".encode())
    return h.hexdigest()[:20]


def _meta_build(spec: ModelSpec) -> Optional[nn.Module]:
    """The model on the meta device (no memory, no init cost), or None where a builder does not allow it."""
    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            return spec.build()
    except Exception:  # noqa: BLE001 - any builder failing on meta tensors falls back to a real build
        return None


@dataclass
class ModelSpec:
    """One model to report.

    Attributes:
        name: the catalog name (``rs3d_50``, ``resnetrs350.i320``, ``ptv:x3d_m``).
        family: ``rs_image``, ``rs_video``, ``pytorchvideo``, ``torchvision`` or ``timm``.
        task: ``image`` or ``video``.
        build: returns the model at random init, producing logits.
        input_size, test_input_size: one sample, (C, H, W) or (C, T, H, W).
        test_views: (temporal clips, spatial crops) of the test protocol; (1, 1) for images.
        clip: frames x sampling rate as text (``"32x2"``), empty for images.
        top1: top-1 accuracy reported by the model's authors (never measured here), or None.
        top1_source: who reported ``top1``.
        top1_input_size, top1_views: the test input and views ``top1`` was reported at (default: the spec's
            own ``test_input_size`` / ``test_views``; they stay when :meth:`with_overrides` changes the inputs).
        dataset: the data set of ``top1``.
        cfg: the registry's pretrained cfg (our models), for the zoo page.
    """

    name: str
    family: str
    task: str
    build: Callable[[], nn.Module]
    input_size: Tuple[int, ...]
    test_input_size: Tuple[int, ...]
    test_views: Tuple[int, int] = (1, 1)
    clip: str = ""
    top1: Optional[float] = None
    top1_source: Optional[str] = None
    top1_input_size: Optional[Tuple[int, ...]] = None
    top1_views: Optional[Tuple[int, int]] = None
    dataset: str = ""
    cfg: Dict[str, Any] = field(default_factory=dict)
    _fingerprint: Optional[str] = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.top1 is not None:
            self.top1_input_size = tuple(self.top1_input_size or self.test_input_size)
            self.top1_views = tuple(self.top1_views or self.test_views)  # type: ignore[assignment]

    def fingerprint(self) -> str:
        """:func:`model_fingerprint` of the architecture (built on the meta device where possible), memoised."""
        if self._fingerprint is None:
            model = _meta_build(self)
            self._fingerprint = model_fingerprint(model if model is not None else self.build())
        return self._fingerprint

    def with_overrides(
        self,
        frames: Optional[int] = None,
        size: Optional[int] = None,
        test_size: Optional[int] = None,
        views: Optional[Tuple[int, int]] = None,
    ) -> "ModelSpec":
        """A copy with other inputs: ``frames`` (video T, train and test), ``size`` (train H = W, and test
        too unless ``test_size`` is given), ``views`` (video test views)."""
        train, test = list(self.input_size), list(self.test_input_size)
        if frames is not None and self.task == "video":
            train[1] = test[1] = frames
        if size is not None:
            train[-2:] = [size, size]
            test[-2:] = [size, size]
        if test_size is not None:
            test[-2:] = [test_size, test_size]
        out = dataclasses.replace(self, input_size=tuple(train), test_input_size=tuple(test))
        out._fingerprint = self._fingerprint  # inputs change, the architecture does not
        if views is not None and self.task == "video":
            out.test_views = tuple(views)
        return out


class RegistrySource:
    """Specs from one of our :class:`~rs_image.models.ModelRegistry` (bare names).

    Args:
        registry: a family's registry (:class:`rs_image.models.ModelFamily`).
        create: the family's ``create_model``.
        family: label of the rows, e.g. ``"rs_video"``.
        task: ``"image"`` or ``"video"``.
    """

    prefix = ""

    def __init__(self, registry: Any, create: Callable[..., nn.Module], family: str, task: str) -> None:
        self.registry = registry
        self.create = create
        self.family = family
        self.task = task

    def names(self) -> List[str]:
        """The classifiers: reports count and rank classification models (ImageNet / Kinetics top-1); the
        action detectors (``head_type='roi'``, a forward that needs boxes) are documented in docs/detection.md."""
        return [n for n in self.registry.list() if not _is_detector(self.registry.get(n))]

    def variant_names(self) -> List[str]:
        """Every registered variant as ``name.variant`` (the name alone for single-config models)."""
        out = []
        for name in self.names():
            variants = sorted(self.registry.get(name).variants, key=_variant_key)
            out.extend([f"{name}.{v}" for v in variants] or [name])
        return out

    def __contains__(self, name: str) -> bool:
        return name in self.registry

    def spec(self, name: str) -> ModelSpec:
        entry = self.registry.get(name)
        if _is_detector(entry):
            raise NotReportableError(f"{name} is an action detector (its forward needs boxes); the reports cover "
                                     "the classification models: see docs/detection.md for the detectors")
        _, variant = self.registry.split_name(name)
        cfg = entry.cfg(variant).to_dict()
        video = self.task == "video"
        top1 = cfg.get("top1")
        source = cfg.get("top1_source")
        clip = f"{cfg['num_frames']}x{cfg['sampling_rate']}" if video and "num_frames" in cfg else ""
        return ModelSpec(
            name=name,
            family=self.family,
            task=self.task,
            build=lambda: self.create(name),
            input_size=tuple(cfg["input_size"]),
            test_input_size=tuple(cfg.get("test_input_size", cfg["input_size"])),
            test_views=tuple(cfg.get("test_views", (1, 1))),
            clip=clip,
            top1=top1,
            top1_source=source if top1 is not None else None,
            dataset="Kinetics-400" if video else "ImageNet-1k",
            cfg=cfg,
        )


def _is_detector(entry: Any) -> bool:
    return entry.arch.get("head_type") == "roi"


def _variant_key(variant: str) -> Tuple[int, str]:
    digits = "".join(c for c in variant if c.isdigit())
    return (int(digits) if digits else 0, variant)


def _ptv_logits_head(model: nn.Module) -> nn.Module:
    """Make a PyTorchVideo hub network size-agnostic and logit-producing.

    Its head pools with a fixed kernel sized for the native clip (it fails on smaller inputs, and on larger
    ones pools sliding windows and applies the head layers per window), and ``r2plus1d_r50`` / ``x3d_*`` end
    in a softmax even in train mode. We use a global average pool (what the fixed kernel equals at the
    native size) and drop the softmax. Conv MACs are unchanged.
    """
    head = model.blocks[-1]
    pool_owner = head.pool if hasattr(head.pool, "pool") else head  # X3D: ProjectedPool(pre_conv, pool, post_conv)
    pool_owner.pool = nn.AdaptiveAvgPool3d(1)
    head.activation = None
    return model


class PyTorchVideoSource:
    """PyTorchVideo hub architectures at random init (``ptv:<hub name>``), Kinetics-400 top-1 as reported by
    the PyTorchVideo model zoo (``docs/source/model_zoo.md``; 10 x 3 views)."""

    prefix = "ptv"
    # hub name -> (frames, sampling rate, top-1 reported by the PyTorchVideo model zoo)
    MODELS: Dict[str, Tuple[int, int, float]] = {
        "slow_r50": (8, 8, 74.58),
        "i3d_r50": (8, 8, 73.27),
        "c2d_r50": (8, 8, 71.46),
        "r2plus1d_r50": (16, 4, 76.01),
        "x3d_m": (16, 5, 75.94),
        "csn_r101": (32, 2, 77.00),
    }

    def names(self) -> List[str]:
        return list(self.MODELS)

    def __contains__(self, name: str) -> bool:
        return name in self.MODELS

    def spec(self, name: str) -> ModelSpec:
        frames, rate, top1 = self.MODELS[name]

        def build() -> nn.Module:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hub = quiet_upstream_import("pytorchvideo.models.hub")

                return _ptv_logits_head(getattr(hub, name)(pretrained=False))

        return ModelSpec(
            name=f"{self.prefix}:{name}", family="pytorchvideo", task="video", build=build,
            input_size=(3, frames, 224, 224), test_input_size=(3, frames, 256, 256), test_views=(10, 3),
            clip=f"{frames}x{rate}", top1=top1, top1_source="PyTorchVideo model zoo (10x3 views)",
            dataset="Kinetics-400",
        )


class TorchvisionVideoSource:
    """torchvision video ResNets at random init (``tv:r3d_18`` ...); top-1 from torchvision's weight
    metadata (its video-level protocol: 5 clips of 16 frames at 112 px)."""

    prefix = "tv"
    MODELS = ("r3d_18", "mc3_18", "r2plus1d_18")

    def names(self) -> List[str]:
        return list(self.MODELS)

    def __contains__(self, name: str) -> bool:
        return name in self.MODELS

    def spec(self, name: str) -> ModelSpec:
        import torchvision.models as tvm

        weights = tvm.get_model_weights(name).KINETICS400_V1
        top1 = weights.meta["_metrics"]["Kinetics-400"]["acc@1"]
        return ModelSpec(
            name=f"{self.prefix}:{name}", family="torchvision", task="video",
            build=lambda: tvm.get_model(name, weights=None),
            input_size=(3, 16, 112, 112), test_input_size=(3, 16, 112, 112), test_views=(5, 1),
            clip="16 @15fps", top1=top1, top1_source="torchvision weights metadata (5 clips x 16 frames, 112 px)",
            dataset="Kinetics-400",
        )


class TimmSource:
    """timm ``resnetrs*`` at random init (``timm:resnetrs50`` ...), at the input sizes of our model of the
    same name (so that the rows compare like with like); timm's own sizes where we have no such model."""

    prefix = "timm"

    def names(self) -> List[str]:
        try:
            import timm
        except ImportError:  # timm is optional (a test extra): no timm rows then
            return []
        return timm.list_models("resnetrs*")

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def spec(self, name: str) -> ModelSpec:
        import timm

        if name in IMAGE_MODELS:
            cfg = IMAGE_MODELS.get(name).cfg()
            train, test = tuple(cfg.input_size), tuple(cfg.test_input_size)
        else:
            tcfg = timm.models.get_pretrained_cfg(name)
            train, test = tuple(tcfg.input_size), tuple(tcfg.test_input_size or tcfg.input_size)
        return ModelSpec(
            name=f"{self.prefix}:{name}", family="timm", task="image",
            build=lambda: timm.create_model(name, pretrained=False), input_size=train, test_input_size=test,
            dataset="ImageNet-1k",
        )


class ModelCatalog:
    """Resolves names and ``@groups`` to :class:`ModelSpec` over a list of sources.

    Bare names are looked up in the sources without a prefix, in order; ``prefix:name`` in the source with
    that prefix. Groups: ``@image``, ``@video`` (our models), ``@<prefix>`` (one comparison source),
    ``@anchors`` (all comparison sources) and ``@all``.
    """

    def __init__(self, sources: Sequence[Any]) -> None:
        self.sources = list(sources)

    def _ours(self, task: Optional[str] = None) -> List[str]:
        return [n for s in self.sources if not s.prefix and (task is None or s.task == task) for n in s.names()]

    def _anchors(self, prefix: Optional[str] = None) -> List[str]:
        return [
            f"{s.prefix}:{n}" for s in self.sources if s.prefix and (prefix is None or s.prefix == prefix)
            for n in s.names()
        ]

    def groups(self) -> Dict[str, List[str]]:
        groups = {"@image": self._ours("image"), "@video": self._ours("video"), "@anchors": self._anchors()}
        for s in self.sources:
            if s.prefix:
                groups[f"@{s.prefix}"] = self._anchors(s.prefix)
        groups["@all"] = self._ours() + self._anchors()
        return groups

    def expand(self, names: Iterable[str]) -> List[str]:
        """Names with ``@groups`` expanded, duplicates dropped, order kept."""
        out: List[str] = []
        groups = None
        for name in names:
            if name.startswith("@"):
                groups = groups or self.groups()
                if name not in groups:
                    raise UnknownModelError(f"unknown model group {name!r}; groups: {', '.join(groups)}")
                items = groups[name]
            else:
                items = [name]
            out.extend(n for n in items if n not in out)
        return out

    def spec(self, name: str) -> ModelSpec:
        prefix, sep, base = name.partition(":")
        if sep:
            for s in self.sources:
                if s.prefix == prefix and base in s:
                    return s.spec(base)
        else:
            for s in self.sources:
                if not s.prefix and name in s:
                    return s.spec(name)
        known = self._ours() + self._anchors()
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"unknown model {name!r}{hint} (groups: {', '.join(self.groups())})")

    def resolve(self, names: Iterable[str]) -> List[ModelSpec]:
        return [self.spec(n) for n in self.expand(names)]


def default_catalog() -> ModelCatalog:
    """Every family of :data:`rs_image.models.MODELS` (image first; video once ``rs_video`` is imported) and all
    comparison sources."""
    ours = [RegistrySource(f.registry, f.create, f.package, f.task) for f in MODELS.families()]
    return ModelCatalog([*ours, PyTorchVideoSource(), TorchvisionVideoSource(), TimmSource()])

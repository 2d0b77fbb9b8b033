"""Model reports: parameters, fvcore multiply-adds and activations, throughput rows, writers and a plot.

A model to report is a :class:`ModelSpec`: how to build it at random init, its train and test inputs,
test views and the top-1 its authors reported. Specs come from *sources* collected in a
:class:`ModelCatalog`:

* :class:`RegistrySource` wraps a :class:`~rs_image.models.ModelRegistry` (our image models here; the
  video registry is added by ``rs_video`` users, e.g. ``tools/model_report.py``, since ``rs_image`` never
  imports ``rs_video``). Names are bare: ``resnetrs50``, ``resnetrs350.i320``, ``rs3d_50``.
* :class:`PyTorchVideoSource` (``ptv:slow_r50`` ...), :class:`TorchvisionVideoSource` (``tv:r3d_18`` ...)
  and :class:`TimmSource` (``timm:resnetrs50`` ...) are the comparison rows, built at random init.

Counting conventions (see :mod:`rs_image.utils.flops`): fvcore multiply-adds, 1 fused multiply-add = 1
FLOP, as in the PyTorchVideo / SlowFast / torchvision zoos; ``gmacs`` is conv + linear (what zoos
report), BN is reported separately in ``bn_gmacs`` and never mixed in; ResNet-RS paper "FLOPs" are
2 x MACs. Counts are for batch 1 in eval mode.

A :class:`CountsCache` (JSON) keeps counts keyed by model name, input shape and an architecture
fingerprint, so that the model zoo page of big models need not re-run fvcore every time; an entry whose
fingerprint no longer matches the model is never used.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import hashlib
import io
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from .benchmark import ThroughputResult
from .flops import count_params, count_stats

__all__ = [
    "ModelSpec",
    "RegistrySource",
    "PyTorchVideoSource",
    "TorchvisionVideoSource",
    "TimmSource",
    "ModelCatalog",
    "default_catalog",
    "CountsCache",
    "StaleCountsError",
    "model_fingerprint",
    "count_spec",
    "count_rows",
    "throughput_rows",
    "FLOPS_PER_MAC",
    "format_mfu",
    "rows_to_markdown",
    "rows_to_csv",
    "rows_to_json",
    "read_csv_rows",
    "PlotPoint",
    "plot_points",
    "top1_input_mismatches",
    "plot_accuracy_vs_flops",
    "shape_str",
    "parse_views",
    "CONVENTION",
    "eprint",
]

CONVENTION = (
    "fvcore multiply-adds, batch 1, eval mode; 1 fused multiply-add = 1 FLOP (the PyTorchVideo, SlowFast and "
    "torchvision zoo \"GFLOPs\"). GMACs = conv + linear; BatchNorm is listed separately and not included; "
    "ResNet-RS paper FLOPs are 2 x these MACs. Activations = output elements of conv/linear (fvcore). "
    "GMACs x views = test-input GMACs times clips x crops."
)


def shape_str(shape: Sequence[int]) -> str:
    """``(3, 32, 224, 224)`` -> ``"3x32x224x224"``."""
    return "x".join(str(int(s)) for s in shape)


def parse_views(text: str) -> Tuple[int, int]:
    """``"10x3"`` -> ``(10, 3)`` (temporal clips x spatial crops)."""
    try:
        clips, crops = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"views must look like CLIPSxCROPS, e.g. 10x3; got {text!r}") from None
    if clips < 1 or crops < 1:
        raise ValueError(f"views must be positive, got {text!r}")
    return clips, crops


# --------------------------------------------------------------------------------------------------
# Specs and sources
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
        registry: the registry (``rs_image.models.IMAGE_MODELS`` or ``rs_video.VIDEO_MODELS``).
        create: the matching ``create_model``.
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
        return self.registry.list()

    def variant_names(self) -> List[str]:
        """Every registered variant as ``name.variant`` (the name alone for single-config models)."""
        out = []
        for name in self.registry.list():
            variants = sorted(self.registry.get(name).variants, key=_variant_key)
            out.extend([f"{name}.{v}" for v in variants] or [name])
        return out

    def __contains__(self, name: str) -> bool:
        return name in self.registry

    def spec(self, name: str) -> ModelSpec:
        entry = self.registry.get(name)
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
                import pytorchvideo.models.hub as hub

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

        from rs_image.models import IMAGE_MODELS

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
                    raise KeyError(f"unknown model group {name!r}; groups: {', '.join(groups)}")
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
        raise KeyError(f"unknown model {name!r}{hint} (groups: {', '.join(self.groups())})")

    def resolve(self, names: Iterable[str]) -> List[ModelSpec]:
        return [self.spec(n) for n in self.expand(names)]


def default_catalog(extra_sources: Sequence[Any] = ()) -> ModelCatalog:
    """Our image models, ``extra_sources`` (e.g. the video registry) and all comparison sources."""
    from rs_image.models import IMAGE_MODELS, create_model

    image = RegistrySource(IMAGE_MODELS, create_model, "rs_image", "image")
    return ModelCatalog([image, *extra_sources, PyTorchVideoSource(), TorchvisionVideoSource(), TimmSource()])


# --------------------------------------------------------------------------------------------------
# Counting, with a fingerprinted cache
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


class CountsCache:
    """Counts kept as JSON: ``{"counts": {"<name>|<shape>": {fingerprint, params, conv, linear, batch_norm,
    total, activations}}}``. Entries are used only when the fingerprint matches the model built now."""

    def __init__(self, path: Optional[str] = None) -> None:
        self.path = path
        self.entries: Dict[str, Dict[str, Any]] = {}
        self.used: set = set()  # keys read or written since loading, see save(prune_unused=True)
        self.dirty = False
        if path and os.path.exists(path):
            try:
                with open(path) as f:
                    self.entries = dict(json.load(f)["counts"])
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}: not a counts cache written by tools/model_report.py ({e})") from None

    @staticmethod
    def key(name: str, shape: Sequence[int]) -> str:
        return f"{name}|{shape_str(shape)}"

    def get(self, name: str, shape: Sequence[int], fingerprint: str) -> Optional[Dict[str, Any]]:
        key = self.key(name, shape)
        entry = self.entries.get(key)
        if entry is None or entry.get("fingerprint") != fingerprint:
            return None
        self.used.add(key)
        return entry

    def put(self, name: str, shape: Sequence[int], fingerprint: str, counts: Mapping[str, Any]) -> None:
        key = self.key(name, shape)
        self.entries[key] = dict(counts, fingerprint=fingerprint)
        self.used.add(key)
        self.dirty = True

    def save(self, path: Optional[str] = None, prune_unused: bool = False) -> None:
        """Write the cache (atomically); ``prune_unused`` keeps only the entries used since loading."""
        path = path or self.path
        if prune_unused:
            self.entries = {k: v for k, v in self.entries.items() if k in self.used}
        if path is None:
            raise ValueError("no path to save the counts cache to")
        data = {
            "about": "fvcore counts (batch 1, eval mode) written by tools/model_report.py; "
                     "see rs_image/utils/report.py. Regenerate, never edit by hand.",
            "counts": {k: self.entries[k] for k in sorted(self.entries)},
        }
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
        self.dirty = False


class StaleCountsError(RuntimeError):
    """Raised when counts must be computed but the caller allowed only cached ones."""


_COUNT_KEYS = ("params", "conv", "linear", "batch_norm", "total", "activations")


def count_spec(
    spec: ModelSpec,
    shapes: Sequence[Sequence[int]],
    *,
    cache: Optional[CountsCache] = None,
    allow_compute: bool = True,
    log: Optional[Callable[[str], None]] = None,
) -> List[Dict[str, int]]:
    """Counts (``params, conv, linear, batch_norm, total, activations``) of ``spec`` at every input shape.

    With a ``cache``, entries with a matching fingerprint are reused and new counts are stored; with
    ``allow_compute=False`` a missing or stale entry raises :class:`StaleCountsError`.
    """
    fingerprint = spec.fingerprint() if cache is not None else None
    model = None
    results = []
    for shape in shapes:
        hit = cache.get(spec.name, shape, fingerprint) if cache is not None else None
        if hit is not None:
            results.append({k: int(hit[k]) for k in _COUNT_KEYS})
            continue
        if not allow_compute:
            raise StaleCountsError(
                f"no current count for {spec.name} at {shape_str(shape)} in {cache.path if cache else 'the cache'} "
                "(the model changed or is new): run `python tools/model_report.py --zoo MODEL_ZOO.md`"
            )
        if log:
            log(f"counting {spec.name} at {shape_str(shape)} with fvcore ...")
        if model is None:
            model = spec.build()
        stats = count_stats(model, torch.zeros(1, *shape))
        counts = dict(params=count_params(model), **{k: int(stats[k]) for k in _COUNT_KEYS[1:]})
        if cache is not None:
            cache.put(spec.name, shape, fingerprint, counts)
        results.append(counts)
    return results


def _views_str(views: Sequence[int]) -> str:
    return "x".join(str(v) for v in views)


def count_rows(
    specs: Sequence[ModelSpec],
    *,
    cache: Optional[CountsCache] = None,
    allow_compute: bool = True,
    log: Optional[Callable[[str], None]] = None,
) -> List[Dict[str, Any]]:
    """One row per model and distinct input (``train``, ``test``, or ``train=test``).

    Row keys: ``table`` ("counts"), ``model, family, task, input, shape, clip, params_m, gmacs`` (conv +
    linear), ``bn_gmacs``, ``gmacs_with_bn``, ``activations_m``, ``views`` (1x1 for train rows),
    ``gmacs_x_views``, ``top1``, ``top1_source``, ``top1_input`` and ``top1_views`` (what ``top1`` was
    reported at), ``dataset``.
    """
    rows = []
    for spec in specs:
        inputs = [("train", spec.input_size), ("test", spec.test_input_size)]
        if spec.input_size == spec.test_input_size:
            inputs = [("train=test", spec.input_size)]
        counts = count_spec(spec, [s for _, s in inputs], cache=cache, allow_compute=allow_compute, log=log)
        for (label, shape), c in zip(inputs, counts):
            views = (1, 1) if label == "train" else spec.test_views
            gmacs = (c["conv"] + c["linear"]) / 1e9
            rows.append(
                dict(
                    table="counts",
                    model=spec.name,
                    family=spec.family,
                    task=spec.task,
                    input=label,
                    shape=shape_str(shape),
                    clip=spec.clip,
                    params_m=round(c["params"] / 1e6, 4),
                    gmacs=round(gmacs, 4),
                    bn_gmacs=round(c["batch_norm"] / 1e9, 4),
                    gmacs_with_bn=round(c["total"] / 1e9, 4),
                    activations_m=round(c["activations"] / 1e6, 4),
                    views=_views_str(views),
                    gmacs_x_views=round(gmacs * views[0] * views[1], 4),
                    top1=spec.top1,
                    top1_source=spec.top1_source or "",
                    top1_input=shape_str(spec.top1_input_size) if spec.top1_input_size else None,
                    top1_views=_views_str(spec.top1_views) if spec.top1_views else None,
                    dataset=spec.dataset,
                )
            )
    return rows


# Model FLOPs per clip per forward multiply-add (conv + linear): 2 (a multiply and an add) for inference, and
# for a training step 3 x that (the usual convention: the backward pass costs twice the forward).
FLOPS_PER_MAC = {"inference": 2, "train": 6}


def throughput_rows(
    results: Sequence[ThroughputResult],
    count_rows_: Sequence[Mapping[str, Any]] = (),
    peak_tflops: Optional[float] = None,
) -> List[Dict[str, Any]]:
    """Throughput results as rows (``table`` = "throughput"), with speed-up over ``eager`` of the same
    model and mode, and, where ``count_rows_`` has the forward MACs at the same input, the time per
    forward GMAC (``ms_per_gmac`` = step time / (batch x GMACs per clip)) for comparing architectures, the
    achieved model TFLOP/s (``achieved_tflops`` = :data:`FLOPS_PER_MAC` x GMACs per clip x clips/s / 1000)
    and, given the device's ``peak_tflops`` (dense bf16, :func:`~rs_image.utils.benchmark.peak_bf16_tflops`),
    the model FLOP utilisation ``mfu`` = achieved / peak (for every option, fp32 rows included)."""
    gmacs = {(r["model"], r["shape"]): r["gmacs"] for r in count_rows_}
    # A result pooled from rounds can carry an error of one round and still have timed steps.
    timed = {id(r): bool(r.step_times_ms) and math.isfinite(r.median_ms) for r in results}
    base = {(r.model, r.mode): r.median_ms for r in results if r.option == "eager" and timed[id(r)]}
    rows = []
    for r in results:
        row = {"table": "throughput", **r.as_row()}
        b = base.get((r.model, r.mode))
        row["speedup_vs_eager"] = round(b / r.median_ms, 3) if b and timed[id(r)] else None
        g = gmacs.get((r.model, r.input_shape))
        row["gmacs_per_clip"] = g
        row["ms_per_gmac"] = round(r.median_ms / (r.batch_size * g), 3) if g and timed[id(r)] else None
        tflops = FLOPS_PER_MAC[r.mode] * g * r.clips_per_s / 1e3 if g and timed[id(r)] else None
        # 4 significant digits: a CPU reaches ~1e-4 TFLOP/s on tiny inputs, a GPU hundreds.
        row["achieved_tflops"] = float(f"{tflops:.4g}") if tflops is not None else None
        row["peak_tflops"] = peak_tflops
        row["mfu"] = float(f"{tflops / peak_tflops:.4g}") if tflops is not None and peak_tflops else None
        for k in ("median_ms", "min_ms", "max_ms", "clips_per_s", "peak_mem_mib", "cpu_ms", "load_1min"):
            if isinstance(row[k], float) and math.isfinite(row[k]):
                row[k] = round(row[k], 3)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------
# Writers
def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or v == "":
        return "–"
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.{digits}f}"
    return str(v)


def _md_table(header: Sequence[str], body: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def rows_to_markdown(
    counts: Sequence[Mapping[str, Any]],
    throughput: Sequence[Mapping[str, Any]] = (),
    machine: Optional[Mapping[str, Any]] = None,
) -> str:
    """The report as markdown: a counts table (with the convention stated) and, if given, a throughput
    table headed by the machine and versions."""
    parts = []
    if counts:
        parts.append("## Parameters, multiply-adds and activations\n\n" + CONVENTION + "\n")
        body = [
            (
                r["model"], r["family"], r["input"], r["shape"], r["clip"] or "–", r["params_m"], r["gmacs"],
                r["bn_gmacs"], r["activations_m"], r["views"], r["gmacs_x_views"],
                f"{r['top1']:.2f}" if r["top1"] is not None else "–",
            )
            for r in counts
        ]
        header = ["model", "source", "input", "shape", "frames x rate", "params (M)", "GMACs", "BN GMACs (not incl.)",
                  "activations (M)", "views", "GMACs x views", "reported top-1*"]
        parts.append(_md_table(header, body))
        sources = sorted({r["top1_source"] for r in counts if r["top1"] is not None})
        if sources:
            parts.append("\n*Top-1 as reported by the models' authors, not measured here: " + "; ".join(sources) + ".")
    if throughput:
        if machine:
            parts.append("\n## Throughput\n\nMachine: " + ", ".join(f"{k} {v}" for k, v in machine.items()) + "\n")
        else:
            parts.append("\n## Throughput\n")
        header = ["model", "mode", "option", "device", "batch", "input", "median ms/step", "clips/s", "vs eager",
                  "ms per fwd GMAC", "TFLOP/s", "MFU", "CPU ms/step", "peak mem (MiB)", "memory kind", "load (1 min)"]
        body = [
            (
                r["model"], r["mode"], r["option"], r["device"], r["batch_size"], r["input_shape"],
                r["median_ms"] if not r["error"] else f"{_fmt(r['median_ms'])} (error: {r['error']})", r["clips_per_s"],
                f"{r['speedup_vs_eager']:.2f}x" if r["speedup_vs_eager"] else "–", r["ms_per_gmac"],
                r.get("achieved_tflops"), format_mfu(r.get("mfu")), r.get("cpu_ms"), r["peak_mem_mib"],
                r["peak_mem_kind"], r.get("load_1min"),
            )
            for r in throughput
        ]
        parts.append(_md_table(header, body))
        peaks = sorted({r["peak_tflops"] for r in throughput if r.get("peak_tflops")})
        peak_note = (f"against a dense bf16 peak of {', '.join(f'{p:g}' for p in peaks)} TFLOP/s, for every option "
                     "(fp32 rows too)") if peaks else "n/a: no bf16 peak known for this device (--peak-tflops sets one)"
        parts.append(
            "\nMedian of the timed steps after warm-up, synchronised; train = forward, cross-entropy, backward and "
            "SGD step. ms per fwd GMAC = step time / (batch x forward GMACs per clip). TFLOP/s = model FLOPs "
            "achieved: 2 x forward MACs (conv + linear, fvcore) x clips/s for inference, 3 x that for training "
            f"(backward = 2 x forward, the usual convention). MFU = TFLOP/s / peak, {peak_note}. CPU ms/step = "
            "process CPU time of a step (all threads); load = 1-minute load average of the machine after the timed "
            "steps."
        )
    return "\n".join(parts) + "\n"


def format_mfu(mfu: Optional[float]) -> str:
    """``0.4123`` -> ``"41.2%"``; None -> ``"n/a"``."""
    return "n/a" if mfu is None else f"{100 * mfu:.1f}%"


def rows_to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """All rows (counts and throughput) in one CSV; the ``table`` column tells them apart and columns a
    row does not have are empty."""
    columns: List[str] = []
    for r in rows:
        columns.extend(k for k in r if k not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        # Lists (per-step times) as JSON so that they parse back as lists.
        writer.writerow({k: _csv_cell(r.get(k)) for k in columns})
    return out.getvalue()


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    return json.dumps(v) if isinstance(v, (list, tuple)) else v


def read_csv_rows(text: str) -> List[Dict[str, Any]]:
    """Parse :func:`rows_to_csv` output back: numbers as numbers, lists as lists, empty cells as None."""

    def convert(v: str) -> Any:
        if v == "":
            return None
        if v.startswith("["):
            return json.loads(v)
        for cast in (int, float):
            try:
                return cast(v)
            except ValueError:
                pass
        return v

    return [{k: convert(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]


def rows_to_json(
    counts: Sequence[Mapping[str, Any]],
    throughput: Sequence[Mapping[str, Any]] = (),
    machine: Optional[Mapping[str, Any]] = None,
) -> str:
    """``{"convention", "machine", "counts": [...], "throughput": [...]}`` as indented JSON."""

    def clean(v: Any) -> Any:
        return None if isinstance(v, float) and not math.isfinite(v) else v

    data = dict(
        convention=CONVENTION,
        machine=dict(machine or {}),
        counts=[{k: clean(v) for k, v in r.items()} for r in counts],
        throughput=[{k: clean(v) for k, v in r.items()} for r in throughput],
    )
    return json.dumps(data, indent=1) + "\n"


# --------------------------------------------------------------------------------------------------
# Plot
@dataclass
class PlotPoint:
    label: str
    family: str
    gmacs_x_views: float
    top1: float
    source: str


def _top1_candidates(rows: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    return [r for r in rows if r["task"] == "video" and r["top1"] is not None and r["input"] != "train"]


def _top1_applies(row: Mapping[str, Any]) -> bool:
    """Whether the row's test input and views are those its top-1 was reported at."""
    return row.get("top1_input") == row["shape"] and row.get("top1_views") == row["views"]


def plot_points(rows: Sequence[Mapping[str, Any]]) -> List[PlotPoint]:
    """Video rows at their test input that carry a reported Kinetics-400 top-1, only where that input and
    the views are the ones the top-1 was reported at (a top-1 measured on 8-frame clips says nothing about
    the cost of 32-frame ones; :func:`top1_input_mismatches` lists the rows left out). The same architecture
    reported twice (our ``slow_r50`` and ``ptv:slow_r50``) is plotted once."""
    points, seen = [], set()
    for r in _top1_candidates(rows):
        if not _top1_applies(r):
            continue
        key = (round(r["gmacs_x_views"], 0), r["top1"])
        if key in seen:
            continue
        seen.add(key)
        points.append(PlotPoint(r["model"], r["family"], r["gmacs_x_views"], r["top1"], r["top1_source"]))
    return points


def top1_input_mismatches(rows: Sequence[Mapping[str, Any]]) -> List[str]:
    """One line per video test row whose reported top-1 is *not* plotted because the row is at another input
    or other views than the top-1 was reported at (e.g. after ``--frames`` / ``--size`` overrides)."""
    out = []
    for r in _top1_candidates(rows):
        if _top1_applies(r):
            continue
        reported = (f"{r['top1_input']}, {r['top1_views']} views" if r.get("top1_input") and r.get("top1_views")
                    else "an unknown input")
        out.append(f"{r['model']}: top-1 {r['top1']:.2f} was reported at {reported}; this row is "
                   f"{r['shape']}, {r['views']} views")
    return out


_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:gray")
_MARKERS = {"rs_video": "o", "rs_image": "o", "pytorchvideo": "s", "torchvision": "^", "timm": "v"}


def _reporter(source: str) -> str:
    # "PyTorchVideo model zoo (8x8, 10x3 views)" -> "PyTorchVideo model zoo"
    return source.split(" (")[0] if source else "unknown"


def _annotate_without_overlap(ax: Any, fig: Any, points: Sequence[PlotPoint], fontsize: int = 8) -> None:
    """Label every point, trying right/left and above/below placements until the label box overlaps no
    earlier label and no other marker."""
    ax.autoscale_view()
    px_per_pt = fig.dpi / 72
    char_w, text_h = 0.6 * fontsize * px_per_pt, fontsize * px_per_pt
    xy = {id(p): ax.transData.transform((p.gmacs_x_views, p.top1)) for p in points}
    placed: List[Tuple[float, float, float, float]] = []
    markers = [(x - 5, y - 5, x + 5, y + 5) for x, y in xy.values()]

    def overlaps(box: Tuple[float, float, float, float]) -> bool:
        return any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed + markers)

    for p in sorted(points, key=lambda p: p.gmacs_x_views):
        x, y = xy[id(p)]
        width = char_w * len(p.label)
        candidates = [(6, 4), (6, -4 - text_h), (-6 - width, 4), (-6 - width, -4 - text_h), (6, 4 + text_h),
                      (6, -4 - 2 * text_h)]
        chosen = candidates[0]
        for dx, dy in candidates:
            box = (x + dx, y + dy, x + dx + width, y + dy + text_h)
            if not overlaps(box):
                chosen = (dx, dy)
                break
        dx, dy = chosen
        placed.append((x + dx, y + dy, x + dx + width, y + dy + text_h))
        ax.annotate(p.label, (p.gmacs_x_views, p.top1), textcoords="offset pixels", xytext=(dx, dy),
                    fontsize=fontsize)


def plot_accuracy_vs_flops(points: Sequence[PlotPoint], path: str, title: Optional[str] = None) -> str:
    """Reported Kinetics-400 top-1 against GFLOPs x views (log scale) as a PNG; returns ``path``.

    Colour = who reported the top-1; marker = which library built the network that was counted (filled
    circles are this library's models). Families of ours (``rs3d_*``, ``rs2plus1d_*``) are joined by lines.
    """
    if not points:
        raise ValueError("nothing to plot: no video model with a reported top-1 among the rows")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=120)
    reporters = list(dict.fromkeys(_reporter(p.source) for p in points))
    color = {r: _COLORS[i % len(_COLORS)] for i, r in enumerate(reporters)}
    series: Dict[Tuple[str, str], List[PlotPoint]] = {}
    for p in points:
        series.setdefault((_reporter(p.source), p.family), []).append(p)
    for (reporter, family), pts in series.items():
        ax.scatter([p.gmacs_x_views for p in pts], [p.top1 for p in pts], s=60, color=color[reporter],
                   marker=_MARKERS.get(family, "D"), label=f"{reporter} (reported); network: {family}", zorder=3)
    lines: Dict[str, List[PlotPoint]] = {}
    for p in points:
        if p.family.startswith("rs_") and "_" in p.label:
            lines.setdefault(p.label.rsplit("_", 1)[0], []).append(p)
    for pts in lines.values():
        if len(pts) > 1:
            pts = sorted(pts, key=lambda p: p.gmacs_x_views)
            ax.plot([p.gmacs_x_views for p in pts], [p.top1 for p in pts], color=color[_reporter(pts[0].source)],
                    alpha=0.5, zorder=2)
    ax.set_xscale("log")
    ax.margins(x=0.1, y=0.06)
    _annotate_without_overlap(ax, fig, points)
    ax.set_xlabel("GFLOPs x views: fvcore multiply-adds (conv + linear) at the test input x clips x crops, measured here")
    ax.set_ylabel("Kinetics-400 top-1 (%), as reported by the authors")
    ax.set_title(title or "Kinetics-400: top-1 reported by the authors (not measured here) vs inference cost")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    notes = sorted({p.source for p in points})
    fig.text(0.01, 0.01, "Top-1 sources (not measured here):\n" + "\n".join(notes), fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.03 + 0.025 * len(notes), 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path


def eprint(msg: str) -> None:
    """Progress messages go to stderr so that stdout stays a clean table."""
    print(msg, file=sys.stderr, flush=True)

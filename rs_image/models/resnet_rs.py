"""The one ResNet-RS definition (Bello et al. 2021), for images and, through :class:`Ops`, for video.

Architecture as the released TF1 code and the timm port: ResNet-D deep stem (3x3 convs 32-32-64, the
first with stride 2, then a stride-2 3x3 conv in place of the max-pool), bottlenecks with the stride on
the 3x3 conv, ResNet-D shortcuts (2x2 average pool, then 1x1 conv + BN) on strided stages, SE (0.25 of
the block output width, with biases) after the last BN, stochastic depth, ReLU, BN eps 1e-5, zero-init of
the last BN gamma, global average pool, dropout, linear classifier.

The same classes build 3D and (2+1)D networks: ``rs_video`` passes ``Ops(3)`` or ``Ops(3, factorized=True)``
and temporal kernel/stride tables. Every structural choice is a keyword so that plain 3D ResNets (Slow,
I3D, C2D) are the same code with other settings.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from torchvision.ops import StochasticDepth, roi_align

from .layers import Conv2plus1d, Ops, SelfGating, SqueezeExcite, tran_mid_channels

__all__ = [
    "ResNetRS", "Bottleneck", "Stem", "Shortcut", "ClassifierHead", "RoIHead", "FeatureInfo", "drop_path_rates",
    "make_stages", "feature_take_indices", "HEAD_TYPES",
]

#: what :class:`ResNetRS` puts after the last stage: a global classifier or a per-box RoI classifier
HEAD_TYPES = ("classifier", "roi")

PerBlock = Union[int, Sequence[int]]


def _per_block(value: PerBlock, depth: int, what: str) -> List[int]:
    """Expand a per-stage value (an int for every block, or one entry per block) to a list."""
    if isinstance(value, int):
        return [value] * depth
    values = list(value)
    if not values:
        raise ValueError(f"{what}: empty per-block pattern")
    # A pattern repeats cyclically over the stage (I3D's alternating (3, 1)) and is cut at the stage
    # depth, as in PyTorchVideo, so that the same table serves shallower variants.
    return (values * depth)[:depth]


def drop_path_rates(stage_depths: Sequence[int], rate: float, schedule: str = "stage") -> List[List[float]]:
    """Stochastic-depth probability of every block.

    ``"stage"`` is the official ResNet-RS rule: constant within a stage, ``rate * (stage + 2) / 5`` for
    stages 0..3 (the stem counts as 1 of 5), i.e. 0.4, 0.6, 0.8, 1.0 x rate. ``"linear"`` is timm's
    per-block rule ``rate * i / (num_blocks - 1)``.
    """
    num_stages = len(stage_depths)
    if schedule == "stage":
        return [[rate * (s + 2) / (num_stages + 1)] * d for s, d in enumerate(stage_depths)]
    if schedule == "linear":
        total = sum(stage_depths)
        rates, i = [], 0
        for d in stage_depths:
            rates.append([rate * (i + j) / max(total - 1, 1) for j in range(d)])
            i += d
        return rates
    raise ValueError(f"drop_path_schedule must be 'stage' or 'linear', got {schedule!r}")


class Stem(nn.Module):
    """Network input stem, reduction 4 in space.

    ``stem_type``:
      * ``"deep"`` (ResNet-RS / ResNet-D): 3x3 convs ``w, w, 2w`` (first stride 2), then a stride-2 3x3
        conv ``2w`` with BN and ReLU in place of the max-pool. Parameters ``conv1..conv4``/``bn1..bn4``.
      * ``"deep_maxpool"``: the same three convs followed by a 3x3/2 max-pool (TF Model Garden 3D stem).
      * ``"plain"``: a 7x7/2 conv ``out_channels`` + BN + ReLU + 3x3/2 max-pool (ResNet-50, Slow, I3D, C2D).
    The first conv carries the temporal kernel/stride in 3D.
    """

    def __init__(
        self,
        ops: Ops,
        in_chans: int,
        stem_type: str = "deep",
        stem_width: int = 32,
        temporal_kernel: int = 1,
        temporal_stride: int = 1,
        pool_temporal_stride: int = 1,
        norm_kwargs: Optional[dict] = None,
    ) -> None:
        super().__init__()
        norm_kwargs = norm_kwargs or {}
        self.stem_type = stem_type
        if stem_type in ("deep", "deep_maxpool"):
            self.out_channels = 2 * stem_width
            self.conv1 = ops.conv(in_chans, stem_width, 3, 2, temporal_kernel, temporal_stride)
            self.bn1 = ops.norm(stem_width, **norm_kwargs)
            self.conv2 = ops.conv(stem_width, stem_width, 3)
            self.bn2 = ops.norm(stem_width, **norm_kwargs)
            self.conv3 = ops.conv(stem_width, self.out_channels, 3)
            self.bn3 = ops.norm(self.out_channels, **norm_kwargs)
            if stem_type == "deep":
                self.conv4 = ops.conv(self.out_channels, self.out_channels, 3, 2, temporal_stride=pool_temporal_stride)
                self.bn4 = ops.norm(self.out_channels, **norm_kwargs)
        elif stem_type == "plain":
            self.out_channels = stem_width
            self.conv1 = ops.conv(in_chans, stem_width, 7, 2, temporal_kernel, temporal_stride)
            self.bn1 = ops.norm(stem_width, **norm_kwargs)
        else:
            raise ValueError(f"stem_type must be 'deep', 'deep_maxpool' or 'plain', got {stem_type!r}")
        if stem_type != "deep":
            pool_tk = 3 if pool_temporal_stride > 1 else 1
            self.pool = ops.max_pool(3, 2, pool_tk, pool_temporal_stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.conv1(x)))
        if self.stem_type == "plain":
            return self.pool(x)
        x = self.act(self.bn2(self.conv2(x)))
        x = self.act(self.bn3(self.conv3(x)))
        if self.stem_type == "deep":
            return self.act(self.bn4(self.conv4(x)))
        return self.pool(x)


class Shortcut(nn.Module):
    """Projection shortcut of the first block of a stage.

    ``"avg_pool"`` (ResNet-D): average pool with kernel = stride when the block is strided, then a
    stride-1 1x1 conv + BN; stage 1 (stride 1) is the plain 1x1 conv + BN as in the TF1 code.
    ``"conv"``: a strided 1x1 conv + BN (original ResNet, PyTorchVideo).
    """

    def __init__(
        self,
        ops: Ops,
        in_channels: int,
        out_channels: int,
        stride: int,
        temporal_stride: int,
        shortcut_type: str,
        norm_kwargs: dict,
    ) -> None:
        super().__init__()
        if shortcut_type == "avg_pool":
            strided = stride > 1 or temporal_stride > 1
            self.pool = ops.avg_pool(stride, temporal_stride) if strided else nn.Identity()
            self.conv = ops.conv(in_channels, out_channels)
        elif shortcut_type == "conv":
            self.pool = nn.Identity()
            self.conv = ops.conv(in_channels, out_channels, 1, stride, temporal_stride=temporal_stride)
        else:
            raise ValueError(f"shortcut must be 'avg_pool' or 'conv', got {shortcut_type!r}")
        self.bn = ops.norm(out_channels, **norm_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.pool(x)))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 (x4) bottleneck with BN, ReLU, optional self-gating, SE and drop-path.

    In 3D, ``temporal_kernel_a`` is the temporal kernel of the first 1x1 conv (Slow/I3D style) and
    ``temporal_kernel_b`` that of the 3x3 conv; with ``Ops(3, factorized=True)`` a 3x3 conv with a
    temporal kernel > 1 becomes a (2+1)D pair whose mid width follows Tran et al. (``mid_channels="tran"``)
    or equals the output width (``"out"``, so that 2D weights inflate exactly).
    """

    expansion = 4

    def __init__(
        self,
        ops: Ops,
        in_channels: int,
        width: int,
        stride: int = 1,
        temporal_stride: int = 1,
        temporal_kernel_a: int = 1,
        temporal_kernel_b: int = 1,
        shortcut: Optional[str] = None,
        se_ratio: float = 0.25,
        self_gating: bool = False,
        drop_path: float = 0.0,
        mid_channels: str = "tran",
        norm_kwargs: Optional[dict] = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        norm_kwargs = norm_kwargs or {}
        out_channels = width * self.expansion
        self.conv1 = ops.conv(in_channels, width, 1, temporal_kernel=temporal_kernel_a)
        self.bn1 = ops.norm(width, **norm_kwargs)
        if ops.factorized and temporal_kernel_b > 1:
            if mid_channels == "tran":
                mid = tran_mid_channels(width, width, temporal_kernel_b, 3)
            elif mid_channels == "out":
                mid = width
            else:
                raise ValueError(f"mid_channels must be 'tran' or 'out', got {mid_channels!r}")
            self.conv2 = Conv2plus1d(
                width, width, mid, 3, stride, temporal_kernel_b, temporal_stride, lambda c: ops.norm(c, **norm_kwargs),
                dilation=dilation,
            )
        else:
            self.conv2 = ops.conv(width, width, 3, stride, temporal_kernel_b, temporal_stride, dilation=dilation)
        self.bn2 = ops.norm(width, **norm_kwargs)
        self.conv3 = ops.conv(width, out_channels, 1)
        self.bn3 = ops.norm(out_channels, **norm_kwargs)
        self.act = nn.ReLU(inplace=True)
        # Self-gating comes before SE, as in the TF Model Garden code.
        self.gate = SelfGating(ops, out_channels) if self_gating else None
        reduced = max(1, int(out_channels * se_ratio))
        self.se = SqueezeExcite(ops, out_channels, reduced) if se_ratio > 0 else None
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path > 0 else nn.Identity()
        self.shortcut = (
            Shortcut(ops, in_channels, out_channels, stride, temporal_stride, shortcut, norm_kwargs) if shortcut else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.gate is not None:
            out = self.gate(out)
        if self.se is not None:
            out = self.se(out)
        return self.act(self.drop_path(out) + identity)

    @torch.no_grad()
    def make_gate_pass_through(self) -> None:
        """Make the self-gate leave this block's output unchanged, exactly, while staying trainable.

        For a gate with no 2D counterpart when 2D weights are inflated: the block then computes what the
        2D block did. The gate is set to the constant 1/2 (``SelfGating.reset_parameters(constant=True)``)
        and bn3, the layer before it, to twice its gamma and beta; both factors are powers of two, so the
        product is exact in floating point. Call it once, after bn3 holds its final weights.
        """
        if self.gate is None:
            raise ValueError("this block has no self-gating")
        self.gate.reset_parameters(constant=True)
        self.bn3.weight.div_(self.gate.CONSTANT_GAIN)
        self.bn3.bias.div_(self.gate.CONSTANT_GAIN)


class ClassifierHead(nn.Module):
    """Global average pool (adaptive, any input size) -> dropout -> linear. Returns logits, never
    probabilities: softmax belongs to evaluation code."""

    def __init__(self, ops: Ops, in_features: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.pool = ops.global_pool()
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(self.flatten(self.pool(x)))
        return x if pre_logits else self.fc(x)


Boxes = Union[torch.Tensor, Sequence[torch.Tensor]]


class RoIHead(nn.Module):
    """Per-box action classifier on the last feature map, SlowFast's ``ResNetRoIHead`` (one pathway).

    Video maps (N, C, T, H, W) are first averaged over time; then ``torchvision.ops.roi_align`` takes a
    ``resolution`` x ``resolution`` grid from every box (``spatial_scale`` = 1 / the map's reduction), a
    max-pool over that grid gives one vector per box, then dropout and the linear classifier. Boxes are in
    input pixels (x1, y1, x2, y2): a (K, 5) tensor whose first column is the batch index, or a list of N
    (K_i, 4) tensors, torchvision's two layouts.

    In training it returns logits (for a sigmoid BCE); in eval mode it applies ``test_activation``
    (``"sigmoid"`` as SlowFast and PyTorchVideo do for AVA, or ``"none"`` for logits).
    """

    def __init__(
        self, ops: Ops, in_features: int, num_classes: int, dropout: float, spatial_scale: float,
        resolution: int = 7, sampling_ratio: int = 0, aligned: bool = True, test_activation: str = "sigmoid",
    ) -> None:
        super().__init__()
        if test_activation not in ("sigmoid", "none"):
            raise ValueError(f"test_activation must be 'sigmoid' or 'none', got {test_activation!r}")
        if num_classes <= 0:
            raise ValueError("a RoI head needs num_classes > 0")
        self.dims = ops.dims
        self.spatial_scale = float(spatial_scale)
        self.resolution = int(resolution)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)
        self.test_activation = test_activation
        self.pool = nn.MaxPool2d(self.resolution, stride=1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor, boxes: Boxes, pre_logits: bool = False) -> torch.Tensor:
        if x.dim() == 5:
            x = x.mean(dim=2)  # temporal average pool over the whole map (SlowFast: AvgPool3d [T, 1, 1])
        if isinstance(boxes, torch.Tensor):
            boxes = boxes.to(dtype=x.dtype)
        else:
            boxes = [b.to(dtype=x.dtype) for b in boxes]
        x = roi_align(x, boxes, self.resolution, self.spatial_scale, self.sampling_ratio, self.aligned)
        x = self.dropout(self.pool(x).flatten(1))
        if pre_logits:
            return x
        x = self.fc(x)
        return x.sigmoid() if not self.training and self.test_activation == "sigmoid" else x

    def extra_repr(self) -> str:
        return (f"resolution={self.resolution}, spatial_scale={self.spatial_scale}, sampling_ratio="
                f"{self.sampling_ratio}, aligned={self.aligned}, test_activation={self.test_activation}")


class FeatureInfo(list):
    """Per-output metadata of a ``features_only`` model, in timm's convention (a list of dicts with
    ``num_chs``, ``reduction`` and ``module``; video adds ``temporal_reduction``)."""

    def channels(self) -> List[int]:
        return [f["num_chs"] for f in self]

    def reduction(self) -> List[int]:
        return [f["reduction"] for f in self]

    def module_name(self) -> List[str]:
        return [f["module"] for f in self]


def feature_take_indices(
    num_features: int, indices: Optional[Union[int, Sequence[int]]] = None
) -> Tuple[List[int], int]:
    """The absolute feature indices that ``indices`` selects, and the largest, as timm's function of that name.

    Args:
        num_features: how many feature maps there are (indices ``0 .. num_features - 1``).
        indices: ``None``: all; an int ``n``: the last ``n``; a sequence: those indices, negative ones
            counted from the end.

    Returns:
        (indices in the given order, their maximum).
    """
    if indices is None:
        indices = num_features
    if isinstance(indices, int):
        if not 0 < indices <= num_features:
            raise ValueError(f"last-n indices ({indices}) out of range 1..{num_features}")
        take = list(range(num_features - indices, num_features))
    else:
        take = [num_features + i if i < 0 else i for i in indices]
        bad = [i for i, t in zip(indices, take) if not 0 <= t < num_features]
        if bad or not take:
            raise ValueError(
                f"feature indices {bad or '[]'} out of range 0..{num_features - 1} (or -{num_features}..-1)"
            )
    return take, max(take)


def _feature(ops: Ops, channels: int, reduction: int, module: str, temporal_reduction: int) -> Dict[str, Any]:
    """One ``feature_info`` entry; the temporal reduction exists in 3D only."""
    info: Dict[str, Any] = dict(num_chs=channels, reduction=reduction, module=module)
    if ops.dims == 3:
        info["temporal_reduction"] = temporal_reduction
    return info


def make_stages(
    ops: Ops,
    in_channels: int,
    stage_depths: Sequence[int],
    stage_widths: Sequence[int],
    *,
    width_multiplier: float = 1.0,
    spatial_strides: Sequence[int] = (1, 2, 2, 2),
    spatial_dilations: Sequence[int] = (1, 1, 1, 1),
    temporal_strides: Sequence[int] = (1, 1, 1, 1),
    temporal_kernels_a: Sequence[PerBlock] = (1, 1, 1, 1),
    temporal_kernels_b: Sequence[PerBlock] = (1, 1, 1, 1),
    temporal_pool_after_layer1: int = 1,
    shortcut: str = "avg_pool",
    se_ratio: float = 0.25,
    self_gating: Union[bool, Sequence[bool]] = False,
    drop_path_rate: float = 0.0,
    drop_path_schedule: str = "stage",
    mid_channels: str = "tran",
    norm_kwargs: Optional[dict] = None,
    reduction: int = 4,
    temporal_reduction: int = 1,
) -> Tuple[List[Tuple[str, nn.Sequential]], List[Dict[str, Any]]]:
    """Build the residual stages ``layer1..layerN`` from the per-stage tables (timm's ``make_blocks``).

    A pure function: it returns new modules and their metadata and changes nothing else. The tables
    and keywords are those of :class:`ResNetRS`.

    Args:
        in_channels: channels of the stem output.
        reduction, temporal_reduction: spatial and temporal reduction of the stem output.

    Returns:
        ``[(name, stage), ...]`` and one ``feature_info`` dict per stage: ``num_chs``, ``reduction``,
        ``module`` and, in 3D, ``temporal_reduction`` (the temporal pool after ``layer1`` counts from
        ``layer2`` on: ``layer1``'s own output is taken before it).
    """
    num_stages = len(stage_depths)
    tables = dict(
        stage_widths=stage_widths,
        temporal_kernels_a=temporal_kernels_a,
        temporal_kernels_b=temporal_kernels_b,
        temporal_strides=temporal_strides,
        spatial_strides=spatial_strides,
        spatial_dilations=spatial_dilations,
    )
    for key, table in tables.items():
        if len(table) != num_stages:
            raise ValueError(f"{key} has {len(table)} entries for {num_stages} stages")
    for key in ("spatial_strides", "spatial_dilations", "temporal_strides"):
        if any(int(v) < 1 for v in tables[key]):
            raise ValueError(f"{key} must be >= 1, got {list(tables[key])}")
    gating = [self_gating] * num_stages if isinstance(self_gating, bool) else list(self_gating)
    if len(gating) != num_stages:
        raise ValueError(f"self_gating has {len(gating)} entries for {num_stages} stages")
    dpr = drop_path_rates(stage_depths, drop_path_rate, drop_path_schedule)
    stages: List[Tuple[str, nn.Sequential]] = []
    info: List[Dict[str, Any]] = []
    for s, depth in enumerate(stage_depths):
        width = int(stage_widths[s] * width_multiplier)
        out_channels = width * Bottleneck.expansion
        ks_a = _per_block(temporal_kernels_a[s], depth, f"temporal_kernels_a[{s}]")
        ks_b = _per_block(temporal_kernels_b[s], depth, f"temporal_kernels_b[{s}]")
        needs_projection = spatial_strides[s] > 1 or temporal_strides[s] > 1 or in_channels != out_channels
        blocks = [
            Bottleneck(
                ops,
                in_channels if b == 0 else out_channels,
                width,
                stride=spatial_strides[s] if b == 0 else 1,
                temporal_stride=temporal_strides[s] if b == 0 else 1,
                temporal_kernel_a=ks_a[b],
                temporal_kernel_b=ks_b[b],
                shortcut=shortcut if b == 0 and needs_projection else None,
                se_ratio=se_ratio,
                self_gating=gating[s] and b == depth - 1,
                drop_path=dpr[s][b],
                mid_channels=mid_channels,
                norm_kwargs=norm_kwargs,
                dilation=spatial_dilations[s],
            )
            for b in range(depth)
        ]
        name = f"layer{s + 1}"
        stages.append((name, nn.Sequential(*blocks)))
        in_channels = out_channels
        reduction *= spatial_strides[s]
        temporal_reduction *= temporal_strides[s]
        info.append(_feature(ops, out_channels, reduction, name, temporal_reduction))
        if s == 0:
            temporal_reduction *= temporal_pool_after_layer1
    return stages, info


class ResNetRS(nn.Module):
    """ResNet-RS for images (``ops=Ops(2)``) and video (``Ops(3)``, ``Ops(3, factorized=True)``).

    Args:
        stage_depths: blocks per stage (``layer1..layer4``).
        stage_widths: bottleneck widths f of the stages; block outputs are 4f.
        num_classes: classifier outputs; 0 removes the classifier (``forward`` returns pooled features).
        in_chans: input channels.
        width_multiplier: scales every stage width.
        stem_type, stem_width: see :class:`Stem`.
        stem_temporal_kernel, stem_temporal_stride: first stem conv, 3D only.
        stem_pool_temporal_stride: temporal stride of the stem's downsampling conv / max-pool.
        shortcut: ``"avg_pool"`` (ResNet-D) or ``"conv"``.
        se_ratio: SE reduced width as a fraction of the block output width; 0 disables SE.
        self_gating: add S3D-G self-gating to the last block of each stage (a bool, or one per stage).
        drop_path_rate, drop_path_schedule: stochastic depth base rate and rule (see :func:`drop_path_rates`).
        dropout: dropout before the classifier.
        zero_init_last: initialise the last BN gamma of every block to zero.
        bn_eps, bn_momentum: BatchNorm settings (momentum in PyTorch's convention).
        ops: the dimensionality (:class:`Ops`).
        temporal_kernels_a, temporal_kernels_b: per stage, the temporal kernel of the first 1x1 conv
            and of the 3x3 conv of every block (an int, or a per-block pattern such as ``(3, 1)``).
        temporal_strides: per-stage temporal stride (on the first block).
        temporal_pool_after_layer1: temporal max-pool kernel = stride after ``layer1`` (C2D/I3D use 2;
            :meth:`Ops.temporal_pool`, 1 in 2D).
        mid_channels: (2+1)D mid width rule, ``"tran"`` or ``"out"``.
        spatial_strides: per-stage spatial stride (on the first block); ``feature_info`` reports the
            reduction they give. Detection backbones use ``(1, 2, 2, 1)`` with ``spatial_dilations``
            ``(1, 1, 1, 2)``: the last stage keeps stride 16 and its 3x3 convs see as far.
        spatial_dilations: per-stage spatial dilation of the 3x3 convs of every block.
        head_type: ``"classifier"`` (global pool, dropout, linear) or ``"roi"`` (:class:`RoIHead`: per-box
            logits; ``forward(x, boxes)``).
        roi_resolution, roi_sampling_ratio, roi_aligned, roi_test_activation: the RoI head's
            ``roi_align`` grid, samples per bin (0: adaptive), ``aligned`` (half-pixel offset; SlowFast
            True, PyTorchVideo's ``create_resnet_with_roi_head`` False) and eval-mode activation.
        features_only, out_indices: return the feature maps of the given stages (0 = stem,
            1..4 = ``layer1..layer4``) instead of logits, in the order of ``out_indices``; built on
            :meth:`forward_intermediates`, it stops after the deepest one it needs.

    The backbone API is timm's: :meth:`forward_intermediates`, :meth:`prune_intermediate_layers`,
    ``feature_info``, :meth:`forward_features`, :meth:`forward_head`.
    """

    def __init__(
        self,
        stage_depths: Sequence[int] = (3, 4, 6, 3),
        stage_widths: Sequence[int] = (64, 128, 256, 512),
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_multiplier: float = 1.0,
        stem_type: str = "deep",
        stem_width: int = 32,
        stem_temporal_kernel: int = 1,
        stem_temporal_stride: int = 1,
        stem_pool_temporal_stride: int = 1,
        shortcut: str = "avg_pool",
        se_ratio: float = 0.25,
        self_gating: Union[bool, Sequence[bool]] = False,
        drop_path_rate: float = 0.0,
        drop_path_schedule: str = "stage",
        dropout: float = 0.0,
        zero_init_last: bool = True,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        ops: Ops = Ops(2),
        temporal_kernels_a: Sequence[PerBlock] = (1, 1, 1, 1),
        temporal_kernels_b: Sequence[PerBlock] = (1, 1, 1, 1),
        temporal_strides: Sequence[int] = (1, 1, 1, 1),
        temporal_pool_after_layer1: int = 1,
        mid_channels: str = "tran",
        spatial_strides: Sequence[int] = (1, 2, 2, 2),
        spatial_dilations: Sequence[int] = (1, 1, 1, 1),
        head_type: str = "classifier",
        roi_resolution: int = 7,
        roi_sampling_ratio: int = 0,
        roi_aligned: bool = True,
        roi_test_activation: str = "sigmoid",
        features_only: bool = False,
        out_indices: Sequence[int] = (1, 2, 3, 4),
    ) -> None:
        super().__init__()
        self.ops = ops
        self.num_classes = num_classes
        self.grad_checkpointing = False
        norm_kwargs = dict(eps=bn_eps, momentum=bn_momentum)
        self.stem = Stem(
            ops, in_chans, stem_type, stem_width, stem_temporal_kernel, stem_temporal_stride,
            stem_pool_temporal_stride, norm_kwargs,
        )
        stem_t_reduction = stem_temporal_stride * stem_pool_temporal_stride
        stages, stage_info = make_stages(
            ops, self.stem.out_channels, stage_depths, stage_widths,
            width_multiplier=width_multiplier, spatial_strides=spatial_strides, spatial_dilations=spatial_dilations,
            temporal_strides=temporal_strides,
            temporal_kernels_a=temporal_kernels_a, temporal_kernels_b=temporal_kernels_b,
            temporal_pool_after_layer1=temporal_pool_after_layer1, shortcut=shortcut, se_ratio=se_ratio,
            self_gating=self_gating, drop_path_rate=drop_path_rate, drop_path_schedule=drop_path_schedule,
            mid_channels=mid_channels, norm_kwargs=norm_kwargs, reduction=4, temporal_reduction=stem_t_reduction,
        )
        self.stage_names: List[str] = []
        for name, stage in stages:
            self.add_module(name, stage)
            self.stage_names.append(name)
            if name == "layer1":
                # C2D / I3D halve T after res2; no parameters, so 2D/3D names stay aligned.
                self.temporal_pool = ops.temporal_pool(temporal_pool_after_layer1)
        info = [_feature(ops, self.stem.out_channels, 4, "stem", stem_t_reduction)] + stage_info
        # Every map forward_intermediates can return (0 = stem, then the stages), whatever features_only says.
        self._intermediate_info = FeatureInfo(info)
        self.num_features = stage_info[-1]["num_chs"]
        if head_type not in HEAD_TYPES:
            raise ValueError(f"head_type must be one of {HEAD_TYPES}, got {head_type!r}")
        self.head_type = head_type
        self._roi_kwargs = dict(resolution=roi_resolution, sampling_ratio=roi_sampling_ratio, aligned=roi_aligned,
                                test_activation=roi_test_activation)
        self.drop_rate = dropout
        self.features_only = features_only
        self.out_indices = tuple(out_indices)
        if features_only:
            bad = [i for i in self.out_indices if not 0 <= i < len(info)]
            if bad:
                raise ValueError(f"out_indices {bad} out of range 0..{len(info) - 1}")
            self.feature_info = FeatureInfo(info[i] for i in self.out_indices)
            self.head = None
        else:
            self.feature_info = FeatureInfo(info)
            self.head = self._make_head(num_classes)
        self._init_weights(zero_init_last)

    def _make_head(self, num_classes: int) -> nn.Module:
        """The head on the last stage's map: :class:`ClassifierHead` or :class:`RoIHead` (``head_type``)."""
        if self.head_type == "roi":
            reduction = self._intermediate_info[len(self.stage_names)]["reduction"]
            return RoIHead(self.ops, self.num_features, num_classes, self.drop_rate, 1.0 / reduction,
                           **self._roi_kwargs)
        return ClassifierHead(self.ops, self.num_features, num_classes, self.drop_rate)

    # ------------------------------------------------------------------------------------------
    def _init_weights(self, zero_init_last: bool) -> None:
        # Self-gating keeps its own (Model Garden) init, see SelfGating.reset_parameters.
        gate_modules = {sub for m in self.modules() if isinstance(m, SelfGating) for sub in m.modules()}
        for m in self.modules():
            if m in gate_modules:
                continue
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)

    @property
    def stages(self) -> List[nn.Sequential]:
        return [getattr(self, n) for n in self.stage_names]

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass (activation checkpointing) to fit large clips."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """The classifier (``head.fc``): ``nn.Identity()`` for a model without one (``features_only``, as
        timm's headless models, a pruned head, or ``num_classes=0``)."""
        return nn.Identity() if self.head is None else self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a new ``num_classes`` one (0 removes it). After
        :meth:`prune_intermediate_layers` removed the head, this builds a new one on the last kept stage."""
        if self.features_only:
            raise RuntimeError("a features_only model has no classifier")
        self.num_classes = num_classes
        if self.head is None or (self.head_type == "roi" and num_classes > 0):
            self.head = self._make_head(num_classes)
        else:
            self.head.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            nn.init.normal_(self.head.fc.weight, std=0.01)
            nn.init.zeros_(self.head.fc.bias)

    def _run_stage(self, stage: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
            for block in stage:
                x = checkpoint(block, x, use_reentrant=False)
            return x
        return stage(x)

    def _forward_stages(
        self, x: torch.Tensor, take: Sequence[int] = (), num_stages: Optional[int] = None
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Run the stem and the first ``num_stages`` stages (all by default); return the last map and the
        maps of the indices in ``take`` (0 = stem), in depth order."""
        x = self.stem(x)
        kept = [x] if 0 in take else []
        for s, stage in enumerate(self.stages[:num_stages]):
            if s == 1:
                # C2D / I3D halve T between layer1 and layer2; layer1's own map is taken before.
                x = self.temporal_pool(x)
            x = self._run_stage(stage, x)
            if s + 1 in take:
                kept.append(x)
        return x, kept

    @property
    def num_intermediates(self) -> int:
        """How many maps :meth:`forward_intermediates` can return: the stem and every (kept) stage."""
        return 1 + len(self.stage_names)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, Sequence[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The feature maps of the stem and stages, timm's backbone API.

        Args:
            x: images (N, C, H, W) or clips (N, C, T, H, W).
            indices: which maps (0 = stem output at reduction 4, 1..4 = ``layer1..layer4``): ``None``
                all, an int ``n`` the last ``n``, a sequence those indices (negative from the end).
            norm: accepted for timm's signature; a ResNet has no final norm, so nothing changes (as in
                timm's ResNet).
            stop_early: run no stage after the deepest requested one (the returned last map is then
                that stage's output).
            output_fmt: ``"NCHW"``, channels first, the layout of every map: (N, C, H, W) for images and
                (N, C, T, H, W) for video; ``"NCTHW"`` names the video layout explicitly (video only).
            intermediates_only: return only the list of maps.

        Returns:
            ``(last map, [maps])``, or ``[maps]`` with ``intermediates_only``; maps in depth order (as
            timm), equal bit for bit to those of a ``features_only`` model on the same weights.
        """
        if output_fmt not in ("NCHW", "NCTHW") or (output_fmt == "NCTHW" and self.ops.dims != 3):
            raise ValueError(
                f"output_fmt must be 'NCHW' (channels first; (N, C, T, H, W) for video) or, for a video "
                f"model, 'NCTHW'; got {output_fmt!r}"
            )
        take, max_index = feature_take_indices(self.num_intermediates, indices)
        x, intermediates = self._forward_stages(x, take, max_index if stop_early else None)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(
        self,
        indices: Union[int, Sequence[int]] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> List[int]:
        """Delete the stages after the deepest of ``indices`` (their parameters go) and, with
        ``prune_head`` or when a stage went, the head; timm's API.

        Afterwards :meth:`forward_features` ends at the last kept stage, ``num_features`` and
        ``feature_info`` describe what is left, and a model without head returns
        :meth:`forward_features` maps from ``forward`` (:meth:`reset_classifier` adds a new head).

        Args:
            indices: the maps to keep, as in :meth:`forward_intermediates`.
            prune_norm: accepted for timm's signature; a ResNet has no final norm.
            prune_head: remove the classifier head too.

        Returns:
            The absolute indices of ``indices``, valid for :meth:`forward_intermediates` afterwards.
        """
        take, max_index = feature_take_indices(self.num_intermediates, indices)
        if self.features_only:
            lost = [i for i in self.out_indices if i > max_index]
            if lost:
                raise ValueError(f"pruning after index {max_index} would remove out_indices {lost} of this model")
        pruned_end = max_index < len(self.stage_names)
        for name in self.stage_names[max_index:]:
            delattr(self, name)
        self.stage_names = self.stage_names[:max_index]
        if pruned_end:
            self.num_features = self._intermediate_info[max_index]["num_chs"]
            if not self.features_only:
                self.feature_info = FeatureInfo(self._intermediate_info[: max_index + 1])
        if (prune_head or pruned_end) and self.head is not None:
            self.head = None
            self.num_classes = 0
        return take

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map (N, C, [T,] H, W)."""
        return self._forward_stages(x)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False, boxes: Optional[Boxes] = None) -> torch.Tensor:
        """Pool, dropout and classify a :meth:`forward_features` map (``pre_logits``: stop before the
        classifier); a RoI head classifies ``boxes`` (see :class:`RoIHead`)."""
        if self.head is None:
            what = "a features_only model" if self.features_only else "this model (prune_intermediate_layers)"
            raise RuntimeError(f"{what} has no head")
        if isinstance(self.head, RoIHead):
            if boxes is None:
                raise ValueError("a detection model (head_type 'roi') needs boxes: model(x, boxes)")
            return self.head(x, boxes, pre_logits=pre_logits)
        if boxes is not None:
            raise ValueError("boxes given to a model with a global classifier head (head_type 'classifier')")
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor, boxes: Optional[Boxes] = None) -> Union[torch.Tensor, List[torch.Tensor]]:
        """Logits (N, num_classes); for ``head_type="roi"`` one row per box of ``boxes`` (input pixels, a
        (K, 5) tensor with the batch index first or a list of (K_i, 4) tensors); the feature maps for
        ``features_only``."""
        if self.features_only:
            maps = self.forward_intermediates(x, self.out_indices, stop_early=True, intermediates_only=True)
            depth_order = sorted(set(self.out_indices))
            return [maps[depth_order.index(i)] for i in self.out_indices]
        x = self.forward_features(x)
        return x if self.head is None else self.forward_head(x, boxes=boxes)

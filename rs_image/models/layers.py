"""Building blocks shared by the 2D, 3D and (2+1)D ResNet-RS networks.

Everything here is written once and parameterised by :class:`Ops`, a small description of the
dimensionality. 2D networks use ``Ops(2)``; video networks use ``Ops(3)`` and pass temporal kernel
sizes and strides. In 2D every temporal argument must be 1 and is dropped, so a 2D model and its 3D
inflation have the same parameter names and the same forward code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Ops",
    "Conv3d",
    "short_input_needs_float32",
    "SqueezeExcite",
    "SelfGating",
    "Conv2plus1d",
    "tran_mid_channels",
    "tf_same_pads",
    "TFSameConv2d",
    "TFSameConv3d",
    "TFSameMaxPool2d",
    "TFSameMaxPool3d",
]

Size = Union[int, Tuple[int, ...]]
PADDINGS = ("symmetric", "tf_same")


def tf_same_pads(sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int]) -> List[int]:
    """``F.pad`` amounts (last dim first) of TF/Keras ``padding='same'`` for an input of ``sizes``.

    TF makes ``ceil(n / s)`` outputs and pads ``total = max((ceil(n / s) - 1) * s + k - n, 0)``,
    ``total // 2`` before and the rest after: (0, 1) for a stride-2 3x3 on an even size, (1, 2) for a
    stride-2 5-tap on an even size, where PyTorch's symmetric ``k // 2`` pads (1, 1) and (2, 2).
    """
    pads: List[int] = []
    for n, k, s in zip(reversed(list(sizes)), reversed(list(kernel)), reversed(list(stride))):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return pads


class _TFSamePadding:
    """Mixin: pad the input as TF 'same' does for its size, then run the layer unpadded.

    Only strided layers need it: at stride 1 an odd kernel pads (k - 1) / 2 on both sides, PyTorch's own
    padding. Parameter names are those of the plain layer, so weights move between both kinds freely.
    """

    pad_value = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = x.dim() - 2
        kernel, stride, dilation = (
            v if isinstance(v, tuple) else (v,) * dims
            for v in (self.kernel_size, self.stride, getattr(self, "dilation", 1))
        )
        # A dilated kernel covers d (k - 1) + 1 inputs, the extent TF pads for.
        extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        return super().forward(F.pad(x, tf_same_pads(x.shape[2:], extent, stride), value=self.pad_value))


class TFSameConv2d(_TFSamePadding, nn.Conv2d):
    """``nn.Conv2d`` with TF 'same' padding (build it with ``padding=0``)."""


def short_input_needs_float32(x: torch.Tensor, temporal_extent: int) -> bool:
    """Whether a temporal convolution of ``x`` must leave bf16/fp16 for float32 (:class:`Conv3d`).

    PyTorch's CPU bf16 conv3d (oneDNN, seen with torch 2.14.1 on AVX-512 BF16 CPUs) returns non-finite or
    run-to-run different weight gradients when the input's time axis is shorter than the temporal kernel
    (T = 2 under a 3-tap, T = 2..4 under a 5-tap), while the forward is right. That is the case a user
    debugging a Kinetics config on a CPU with a few frames hits. ``x.is_cpu`` comes first, so on a GPU the
    test is one attribute read, and every term is static for ``torch.compile`` (a guard, no graph break).
    """
    if not x.is_cpu or x.dim() != 5 or x.shape[2] >= temporal_extent:
        return False
    return _cpu_compute_dtype(x) in (torch.bfloat16, torch.float16)


def _cpu_compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a CPU convolution of ``x`` computes and returns in: autocast's, else the input's."""
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` that runs in float32 where the CPU's low-precision kernel is wrong.

    On an input too short for the temporal kernel (:func:`short_input_needs_float32`) the convolution runs
    in float32 and returns the dtype autocast (or the input) would have given, so the layers after it see
    what they always see; every other input takes ``nn.Conv3d``'s own path, bit for bit. Same parameter
    names as ``nn.Conv3d``, so weights move between both freely.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        temporal_extent = self.dilation[0] * (self.kernel_size[0] - 1) + 1
        if temporal_extent == 1 or not short_input_needs_float32(x, temporal_extent):
            return super().forward(x)
        dtype = _cpu_compute_dtype(x)
        bias = None if self.bias is None else self.bias.float()
        with torch.autocast("cpu", enabled=False):
            return self._conv_forward(x.float(), self.weight.float(), bias).to(dtype)


class TFSameConv3d(_TFSamePadding, Conv3d):
    """:class:`Conv3d` with TF 'same' padding (build it with ``padding=0``)."""


class TFSameMaxPool2d(_TFSamePadding, nn.MaxPool2d):
    """``nn.MaxPool2d`` with TF 'same' padding: padded positions never win (-inf)."""

    pad_value = float("-inf")


class TFSameMaxPool3d(_TFSamePadding, nn.MaxPool3d):
    """``nn.MaxPool3d`` with TF 'same' padding: padded positions never win (-inf)."""

    pad_value = float("-inf")


@dataclass(frozen=True)
class Ops:
    """The dimensionality of a network: which conv, norm and pooling layers to build.

    Args:
        dims: 2 for images (N, C, H, W), 3 for video (N, C, T, H, W).
        factorized: in 3D, build every k x k spatial conv that has a temporal kernel > 1 as a
            (2+1)D pair (spatial 1 x k x k, then temporal t x 1 x 1), Tran et al. 2018.
        padding: ``"symmetric"`` (``k // 2`` on both sides, as the TF1 / Keras ResNet-RS code pads) or
            ``"tf_same"``: strided convs and max-pools pad as TF/Keras ``'same'`` does, from the input size
            (:func:`tf_same_pads`), as TF Model Garden's 3D ResNet-RS does.
    """

    dims: int = 2
    factorized: bool = False
    padding: str = "symmetric"

    def __post_init__(self) -> None:
        if self.dims not in (2, 3):
            raise ValueError(f"Ops.dims must be 2 or 3, got {self.dims}")
        if self.factorized and self.dims != 3:
            raise ValueError("(2+1)D factorisation needs dims=3")
        if self.padding not in PADDINGS:
            raise ValueError(f"Ops.padding must be one of {PADDINGS}, got {self.padding!r}")
        if self.factorized and self.padding != "symmetric":
            raise ValueError("(2+1)D convs pad symmetrically; 'tf_same' padding is for plain convs")

    # Layer classes -------------------------------------------------------------------------
    @property
    def conv_cls(self) -> type:
        return nn.Conv2d if self.dims == 2 else Conv3d

    @property
    def norm_cls(self) -> type:
        return nn.BatchNorm2d if self.dims == 2 else nn.BatchNorm3d

    @property
    def spatial_dims(self) -> Tuple[int, ...]:
        """Tensor dims averaged by global pooling (everything after N, C)."""
        return (2, 3) if self.dims == 2 else (2, 3, 4)

    # Kernel/stride tuples -----------------------------------------------------------------
    def size(self, temporal: int, spatial: int) -> Size:
        """``spatial`` in 2D, ``(temporal, spatial, spatial)`` in 3D."""
        if self.dims == 2:
            if temporal != 1:
                raise ValueError(f"a 2D network has no time axis, got temporal size {temporal}")
            return spatial
        return (temporal, spatial, spatial)

    def symmetric_padding(self, temporal_kernel: int, spatial_kernel: int, dilation: int = 1) -> Size:
        """Symmetric 'same' padding (``dilation`` x ``k // 2`` in space); equals TF's fixed padding for odd
        kernels."""
        spatial = dilation * (spatial_kernel // 2)
        return self.size(temporal_kernel // 2, spatial) if self.dims == 3 else spatial

    def _tf_same_needed(self, kernels: Tuple[int, int], strides: Tuple[int, int]) -> bool:
        """Whether TF 'same' differs from symmetric padding at some input size: a strided dim with a
        kernel > 1, or an even kernel (a stride-1 odd kernel pads (k - 1) / 2 each side, and a 1-tap
        never pads)."""
        if self.padding != "tf_same":
            return False
        return any((s > 1 and k > 1) or k % 2 == 0 for k, s in zip(kernels, strides))

    def conv(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int = 1,
        stride: int = 1,
        temporal_kernel: int = 1,
        temporal_stride: int = 1,
        bias: bool = False,
        dilation: int = 1,
    ) -> nn.Module:
        """A (possibly spatio-temporal) convolution, padded as :attr:`padding` says; ``dilation`` is the
        spatial dilation (detection backbones dilate the last stage instead of striding it)."""
        extent = dilation * (kernel - 1) + 1
        if self._tf_same_needed((temporal_kernel, extent), (temporal_stride, stride)):
            cls, padding = (TFSameConv2d if self.dims == 2 else TFSameConv3d), 0
        else:
            cls, padding = self.conv_cls, self.symmetric_padding(temporal_kernel, kernel, dilation)
        return cls(
            in_channels,
            out_channels,
            kernel_size=self.size(temporal_kernel, kernel),
            stride=self.size(temporal_stride, stride),
            padding=padding,
            dilation=self.size(1, dilation),
            bias=bias,
        )

    def norm(self, channels: int, eps: float = 1e-5, momentum: float = 0.1) -> nn.Module:
        return self.norm_cls(channels, eps=eps, momentum=momentum)

    def avg_pool(self, stride: int, temporal_stride: int = 1) -> nn.Module:
        """ResNet-D shortcut pool (kernel = stride): TF/Keras 'same' average pooling, which equals
        ceil_mode without counting padding, for even and odd feature maps."""
        cls = nn.AvgPool2d if self.dims == 2 else nn.AvgPool3d
        size = self.size(temporal_stride, stride)
        return cls(size, size, ceil_mode=True, count_include_pad=False)

    def global_pool(self) -> nn.Module:
        return nn.AdaptiveAvgPool2d(1) if self.dims == 2 else nn.AdaptiveAvgPool3d(1)

    def max_pool(self, kernel: int, stride: int, temporal_kernel: int = 1, temporal_stride: int = 1) -> nn.Module:
        """Max-pool, padded as :attr:`padding` says (padding never wins the max)."""
        if self._tf_same_needed((temporal_kernel, kernel), (temporal_stride, stride)):
            cls, padding = (TFSameMaxPool2d if self.dims == 2 else TFSameMaxPool3d), 0
        else:
            cls = nn.MaxPool2d if self.dims == 2 else nn.MaxPool3d
            padding = self.symmetric_padding(temporal_kernel, kernel)
        return cls(self.size(temporal_kernel, kernel), self.size(temporal_stride, stride), padding=padding)

    def temporal_pool(self, kernel: int) -> nn.Module:
        """Max-pool over time only, kernel = stride, no padding (C2D / I3D halve T after res2).

        The identity for ``kernel`` 1, which is the only kernel a 2D network accepts.
        """
        if kernel == 1:
            return nn.Identity()
        size = self.size(kernel, 1)  # raises in 2D
        return nn.MaxPool3d(size, size)


def tran_mid_channels(in_channels: int, out_channels: int, temporal_kernel: int, spatial_kernel: int) -> int:
    """Mid channels of a (2+1)D conv with the parameter count of the full t x k x k conv.

    Tran et al. 2018, "A Closer Look at Spatiotemporal Convolutions": M = floor(t k^2 N_in N_out /
    (k^2 N_in + t N_out)), evaluated with the real temporal kernel t (not a hard-coded 3).
    """
    k2 = spatial_kernel * spatial_kernel
    t = temporal_kernel
    return (t * k2 * in_channels * out_channels) // (k2 * in_channels + t * out_channels)


class Conv2plus1d(nn.Module):
    """Spatial (1 x k x k) conv -> BN -> ReLU -> temporal (t x 1 x 1) conv, spatial first; ``dilation``
    dilates the spatial conv.

    Parameter names: ``conv_s`` / ``bn_s`` / ``conv_t``. A 2D k x k kernel inflates into ``conv_s``;
    ``conv_t`` can start as the identity (Dirac at the centre tap), see ``rs_video.inflate``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int,
        kernel: int,
        stride: int,
        temporal_kernel: int,
        temporal_stride: int,
        norm: Callable[[int], nn.Module],
        dilation: int = 1,
    ) -> None:
        super().__init__()
        pad = dilation * (kernel // 2)
        self.conv_s = Conv3d(
            in_channels, mid_channels, (1, kernel, kernel), (1, stride, stride), (0, pad, pad),
            dilation=(1, dilation, dilation), bias=False,
        )
        self.bn_s = norm(mid_channels)
        self.act_s = nn.ReLU(inplace=True)
        self.conv_t = Conv3d(
            mid_channels, out_channels, (temporal_kernel, 1, 1), (temporal_stride, 1, 1), (temporal_kernel // 2, 0, 0), bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_t(self.act_s(self.bn_s(self.conv_s(x))))


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation with biased 1x1 convs, ReLU and a sigmoid gate (any dimensionality).

    The squeeze is a plain mean over all non-channel dims (3D: over T, H, W), like the TF reference.
    """

    def __init__(self, ops: Ops, channels: int, reduced_channels: int) -> None:
        super().__init__()
        self.dims = ops.spatial_dims
        self.fc1 = ops.conv(channels, reduced_channels, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = ops.conv(reduced_channels, channels, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(self.act(self.fc1(x.mean(self.dims, keepdim=True))))
        return x * scale.sigmoid()


class SelfGating(nn.Module):
    """S3D-G feature gating used by 3D ResNet-RS: x * sigmoid(W mean(x) + b), channel-wise.

    The gate owns its initialisation (:meth:`reset_parameters`); :class:`ResNetRS` leaves it alone.
    """

    #: The gate's value for every input after ``reset_parameters(constant=True)``: sigmoid(0).
    CONSTANT_GAIN = 0.5

    def __init__(self, ops: Ops, channels: int) -> None:
        super().__init__()
        self.dims = ops.spatial_dims
        self.fc = ops.conv(channels, channels, bias=True)
        self.reset_parameters()

    def reset_parameters(self, constant: bool = False) -> None:
        """Initialise W and b.

        Args:
            constant: ``False``: TF Model Garden's init, for training from scratch: W ~ N(0, 0.01)
                truncated at 2 std (Keras ``TruncatedNormal``), b = 0, so the gate starts near 1/2.
                ``True``: W = 0, b = 0, so the gate is exactly :attr:`CONSTANT_GAIN` for every input,
                a gain the layer before it can cancel, at the sigmoid's steepest point (it trains as
                readily as from Model Garden's init). A sigmoid never reaches 1, and near 1 its
                gradient vanishes, so a constant 1/2 is the exact and trainable way to start a gate
                that must not change what the network computes (:meth:`Bottleneck.make_gate_pass_through`).
        """
        if constant:
            nn.init.zeros_(self.fc.weight)
        else:
            nn.init.trunc_normal_(self.fc.weight, std=0.01, a=-0.02, b=0.02)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(self.dims, keepdim=True)).sigmoid()

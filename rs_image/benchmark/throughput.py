"""Throughput and peak-memory benchmarks of models, image or video, on CPU or GPU.

:func:`measure_throughput` times either inference (forward in eval mode without autograd) or a full
training step (forward, cross-entropy, backward, SGD step) for one *option*: a ``+``-joined set of

* ``eager``          plain fp32 eager execution (the baseline),
* ``channels_last``  model and input in ``torch.channels_last`` (4D) / ``torch.channels_last_3d`` (5D),
* ``bf16``           ``torch.autocast`` to bfloat16 (weights stay fp32),
* ``compile``        ``torch.compile`` with the default inductor backend (for inference with inductor's
                     ``freezing``: weights become constants, BN folds into the conv),

e.g. ``"channels_last+bf16"``. Every measurement builds a fresh model, runs warm-up steps (compilation
happens there), then times ``repeats`` steps one by one with device synchronisation and reports the median.
Peak memory is CUDA's ``max_memory_allocated`` on GPUs and the process's peak resident set size on CPUs
(``VmHWM``, reset before the timed steps through ``/proc/self/clear_refs``; where that is unavailable the
process-lifetime ``ru_maxrss`` is reported and flagged). On GPUs cuDNN autotuning is on while timing (as in
training, see ``rs_image.engine.trainer.configure_determinism``); it happens during the warm-up steps.

:func:`peak_bf16_tflops` gives a GPU's dense bf16 tensor-core peak, against which the report states the
model FLOP utilisation (MFU) of every row.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import importlib.metadata
import os
import platform
import re
import resource
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BenchOption",
    "ThroughputResult",
    "parse_option",
    "measure_throughput",
    "benchmark_model",
    "machine_info",
    "PeakMemory",
    "OPTION_FLAGS",
    "speedups",
    "merge_rounds",
    "GPU_PEAK_BF16_TFLOPS",
    "peak_bf16_tflops",
]

OPTION_FLAGS = ("eager", "channels_last", "bf16", "compile")

# Dense bf16 tensor-core peak in TFLOP/s (NVIDIA data sheets list "with sparsity" figures, twice these),
# matched in order against torch.cuda.get_device_name(): more specific names first.
GPU_PEAK_BF16_TFLOPS: Tuple[Tuple[str, float], ...] = (
    (r"\bB200\b", 2250.0),
    (r"\bH200 NVL\b", 835.5),
    (r"\bG?H200\b", 989.4),  # H200 SXM and GH200
    (r"\bH100 NVL\b", 835.5),
    (r"\bH100 PCIe\b", 756.5),
    (r"\bH100\b", 989.4),  # H100 SXM5 ("NVIDIA H100 80GB HBM3")
    (r"\bA100\b", 312.0),
    (r"\bL40S\b", 362.05),
    (r"\bL4\b", 121.0),
    (r"\bA10\b", 125.0),
)


def peak_bf16_tflops(device_name: str) -> Optional[float]:
    """Dense bf16 peak TFLOP/s of a GPU by its name (:data:`GPU_PEAK_BF16_TFLOPS`), None when unknown."""
    for pattern, peak in GPU_PEAK_BF16_TFLOPS:
        if re.search(pattern, device_name):
            return peak
    return None


@dataclass(frozen=True)
class BenchOption:
    """One execution option; ``name`` is the canonical ``+``-joined spelling."""

    channels_last: bool = False
    bf16: bool = False
    compile: bool = False

    @property
    def name(self) -> str:
        flags = [f for f in ("channels_last", "bf16", "compile") if getattr(self, f)]
        return "+".join(flags) if flags else "eager"


def parse_option(text: str) -> BenchOption:
    """``"eager"``, ``"bf16"``, ``"channels_last+compile"``, ... -> :class:`BenchOption`."""
    parts = [p.strip() for p in text.split("+") if p.strip()]
    unknown = [p for p in parts if p not in OPTION_FLAGS]
    if not parts or unknown:
        raise ValueError(f"unknown benchmark option {text!r}: use {', '.join(OPTION_FLAGS)} joined with '+'")
    if "eager" in parts and len(parts) > 1:
        raise ValueError(f"benchmark option {text!r}: 'eager' is the plain fp32 baseline and combines with nothing")
    return BenchOption(channels_last="channels_last" in parts, bf16="bf16" in parts, compile="compile" in parts)


@dataclass
class ThroughputResult:
    """One timed configuration. Times in milliseconds, memory in MiB."""

    model: str
    mode: str  # "inference" | "train"
    option: str
    device: str
    batch_size: int
    input_shape: str  # one sample, e.g. "3x8x224x224"
    median_ms: float
    min_ms: float
    max_ms: float
    repeats: int
    warmup: int
    clips_per_s: float
    peak_mem_mib: Optional[float]
    peak_mem_kind: str  # "cuda_max_allocated" | "cpu_peak_rss" | "cpu_peak_rss_lifetime" | "n/a"
    # Median process CPU time (all threads) per step: on a shared CPU it moves much less than wall time with
    # other processes' load, at least with one thread (idle-spinning OpenMP threads count too).
    cpu_ms: float = float("nan")
    load_1min: Optional[float] = None  # machine load average right after the timed steps (other processes)
    error: str = ""
    step_times_ms: List[float] = field(default_factory=list)
    cpu_times_ms: List[float] = field(default_factory=list)

    def as_row(self) -> Dict[str, object]:
        row = asdict(self)
        row["step_times_ms"] = [round(t, 3) for t in self.step_times_ms]
        row["cpu_times_ms"] = [round(t, 3) for t in self.cpu_times_ms]
        return row


# --------------------------------------------------------------------------------------------------
# Memory
class PeakMemory:
    """Peak memory over a region: CUDA max allocated, or the process's peak RSS on CPU (Linux VmHWM)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "n/a"

    @staticmethod
    def _vm_hwm_kib() -> Optional[int]:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    @staticmethod
    def _release_free_heap() -> None:
        # Freed tensors stay in glibc's heap and would count towards the next model's RSS; trim them.
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "cuda_max_allocated"
            return
        self._release_free_heap()
        try:
            # Writing 5 resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0).
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.kind = "cpu_peak_rss" if self._vm_hwm_kib() is not None else "cpu_peak_rss_lifetime"
        except OSError:
            self.kind = "cpu_peak_rss_lifetime"

    def peak_mib(self) -> Optional[float]:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.kind == "cpu_peak_rss":
            kib = self._vm_hwm_kib()
            if kib is not None:
                return kib / 1024
        # ru_maxrss is in KiB on Linux: the peak over the whole process life, not only this region.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------------
def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _memory_format(ndim: int) -> torch.memory_format:
    return torch.channels_last_3d if ndim == 5 else torch.channels_last


def package_version(package: str) -> str:
    """The installed version of ``package``, or "not installed"."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str = "cpu") -> Dict[str, object]:
    """Machine, load and library versions, printed beside every throughput table."""
    info: Dict[str, object] = dict(
        platform=platform.platform(),
        python=platform.python_version(),
        cpu=_cpu_name(),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        load_average=" ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a",
        torch=torch.__version__,
        torchvision=package_version("torchvision"),
        fvcore=package_version("fvcore"),
        timm=package_version("timm"),
        pytorchvideo=package_version("pytorchvideo"),
        device=device,
    )
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        info["gpu"] = torch.cuda.get_device_name(idx)
        info["gpu_peak_bf16_tflops"] = peak_bf16_tflops(str(info["gpu"])) or "unknown"
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


class _with_inductor_freezing(nn.Module):
    """Calls a compiled module with ``torch._inductor.config.freezing`` on (compilation happens on call)."""

    def __init__(self, compiled: nn.Module) -> None:
        super().__init__()
        self.compiled = compiled

    def forward(self, *args: object) -> object:
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=True):
            return self.compiled(*args)


def measure_throughput(
    build: Callable[[], nn.Module],
    input_size: Sequence[int],
    *,
    mode: str = "inference",
    option: "BenchOption | str" = "eager",
    batch_size: int = 1,
    device: "str | torch.device" = "cpu",
    warmup: int = 2,
    repeats: int = 5,
    num_classes: Optional[int] = None,
    name: str = "model",
) -> ThroughputResult:
    """Median time of one inference batch or one training step.

    Args:
        build: returns a fresh, randomly initialised model producing logits ``(B, num_classes)``.
        input_size: one sample, ``(C, H, W)`` or ``(C, T, H, W)``.
        mode: ``"inference"`` (eval mode, ``torch.no_grad``) or ``"train"`` (train mode; forward,
            cross-entropy on random labels, backward, SGD-momentum step; zero_grad with ``set_to_none``).
        option: a :class:`BenchOption` or its ``+``-joined name (see module docstring).
        batch_size: clips (or images) per step; throughput is ``batch_size / median step time``.
        warmup: untimed steps first (compilation and allocator warm-up happen here; at least 2 with
            ``compile``, since a training step compiles forward and backward graphs on its first calls).
        repeats: timed steps; the median is reported.
        num_classes: label range of the random targets (default: inferred from the first output).

    A failure (e.g. ``torch.compile`` without a working compiler, or out of memory) is returned in
    ``error`` instead of raising, so that one bad option does not lose the other measurements.
    """
    if mode not in ("inference", "train"):
        raise ValueError(f"mode must be 'inference' or 'train', got {mode!r}")
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ValueError("batch_size and repeats must be >= 1 and warmup >= 0")
    opt = parse_option(option) if isinstance(option, str) else option
    device = torch.device(device)
    if opt.compile:
        warmup = max(warmup, 2)
    shape = (batch_size, *input_size)
    result = ThroughputResult(
        model=name, mode=mode, option=opt.name, device=str(device), batch_size=batch_size,
        input_shape="x".join(str(s) for s in input_size), median_ms=float("nan"), min_ms=float("nan"),
        max_ms=float("nan"), repeats=repeats, warmup=warmup, clips_per_s=float("nan"), peak_mem_mib=None,
        peak_mem_kind="n/a",
    )
    memory = PeakMemory(device)
    memory._release_free_heap()
    cudnn_benchmark = torch.backends.cudnn.benchmark
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        model = build().to(device)
        x = torch.randn(shape, device=device)
        if opt.channels_last:
            fmt = _memory_format(x.ndim)
            model = model.to(memory_format=fmt)
            x = x.contiguous(memory_format=fmt)
        model.train(mode == "train")
        runner: nn.Module = torch.compile(model) if opt.compile else model
        if opt.compile and mode == "inference":
            # Inductor's "freezing" treats weights as constants: BN folds into the conv and CPU conv weights
            # are pre-packed, the recommended setting for inference (not valid while weights change).
            runner = _with_inductor_freezing(runner)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=opt.bf16)

        if mode == "inference":

            def step() -> None:
                with torch.no_grad(), autocast:
                    runner(x)

        else:
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
            if num_classes is None:
                # Probe eagerly: calling the compiled runner under no_grad would compile a graph we never time.
                with torch.no_grad(), autocast:
                    num_classes = model(x).shape[-1]
            classes = num_classes
            labels = torch.randint(0, classes, (batch_size,), device=device)

            def step() -> None:
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    logits = runner(x)
                loss = F.cross_entropy(logits.float(), labels)
                loss.backward()
                optimizer.step()

        for _ in range(warmup):
            step()
        _synchronize(device)
        memory.reset()
        times, cpu_times = [], []
        for _ in range(repeats):
            _synchronize(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            step()
            _synchronize(device)
            times.append((time.perf_counter() - start) * 1e3)
            cpu_times.append((time.process_time() - cpu_start) * 1e3)
        result.cpu_times_ms = cpu_times
        result.cpu_ms = statistics.median(cpu_times)
        result.peak_mem_mib = memory.peak_mib()
        result.load_1min = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        result.peak_mem_kind = memory.kind
        result.step_times_ms = times
        result.median_ms = statistics.median(times)
        result.min_ms, result.max_ms = min(times), max(times)
        result.clips_per_s = batch_size / (result.median_ms / 1e3)
    except Exception as e:  # noqa: BLE001 - reported per option, see docstring
        result.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
    finally:
        torch.backends.cudnn.benchmark = cudnn_benchmark
        # Drop compiled graphs and the model before the next measurement.
        if opt.compile:
            torch._dynamo.reset()
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


def benchmark_model(
    build: Callable[[], nn.Module],
    input_size: Sequence[int],
    *,
    options: Sequence[str] = ("eager", "channels_last", "bf16", "compile"),
    modes: Sequence[str] = ("inference", "train"),
    name: str = "model",
    **kwargs: object,
) -> List[ThroughputResult]:
    """:func:`measure_throughput` for every ``mode`` x ``option`` (options validated up front)."""
    parsed = [parse_option(o) for o in options]
    return [
        measure_throughput(build, input_size, mode=m, option=o, name=name, **kwargs)  # type: ignore[arg-type]
        for m in modes
        for o in parsed
    ]


def merge_rounds(results: Sequence[ThroughputResult]) -> List[ThroughputResult]:
    """Pool repeated measurements of the same (model, mode, option, batch, input) taken in interleaved rounds:
    step times are concatenated and the median recomputed; peak memory is the maximum, load the mean. On a
    shared machine, rounds spread other processes' load over all configurations alike."""
    groups: Dict[Tuple[str, str, str, int, str], List[ThroughputResult]] = {}
    for r in results:
        groups.setdefault((r.model, r.mode, r.option, r.batch_size, r.input_shape), []).append(r)
    merged = []
    for runs in groups.values():
        ok = [r for r in runs if not r.error]
        if not ok:
            merged.append(runs[0])
            continue
        first = ok[0]
        times = [t for r in ok for t in r.step_times_ms]
        cpu = [t for r in ok for t in r.cpu_times_ms]
        mems = [r.peak_mem_mib for r in ok if r.peak_mem_mib is not None]
        loads = [r.load_1min for r in ok if r.load_1min is not None]
        median = statistics.median(times)
        merged.append(dataclasses.replace(
            first, step_times_ms=times, cpu_times_ms=cpu, repeats=len(times), median_ms=median, min_ms=min(times),
            max_ms=max(times), clips_per_s=first.batch_size / (median / 1e3),
            cpu_ms=statistics.median(cpu) if cpu else float("nan"), peak_mem_mib=max(mems) if mems else None,
            load_1min=sum(loads) / len(loads) if loads else None,
            error="; ".join(r.error for r in runs if r.error),
        ))
    return merged


def speedups(results: Sequence[ThroughputResult], baseline: str = "eager") -> Dict[Tuple[str, str, str], float]:
    """``(model, mode, option) -> clips/s relative to the baseline option`` of the same model and mode."""
    base = {(r.model, r.mode): r.clips_per_s for r in results if r.option == baseline and not r.error}
    out = {}
    for r in results:
        b = base.get((r.model, r.mode))
        if b and not r.error:
            out[(r.model, r.mode, r.option)] = r.clips_per_s / b
    return out

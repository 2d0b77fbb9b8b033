"""The GPU check: the CUDA code paths for a few real steps on one GPU (``rs-gpu-check``, ``tools/gpu_check.sh``).

Every check trains through the engine's real ``Trainer`` (or decodes through torchcodec, or times through
``rs-report``) on tiny data made on the spot: H.264 clips written with PyAV and a JPEG folder.
Each check runs in its own process (forked from a server that imported torch once) with a timeout, so
that one failure or hang only marks its own row. The rows:

* ``bf16_autocast``, ``fp16_gradscaler``: ``TRAIN.MIXED_PRECISION`` bf16 / fp16 (fp16 with the GradScaler);
* ``image_channels_last_bf16``: the image task on a JPEG folder with ``MODEL.CHANNELS_LAST`` and bf16;
* ``uint8_pinned_normalise``: ``DATA.OUTPUT_DTYPE uint8`` with ``DATA_LOADER.PIN_MEMORY``: pinned uint8
  batches copied to the device and normalised there (compared with the CPU normalisation);
* ``channels_last_3d_compile``: ``MODEL.CHANNELS_LAST`` (channels_last_3d) + ``TRAIN.COMPILE`` + bf16;
* ``ddp_nccl``, ``syncbn``: ``torchrun --nproc_per_node 1`` with a one-process NCCL group, so the
  Trainer wraps the model in DDP (and converts BN to SyncBatchNorm); NCCL refuses two ranks on one GPU;
* ``torchcodec_cuda_decode``: torchcodec's ``VideoDecoder(device="cuda")`` against the library's CPU
  decoder (the data pipeline itself decodes on the CPU);
* throughput of rs3d_50 / rs2plus1d_50 / slow_r50 at 32x224 (``rs-report --device cuda``), train and
  inference, eager against faster options, with achieved TFLOP/s, MFU against the GPU's dense bf16 peak and
  peak memory.

``--dry-run`` (automatic without a GPU) runs the same steps on the CPU at the smallest sizes; checks that
truly need CUDA say "skip". :class:`Runner` runs each row; the command (:mod:`rs_video.cli.gpu_check`)
prints the table.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rs_image.benchmark.throughput import package_version


THROUGHPUT_MODELS = ("rs3d_50", "rs2plus1d_50", "slow_r50")
CHEAP_OPTIONS = ("eager", "channels_last+bf16")
COMPILE_OPTION = "channels_last+bf16+compile"
MODES = ("inference", "train")
DEFAULT_BUDGET_S = 450  # the whole run, so that it ends within 8 minutes with setup and start-up


class SkipCheck(Exception):
    """The check cannot run here (e.g. it needs CUDA); the reason is shown in the table."""


class CheckFailed(Exception):
    """The path ran but did not do what it should; the reason is shown in the table."""


@dataclass(frozen=True)
class Sizes:
    """Data and model sizes of the training checks and of the throughput rows."""

    frames: int
    crop: int
    jitter: Tuple[int, int]
    batch: int
    steps: int
    video_size: Tuple[int, int]  # width, height of the tiny training clips
    image_size: int
    samples: int  # training clips / images (batch x steps)
    arch: str  # MODEL.OVERRIDES of the tiny networks
    bench_frames: int
    bench_size: int
    bench_batch: int
    bench_warmup: int
    bench_repeats: int


GPU_SIZES = Sizes(
    frames=8, crop=64, jitter=(72, 80), batch=4, steps=4, video_size=(128, 96), image_size=96, samples=16,
    arch="{'stage_widths': (16, 32, 64, 128), 'stage_depths': (1, 1, 1, 1), 'stem_width': 16}",
    bench_frames=32, bench_size=224, bench_batch=8, bench_warmup=3, bench_repeats=10,
)
DRY_SIZES = Sizes(
    frames=4, crop=32, jitter=(40, 48), batch=2, steps=2, video_size=(64, 48), image_size=48, samples=4,
    arch="{'stage_widths': (8, 16, 32, 64), 'stage_depths': (1, 1, 1, 1), 'stem_width': 8}",
    bench_frames=4, bench_size=32, bench_batch=1, bench_warmup=0, bench_repeats=1,
)


@dataclass
class Context:
    """Everything a check needs; JSON-serialisable (it also travels to torchrun ranks as a file)."""

    device: str  # "cuda" or "cpu"
    dry_run: bool
    workdir: str
    sizes: Sizes
    video_dir: str = ""
    image_dir: str = ""
    decode_video: str = ""
    peak_tflops: Optional[float] = None
    inject_failure: Tuple[str, ...] = ()
    inject_hang: Tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Context":
        data = json.loads(text)
        data["sizes"] = Sizes(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["sizes"].items()})
        data["inject_failure"], data["inject_hang"] = tuple(data["inject_failure"]), tuple(data["inject_hang"])
        return cls(**data)


# ----------------------------------------------------------------------------------------------------
# Tiny data, made on the spot
def prepare_data(ctx: Context) -> Dict[str, Any]:
    """H.264 training clips with a list file, a JPEG folder, and a larger clip for the decoder check."""
    import numpy as np
    from PIL import Image

    from rs_video.benchmark.synthetic import write_synthetic_video

    s = ctx.sizes
    width, height = s.video_size
    rows = []
    for index in range(s.samples):
        rel = f"videos/train_{index}.mp4"
        os.makedirs(os.path.join(ctx.video_dir, "videos"), exist_ok=True)
        write_synthetic_video(os.path.join(ctx.video_dir, rel), num_frames=24, width=width, height=height)
        rows.append(f"{rel} {index % 2}\n")
    with open(os.path.join(ctx.video_dir, "train.csv"), "w") as f:
        f.writelines(rows)
    rng = np.random.default_rng(0)
    for index in range(s.samples):
        folder = os.path.join(ctx.image_dir, "train", f"class_{index % 2}")
        os.makedirs(folder, exist_ok=True)
        pixels = rng.integers(0, 256, (s.image_size, s.image_size, 3), dtype=np.uint8)
        pixels[..., index % 2] //= 2  # the classes differ in colour
        Image.fromarray(pixels).save(os.path.join(folder, f"{index}.jpg"), format="JPEG", quality=90)
    # NVDEC has minimum frame sizes (H.264: 48x16 and more on some GPUs): decode a 320x240 clip.
    write_synthetic_video(ctx.decode_video, num_frames=48, width=320, height=240)
    return {}


# ----------------------------------------------------------------------------------------------------
# Training checks (the engine's Trainer on the tiny data)
def _train_opts(ctx: Context, name: str, task: str = "video", *extra: str) -> List[str]:
    s = ctx.sizes
    opts = [
        "TASK", task, "MODEL.NAME", "rs3d_50" if task == "video" else "resnetrs50", "MODEL.NUM_CLASSES", "2",
        "MODEL.OVERRIDES", s.arch, "OUTPUT_DIR", os.path.join(ctx.workdir, name, "output"), "DEVICE", ctx.device,
        "DATA_LOADER.NUM_WORKERS", "0", "PROGRESS_BAR", "False", "TENSORBOARD", "False", "TRAIN.AUTO_RESUME", "False",
        "TRAIN.BATCH_SIZE", str(s.batch), "TRAIN.MAX_STEPS_PER_EPOCH", str(s.steps), "TRAIN.EVAL_PERIOD", "0",
        "SOLVER.MAX_EPOCH", "1", "SOLVER.WARMUP_EPOCHS", "0", "SOLVER.BASE_LR", "0.02", "SOLVER.BASE_BATCH_SIZE",
        str(s.batch), "LOG_PERIOD", "1", "DATA.TRAIN_CROP_SIZE", str(s.crop), "DATA.TEST_CROP_SIZE", str(s.crop),
    ]
    if task == "video":
        opts += ["DATA.PATH_TO_DATA_DIR", ctx.video_dir, "DATA.NUM_FRAMES", str(s.frames), "DATA.SAMPLING_RATE", "2",
                 "DATA.TRAIN_JITTER_SCALES", f"[{s.jitter[0]}, {s.jitter[1]}]"]
    else:
        opts += ["DATA.PATH_TO_DATA_DIR", ctx.image_dir]
    return opts + list(extra)


def _build_trainer(ctx: Context, name: str, task: str = "video", *extra: str):
    import rs_video.task  # noqa: F401  (registers TASK video)
    from rs_image.engine import Trainer, load_config

    return Trainer(load_config(None, _train_opts(ctx, name, task, *extra)))


def _logit_dtypes(trainer) -> List[Any]:
    """Records the dtype of every classifier output (the autocast dtype of the last matmul)."""
    seen: List[Any] = []
    trainer.model.get_classifier().register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    return seen


def _train(trainer, ctx: Context) -> Dict[str, Any]:
    """Trains, then checks the step count, finite losses and that the weights moved; returns the numbers."""
    import torch

    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
    if trainer.global_step != ctx.sizes.steps:
        raise CheckFailed(f"{trainer.global_step} optimizer steps instead of {ctx.sizes.steps}")
    with open(os.path.join(trainer.output_dir, "metrics.jsonl")) as f:
        losses = [r["loss"] for r in map(json.loads, f) if r.get("type") == "train"]
    if len(losses) != ctx.sizes.steps or not all(math.isfinite(x) for x in losses):
        raise CheckFailed(f"training losses {losses}")
    after = dict(trainer.model.named_parameters())
    if all(torch.equal(before[k], after[k]) for k in before):
        raise CheckFailed("no parameter changed during training (every optimizer step skipped?)")
    param = next(trainer.model.parameters())
    if param.device.type != ctx.device:
        raise CheckFailed(f"the model is on {param.device}, not {ctx.device}")
    return {"losses": losses}


def _steps_text(ctx: Context, result: Dict[str, Any], what: str = "tiny rs3d") -> str:
    s, losses = ctx.sizes, result["losses"]
    return (f"{s.steps} steps of {what}, batch {s.batch}, loss {losses[0]:.3f} -> {losses[-1]:.3f}")


def check_bf16_autocast(ctx: Context) -> Dict[str, Any]:
    import torch

    if ctx.device == "cuda" and not torch.cuda.is_bf16_supported():
        raise CheckFailed(f"{torch.cuda.get_device_name()} has no bf16 support")
    trainer = _build_trainer(ctx, "bf16_autocast", "video", "TRAIN.MIXED_PRECISION", "bf16")
    dtypes = _logit_dtypes(trainer)
    result = _train(trainer, ctx)
    if set(dtypes) != {torch.bfloat16}:
        raise CheckFailed(f"classifier outputs were {sorted(map(str, set(dtypes)))}, not bfloat16")
    return {"detail": f"{_steps_text(ctx, result)}; logits bfloat16"}


def check_fp16_gradscaler(ctx: Context) -> Dict[str, Any]:
    import torch

    if ctx.device != "cuda":
        raise SkipCheck("needs CUDA: fp16 autocast with the GradScaler is GPU-only (the Trainer refuses it on CPU)")
    trainer = _build_trainer(ctx, "fp16_gradscaler", "video", "TRAIN.MIXED_PRECISION", "fp16")
    if not trainer.scaler.is_enabled():
        raise CheckFailed("the GradScaler is not enabled for TRAIN.MIXED_PRECISION fp16")
    dtypes = _logit_dtypes(trainer)
    result = _train(trainer, ctx)
    scale = trainer.scaler.get_scale()
    if set(dtypes) != {torch.float16}:
        raise CheckFailed(f"classifier outputs were {sorted(map(str, set(dtypes)))}, not float16")
    if not math.isfinite(scale) or scale <= 0:
        raise CheckFailed(f"grad scale {scale}")
    return {"detail": f"{_steps_text(ctx, result)}; logits float16, grad scale {scale:g} after the steps"}


def check_image_channels_last_bf16(ctx: Context) -> Dict[str, Any]:
    import torch

    trainer = _build_trainer(ctx, "image_channels_last_bf16", "image", "TRAIN.MIXED_PRECISION", "bf16",
                             "MODEL.CHANNELS_LAST", "True")
    weight = trainer.model.stem.conv1.weight
    if not weight.is_contiguous(memory_format=torch.channels_last):
        raise CheckFailed("the stem conv weight is not channels_last")
    dtypes = _logit_dtypes(trainer)
    result = _train(trainer, ctx)
    if set(dtypes) != {torch.bfloat16}:
        raise CheckFailed(f"classifier outputs were {sorted(map(str, set(dtypes)))}, not bfloat16")
    return {"detail": f"{_steps_text(ctx, result, 'tiny resnetrs on JPEGs')}; channels_last weights, bf16 logits"}


def check_uint8_pinned_normalise(ctx: Context) -> Dict[str, Any]:
    import torch

    from rs_image.data import normalize_uint8

    trainer = _build_trainer(ctx, "uint8_pinned_normalise", "video", "DATA.OUTPUT_DTYPE", "uint8",
                             "DATA_LOADER.PIN_MEMORY", "True", "DATA_LOADER.NUM_WORKERS", "1")
    batch = next(iter(trainer.train_loader))
    clips = batch["video"]
    if clips.dtype != torch.uint8:
        raise CheckFailed(f"the loader gave {clips.dtype} clips, not uint8")
    pinned = clips.is_pinned()
    if ctx.device == "cuda" and not pinned:
        raise CheckFailed("DATA_LOADER.PIN_MEMORY True on CUDA but the batch is not in pinned memory")
    x = trainer.prepare_input(batch)
    if x.device.type != ctx.device or x.dtype != torch.float32:
        raise CheckFailed(f"prepare_input gave {x.dtype} on {x.device}")
    reference = normalize_uint8(clips, trainer.cfg.DATA.MEAN, trainer.cfg.DATA.STD)
    diff = (x.cpu() - reference).abs().max().item()
    if diff > 1e-5:
        raise CheckFailed(f"device normalisation differs from the CPU one by {diff:.2e}")
    result = _train(trainer, ctx)
    where = "pinned" if pinned else "not pinned (the Trainer pins only for CUDA)"
    return {"detail": f"uint8 batch {tuple(clips.shape)} {where} -> float32 on {x.device.type}, max abs diff to "
                      f"CPU normalisation {diff:.1e}; {_steps_text(ctx, result)} with 1 loader worker"}


def check_channels_last_3d_compile(ctx: Context) -> Dict[str, Any]:
    import torch
    from torch._dynamo.utils import counters

    backend = "inductor" if ctx.device == "cuda" else "aot_eager"
    trainer = _build_trainer(ctx, "channels_last_3d_compile", "video", "MODEL.CHANNELS_LAST", "True",
                             "TRAIN.COMPILE", "True", "TRAIN.COMPILE_BACKEND", backend, "TRAIN.MIXED_PRECISION", "bf16")
    if not isinstance(trainer.train_model, torch._dynamo.eval_frame.OptimizedModule):
        raise CheckFailed(f"TRAIN.COMPILE True but the training model is a {type(trainer.train_model).__name__}")
    if not trainer.model.stem.conv1.weight.is_contiguous(memory_format=torch.channels_last_3d):
        raise CheckFailed("the stem conv weight is not channels_last_3d")
    result = _train(trainer, ctx)
    graphs = int(counters["stats"]["unique_graphs"])
    breaks = sum(counters["graph_break"].values())
    if graphs == 0:
        raise CheckFailed("torch.compile compiled no graph")
    where = f"cuDNN {torch.backends.cudnn.version()}" if ctx.device == "cuda" else \
        "CPU; dry run: aot_eager traces forward and backward without inductor's code generation"
    return {"detail": f"{_steps_text(ctx, result)}, bf16; backend {backend}, {graphs} graph(s), {breaks} graph "
                      f"break(s); {where}"}


# ----------------------------------------------------------------------------------------------------
# DDP and SyncBN: torchrun with one process and a one-process group
def _torchrun(ctx: Context, name: str) -> Dict[str, Any]:
    context_file = os.path.join(ctx.workdir, name, "context.json")
    result_file = os.path.join(ctx.workdir, name, "rank0.json")
    os.makedirs(os.path.dirname(context_file), exist_ok=True)
    with open(context_file, "w") as f:
        f.write(ctx.to_json())
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
           "-m", "rs_video.cli.gpu_check", "--rank-check", name, "--context", context_file, "--result", result_file]
    print("running:", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, stdout=sys.stdout, stderr=sys.stderr)
    if not os.path.exists(result_file):
        raise CheckFailed(f"torchrun exited with code {done.returncode} and no result from rank 0")
    with open(result_file) as f:
        rank = json.load(f)
    if rank["status"] == "FAIL":
        raise CheckFailed(rank["detail"])
    return rank


def check_ddp_nccl(ctx: Context) -> Dict[str, Any]:
    return _torchrun(ctx, "ddp_nccl")


def check_syncbn(ctx: Context) -> Dict[str, Any]:
    if ctx.device != "cuda":
        raise SkipCheck("needs CUDA: SyncBatchNorm runs on GPUs only (the Trainer ignores BN.SYNC on CPU)")
    return _torchrun(ctx, "syncbn")


def _syncbn_kernels_equal_bn(device: str = "cuda") -> str:
    """SyncBN's autograd function (CUDA statistics kernels + an all-gather over the one-process NCCL group)
    against plain training-mode BN: outputs, running statistics and gradients. At world size 1
    ``nn.SyncBatchNorm`` itself skips this function, so it is called directly."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.modules._functions import SyncBatchNorm as SyncBatchNormFunction

    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(4, 16, 4, 8, 8, device=device, generator=g) * 2 + 0.5
    weight = torch.rand(16, device=device, generator=g) + 0.5
    bias = torch.randn(16, device=device, generator=g)
    grad_out = torch.randn(x.shape, device=device, generator=g)
    outs = []
    for sync in (False, True):
        xi, wi, bi = (t.clone().requires_grad_() for t in (x, weight, bias))
        mean, var = torch.zeros(16, device=device), torch.ones(16, device=device)
        if sync:
            y = SyncBatchNormFunction.apply(xi, wi, bi, mean, var, 1e-5, 0.1, dist.group.WORLD, 1)
        else:
            y = F.batch_norm(xi, mean, var, wi, bi, training=True, momentum=0.1, eps=1e-5)
        y.backward(grad_out)
        outs.append((y.detach(), mean, var, xi.grad, wi.grad, bi.grad))
    names = ("output", "running mean", "running var", "input grad", "weight grad", "bias grad")
    worst = {n: (a - b).abs().max().item() for n, a, b in zip(names, *outs)}
    bad = {n: d for n, d in worst.items() if d > 1e-4}
    if bad:
        raise CheckFailed(f"SyncBN kernels differ from BN: {bad}")
    return f"max abs diff {max(worst.values()):.1e}"


def rank_main(name: str, ctx: Context, result_file: str) -> None:
    """One torchrun rank: a one-process group (NCCL on CUDA, gloo on CPU), then the Trainer with DDP."""
    import logging

    import torch
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
    from torch.nn.parallel import DistributedDataParallel

    from rs_image.benchmark.throughput import PeakMemory

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    result: Dict[str, Any] = {"status": "FAIL"}
    memory = PeakMemory(torch.device(ctx.device))
    try:
        local_rank = int(os.environ["LOCAL_RANK"])
        if ctx.device == "cuda":
            torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
        else:
            dist.init_process_group("gloo")
        memory.reset()
        extra = ("BN.SYNC", "True") if name == "syncbn" else ()
        trainer = _build_trainer(ctx, name, "video", *extra)
        if not isinstance(trainer.train_model, DistributedDataParallel):
            raise CheckFailed(f"the Trainer did not wrap the model in DDP ({type(trainer.train_model).__name__})")
        buckets = [0]

        def counting_allreduce(state, bucket):
            buckets[0] += 1
            return default_hooks.allreduce_hook(state, bucket)

        trainer.train_model.register_comm_hook(None, counting_allreduce)
        train = _train(trainer, ctx)
        if buckets[0] < ctx.sizes.steps:
            raise CheckFailed(f"DDP all-reduced {buckets[0]} gradient buckets in {ctx.sizes.steps} steps")
        total = torch.ones(1, device=trainer.device)
        dist.all_reduce(total)
        backend = dist.get_backend()
        detail = (f"torchrun, 1 process, {backend} group of world size {dist.get_world_size()}: DDP all-reduced "
                  f"{buckets[0]} gradient buckets over {backend}; {_steps_text(ctx, train)}")
        if name == "syncbn":
            norms = [m for m in trainer.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
            plain = [m for m in norms if not isinstance(m, torch.nn.SyncBatchNorm)]
            if plain or not norms:
                raise CheckFailed(f"{len(plain)} of {len(norms)} BN layers were not converted to SyncBatchNorm")
            detail = (f"{len(norms)} BN layers -> SyncBatchNorm, {_steps_text(ctx, train)} under DDP/NCCL (world "
                      f"size 1: torch skips the cross-process statistics there, 2+ GPUs exercise them); SyncBN's "
                      f"CUDA kernels + NCCL all-gather called directly equal BN: {_syncbn_kernels_equal_bn()}")
        result = {"status": "pass", "detail": detail}
    except Exception as error:  # noqa: BLE001 - reported in the table
        traceback.print_exc()
        result = {"status": "FAIL", "detail": _error_text(error)}
    finally:
        result["peak_mem_mib"] = _peak(memory)
        with open(result_file + ".tmp", "w") as f:
            json.dump(result, f)
        os.replace(result_file + ".tmp", result_file)
        if dist.is_initialized():
            dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------------
def check_torchcodec_cuda_decode(ctx: Context) -> Dict[str, Any]:
    from rs_video.data.decoders import TorchCodecDecoder
    from rs_video.benchmark.synthetic import read_frame_index

    usable, why = TorchCodecDecoder.is_available()
    if not usable:
        raise SkipCheck(f"torchcodec is not usable here: {why}")
    from torchcodec.decoders import VideoDecoder, set_cuda_backend

    indices = [0, 7, 8, 23, 40, 47]
    with TorchCodecDecoder(num_threads=1).open(ctx.decode_video) as video:
        reference = video.get_frames(indices)
    notes = []
    frames = None
    backends = ("nvdec", "ffmpeg") if ctx.device == "cuda" else ("cpu",)
    for backend in backends:
        try:
            if backend == "cpu":
                decoder = VideoDecoder(ctx.decode_video, device="cpu", seek_mode="exact")
            else:
                with set_cuda_backend(backend):
                    decoder = VideoDecoder(ctx.decode_video, device="cuda", seek_mode="exact")
            frames = decoder.get_frames_at(indices=indices).data
            fallback = decoder.cpu_fallback
            if ctx.device == "cuda" and bool(fallback):
                raise CheckFailed(f"torchcodec fell back to CPU decoding: {fallback}")
            break
        except Exception as error:  # noqa: BLE001 - the next backend is tried, the reason kept
            notes.append(f"{backend} backend: {_error_text(error)}")
            frames = None
    if frames is None:
        raise CheckFailed("; ".join(notes))
    if frames.device.type != ctx.device:
        raise CheckFailed(f"frames decoded on {frames.device}, expected {ctx.device}")
    got = frames.cpu()
    if got.shape != reference.shape:
        raise CheckFailed(f"frames {tuple(got.shape)} vs {tuple(reference.shape)} from the CPU decoder")
    seen = [read_frame_index(f) for f in got]
    if seen != indices or [read_frame_index(f) for f in reference] != indices:
        raise CheckFailed(f"frame indices {seen} for requested {indices}")
    diff = (got.int() - reference.int()).abs().float()
    mean_diff, max_diff = diff.mean().item(), diff.max().item()
    # NVDEC's colour conversion differs from swscale's by a few levels; the CPU decode must be exact.
    if (ctx.device == "cuda" and mean_diff > 2.0) or (ctx.device == "cpu" and max_diff > 0):
        raise CheckFailed(f"pixels differ from the CPU decode: mean {mean_diff:.2f}, max {max_diff:.0f}")
    used = backend if ctx.device == "cuda" else "device='cpu' (dry run)"
    note = f" ({'; '.join(notes)})" if notes else ""
    return {"detail": f"torchcodec {package_version('torchcodec')} VideoDecoder {used}: {len(indices)} frames of a "
                      f"320x240 H.264 clip, indices exact, abs diff to the library's CPU decode mean {mean_diff:.2f} "
                      f"max {max_diff:.0f}{note}; DATA.DECODER itself decodes on the CPU"}


# ----------------------------------------------------------------------------------------------------
def probe(ctx: Context) -> Dict[str, Any]:
    """What this machine offers: CUDA device, versions, bf16 peak."""
    import torch

    from rs_image.benchmark.throughput import peak_bf16_tflops

    info: Dict[str, Any] = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
                            "torch_cuda": torch.version.cuda, "torchcodec": package_version("torchcodec")}
    if info["cuda_available"]:
        name = torch.cuda.get_device_name(0)
        info.update(gpu=name, capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                    gpu_memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
                    cudnn=torch.backends.cudnn.version(), nccl=_nccl_version(),
                    peak_bf16_tflops=peak_bf16_tflops(name))
    return {"detail": "", "info": info}


def _nccl_version() -> str:
    import torch

    version = torch.cuda.nccl.version()
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def throughput_job(ctx: Context, models: Sequence[str], options: Sequence[str], output: str) -> Dict[str, Any]:
    """``rs-report --throughput`` for ``models`` x ``options`` x both modes, JSON to ``output`` (its own process: the
    report command is a tool, which this room does not import)."""
    s = ctx.sizes
    args = ["--models", *models, "--frames", str(s.bench_frames), "--size", str(s.bench_size), "--throughput",
            "--device", ctx.device, "--batch-size", str(s.bench_batch), "--options", *options, "--modes", *MODES,
            "--warmup", str(s.bench_warmup), "--repeats", str(s.bench_repeats), "--format", "json", "--output", output]
    if ctx.peak_tflops:
        args += ["--peak-tflops", str(ctx.peak_tflops)]
    print("rs-report", " ".join(args), flush=True)
    code = subprocess.run([sys.executable, "-m", "rs_video.cli.model_report", *args]).returncode
    if code != 0:
        raise CheckFailed(f"model_report exited with {code}")
    from rs_image.report.tables import format_mfu

    with open(output) as f:
        rows = json.load(f)["throughput"]
    keys = ("model", "mode", "option", "clips_per_s", "median_ms", "speedup_vs_eager", "achieved_tflops",
            "peak_mem_mib", "error")
    return {"detail": "", "measured": [dict({k: r[k] for k in keys}, mfu=format_mfu(r["mfu"])) for r in rows]}


@dataclass(frozen=True)
class Check:
    name: str
    gpu_run: str  # what runs on a GPU
    dry_run: str  # what runs in the dry run
    run: Callable[[Context], Dict[str, Any]]
    timeout_s: float


CHECKS: Tuple[Check, ...] = (
    Check("bf16_autocast", "Trainer, TRAIN.MIXED_PRECISION bf16, H.264 clips, CUDA",
          "same on the CPU (bf16 autocast)", check_bf16_autocast, 120),
    Check("fp16_gradscaler", "Trainer, TRAIN.MIXED_PRECISION fp16 + GradScaler, CUDA", "-", check_fp16_gradscaler, 120),
    Check("image_channels_last_bf16", "image task on a JPEG folder, MODEL.CHANNELS_LAST + bf16, CUDA",
          "same on the CPU", check_image_channels_last_bf16, 120),
    Check("uint8_pinned_normalise", "DATA.OUTPUT_DTYPE uint8 + DATA_LOADER.PIN_MEMORY, normalised on the GPU",
          "same on the CPU (no pinning)", check_uint8_pinned_normalise, 120),
    Check("channels_last_3d_compile", "MODEL.CHANNELS_LAST (channels_last_3d) + TRAIN.COMPILE (inductor) + bf16, "
          "cuDNN", "same on the CPU with TRAIN.COMPILE_BACKEND aot_eager", check_channels_last_3d_compile, 300),
    Check("ddp_nccl", "torchrun --nproc_per_node 1, NCCL group (world size 1), Trainer's DDP wrapper",
          "same with gloo on the CPU", check_ddp_nccl, 150),
    Check("syncbn", "as ddp_nccl + BN.SYNC (SyncBatchNorm), and SyncBN's CUDA kernels vs BN", "-", check_syncbn, 150),
    Check("torchcodec_cuda_decode", "torchcodec VideoDecoder(device='cuda') vs the CPU decoder",
          "torchcodec device='cpu' vs the library's decoder", check_torchcodec_cuda_decode, 90),
)
CHECK_NAMES = tuple(c.name for c in CHECKS)
INJECTED_HANG_TIMEOUT_S = 3.0
_TASKS: Dict[str, Callable[..., Dict[str, Any]]] = {c.name: c.run for c in CHECKS}
_TASKS.update(probe=probe, prepare_data=prepare_data, throughput=throughput_job)


# ----------------------------------------------------------------------------------------------------
# Running one task in its own process
def _error_text(error: BaseException) -> str:
    if isinstance(error, CheckFailed):
        return str(error)[:400]
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:400]


def _peak(memory: Any) -> Optional[float]:
    try:
        value = memory.peak_mib()
    except Exception:  # noqa: BLE001 - memory is informative, never a reason to fail a row
        return None
    return round(value, 1) if value is not None else None


def _child(task: str, ctx: Context, result_file: str, log_file: str, args: tuple) -> None:
    """Body of a task process: its own process group (so a timeout kills everything it started), output to
    ``log_file``, the outcome as JSON in ``result_file``."""
    os.setsid()
    # A forkserver child inherits the forkserver start method; DataLoader workers get the platform's default.
    multiprocessing.set_start_method(None, force=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True)
    start = time.perf_counter()
    result: Dict[str, Any] = {}
    memory = None
    try:
        import torch

        from rs_image.benchmark.throughput import PeakMemory

        if task not in ("probe", "prepare_data", "throughput", "ddp_nccl", "syncbn"):  # others measure themselves
            memory = PeakMemory(torch.device(ctx.device))
            memory.reset()
        if task in ctx.inject_hang:
            print(f"{task}: hanging on purpose (--inject-hang)", flush=True)
            time.sleep(10**6)
        if task in ctx.inject_failure:
            raise RuntimeError("injected failure (--inject-failure)")
        result = dict(_TASKS[task](ctx, *args))
        result["status"] = result.get("status", "pass")
    except SkipCheck as reason:
        result = {"status": "skip", "detail": str(reason)}
    except Exception as error:  # noqa: BLE001 - reported in the table
        traceback.print_exc()
        result = {"status": "FAIL", "detail": _error_text(error)}
    result["seconds"] = round(time.perf_counter() - start, 1)
    if memory is not None and result.get("peak_mem_mib") is None:
        result["peak_mem_mib"] = _peak(memory)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(result_file + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(result_file + ".tmp", result_file)


def _last_line(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Runner:
    """Runs tasks in processes forked from a server that imported torch and the library once."""

    def __init__(self, ctx: Context, budget_s: float) -> None:
        self.ctx = ctx
        self.deadline = time.monotonic() + budget_s
        self.mp = multiprocessing.get_context("forkserver")
        self.mp.set_forkserver_preload(["__main__", "torch", "rs_video", "rs_video.data", "rs_image.engine", "av"])

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, task: str, timeout_s: float, *args: Any, label: Optional[str] = None) -> Dict[str, Any]:
        label = label or task
        timeout = timeout_s
        available = self.remaining() - 5  # for the table
        if available < min(timeout, 10):
            return {"status": "skip", "detail": f"time budget used up ({max(self.remaining(), 0):.0f} s left)"}
        cut_by_budget = available < timeout
        timeout = min(timeout, available)
        log_file = os.path.join(self.ctx.workdir, f"{label}.log")
        result_file = os.path.join(self.ctx.workdir, f"{label}.result.json")
        start = time.monotonic()
        process = self.mp.Process(target=_child, args=(task, self.ctx, result_file, log_file, args), name=label)
        process.start()
        process.join(timeout)
        timed_out = process.is_alive()
        _kill_group(process.pid)  # on time-out, and leftovers (loader workers, compile workers, torchrun)
        process.join()
        seconds = round(time.monotonic() - start, 1)
        if timed_out and cut_by_budget:
            return {"status": "skip", "seconds": seconds, "log": log_file,
                    "detail": f"stopped after {timeout:.0f} s: the time budget (--budget-s) ran out before its own "
                              f"limit of {timeout_s:.0f} s; last output: {_last_line(log_file)}"}
        if timed_out:
            return {"status": "FAIL", "seconds": seconds, "log": log_file,
                    "detail": f"timed out after {timeout:.0f} s (killed); last output: {_last_line(log_file)}"}
        if not os.path.exists(result_file):
            return {"status": "FAIL", "seconds": seconds, "log": log_file,
                    "detail": f"exited with code {process.exitcode} without a result; last output: "
                              f"{_last_line(log_file)}"}
        with open(result_file) as f:
            result = json.load(f)
        result["log"] = log_file
        return result


# ----------------------------------------------------------------------------------------------------
# Throughput rows
def throughput_rows(ctx: Context, runner: Runner, models: Sequence[str]) -> List[Dict[str, Any]]:
    """Cheap options for all models in one process, then the compiled option model by model while the budget
    lasts (compilation takes minutes); every (model, mode, option) gets a row."""
    s = ctx.sizes
    jobs: List[Tuple[str, List[str], List[str], float]] = [("throughput_eager", list(models), list(CHEAP_OPTIONS), 300)]
    if not ctx.dry_run:
        jobs += [(f"throughput_{m}_compile", [m], [COMPILE_OPTION], 400) for m in models]
    outcome: Dict[Tuple[str, str, str], Dict[str, Any]] = {}
    for label, job_models, options, timeout in jobs:
        output = os.path.join(ctx.workdir, f"{label}.json")
        result = runner.run("throughput", timeout, job_models, options, output, label=label)
        for r in result.get("measured", []):
            outcome[(r["model"], r["mode"], r["option"])] = r
        for m in job_models:
            for mode in MODES:
                for option in options:
                    outcome.setdefault((m, mode, option), {
                        "status": "FAIL" if result["status"] == "pass" else result["status"],
                        "detail": result.get("detail") or "no result from model_report"})
    rows = []
    for m in models:
        for mode in MODES:
            timed = [outcome[(m, mode, o)] for o in CHEAP_OPTIONS + (COMPILE_OPTION,)
                     if (m, mode, o) in outcome and "clips_per_s" in outcome[(m, mode, o)]
                     and not outcome[(m, mode, o)].get("error")]
            best = max(timed, key=lambda r: r["clips_per_s"])["option"] if len(timed) > 1 else None
            for option in CHEAP_OPTIONS + (COMPILE_OPTION,):
                what = f"model_report --device {ctx.device}: {option}, batch {s.bench_batch}, " \
                       f"3x{s.bench_frames}x{s.bench_size}x{s.bench_size}"
                r = outcome.get((m, mode, option))
                row = {"check": f"throughput {m} {mode}", "what": what}
                if r is None:
                    row.update(status="skip", detail="dry run: inductor compiles of the full-size models are timed "
                                                     "on the GPU only (the compile path itself: channels_last_3d_compile)")
                elif "clips_per_s" not in r:
                    row.update(status=r["status"], detail=r["detail"])
                elif r.get("error"):
                    row.update(status="FAIL", detail=r["error"], peak_mem_mib=r.get("peak_mem_mib"))
                else:
                    notes = [f"{r['median_ms']:.1f} ms/step"]
                    if r.get("speedup_vs_eager") and option != "eager":
                        notes.append(f"{r['speedup_vs_eager']:.2f}x eager")
                    if option == best:
                        notes.append("best")
                    row.update(status="pass", clips_per_s=r["clips_per_s"], tflops=r.get("achieved_tflops"),
                               mfu=r.get("mfu"), peak_mem_mib=r.get("peak_mem_mib"), detail=", ".join(notes))
                rows.append(row)
    return rows

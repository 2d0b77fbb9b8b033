"""tools/gpu_check.sh --dry-run: every row of the GPU check runs on the CPU (or says honestly why not), the
table is complete, the exit status is 0; a failing or hanging check becomes a FAIL row with its reason and
the others still run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from rs_video.benchmark import gpu_check

ROOT = Path(__file__).resolve().parents[2]


def run_check(workdir: Path, *args: str) -> Tuple[int, Dict[Tuple[str, str], Dict[str, str]], List[str], str]:
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(ROOT))
    done = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), "--workdir", str(workdir), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    lines = done.stdout.splitlines()
    table = [line for line in lines if line.startswith("| ")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    rows: Dict[Tuple[str, str], Dict[str, str]] = {}
    order = []
    for line in table[1:]:
        row = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        rows[(row["check"], row["what ran"])] = row
        order.append(row["check"])
    return done.returncode, rows, order, done.stdout + done.stderr


@pytest.mark.slow
def test_dry_run_prints_every_row_and_exits_0(tmp_path):
    code, rows, order, output = run_check(tmp_path, "--dry-run")
    assert code == 0, output
    assert "dry run on the CPU" in output
    checks = list(dict.fromkeys(order))
    throughput = [f"throughput {m} {mode}" for m in gpu_check.THROUGHPUT_MODELS for mode in gpu_check.MODES]
    assert checks == list(gpu_check.CHECK_NAMES) + throughput, output
    by_check: Dict[str, List[Dict[str, str]]] = {}
    for row in rows.values():
        by_check.setdefault(row["check"], []).append(row)
    # What truly needs CUDA is skipped and says so; everything else ran on the CPU and passed.
    for name in ("fp16_gradscaler", "syncbn"):
        (row,) = by_check[name]
        assert row["status"] == "skip" and row["detail"].startswith("needs CUDA"), row
    for name in set(gpu_check.CHECK_NAMES) - {"fp16_gradscaler", "syncbn"}:
        (row,) = by_check[name]
        assert row["status"] == "pass", row
    assert "logits bfloat16" in by_check["bf16_autocast"][0]["detail"]
    assert "gloo group of world size 1: DDP all-reduced" in by_check["ddp_nccl"][0]["detail"]
    assert "backend aot_eager, 1 graph(s), 0 graph break(s)" in by_check["channels_last_3d_compile"][0]["detail"]
    assert "indices exact" in by_check["torchcodec_cuda_decode"][0]["detail"]
    for name in throughput:
        options = {row["what ran"].split(": ")[1].split(",")[0]: row for row in by_check[name]}
        assert sorted(options) == sorted(gpu_check.CHEAP_OPTIONS + (gpu_check.COMPILE_OPTION,)), name
        for option in gpu_check.CHEAP_OPTIONS:
            row = options[option]
            assert row["status"] == "pass" and float(row["clips/s"]) > 0 and float(row["TFLOP/s"]) > 0, row
            assert row["MFU"] == "n/a" and float(row["peak mem (MiB)"]) > 0, row  # no bf16 peak for a CPU
        compiled = options[gpu_check.COMPILE_OPTION]
        assert compiled["status"] == "skip" and "timed on the GPU only" in compiled["detail"]


@pytest.mark.slow
def test_a_failing_and_a_hanging_check_are_fail_rows_with_their_reason(tmp_path):
    code, rows, order, output = run_check(
        tmp_path, "--dry-run", "--only", "bf16_autocast", "image_channels_last_bf16", "torchcodec_cuda_decode",
        "--inject-failure", "bf16_autocast", "--inject-hang", "torchcodec_cuda_decode")
    assert code == 1, output
    assert order == ["bf16_autocast", "image_channels_last_bf16", "torchcodec_cuda_decode"], output
    status = {check: (row["status"], row["detail"]) for (check, _), row in rows.items()}
    assert status["bf16_autocast"] == ("FAIL", "RuntimeError: injected failure (--inject-failure)")
    assert status["image_channels_last_bf16"][0] == "pass"  # the check after a failure still runs
    hung = status["torchcodec_cuda_decode"]
    assert hung[0] == "FAIL" and hung[1].startswith("timed out after 3 s (killed)") and "on purpose" in hung[1]
    assert "Logs and outputs:" in output and "torchcodec_cuda_decode.log" in output

#!/usr/bin/env bash
# Prove the CUDA paths on one NVIDIA GPU in under 8 minutes and print one table (see README "GPU check"):
#   tools/gpu_check.sh [--dry-run] [tools/gpu_check.py options, e.g. --batch-size 4 --peak-tflops 989.4]
# Without a GPU (or with --dry-run) the same steps run on the CPU at the smallest sizes and CUDA-only rows
# say "skip". Python: $PYTHON, else the checkout's .venv, else python3. Exit status 1 when a row failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONUNBUFFERED=1

args=("$@")
dry=0
for a in "$@"; do [ "$a" = "--dry-run" ] && dry=1; done
if [ "$dry" = 0 ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2
    args+=(--expect-gpu)
  else
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi finds none): the GPU paths stay unproven; dry run on the CPU" >&2
    args+=(--dry-run)
  fi
fi
exec "$PY" tools/gpu_check.py "${args[@]}"

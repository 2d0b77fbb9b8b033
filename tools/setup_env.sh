#!/usr/bin/env bash
# Create the development environment: system FFmpeg (for torchcodec) where we can install it, a
# virtual environment with the pinned packages, and this project in editable mode.
set -euo pipefail
PYTHON="${1:-python3}"
VENV="${2:-.venv}"

if ! ldconfig -p 2>/dev/null | grep -q libavcodec; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing system FFmpeg libraries for torchcodec (apt-get)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null) \
      || echo "[setup] could not install ffmpeg; video decoding falls back to PyAV"
  else
    echo "[setup] no system FFmpeg and no root apt-get; video decoding falls back to PyAV"
  fi
fi

# Run pip quietly; on failure show its output (minus this machine's local-index notices) and fail.
pip_quiet() {
  local log
  log=$(mktemp)
  if ! "$VENV/bin/python" -m pip "$@" >"$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
pip_quiet install -q --upgrade pip
echo "[setup] installing pinned packages (requirements-dev.txt)"
pip_quiet install -q -r requirements-dev.txt
pip_quiet install -q --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import torch, torchvision, fvcore, pytorchvideo, av, rs_image, rs_video; print('[setup] ok: torch', torch.__version__, 'torchvision', torchvision.__version__)"

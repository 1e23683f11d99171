#!/usr/bin/env bash
# The GPU check of dfd_depth_ros in one command, at most 8 minutes (see scripts/device_check.py):
# torch CUDA vs ONNX Runtime CPU parity of the shipped model, and the node's per-frame cost at
# 320x240, 640x480 and 1280x720 with and without CUDA graphs. JSON: $OUT/device_check.json,
# else out/device_check.json. Needs python3 with torch, onnxruntime and numpy; no install, no network.
#   scripts/device_check.sh            # CUDA when torch sees a GPU
#   scripts/device_check.sh --cpu      # the same checks on the CPU (fewer frames)
# PYTHON=.venv/bin/python picks another interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout --kill-after=10 480 "${PYTHON:-python3}" scripts/device_check.py "$@"

#!/usr/bin/env bash
# GPU check of gpu_impl (docs/algorithms.md §7): differential tests on the device, then a small benchmark.
#
#   bash scripts/gpu_check.sh                          # CUDA (default): full check, < 5 min on an H100
#   CSPD_TEST_DEVICE=cpu bash scripts/gpu_check.sh     # the same steps, small, on the CPU
#
# Needs torch, numpy, scipy, pytest; the project need not be installed (PYTHONPATH=repo root).
# Writes $OUT/gpu_check.md when OUT is set, else reports/out/gpu_check.md; exits non-zero on any
# failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export CSPD_TEST_DEVICE="${CSPD_TEST_DEVICE:-cuda}"
PYTHON="${PYTHON:-python3}"
exec "$PYTHON" scripts/gpu_check.py "$@"

#!/usr/bin/env bash
# Every CUDA figure of BENCHMARKS.md's performance sections in one prepared run, for a session
# that is lent a GPU (no install: PYTHONPATH=repo root). Sized for one 10-minute device call, but
# not yet run on a GPU: no device was lent when it was written; the CPU dry run below takes 43 s.
#
#   bash scripts/bench_gpu.sh                      # CUDA: kernels at 16,384 / 262,144 /
#                                                  # 4,194,304 tokens, then the MAR toy
#   CSPD_BENCH_DEVICE=cpu bash scripts/bench_gpu.sh  # the same steps at a tiny size (a dry run)
#
# Writes bench_kernels.json, bench_mar_toy.json and bench_env.txt to $OUT (default reports/out);
# BENCHMARKS.md is written from them by hand, with the GPU named.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
PYTHON="${PYTHON:-python3}"
DEVICE="${CSPD_BENCH_DEVICE:-cuda}"
OUT="${OUT:-reports/out}"
mkdir -p "$OUT"
{
  date -u
  "$PYTHON" -c "import torch, platform; print(platform.platform(), 'torch', torch.__version__, \
'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no cuda')"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || true
} > "$OUT/bench_env.txt"
cat "$OUT/bench_env.txt"
if [ "$DEVICE" = "cpu" ]; then
  KERNELS=(--sizes 4096 --warmup 1 --repeats 2 --naive-max-n 4096)
  TOY=(--preset tiny --train-steps 5 --distil-steps 5 --batch 8 --gammas 1 2 --prefills 0
       --warmup 1 --repeats 1 --battery 64)
else
  KERNELS=(--sizes 16384 262144 4194304 --warmup 5 --repeats 20 --naive-max-n 262144)
  TOY=(--preset gpu --train-steps 600 --distil-steps 400 --batch 32 --gammas 1 2 3 4 6
       --prefills 0 0.25 --warmup 2 --repeats 5 --battery 2000)
fi
"$PYTHON" -m gpu_impl.bench --device "$DEVICE" --compile "${KERNELS[@]}" --json \
  > "$OUT/bench_kernels.json"
"$PYTHON" -m gpu_impl.mar_toy.bench --device "$DEVICE" "${TOY[@]}" --json \
  > "$OUT/bench_mar_toy.json"
echo "wrote $OUT/bench_kernels.json $OUT/bench_mar_toy.json"

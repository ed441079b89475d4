#!/usr/bin/env bash
# gpu-checks.sh [tests|bench|all] — on the lent GPU machine: runs the staged CUDA parity tests and
# the GPU benchmarks, writing logs to $OUT (or ./gpu-out). How to stage and send: docs/gpu.md.
set -uo pipefail
what=${1:-all}
out=${OUT:-gpu-out}
mkdir -p "$out"
[ -d .device ] || tar xJf .devpack/device.tar.xz
source .device/env.sh
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
if [[ $what == tests || $what == all ]]; then
  for t in .device/bin/test_cuda_*; do
    name=$(basename "$t")
    start=$(date +%s)
    SPARTA_CUDA_SYNC=1 timeout 300 "$t" --log_level=test_suite > "$out/$name.log" 2>&1
    rc=$?
    echo "$name rc=$rc $(( $(date +%s) - start ))s $(grep -c 'error' "$out/$name.log") error lines"
    [ $rc -ne 0 ] && grep -E "error|fatal" "$out/$name.log" | head -8
  done
fi
if [[ $what == bench || $what == all ]]; then
  for b in bench_cuda_ops bench_cuda_attention; do
    timeout 300 "$b" > "$out/$b.txt" 2>&1; echo "$b rc=$?"
    cat "$out/$b.txt"
  done
fi
exit 0

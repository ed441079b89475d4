#!/usr/bin/env bash
# gpu-checks.sh [tests|bench|attention|train8k|all] — on the lent GPU machine: runs the staged CUDA
# parity tests and the GPU benchmarks, writing logs to $OUT (or ./gpu-out). How to stage and send:
# docs/gpu.md. attention: the attention and decode benchmarks with PyTorch's SDPA and decode beside them,
# then attention at head dim 128 (8 heads) with SDPA's;
# train8k: issue 6's training comparison (T=8192, 8 layers, d_model 512, batch 4, bf16) by pattern.
set -uo pipefail
what=${1:-all}
out=${OUT:-gpu-out}
mkdir -p "$out"
[ -d .device ] || tar xJf .devpack/device.tar.xz
source .device/env.sh
export SPARTA_BIN=$PWD/.device/bin/sparta NCCL_NVLS_ENABLE=0  # test_cuda_distributed launches the CLI
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
  timeout 300 bench_cuda_ops > "$out/bench_cuda_ops.txt" 2>&1; echo "bench_cuda_ops rc=$?"
  cat "$out/bench_cuda_ops.txt"
fi
if [[ $what == bench || $what == attention || $what == all ]]; then
  for b in bench_cuda_attention bench_cuda_decode; do
    timeout 300 "$b" > "$out/$b.txt" 2>&1; echo "$b rc=$?"
    cat "$out/$b.txt"
  done
  timeout 200 python3 bench/pytorch_decode.py > "$out/pytorch_decode.txt" 2>&1; echo "pytorch_decode rc=$?"
  cat "$out/pytorch_decode.txt"
  timeout 200 python3 bench/pytorch_attention.py > "$out/pytorch_attention.txt" 2>&1; echo "pytorch_attention rc=$?"
  cat "$out/pytorch_attention.txt"
  d128=(--heads 8 --dim 128)
  timeout 300 bench_cuda_attention "${d128[@]}" > "$out/bench_cuda_attention_d128.txt" 2>&1; echo "bench_cuda_attention d128 rc=$?"
  cat "$out/bench_cuda_attention_d128.txt"
  timeout 200 python3 bench/pytorch_attention.py "${d128[@]}" > "$out/pytorch_attention_d128.txt" 2>&1
  echo "pytorch_attention d128 rc=$?"
  cat "$out/pytorch_attention_d128.txt"
fi
if [[ $what == train8k ]]; then
  shape=(--seq 8192 --layers 8 --d-model 512 --heads 8 --batch 4 --vocab 256)
  for p in dense fixed:128:16 fixed:91:11 strided:91 local:256; do
    echo "== sparta $p"
    timeout 200 bench_train_step --device cuda "${shape[@]}" --bf16 --steps 5 --pattern "$p" 2>&1 | tail -4
  done
  echo "== PyTorch SDPA dense"
  timeout 200 python3 bench/pytorch_train_step.py --device cuda "${shape[@]}" --bf16 2>&1 | tail -3
fi
exit 0

"""PyTorch's dense causal attention (F.scaled_dot_product_attention, whatever backend it picks on
this GPU; the kernel names are printed) on the shapes of bench_cuda_attention.cpp, so sparta's
table can be set against SDPA measured on the same machine: bf16, 16 heads, head dim 64, batch x
length = 16384 tokens. Effective TFLOP/s as there: 4 D FLOPs per allowed (query, key) pair
forward, 2.5x that backward; a causal row i allows i + 1 keys.
Timing: CUDA events, two warm-up runs, the median of --reps runs of --iters back-to-back calls
each (per call), as bench_cuda_attention --iters.

  python3 bench/pytorch_attention.py [--seq 4096 16384 65536] [--tokens 16384] [--heads 16] [--dim 64]
                                     [--reps 5] [--iters 1]
"""
import argparse

import torch
import torch.nn.functional as F

from cuda_events import median_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, nargs="+", default=[4096, 16384, 65536])
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--iters", type=int, default=1)
    a = ap.parse_args()
    torch.manual_seed(0)
    print(f"PyTorch {torch.__version__}, {torch.cuda.get_device_name()}, bf16, {a.heads} heads, head dim {a.dim}")
    print("| N | B | fwd ms | fwd TFLOP/s | fwd+bwd ms | fwd+bwd TFLOP/s |\n|---|---|---|---|---|---|")
    for n in a.seq:
        b = max(1, a.tokens // n)
        q, k, v = (torch.randn(b, a.heads, n, a.dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                   for _ in range(3))
        g = torch.rand(b, a.heads, n, a.dim, device="cuda", dtype=torch.bfloat16)
        pairs = b * a.heads * n * (n + 1) / 2
        fwd_flops = 4 * a.dim * pairs

        def fwd():
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v, is_causal=True)

        def fwd_bwd():
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            o.backward(g)

        f_ms, fb_ms = median_ms(fwd, a.reps, a.iters), median_ms(fwd_bwd, a.reps, a.iters)
        print(f"| {n} | {b} | {f_ms:.3f} | {fwd_flops / f_ms / 1e9:.1f} | {fb_ms:.3f} | "
              f"{3.5 * fwd_flops / fb_ms / 1e9:.1f} |")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fwd_bwd()
        torch.cuda.synchronize()
    names = sorted({e.name for e in prof.events() if "sdpa" in e.name or "flash" in e.name or "attention" in e.name})
    print("kernels:", "; ".join(n[:90] for n in names))


if __name__ == "__main__":
    main()

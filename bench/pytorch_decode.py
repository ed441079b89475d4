"""PyTorch's decode attention on the shapes of bench_cuda_decode.cpp, for comparison: one new query
per step (B, H, 1, D) against a bf16 KV cache (B, H, N, D) through F.scaled_dot_product_attention
(the query is the last position, so dense causal attention is the whole cache, no mask), and the
local window as SDPA over the last `window` rows of the cache (what a dense kernel does with a
sliding window). Fixed and strided patterns have no dense-kernel equivalent short of a mask over
the whole cache; they are timed that way (--masked) for reference.
Timing: the mean over --iters calls between two CUDA events, the median of --reps runs.

  python3 bench/pytorch_decode.py [--cache 4096 16384 65536] [--batch 1 8] [--heads 16] [--dim 64]
"""
import argparse
import math

import torch
import torch.nn.functional as F

from cuda_events import median_ms


def time_us(fn, iters, reps):
    return median_ms(fn, reps, iters) * 1e3


def fixed_mask(n, l, c, dev):
    k = torch.arange(n, device=dev)
    q = n - 1
    return ((k // l) == (q // l)) | ((k % l) >= l - c)


def strided_mask(n, l, dev):
    k = torch.arange(n, device=dev)
    q = n - 1
    return ((q - k) <= l) | (((q - k) % l) == 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=int, nargs="+", default=[4096, 16384, 65536])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--no-masked", dest="masked", action="store_false", help="skip the masked fixed/strided rows")
    a = ap.parse_args()
    dev = torch.device("cuda")
    print(f"PyTorch {torch.__version__}, {torch.cuda.get_device_name()}: bf16, {a.heads} heads, head dim {a.dim}, "
          "one new query per step\n")
    print("| pattern | N | B | keys/row | us/call | steps/s | GB/s |\n|---|---|---|---|---|---|---|")
    H, D = a.heads, a.dim
    for n in a.cache:
        l = round(math.sqrt(n))
        for B in a.batch:
            g = torch.Generator(device=dev).manual_seed(n + B)
            k = torch.randn(B, H, n, D, device=dev, dtype=torch.bfloat16, generator=g)
            v = torch.randn(B, H, n, D, device=dev, dtype=torch.bfloat16, generator=g)
            q = torch.randn(B, H, 1, D, device=dev, dtype=torch.bfloat16, generator=g)
            w = min(a.window, n)
            kw, vw = k[:, :, n - w:], v[:, :, n - w:]
            rows = [("dense causal", n, lambda: F.scaled_dot_product_attention(q, k, v)),
                    (f"local({a.window})", w, lambda: F.scaled_dot_product_attention(q, kw, vw))]
            if a.masked:
                c = max(1, l // 8)
                fm, sm = fixed_mask(n, l, c, dev), strided_mask(n, l, dev)
                fm, sm = fm.view(1, 1, 1, n), sm.view(1, 1, 1, n)  # one query row, broadcast
                rows.append((f"fixed({l},c={c}) masked", int(fm.sum()),
                             lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=fm)))
                rows.append((f"strided({l}) masked", int(sm.sum()),
                             lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=sm)))
            for name, keys, fn in rows:
                us = time_us(fn, a.iters, a.reps)
                # Bytes the pattern needs (its keys and values); the masked rows read the whole cache.
                gbs = B * H * keys * 2 * D * 2 / (us * 1e-6) * 1e-9
                print(f"| {name} | {n} | {B} | {keys} | {us:.1f} | {1e6 / us:.0f} | {gbs:.0f} |", flush=True)
            del k, v, q, kw, vw


if __name__ == "__main__":
    main()

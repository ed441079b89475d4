"""CUDA-event timing for the PyTorch comparison scripts (bench/pytorch_*.py), the Python twin of
bench/cuda_timing.h: two warm-up calls, then the median over `reps` runs of `iters` calls each, in
milliseconds per call."""
import torch


def median_ms(fn, reps, iters=1):
    fn()
    fn()
    torch.cuda.synchronize()
    runs = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        stop.record()
        stop.synchronize()
        runs.append(start.elapsed_time(stop) / iters)
    runs.sort()
    return runs[len(runs) // 2]

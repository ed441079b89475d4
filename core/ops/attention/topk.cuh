#pragma once
// Top-k attention's selection on CUDA (attention_topk_cuda.cu), as attention_cuda.cu calls it.
// Host declarations only.
//
// For each query row, of the scores its first segment allows (the layout's own element mask), the
// top_k-th largest: the row's threshold. The simple kernels then keep the scores >= it (ties at
// the threshold are all kept), forward and backward. A row with at most top_k allowed scores, or
// none, gets -inf: it keeps all of them. This is the CPU's convention (attention_cpu.cpp,
// topk_thresholds), and the scores are the simple kernels' to the bit (warp_row.cuh).
#include <cstdint>

#include "core/ops/attention/device_layout.cuh"

namespace sparta::cuda::topk {

// q, k: (B, H, N, D) contiguous, any float dtype; threshold: (B, H, N) contiguous in the
// accumulation type (f32, f64 for f64), fully written (-inf for a row the segment does not reach).
// s: L's first segment on the device (device_layout(L)->host_segments[0]).
// cache_bytes: the most shared memory a row may use to keep its scores between the radix passes;
// a longer row recomputes its scores in every pass instead. -1: as much as the device allows
// (up to 160 KiB); 0 always recomputes (tests compare the two ways).
void thresholds(const attn::BlockLayout& L, const Segment& s, double scale, const Tensor& q, const Tensor& k,
                const Tensor& threshold, int64_t cache_bytes = -1);

}  // namespace sparta::cuda::topk

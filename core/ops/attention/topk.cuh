#pragma once
// Top-k attention on CUDA, as attention_cuda.cu calls it. Host declarations only.
//
// The simple kernels' selection (attention_topk_cuda.cu):
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

// The tensor-core path (attention_topk_flash.cu): the selection as an element mask that the flash
// kernels run the window's layout with. Its scores are the tensor cores' (not the simple kernels'
// to the bit); each call's forward and backward agree with each other exactly.
// Why it cannot take L at head dim D (nullptr: it can); flash::unsupported asks it for top-k layouts.
const char* flash_unsupported(const attn::BlockLayout& L, int64_t D);
// The cpu:: contracts (attention.h) for a layout flash::unsupported accepts; delta: (B H N) f32
// scratch for the backward's row terms. The forward returns its selection (the kept keys' bits);
// the backward runs with it when given one (of this call's shape), else selects again from the
// thresholds (the same keys: the same kernel's scores).
Tensor flash_forward(const LayoutPtr& L, double scale, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                     const Tensor& lse, const Tensor& threshold);
void flash_backward(const LayoutPtr& L, double scale, const Tensor& q, const Tensor& k, const Tensor& v,
                    const Tensor& o, const Tensor& lse, const Tensor& threshold, const Tensor& dout, const Tensor& delta,
                    const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& selection = Tensor());

}  // namespace sparta::cuda::topk

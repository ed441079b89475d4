#pragma once
// Block-sparse attention for decoding with a KV cache: a few new queries against a long,
// position-indexed cache, each query reading only the keys its layout row selects.
//
// q: (B, H, Tq, D), the queries at positions t0 .. t0 + Tq - 1 (Tq small: 1 .. 16).
// k, v: (B, H, capacity, D), row p holding position p; positions 0 .. t0 + Tq - 1 must be
//   filled (the queries' own keys included); rows past them are never read. Any strides with the
//   head dimension contiguous, so a cache slice or a preallocated buffer is used in place.
// out: (B, H, Tq, D) in q's dtype.
// L: the layout of the model's sequence length (any N > t0 + Tq - 1). Query t sees exactly the
//   keys k < t0 + Tq with L.allows(h, t, k), over every segment (permutations and gathered keys
//   included): for a causal layout, the keys L allows; for a bidirectional one, those of the
//   prefix cached so far. So decoding the last Tq rows of a sequence of length t0 + Tq gives the
//   last Tq rows of sparse_attention over that sequence.
//
// The keys are found by walking the CSR row of the query's block in each segment (through
// q_index / k_pos for permuted or gathered segments), so the cost is the selected blocks, not
// the cache length. Inference only: no autograd, and top-k layouts are refused.
#include <memory>

#include "core/attention/block_layout.h"
#include "core/tensor.h"

namespace sparta {

// Validates shapes, dtypes and positions, then runs the kernel of q's device. scale 0: 1/sqrt(D).
// CPU: f64, f32, bf16 (accumulation in f64 for f64, else f32). CUDA: f64, f32, bf16, f16.
Tensor sparse_attention_decode(const Tensor& q, const Tensor& k, const Tensor& v, int64_t t0,
                               const std::shared_ptr<const attn::BlockLayout>& layout, double scale = 0);

namespace cpu {
// out preallocated, contiguous; q contiguous; k, v with unit stride on the head dimension.
void sparse_attention_decode(const attn::BlockLayout& L, double scale, int64_t t0, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& out);
}  // namespace cpu

#ifdef SPARTA_CUDA
namespace cuda {
// The cpu:: contract on CUDA tensors. Flash-decoding: the keys of each query row are split across
// thread blocks, each keeping an online softmax, and a second kernel merges the splits.
void sparse_attention_decode(const std::shared_ptr<const attn::BlockLayout>& L, double scale, int64_t t0,
                             const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out);
// The split count the last call chose (benchmarks print it).
int last_decode_splits();
}  // namespace cuda
#endif

}  // namespace sparta

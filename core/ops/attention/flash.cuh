#pragma once
// The tensor-core kernels of block-sparse attention (attention_flash.cu), as attention_cuda.cu
// calls them. Host declarations only.
//
// What they cover (everything else runs the simple kernels of attention_cuda.cu):
//   q, k, v bf16 or f16, head dim 64 or 128, contiguous with 16-byte aligned data;
//   block_q == block_k == 64 or 128 (a 128 block runs as 2 x 2 tiles of 64);
//   a single segment (no `next`) in identity token order (no q_pos/k_pos) with n_keys == seq_len;
//   no top-k.
#include "core/ops/attention/device_layout.cuh"

namespace sparta::cuda::flash {

// Why the tensor-core kernels do not run this call, or nullptr when they do. Looks at the layout,
// q's dtype and shape, every tensor's alignment, and SPARTA_ATTENTION_KERNEL (=simple forces the
// simple kernels, for A/B comparisons).
const char* unsupported(const attn::BlockLayout& L, const Tensor& q, std::initializer_list<const Tensor*> others = {});

// q, k, v, o: (B, H, N, D) contiguous; lse: (B, H, N) f32 (natural log, -inf for a row that sees
// no key). s: the layout's only segment.
void forward(const Segment& s, double scale, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
             const Tensor& lse);

// delta: (B, H, N) f32, rowsum(dO * O). dq, dk, dv: (B, H, N, D) in q's dtype, fully written.
void backward(const Segment& s, double scale, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& lse,
              const Tensor& delta, const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv);

}  // namespace sparta::cuda::flash

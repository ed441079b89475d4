#pragma once
// The tensor-core kernels of block-sparse attention (attention_flash_*.cu), as attention_cuda.cu
// calls them. Host declarations, and the dtype dispatch their .cu files share.
//
// What they cover (everything else runs the simple kernels of attention_cuda.cu):
//   q, k, v bf16 or f16, head dim 64 or 128, contiguous with 16-byte aligned data;
//   in every segment, block_q == block_k == 64 or 128 (a 128 block runs as 2 x 2 tiles of 64);
//   up to max_segments() segments, each in token order, permuted, or over gathered keys
//   (attention_flash_segments.cu runs them on gathered copies, or a residue-class segment in
//   place on wgmma, and merges them);
//   top-k over one segment in token order whose rows fit the selection (attention_topk_flash.cu:
//   the selection becomes a partial entry's mask of a per-(batch, head) copy of the layout).
// On a compute capability 9.0 GPU they run on wgmma at head dims 64 and 128 (all but the
// deterministic backward's dQ pass; SPARTA_FLASH_WGMMA=0 keeps mma.sync, for A/B comparisons).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/error.h"
#include "core/ops/attention/device_layout.cuh"

namespace sparta::cuda::flash {

// Runs f with the device element type of dt (bf16 or f16, the kernels' types) bound: f(T()).
template <typename F>
decltype(auto) by_dtype(DType dt, const char* op, F&& f) {
  if (dt == DType::bf16) return f(__nv_bfloat16());
  if (dt == DType::f16) return f(__half());
  SPARTA_FAIL(op, "no tensor-core kernel for ", dtype_name(dt));
}

// Why the tensor-core kernels do not run this call, or nullptr when they do. Looks at the layout,
// q's dtype and shape, every tensor's alignment, the scale (the forward's running max is over raw
// scores, so it must be positive), and SPARTA_ATTENTION_KERNEL (=simple forces the simple kernels,
// for A/B comparisons).
const char* unsupported(const attn::BlockLayout& L, const Tensor& q, double scale = 1.0,
                        std::initializer_list<const Tensor*> others = {});

// One segment, on tensors in the segment's own order: q, o (B, H, N, D) with N = s.seq_len and
// k, v (B, H, Nk, D) with Nk = s.n_keys, contiguous; lse: (B, H, N) f32 (natural log, -inf for a row
// that sees no key).
void forward(const Segment& s, double scale, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
             const Tensor& lse);

// Whether the kernels read s's rows of tensors in token order through its permutation (a
// residue-class segment, on wgmma) instead of taking gathered copies.
bool reads_in_place(const Segment& s, const Tensor& q);
// forward of such a segment: q, k, v, o, lse in token order (every row of o and lse written).
void forward_in_place(const Segment& s, double scale, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                      const Tensor& lse);
// forward of a segment in token order whose result is merged into the one o and lse hold (every row:
// a residue-class segment's from forward_in_place), on wgmma.
void forward_merged(const Segment& s, double scale, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                    const Tensor& lse);

// The backward's row terms, in one launch: delta (B, H, N) f32 = rowsum(dO * O), for o and dout
// (B, H, N, D) that the kernels take, and the returned lse_log2(lse).
// sums: undefined, or an f32 buffer (dq_sums(q, false)) that the same launch zeroes, so that the
// fused backward's dq sums need no launch of their own.
Tensor row_terms(const Tensor& o, const Tensor& dout, const Tensor& lse, const Tensor& delta,
                 const Tensor& sums = Tensor());
// forward of s and s2 together, as if one segment: s2 has s's query blocks and order (no q_pos),
// its own keys k2, v2 (B, H, s2->n_keys, D). Null s2: forward(s, ...).
void forward_pair(const Segment& s, const Segment* s2, double scale, const Tensor& q, const Tensor& k,
                  const Tensor& v, const Tensor& k2, const Tensor& v2, const Tensor& o, const Tensor& lse);

// lse: the union's (every segment's) log-sum-exp; delta: (B, H, N) f32, rowsum(dO * O). dq: (B, H, N, D),
// dk, dv: (B, H, Nk, D) in q's dtype, fully written.
// lse2: lse_log2(lse), or undefined to compute it here. dq_sum: undefined, or (fused backward only)
// an f32 buffer of q's size (dq_sums) that this call adds its unscaled dq into instead of writing
// dq, so that segments in one query order share it; round_dq_sums writes dq from it.
// add_to (fused backward only): dk, dv are the layout's, in token order, and key row r's gradients
// are added into their rows add_to[r] (a segment over gathered keys) instead of written.
void backward(const Segment& s, double scale, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& lse,
              const Tensor& delta, const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv,
              const Tensor& lse2 = Tensor(), const Tensor& dq_sum = Tensor(), const int64_t* add_to = nullptr);
// lse log2(e), +inf where lse = -inf: the dk/dv kernel's form.
Tensor lse_log2(const Tensor& lse);
// A zeroed f32 tensor of q's size (zeroed = false: uninitialized, for row_terms to zero), and
// dq = q's dtype(scale * sums).
Tensor dq_sums(const Tensor& q, bool zeroed = true);
void round_dq_sums(const Tensor& sums, double scale, const Tensor& dq);
// The dq sums backward_layout's fused backward takes, uninitialized for row_terms to zero; undefined
// when the backward is the deterministic one, which has none.
Tensor backward_dq_sums(const Tensor& q);

// The fused backward of a segment reads_in_place takes: q, k, v, lse, delta, dout in token order;
// adds its dq, dk, dv into theirs (token order). lse2: lse_log2(lse), or undefined.
void backward_in_place(const Segment& s, double scale, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& lse, const Tensor& delta, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                       const Tensor& dv, const Tensor& lse2 = Tensor());

// How many fused backward launches have split a long CSC list over several CTAs (for tests).
int64_t split_backward_launches();
// How many launches of forward_in_place and backward_in_place there have been (for tests).
int64_t in_place_launches();
void count_in_place_launch();

// Every segment of a layout, on q, k, v, o, dout (B, H, N, D) and lse, delta (B, H, N) in token
// order (attention_flash_segments.cu).
int max_segments();
void forward_layout(const DeviceLayout& dl, double scale, const Tensor& q, const Tensor& k, const Tensor& v,
                    const Tensor& o, const Tensor& lse);
// lse2: lse_log2(lse) (row_terms). sums: the fused backward's zeroed dq sums (row_terms zeroes
// them), or undefined to make them here.
void backward_layout(const DeviceLayout& dl, double scale, const Tensor& q, const Tensor& k, const Tensor& v,
                     const Tensor& lse, const Tensor& delta, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                     const Tensor& dv, const Tensor& lse2,
                     const Tensor& sums = Tensor());

}  // namespace sparta::cuda::flash

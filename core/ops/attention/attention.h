#pragma once
// Block-sparse attention over a BlockLayout (core/attention/block_layout.h): only the listed
// blocks are ever computed, with the online softmax of FlashAttention, so a pattern costs what its
// blocks cost and no N x N matrix exists, forward or backward.
//
// q, k, v: (B, H, N, D), one dtype (f64, f32, bf16; accumulation in f32, or f64 for f64).
// Outputs of the forward primitive: o (B, H, N, D) in the input dtype; lse (B, H, N) the row
// log-sum-exp in the accumulation type (-inf for a row that sees no key), saved for backward;
// for top-k layouts also the per-row score threshold (B, H, N), and where the tensor-core kernels
// ran it, the selection they made (the kept keys' bits, i64 words), so that the backward runs the
// same keys without selecting again.
#include <memory>

#include "core/attention/block_layout.h"
#include "core/primitive.h"

namespace sparta {

class SparseAttention : public Primitive {
 public:
  SparseAttention(std::shared_ptr<const attn::BlockLayout> layout, double scale)
      : layout_(std::move(layout)), scale_(scale) {}
  const char* name() const override { return "sparse_attention"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;

 private:
  std::shared_ptr<const attn::BlockLayout> layout_;
  double scale_;
};

// Inputs q, k, v, o, lse, do [, threshold [, selection]]; outputs dq, dk, dv. Deterministic: dk and dv are
// reduced per key block over the transposed lists, dq per query block, without atomics.
class SparseAttentionBackward : public Primitive {
 public:
  SparseAttentionBackward(std::shared_ptr<const attn::BlockLayout> layout, double scale)
      : layout_(std::move(layout)), scale_(scale) {}
  const char* name() const override { return "sparse_attention_backward"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  bool differentiable() const override { return false; }

 private:
  std::shared_ptr<const attn::BlockLayout> layout_;
  double scale_;
};

namespace cpu {
// o, lse (and threshold for top-k) are preallocated; inputs contiguous.
void sparse_attention_forward(const attn::BlockLayout& L, double scale, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& o, const Tensor& lse, const Tensor& threshold);
void sparse_attention_backward(const attn::BlockLayout& L, double scale, const Tensor& q, const Tensor& k,
                               const Tensor& v, const Tensor& o, const Tensor& lse, const Tensor& threshold,
                               const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv);
}  // namespace cpu

#ifdef SPARTA_CUDA
namespace cuda {
// The cpu:: contracts on CUDA tensors (f64, f32, bf16, f16). Top-k layouts first run a selection
// kernel (topk.cuh) that writes the thresholds: the tensor-core one where the flash kernels take the
// call (its scores are the tensor cores', so a key that ties the k-th largest to a rounding may be
// chosen differently from the CPU), else the simple one, whose scores are the CPU's to the bit.
// The layout comes as its shared_ptr: its arrays are copied to the device once per layout object
// and cached while that object lives (weak_ptr keys).
using LayoutPtr = std::shared_ptr<const attn::BlockLayout>;
// selection (top-k on the tensor-core kernels): the forward sets it to the keys it kept (when not
// null), the backward takes them instead of selecting again (when defined).
void sparse_attention_forward(const LayoutPtr& L, double scale, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& o, const Tensor& lse, const Tensor& threshold,
                              Tensor* selection = nullptr);
void sparse_attention_backward(const LayoutPtr& L, double scale, const Tensor& q, const Tensor& k,
                               const Tensor& v, const Tensor& o, const Tensor& lse, const Tensor& threshold,
                               const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                               const Tensor& selection = Tensor());

// Which kernels the two calls above run for layout L and input q (of the shape and dtype given):
// "flash", the tensor-core kernels (attention_flash_*.cu; what they cover: flash.cuh), or "simple".
// SPARTA_ATTENTION_KERNEL=simple forces the simple kernels. (k, v, o and dout must also be
// 16-byte aligned for "flash"; the tensors the primitives allocate always are.)
const char* attention_kernel_for(const attn::BlockLayout& L, const Tensor& q);
// Passes run since the program started, by kernel family (a forward call counts one pass, a
// backward call one): tests check that a call took the path they meant to test.
struct AttentionKernelCounts {
  int64_t flash_forward = 0, flash_backward = 0, simple_forward = 0, simple_backward = 0;
  // Tensor-core backward launches that split long CSC lists over several CTAs (attention_flash_*.cu).
  int64_t flash_backward_split = 0;
  // Tensor-core launches that read a permuted segment's rows in place instead of gathered copies.
  int64_t flash_in_place = 0;
};
AttentionKernelCounts attention_kernel_counts();
}  // namespace cuda
#endif

}  // namespace sparta

#pragma once
// Batched matrix multiplication: (..., M, K) @ (..., K, N) with broadcast batch dimensions.
// f32 goes through oneDNN; bf16/f16 through oneDNN where the CPU has real kernels for them and
// otherwise through f32 (the values are the same: products accumulate in f32 either way); f64,
// which exists for checks, through a blocked TBB loop (core/ops/linalg/linalg_cpu.cpp). On CUDA every
// dtype goes through cuBLASLt (core/ops/linalg/linalg_cuda.cu).
#include "core/primitive.h"

namespace sparta {

// Both operands have rank >= 2 and the same dtype (core/ops.h handles 1-D operands and checks).
class MatMul : public Primitive {
 public:
  const char* name() const override { return "matmul"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;
};

namespace cpu {
// out (batch..., M, N) = a (batch_a..., M, K) @ b (batch_b..., K, N), where batch_a and batch_b
// broadcast to out's batch (NumPy rules, fewer dims allowed); any strides; out contiguous.
void matmul(const Tensor& a, const Tensor& b, const Tensor& out);
}  // namespace cpu

#ifdef SPARTA_CUDA
namespace cuda {
// As cpu::matmul, on device tensors. f32 computes in plain FP32 unless SPARTA_ALLOW_TF32=1;
// bf16/f16 accumulate in f32; f64 in f64.
void matmul(const Tensor& a, const Tensor& b, const Tensor& out);
}  // namespace cuda
#endif

}  // namespace sparta

#pragma once
// Note [Autocast]
// Mixed precision as PyTorch's autocast does it: inside an AutocastGuard(bf16 or f16), matmul and
// sparse_attention compute in the low precision (f32 operands are cast on the way in, so the casts'
// vjps hand f32 gradients back to f32 master weights), while softmax, log_softmax and layer_norm
// compute in f32 whatever they are given, and cross_entropy reduces half-precision logits in f32
// without an f32 copy of them. Everything else follows its inputs' dtypes
// (a low-precision matmul output plus an f32 bias or residual is f32 by promotion). The state is per
// thread; backward runs outside it, on the dtypes the forward recorded.
#include <optional>

#include "core/dtype.h"

namespace sparta {

class Tensor;

class AutocastGuard {
 public:
  explicit AutocastGuard(std::optional<DType> low);  // nullopt: autocast off inside
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  std::optional<DType> previous_;
};

std::optional<DType> autocast_dtype();
// x in the autocast precision when autocast is on and x is f32; x otherwise.
Tensor autocast_low(const Tensor& x);
// x in f32 when autocast is on and x is bf16 or f16; x otherwise.
Tensor autocast_full(const Tensor& x);

}  // namespace sparta

#pragma once
// Dropout with a mask that is never stored: element i keeps when the Philox word for it is at or
// above p, so the mask is a pure function of (key, i) that the backward pass, a recomputation
// (activation checkpointing) and a CUDA kernel all regenerate bit for bit.
#include "core/primitive.h"
#include "core/random.h"

namespace sparta {

// Element i reads lane i % 4 of Philox block (key.offset + i / 4).
SPARTA_HD inline bool dropout_keep(PhiloxKey key, uint64_t i, float p) {
  Philox4 x = philox4x32(key.seed, key.offset + i / 4, 0);
  return uint_to_unit(x.v[i % 4]) >= p;
}

class Dropout : public Primitive {
 public:
  Dropout(double p, PhiloxKey key) : p_(p), key_(key) {}
  const char* name() const override { return "dropout"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  // The same mask and scale applied to the cotangent.
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;

 private:
  double p_;
  PhiloxKey key_;
};

#ifdef SPARTA_CUDA
namespace cuda {
// out = x * keep / (1 - p) with the mask of dropout_keep: bit for bit the CPU kernel's output.
Tensor dropout(const Tensor& x, double p, PhiloxKey key);
}  // namespace cuda
#endif

}  // namespace sparta

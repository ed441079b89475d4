#pragma once
// Layer normalisation over the last axis, with a fused backward. Statistics in the accumulation
// type (float, or double for f64), two-pass (mean, then centred variance) for stability.
#include "core/primitive.h"

namespace sparta {

// Inputs: x (R, C), weight (C) or undefined, bias (C) or undefined. Outputs: y (R, C),
// mean (R), rstd (R), the last two in the accumulation type for the backward pass.
class LayerNorm : public Primitive {
 public:
  explicit LayerNorm(double eps) : eps_(eps) {}
  const char* name() const override { return "layer_norm"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;

 private:
  using Kernel = void (*)(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y,
                          const Tensor& mean, const Tensor& rstd);
  // Allocates the outputs on x's device and runs a backend's kernel.
  Tensors eval_with(const Tensors& in, Kernel kernel);

  double eps_;
};

// Inputs: x, weight (or undefined), mean, rstd, dy. Outputs: dx, dweight, dbias (the last two
// f32/f64 sums over rows, reduced over fixed row chunks in order: deterministic). First order
// only: it has no vjp of its own.
class LayerNormBackward : public Primitive {
 public:
  const char* name() const override { return "layer_norm_backward"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  bool differentiable() const override { return false; }

 private:
  using Kernel = void (*)(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                          const Tensor& dy, const Tensor& dx, const Tensor& dweight, const Tensor& dbias);
  Tensors eval_with(const Tensors& in, Kernel kernel);
};

namespace cpu {
void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y,
                const Tensor& mean, const Tensor& rstd);
void layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                         const Tensor& dy, const Tensor& dx, const Tensor& dweight, const Tensor& dbias);
}  // namespace cpu

#ifdef SPARTA_CUDA
namespace cuda {
void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y,
                const Tensor& mean, const Tensor& rstd);
void layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                         const Tensor& dy, const Tensor& dx, const Tensor& dweight, const Tensor& dbias);
}  // namespace cuda
#endif

}  // namespace sparta

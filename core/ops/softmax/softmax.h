#pragma once
// softmax / log_softmax over one axis, and cross-entropy fused with log_softmax over the classes.
// Rows are reduced in the accumulation type (float for f32/bf16/f16, double for f64), max-shifted
// so that large logits neither overflow nor lose the small ones.
#include "core/primitive.h"

namespace sparta {

class Softmax : public Primitive {
 public:
  Softmax(int axis, bool log) : axis_(axis), log_(log) {}
  const char* name() const override { return log_ ? "log_softmax" : "softmax"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;

 private:
  // Moves the axis last, runs a backend's row kernel on the (R, C) rows and moves it back.
  Tensors eval_rows(const Tensors& in, void (*rows)(const Tensor& x, const Tensor& out, bool log));

  int axis_;  // non-negative
  bool log_;
};

// Inputs: logits (R, C), targets (R) integer. Output: the mean of -log_softmax(logits)[target]
// over the rows whose target is not ignore_index, as a 0-d tensor of the accumulation type. A
// batch whose targets are all ignored has loss 0 and gradient 0 (PyTorch gives NaN, which would
// poison a training step over padding only).
class CrossEntropy : public Primitive {
 public:
  explicit CrossEntropy(int64_t ignore_index) : ignore_index_(ignore_index) {}
  const char* name() const override { return "cross_entropy"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;

 private:
  int64_t ignore_index_;
};

// Inputs: logits (R, C), targets (R), g (0-d). Output: dlogits = (softmax - onehot) * g / count.
class CrossEntropyBackward : public Primitive {
 public:
  explicit CrossEntropyBackward(int64_t ignore_index) : ignore_index_(ignore_index) {}
  const char* name() const override { return "cross_entropy_backward"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  bool differentiable() const override { return false; }

 private:
  int64_t ignore_index_;
};

namespace cpu {
// x (R, C) contiguous -> out (R, C).
void softmax_rows(const Tensor& x, const Tensor& out, bool log);
// Returns the loss sum and the count of counted rows.
std::pair<double, int64_t> cross_entropy_rows(const Tensor& logits, const Tensor& targets, int64_t ignore_index);
void cross_entropy_backward_rows(const Tensor& logits, const Tensor& targets, int64_t ignore_index, double g_over_n,
                                 const Tensor& dlogits);
}  // namespace cpu

#ifdef SPARTA_CUDA
namespace cuda {
void softmax_rows(const Tensor& x, const Tensor& out, bool log);
// The loss (0-d, accumulation dtype) formed on the device: the row losses and the count of counted
// rows never come back to the host.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index);
// g: the upstream gradient as a 0-d f64 device tensor; its division by the count happens on the device.
void cross_entropy_backward_rows(const Tensor& logits, const Tensor& targets, int64_t ignore_index, const Tensor& g,
                                 const Tensor& dlogits);
}  // namespace cuda
#endif

}  // namespace sparta

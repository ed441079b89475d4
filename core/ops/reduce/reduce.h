#pragma once
// Reductions over any set of axes. sum of integers gives i64; float sums accumulate in f32 with
// eight lanes per chunk and combine chunks in f64 (f64 input accumulates in f64 throughout), in a
// fixed order, so results do not depend on the thread count.
#include "core/primitive.h"

namespace sparta {

enum class ReduceOp { sum, max, min };

class Reduce : public Primitive {
 public:
  Reduce(ReduceOp op, std::vector<int> axes, bool keepdim) : op_(op), axes_(std::move(axes)), keepdim_(keepdim) {}
  const char* name() const override;
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;

 private:
  // A kernel's result (x's rank, reduced dims of size 1) in the output's shape.
  Tensor drop_reduced(const Tensor& r, const Tensor& x) const;

  ReduceOp op_;
  std::vector<int> axes_;  // sorted, unique, non-negative
  bool keepdim_;
};

class ArgMax : public Primitive {
 public:
  ArgMax(int axis, bool keepdim) : axis_(axis), keepdim_(keepdim) {}
  const char* name() const override { return "argmax"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  bool differentiable() const override { return false; }

 private:
  int axis_;
  bool keepdim_;
};

namespace cpu {
// Reduces x over `axes` (sorted, unique); the result has x's rank with reduced dims of size 1.
Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int>& axes);
Tensor argmax(const Tensor& x, int axis);  // keepdim shape, i64
}  // namespace cpu

#ifdef SPARTA_CUDA
namespace cuda {
Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int>& axes);
Tensor argmax(const Tensor& x, int axis);
}  // namespace cuda
#endif

}  // namespace sparta

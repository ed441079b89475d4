#pragma once
// Joining and indexing primitives. concat copies; split and chunk are slices (views, see
// core/ops/view) and need no primitive of their own. The four indexing primitives come in adjoint
// pairs, which gives each one's vjp in terms of the other:
//   index_select (x, index 1-D)      <->  index_add   (x, index, src)
//   gather       (x, index, x rank)  <->  scatter_add (x, index, src)
// Index tensors are i32 or i64, never differentiable; out-of-range entries (negatives included)
// are errors, checked by the kernels before anything is written.
#include <utility>

#include "core/primitive.h"

namespace sparta {

// Inputs share rank and dtype; shapes agree except on axis_ (non-negative).
class Concat : public Primitive {
 public:
  explicit Concat(int axis) : axis_(axis) {}
  const char* name() const override { return "concat"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;

 private:
  int axis_;
};

// in: x, index (1-D). out: x's shape with index.numel() on axis_.
class IndexSelect : public Primitive {
 public:
  explicit IndexSelect(int axis) : axis_(axis) {}
  const char* name() const override { return "index_select"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;

 private:
  int axis_;
};

// in: x, index (1-D), src (x's shape with index.numel() on axis_). out: x's shape.
class IndexAdd : public Primitive {
 public:
  explicit IndexAdd(int axis) : axis_(axis) {}
  const char* name() const override { return "index_add"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;

 private:
  int axis_;
};

// in: x, index (x's rank, no larger than x off axis_). out: index's shape.
class Gather : public Primitive {
 public:
  explicit Gather(int axis) : axis_(axis) {}
  const char* name() const override { return "gather"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;

 private:
  int axis_;
};

// in: x, index (x's rank), src (index's shape; ops.h narrows a larger src). out: x's shape.
class ScatterAdd : public Primitive {
 public:
  explicit ScatterAdd(int axis) : axis_(axis) {}
  const char* name() const override { return "scatter_add"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;

 private:
  int axis_;
};

namespace cpu {
// Any dtype, any strides; a fresh contiguous result.
Tensor concat(const Tensors& xs, int axis);
Tensor index_select(const Tensor& x, int axis, const Tensor& index);
Tensor gather(const Tensor& x, int axis, const Tensor& index);
// Floating dtypes; accumulate in compute_t, in index order for each output element.
Tensor index_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src);
Tensor scatter_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src);
}  // namespace cpu

#ifdef SPARTA_CUDA
namespace cuda {
// The cpu:: contracts on CUDA tensors. index_add and scatter_add are deterministic: each output
// element sums its additions in index order, as on the CPU (see index_cuda.cu).
Tensor concat(const Tensors& xs, int axis);
Tensor index_select(const Tensor& x, int axis, const Tensor& index);
Tensor gather(const Tensor& x, int axis, const Tensor& index);
Tensor index_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src);
Tensor scatter_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src);
// The smallest and largest entry of an integer tensor on the device (one small read back);
// {0, -1} when it is empty.
std::pair<int64_t, int64_t> index_bounds(const Tensor& index);
}  // namespace cuda
#endif

}  // namespace sparta

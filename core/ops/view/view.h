#pragma once
// View primitives: they make a new Tensor over the same Storage (no copy), except Reshape, which
// copies when the strides allow no view. Copy, Cast and ToDevice live here too: they are the
// ways a tensor's layout, type or place changes without changing its values.
#include <optional>

#include "core/primitive.h"

namespace sparta {

// Strides that let `new_shape` view memory laid out as (shape, strides), if any exist.
std::optional<Shape> view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape);
// Replaces a single -1 entry with what the element count implies; throws on a mismatch.
Shape infer_shape(const Shape& shape, int64_t numel, const char* op);

class Reshape : public Primitive {
 public:
  Reshape(Shape shape, bool view_only) : shape_(std::move(shape)), view_only_(view_only) {}
  const char* name() const override { return view_only_ ? "view" : "reshape"; }
  Tensors eval_cpu(const Tensors& in) override;
  Tensors eval_cuda(const Tensors& in) override { return eval_cpu(in); }
  Tensors vjp(const Tensors&, const Tensors&, const std::vector<int>&, const Tensors&) override;

 private:
  Shape shape_;
  bool view_only_;
};

class Permute : public Primitive {
 public:
  explicit Permute(std::vector<int> dims) : dims_(std::move(dims)) {}
  const char* name() const override { return "permute"; }
  Tensors eval_cpu(const Tensors& in) override;
  Tensors eval_cuda(const Tensors& in) override { return eval_cpu(in); }
  Tensors vjp(const Tensors&, const Tensors&, const std::vector<int>&, const Tensors&) override;

 private:
  std::vector<int> dims_;
};

class Slice : public Primitive {
 public:
  Slice(int axis, int64_t start, int64_t end, int64_t step) : axis_(axis), start_(start), end_(end), step_(step) {}
  const char* name() const override { return "slice"; }
  Tensors eval_cpu(const Tensors& in) override;
  Tensors eval_cuda(const Tensors& in) override { return eval_cpu(in); }
  Tensors vjp(const Tensors&, const Tensors&, const std::vector<int>&, const Tensors&) override;

 private:
  int axis_;
  int64_t start_, end_, step_;
};

// The adjoint of Slice: a zero tensor of `shape` with the input written into the slice.
class SliceScatter : public Primitive {
 public:
  SliceScatter(Shape shape, int axis, int64_t start, int64_t end, int64_t step)
      : shape_(std::move(shape)), axis_(axis), start_(start), end_(end), step_(step) {}
  const char* name() const override { return "slice_scatter"; }
  Tensors eval_cpu(const Tensors& in) override;
  Tensors eval_cuda(const Tensors& in) override { return eval_cpu(in); }  // copies dispatch by device
  Tensors vjp(const Tensors&, const Tensors&, const std::vector<int>&, const Tensors&) override;

 private:
  Shape shape_;
  int axis_;
  int64_t start_, end_, step_;
};

class Expand : public Primitive {
 public:
  explicit Expand(Shape shape) : shape_(std::move(shape)) {}
  const char* name() const override { return "expand"; }
  Tensors eval_cpu(const Tensors& in) override;
  Tensors eval_cuda(const Tensors& in) override { return eval_cpu(in); }
  Tensors vjp(const Tensors&, const Tensors&, const std::vector<int>&, const Tensors&) override;

 private:
  Shape shape_;
};

// A contiguous copy (contiguous(), clone()).
class Copy : public Primitive {
 public:
  const char* name() const override { return "copy"; }
  Tensors eval_cpu(const Tensors& in) override;
  Tensors eval_cuda(const Tensors& in) override { return eval_cpu(in); }  // copies dispatch by device
  Tensors vjp(const Tensors&, const Tensors&, const std::vector<int>&, const Tensors&) override;
};

class Cast : public Primitive {
 public:
  explicit Cast(DType to) : to_(to) {}
  const char* name() const override { return "cast"; }
  Tensors eval_cpu(const Tensors& in) override;
  Tensors eval_cuda(const Tensors& in) override { return eval_cpu(in); }  // copies dispatch by device
  Tensors vjp(const Tensors&, const Tensors&, const std::vector<int>&, const Tensors&) override;
  bool differentiable() const override { return is_floating(to_); }

 private:
  DType to_;
};

class ToDevice : public Primitive {
 public:
  explicit ToDevice(Device to) : to_(to) {}
  const char* name() const override { return "to_device"; }
  Tensors eval_cpu(const Tensors& in) override { return move(in); }
  Tensors eval_cuda(const Tensors& in) override { return move(in); }
  Tensors vjp(const Tensors&, const Tensors&, const std::vector<int>&, const Tensors&) override;

 private:
  Tensors move(const Tensors& in);
  Device to_;
};

// dst = src converted to dst's dtype, src broadcast to dst's shape; any strides; both tensors on
// one device, whose kernel runs.
void copy_values(const Tensor& dst, const Tensor& src);

namespace cpu {
void copy_into(const Tensor& dst, const Tensor& src);
}  // namespace cpu
#ifdef SPARTA_CUDA
namespace cuda {
void copy_into(const Tensor& dst, const Tensor& src);
}  // namespace cuda
#endif

}  // namespace sparta

#include "core/ops/reduce/reduce.h"

#include <algorithm>

#include "core/ops.h"

namespace sparta {
namespace {

std::vector<int> normalize_axes(const Tensor& x, std::vector<int> axes, const char* op) {
  if (axes.empty()) {
    for (int d = 0; d < x.dim(); ++d) axes.push_back(d);
    return axes;
  }
  for (int& a : axes) a = normalize_axis(a, x.dim(), op);
  std::sort(axes.begin(), axes.end());
  SPARTA_CHECK(std::adjacent_find(axes.begin(), axes.end()) == axes.end(), op, "repeated axis in reduction over ",
               shape_str(x.shape()));
  return axes;
}

Shape reduced_shape(const Shape& shape, const std::vector<int>& axes, bool keepdim) {
  Shape out;
  for (int d = 0; d < int(shape.size()); ++d) {
    bool r = std::binary_search(axes.begin(), axes.end(), d);
    if (!r) out.push_back(shape[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

int64_t reduced_count(const Tensor& x, const std::vector<int>& axes) {
  int64_t n = 1;
  for (int a : axes) n *= x.shape()[a];
  return n;
}

}  // namespace

const char* Reduce::name() const {
  switch (op_) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
  }
  return "reduce";
}

Tensor Reduce::drop_reduced(const Tensor& r, const Tensor& x) const {
  return reshape(r.detach(), reduced_shape(x.shape(), axes_, keepdim_)).detach();
}

Tensors Reduce::eval_cpu(const Tensors& in) { return {drop_reduced(cpu::reduce(op_, in[0], axes_), in[0])}; }

Tensors Reduce::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>&, const Tensors& outputs) {
  const Tensor& x = primals[0];
  Shape keep = reduced_shape(x.shape(), axes_, true);
  Tensor g = reshape(cot[0], keep);
  if (op_ == ReduceOp::sum) return {expand(g, x.shape())};
  // max/min: the gradient is shared equally by the elements that attain the extreme value.
  Tensor hit = cast(eq(x, reshape(outputs[0], keep)), x.dtype());
  Tensor count = sum(hit, axes_, true);
  return {hit * (g / count)};
}

Tensor sum(const Tensor& x, std::vector<int> axes, bool keepdim) {
  axes = normalize_axes(x, axes, "sum");
  Tensor in = is_integral(x.dtype()) ? cast(x, DType::i64) : x;
  return run1(std::make_shared<Reduce>(ReduceOp::sum, axes, keepdim), {in});
}

Tensor mean(const Tensor& x, std::vector<int> axes, bool keepdim) {
  SPARTA_CHECK(is_floating(x.dtype()), "mean", "needs a floating dtype, got ", dtype_name(x.dtype()));
  axes = normalize_axes(x, axes, "mean");
  int64_t n = reduced_count(x, axes);
  SPARTA_CHECK(n > 0, "mean", "mean over an empty set of elements (shape ", shape_str(x.shape()), ")");
  return sum(x, axes, keepdim) * (1.0 / double(n));
}

Tensor max(const Tensor& x, std::vector<int> axes, bool keepdim) {
  axes = normalize_axes(x, axes, "max");
  SPARTA_CHECK(reduced_count(x, axes) > 0, "max", "max over an empty set of elements (shape ", shape_str(x.shape()), ")");
  return run1(std::make_shared<Reduce>(ReduceOp::max, axes, keepdim), {x});
}

Tensor min(const Tensor& x, std::vector<int> axes, bool keepdim) {
  axes = normalize_axes(x, axes, "min");
  SPARTA_CHECK(reduced_count(x, axes) > 0, "min", "min over an empty set of elements (shape ", shape_str(x.shape()), ")");
  return run1(std::make_shared<Reduce>(ReduceOp::min, axes, keepdim), {x});
}

Tensor var(const Tensor& x, std::vector<int> axes, bool keepdim, int correction) {
  SPARTA_CHECK(is_floating(x.dtype()), "var", "needs a floating dtype, got ", dtype_name(x.dtype()));
  axes = normalize_axes(x, axes, "var");
  int64_t n = reduced_count(x, axes);
  SPARTA_CHECK(n - correction > 0, "var", "needs more than ", correction, " elements, got ", n, " (shape ",
               shape_str(x.shape()), ")");
  Tensor d = x - mean(x, axes, true);
  return sum(d * d, axes, keepdim) * (1.0 / double(n - correction));
}

Tensor logsumexp(const Tensor& x, int axis, bool keepdim) {
  int a = normalize_axis(axis, x.dim(), "logsumexp");
  // Shift by the (constant, gradient-free) maximum so exp never overflows.
  Tensor m = max(x.detach(), {a}, true);
  Tensor r = log(sum(exp(x - m), {a}, true)) + m;
  return keepdim ? r : squeeze(r, a);
}

Tensors ArgMax::eval_cpu(const Tensors& in) {
  Tensor r = cpu::argmax(in[0], axis_);
  if (!keepdim_) r = squeeze(r, axis_).detach();
  return {r};
}

Tensor argmax(const Tensor& x, int axis, bool keepdim) {
  int a = normalize_axis(axis, x.dim(), "argmax");
  SPARTA_CHECK(x.shape()[a] > 0, "argmax", "argmax over an empty dimension (shape ", shape_str(x.shape()), ")");
  return run1(std::make_shared<ArgMax>(a, keepdim), {x});
}

}  // namespace sparta

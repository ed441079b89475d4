// index_select / index_add and gather / scatter_add: argument checks, shapes and vjps. Each pair
// is adjoint, so each vjp is the other op of its pair applied to the cotangent.
#include "core/ops/index/index.h"

#include "core/ops.h"

namespace sparta {
namespace {

void check_index_dtype(const Tensor& index, const char* op) {
  SPARTA_CHECK(index.dtype() == DType::i32 || index.dtype() == DType::i64, op,
               "index must be i32 or i64, got ", dtype_name(index.dtype()), " (index shape ",
               shape_str(index.shape()), ")");
}

void check_1d_index(const Tensor& index, const char* op) {
  check_index_dtype(index, op);
  SPARTA_CHECK(index.dim() == 1, op, "index must be 1-D, got shape ", shape_str(index.shape()));
}

void check_floating(const Tensor& t, const char* what, const char* op) {
  SPARTA_CHECK(is_floating(t.dtype()), op, what, " must have a floating dtype, got ", dtype_name(t.dtype()));
}

void check_same_dtype(const Tensor& x, const Tensor& src, const char* op) {
  SPARTA_CHECK(src.dtype() == x.dtype(), op, "src has dtype ", dtype_name(src.dtype()), " but x has dtype ",
               dtype_name(x.dtype()));
}

int input_axis(const Tensor& x, int axis, const char* op) {
  SPARTA_CHECK(x.dim() > 0, op, "needs a tensor of at least one dimension, got shape ", shape_str(x.shape()));
  return normalize_axis(axis, x.dim(), op);
}

}  // namespace

// ---- index_select / index_add ---------------------------------------------------------------
Tensors IndexSelect::eval_cpu(const Tensors& in) {
  return {cpu::index_select(in[0].detach(), axis_, in[1].detach())};
}

Tensors IndexSelect::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>&, const Tensors&) {
  return {index_add(zeros_like(primals[0]), axis_, primals[1], cot[0])};
}

Tensor index_select(const Tensor& x, int axis, const Tensor& index) {
  int a = input_axis(x, axis, "index_select");
  check_1d_index(index, "index_select");
  return run1(std::make_shared<IndexSelect>(a), {x, index});
}

Tensors IndexAdd::eval_cpu(const Tensors& in) {
  return {cpu::index_add(in[0].detach(), axis_, in[1].detach(), in[2].detach())};
}

Tensors IndexAdd::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums, const Tensors&) {
  Tensors out;
  for (int a : argnums) out.push_back(a == 0 ? cot[0] : index_select(cot[0], axis_, primals[1]));
  return out;
}

Tensor index_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src) {
  int a = input_axis(x, axis, "index_add");
  check_1d_index(index, "index_add");
  check_floating(x, "x", "index_add");
  check_same_dtype(x, src, "index_add");
  Shape want = x.shape();
  want[size_t(a)] = index.numel();
  SPARTA_CHECK(src.shape() == want, "index_add", "src has shape ", shape_str(src.shape()), ", expected ",
               shape_str(want), " (x shape ", shape_str(x.shape()), " with axis ", axis, " of the index's length ",
               index.numel(), ")");
  return run1(std::make_shared<IndexAdd>(a), {x, index, src});
}

// ---- gather / scatter_add -------------------------------------------------------------------
Tensors Gather::eval_cpu(const Tensors& in) { return {cpu::gather(in[0].detach(), axis_, in[1].detach())}; }

Tensors Gather::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>&, const Tensors&) {
  return {scatter_add(zeros_like(primals[0]), axis_, primals[1], cot[0])};
}

Tensor gather(const Tensor& x, int axis, const Tensor& index) {
  int a = input_axis(x, axis, "gather");
  check_index_dtype(index, "gather");
  SPARTA_CHECK(index.dim() == x.dim(), "gather", "index has shape ", shape_str(index.shape()), " but x has shape ",
               shape_str(x.shape()), "; they need the same rank");
  for (int d = 0; d < x.dim(); ++d) {
    SPARTA_CHECK(d == a || index.shape()[d] <= x.shape()[d], "gather", "index shape ", shape_str(index.shape()),
                 " is larger than x shape ", shape_str(x.shape()), " on dimension ", d, " (axis is ", axis, ")");
  }
  return run1(std::make_shared<Gather>(a), {x, index});
}

Tensors ScatterAdd::eval_cpu(const Tensors& in) {
  return {cpu::scatter_add(in[0].detach(), axis_, in[1].detach(), in[2].detach())};
}

Tensors ScatterAdd::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
                        const Tensors&) {
  Tensors out;
  for (int a : argnums) out.push_back(a == 0 ? cot[0] : gather(cot[0], axis_, primals[1]));
  return out;
}

Tensor scatter_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src) {
  int a = input_axis(x, axis, "scatter_add");
  check_index_dtype(index, "scatter_add");
  check_floating(x, "x", "scatter_add");
  check_same_dtype(x, src, "scatter_add");
  SPARTA_CHECK(index.dim() == x.dim() && src.dim() == x.dim(), "scatter_add", "x ", shape_str(x.shape()), ", index ",
               shape_str(index.shape()), " and src ", shape_str(src.shape()), " need the same rank");
  for (int d = 0; d < x.dim(); ++d) {
    SPARTA_CHECK(index.shape()[d] <= src.shape()[d], "scatter_add", "index shape ", shape_str(index.shape()),
                 " is larger than src shape ", shape_str(src.shape()), " on dimension ", d);
    SPARTA_CHECK(d == a || index.shape()[d] <= x.shape()[d], "scatter_add", "index shape ",
                 shape_str(index.shape()), " is larger than x shape ", shape_str(x.shape()), " on dimension ", d,
                 " (axis is ", axis, ")");
  }
  // Only src's leading index-shaped block is scattered (torch semantics); narrowing it here with
  // differentiable slices gives the rest of src its zero gradient.
  Tensor s = src;
  for (int d = 0; d < x.dim(); ++d) {
    if (s.shape()[d] != index.shape()[d]) s = slice(s, d, 0, index.shape()[d]);
  }
  return run1(std::make_shared<ScatterAdd>(a), {x, index, s});
}

}  // namespace sparta

#include "core/ops/linalg/linalg.h"

#include "core/ops.h"

namespace sparta {
namespace {

Shape batch_of(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

Shape with_matrix(Shape batch, int64_t rows, int64_t cols) {
  batch.push_back(rows);
  batch.push_back(cols);
  return batch;
}

}  // namespace

Tensors MatMul::eval_cpu(const Tensors& in) {
  const Tensor a = in[0].detach(), b = in[1].detach();
  Shape batch = broadcast_shapes(batch_of(a), batch_of(b), "matmul");
  const int64_t m = a.shape(-2), k = a.shape(-1), n = b.shape(-1);
  Tensor out = Tensor::empty(with_matrix(batch, m, n), a.dtype());
  cpu::matmul(expand(a, with_matrix(batch, m, k)).detach(), expand(b, with_matrix(batch, k, n)).detach(), out);
  return {out};
}

Tensors MatMul::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums, const Tensors&) {
  const Tensor& a = primals[0];
  const Tensor& b = primals[1];
  const Tensor& g = cot[0];
  Tensors grads;
  for (int arg : argnums) {
    if (arg == 0) grads.push_back(sum_to(matmul(g, transpose(b, -1, -2)), a.shape()));
    else grads.push_back(sum_to(matmul(transpose(a, -1, -2), g), b.shape()));
  }
  return grads;
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  SPARTA_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul", "operands must have at least one dimension, got shapes ",
               shape_str(a.shape()), " @ ", shape_str(b.shape()));
  SPARTA_CHECK(a.dtype() == b.dtype(), "matmul", "dtypes differ: ", dtype_name(a.dtype()), " @ ",
               dtype_name(b.dtype()), " (shapes ", shape_str(a.shape()), " @ ", shape_str(b.shape()), ")");
  SPARTA_CHECK(is_floating(a.dtype()), "matmul", "needs floating operands, got ", dtype_name(a.dtype()));
  // NumPy's rules for vectors: a leading vector is a row, a trailing vector a column; the added
  // dimension is removed from the result.
  const Tensor a2 = a.dim() == 1 ? unsqueeze(a, 0) : a;
  const Tensor b2 = b.dim() == 1 ? unsqueeze(b, 1) : b;
  SPARTA_CHECK(a2.shape(-1) == b2.shape(-2), "matmul", "inner dimensions differ: ", shape_str(a.shape()), " @ ",
               shape_str(b.shape()), " (", a2.shape(-1), " vs ", b2.shape(-2), ")");
  Shape ba = batch_of(a2), bb = batch_of(b2);
  try {
    broadcast_shapes(ba, bb, "matmul");
  } catch (const Error&) {
    SPARTA_FAIL("matmul", "batch dimensions do not broadcast: ", shape_str(a.shape()), " @ ", shape_str(b.shape()));
  }
  Tensor c = run1(std::make_shared<MatMul>(), {a2, b2});
  if (a.dim() == 1) c = squeeze(c, -2);
  if (b.dim() == 1) c = squeeze(c, -1);
  return c;
}

}  // namespace sparta

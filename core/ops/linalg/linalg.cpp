#include "core/ops/linalg/linalg.h"

#include "core/autocast.h"
#include "core/ops.h"

namespace sparta {
namespace {

Shape batch_of(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

}  // namespace

// a (..., M, K), b (..., K, N) -> (broadcast(...), M, N). The operands go to the kernel with
// their own batch shapes: it broadcasts them itself, so a weight shared by every batch entry is
// never copied once per entry.
Tensors MatMul::eval_cpu(const Tensors& in) {
  const Tensor a = in[0].detach(), b = in[1].detach();
  Shape shape = broadcast_shapes(batch_of(a), batch_of(b), "matmul");
  shape.push_back(a.shape(-2));
  shape.push_back(b.shape(-1));
  Tensor out = Tensor::empty(shape, a.dtype());
  cpu::matmul(a, b, out);
  return {out};
}

// C = A B gives dA = dC B^T and dB = A^T dC per batch entry; an operand broadcast over batch
// entries collects the sum of its entries' gradients (sum_to). The transposes are views, which
// the kernel reads through strides.
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

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  const Tensor a = autocast_low(a_in), b = autocast_low(b_in);
  const std::string shapes = shape_str(a.shape()) + " @ " + shape_str(b.shape());
  SPARTA_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul", "operands must have at least one dimension, got ", shapes);
  SPARTA_CHECK(a.dtype() == b.dtype(), "matmul", "dtypes differ: ", dtype_name(a.dtype()), " @ ",
               dtype_name(b.dtype()), " (shapes ", shapes, ")");
  SPARTA_CHECK(is_floating(a.dtype()), "matmul", "needs floating operands, got ", dtype_name(a.dtype()), " (shapes ",
               shapes, ")");
  // NumPy's rules for vectors: a leading vector is a row, a trailing vector a column; the added
  // dimension is removed from the result. The unsqueeze/squeeze views carry the gradient through.
  const Tensor a2 = a.dim() == 1 ? unsqueeze(a, 0) : a;
  const Tensor b2 = b.dim() == 1 ? unsqueeze(b, 1) : b;
  SPARTA_CHECK(a2.shape(-1) == b2.shape(-2), "matmul", "inner dimensions differ: ", shapes, " (", a2.shape(-1),
               " vs ", b2.shape(-2), ")");
  try {
    broadcast_shapes(batch_of(a2), batch_of(b2), "matmul");
  } catch (const Error&) {
    SPARTA_FAIL("matmul", "batch dimensions do not broadcast: ", shapes, " (batch ", shape_str(batch_of(a2)), " vs ",
                shape_str(batch_of(b2)), ")");
  }
  Tensor c = run1(std::make_shared<MatMul>(), {a2, b2});
  if (a.dim() == 1) c = squeeze(c, -2);
  if (b.dim() == 1) c = squeeze(c, -1);
  return c;
}

}  // namespace sparta

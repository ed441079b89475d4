#pragma once
// Elementwise primitives: unary maths, binary arithmetic with broadcasting, comparisons, where.
// Half types compute in float, f64 in double (core/dtype.h compute_t).
#include "core/ops.h"
#include "core/primitive.h"

namespace sparta {

enum class UnaryOp {
  neg, exp, log, sqrt, rsqrt, abs, sign, sin, cos, tanh, sigmoid, relu, square, reciprocal,
  gelu, gelu_tanh, gelu_grad, gelu_tanh_grad
};
// The ops each backend instantiates a kernel for, as X-macro lists: every floating op, and the
// ones that also exist for integers.
#define SPARTA_UNARY_FLOAT_OPS(X)                                                                 \
  X(neg) X(exp) X(log) X(sqrt) X(rsqrt) X(abs) X(sign) X(sin) X(cos) X(tanh) X(sigmoid) X(relu) \
  X(square) X(reciprocal) X(gelu) X(gelu_tanh) X(gelu_grad) X(gelu_tanh_grad)
#define SPARTA_UNARY_INTEGER_OPS(X) X(neg) X(abs) X(sign) X(square)
const char* unary_name(UnaryOp op);

class Unary : public Primitive {
 public:
  explicit Unary(UnaryOp op) : op_(op) {}
  const char* name() const override { return unary_name(op_); }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;
  bool differentiable() const override;
  UnaryOp op() const { return op_; }

 private:
  UnaryOp op_;
};

enum class BinaryOp { add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge };
#define SPARTA_BINARY_ARITHMETIC_OPS(X) X(add) X(sub) X(mul) X(div) X(pow) X(maximum) X(minimum)
#define SPARTA_BINARY_COMPARISON_OPS(X) X(eq) X(ne) X(lt) X(le) X(gt) X(ge)
const char* binary_name(BinaryOp op);
constexpr bool is_comparison(BinaryOp op) { return op >= BinaryOp::eq; }

// Both operands already have the same dtype (ops.h promotes); the shapes broadcast.
class Binary : public Primitive {
 public:
  explicit Binary(BinaryOp op) : op_(op) {}
  const char* name() const override { return binary_name(op_); }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;
  bool differentiable() const override { return !is_comparison(op_); }
  BinaryOp op() const { return op_; }

 private:
  BinaryOp op_;
};

// where(cond, a, b): a and b share a dtype; all three broadcast.
class Where : public Primitive {
 public:
  const char* name() const override { return "where"; }
  Tensors eval_cpu(const Tensors& in) override;
#ifdef SPARTA_CUDA
  Tensors eval_cuda(const Tensors& in) override;
#endif
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;
};

namespace cpu {
Tensor unary(UnaryOp op, const Tensor& x);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
void axpy_inplace(const Tensor& dst, const Tensor& src, double alpha);  // dst += alpha * src
void scale_inplace(const Tensor& dst, double value);
}  // namespace cpu

#ifdef SPARTA_CUDA
namespace cuda {
Tensor unary(UnaryOp op, const Tensor& x);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
void axpy_inplace(const Tensor& dst, const Tensor& src, double alpha);
void scale_inplace(const Tensor& dst, double value);
void fill(const Tensor& dst, double value);
}  // namespace cuda
#endif

}  // namespace sparta

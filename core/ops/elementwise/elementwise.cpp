#include "core/ops/elementwise/elementwise.h"

#include "core/ops/view/view.h"

namespace sparta {

const char* unary_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::neg: return "neg";
    case UnaryOp::exp: return "exp";
    case UnaryOp::log: return "log";
    case UnaryOp::sqrt: return "sqrt";
    case UnaryOp::rsqrt: return "rsqrt";
    case UnaryOp::abs: return "abs";
    case UnaryOp::sign: return "sign";
    case UnaryOp::sin: return "sin";
    case UnaryOp::cos: return "cos";
    case UnaryOp::tanh: return "tanh";
    case UnaryOp::sigmoid: return "sigmoid";
    case UnaryOp::relu: return "relu";
    case UnaryOp::square: return "square";
    case UnaryOp::reciprocal: return "reciprocal";
    case UnaryOp::gelu: return "gelu";
    case UnaryOp::gelu_tanh: return "gelu_tanh";
    case UnaryOp::gelu_grad: return "gelu_grad";
    case UnaryOp::gelu_tanh_grad: return "gelu_tanh_grad";
  }
  return "unary";
}

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return "add";
    case BinaryOp::sub: return "sub";
    case BinaryOp::mul: return "mul";
    case BinaryOp::div: return "div";
    case BinaryOp::pow: return "pow";
    case BinaryOp::maximum: return "maximum";
    case BinaryOp::minimum: return "minimum";
    case BinaryOp::eq: return "eq";
    case BinaryOp::ne: return "ne";
    case BinaryOp::lt: return "lt";
    case BinaryOp::le: return "le";
    case BinaryOp::gt: return "gt";
    case BinaryOp::ge: return "ge";
  }
  return "binary";
}

// ---- Unary ----------------------------------------------------------------------------------
bool Unary::differentiable() const {
  return op_ != UnaryOp::sign;
}

Tensors Unary::eval_cpu(const Tensors& in) { return {cpu::unary(op_, in[0])}; }

Tensors Unary::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>&, const Tensors& outputs) {
  const Tensor& x = primals[0];
  const Tensor& y = outputs[0];
  const Tensor& g = cot[0];
  switch (op_) {
    case UnaryOp::neg: return {-g};
    case UnaryOp::exp: return {g * y};
    case UnaryOp::log: return {g / x};
    case UnaryOp::sqrt: return {g * 0.5 / y};
    case UnaryOp::rsqrt: return {g * -0.5 * y * y * y};
    case UnaryOp::abs: return {g * sign(x)};
    case UnaryOp::sin: return {g * cos(x)};
    case UnaryOp::cos: return {-(g * sin(x))};
    case UnaryOp::tanh: return {g * (1.0 - y * y)};
    case UnaryOp::sigmoid: return {g * y * (1.0 - y)};
    case UnaryOp::relu: return {g * cast(gt(x, zeros_like(x)), x.dtype())};
    case UnaryOp::square: return {g * x * 2.0};
    case UnaryOp::reciprocal: return {-(g * y * y)};
    case UnaryOp::gelu: return {g * gelu_grad(x, GeluApprox::none)};
    case UnaryOp::gelu_tanh: return {g * gelu_grad(x, GeluApprox::tanh)};
    // Second derivatives, so that a gradient of a gradient (and gradcheck of gelu's vjp) is right.
    case UnaryOp::gelu_grad: {
      Tensor pdf = exp(square(x) * -0.5) * 0.3989422804014327;  // the standard normal density
      return {g * pdf * (2.0 - square(x))};
    }
    case UnaryOp::gelu_tanh_grad: {
      constexpr double a = 0.7978845608028654, b = 0.044715;
      Tensor t = tanh((x + x * x * x * b) * a);
      Tensor du = (1.0 + square(x) * (3 * b)) * a;
      Tensor d2u = x * (6 * a * b);
      return {g * (1.0 - t * t) * (du - x * t * du * du + x * d2u * 0.5)};
    }
    default: SPARTA_FAIL(name(), "is not differentiable");
  }
}

namespace {
Tensor unary(UnaryOp op, const Tensor& x) { return run1(std::make_shared<Unary>(op), {x}); }
}  // namespace

Tensor neg(const Tensor& x) { return unary(UnaryOp::neg, x); }
Tensor exp(const Tensor& x) { return unary(UnaryOp::exp, x); }
Tensor log(const Tensor& x) { return unary(UnaryOp::log, x); }
Tensor sqrt(const Tensor& x) { return unary(UnaryOp::sqrt, x); }
Tensor rsqrt(const Tensor& x) { return unary(UnaryOp::rsqrt, x); }
Tensor abs(const Tensor& x) { return unary(UnaryOp::abs, x); }
Tensor sign(const Tensor& x) { return unary(UnaryOp::sign, x); }
Tensor sin(const Tensor& x) { return unary(UnaryOp::sin, x); }
Tensor cos(const Tensor& x) { return unary(UnaryOp::cos, x); }
Tensor tanh(const Tensor& x) { return unary(UnaryOp::tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::sigmoid, x); }
Tensor relu(const Tensor& x) { return unary(UnaryOp::relu, x); }
Tensor square(const Tensor& x) { return unary(UnaryOp::square, x); }
Tensor reciprocal(const Tensor& x) { return unary(UnaryOp::reciprocal, x); }
Tensor gelu(const Tensor& x, GeluApprox a) { return unary(a == GeluApprox::tanh ? UnaryOp::gelu_tanh : UnaryOp::gelu, x); }
Tensor gelu_grad(const Tensor& x, GeluApprox a) {
  return unary(a == GeluApprox::tanh ? UnaryOp::gelu_tanh_grad : UnaryOp::gelu_grad, x);
}
Tensor logical_not(const Tensor& x) { return eq(x, scalar(0, x.dtype(), x.device())); }

// ---- Binary ---------------------------------------------------------------------------------
Tensors Binary::eval_cpu(const Tensors& in) { return {cpu::binary(op_, in[0], in[1])}; }

Tensors Binary::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
                    const Tensors& outputs) {
  const Tensor& a = primals[0];
  const Tensor& b = primals[1];
  const Tensor& g = cot[0];
  Tensors out;
  for (int arg : argnums) {
    Tensor d;
    switch (op_) {
      case BinaryOp::add: d = g; break;
      case BinaryOp::sub: d = arg == 0 ? g : -g; break;
      case BinaryOp::mul: d = arg == 0 ? g * b : g * a; break;
      case BinaryOp::div: d = arg == 0 ? g / b : -(g * a / (b * b)); break;
      case BinaryOp::pow:
        d = arg == 0 ? g * b * pow(a, b - 1.0) : g * outputs[0] * log(a);
        break;
      case BinaryOp::maximum: {
        Tensor pick_a = cast(ge(a, b), g.dtype());
        d = arg == 0 ? g * pick_a : g * (1.0 - pick_a);
        break;
      }
      case BinaryOp::minimum: {
        Tensor pick_a = cast(le(a, b), g.dtype());
        d = arg == 0 ? g * pick_a : g * (1.0 - pick_a);
        break;
      }
      default: SPARTA_FAIL(name(), "is not differentiable");
    }
    out.push_back(sum_to(d, primals[arg].shape()));
  }
  return out;
}

namespace {

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  DType t = promote_types(a.dtype(), b.dtype());
  if (!is_comparison(op) && op != BinaryOp::maximum && op != BinaryOp::minimum) {
    SPARTA_CHECK(op != BinaryOp::pow || is_floating(t), binary_name(op), "needs a floating dtype, got ",
                 dtype_name(t));
  }
  broadcast_shapes(a.shape(), b.shape(), binary_name(op));
  return run1(std::make_shared<Binary>(op), {cast(a, t), cast(b, t)});
}

// A scalar operand takes the tensor's dtype (so bf16 * 0.5 stays bf16), unless the tensor is
// integral and the scalar is not a whole number, which promotes to f32.
Tensor scalar_like(const Tensor& t, double v) {
  DType d = t.dtype();
  if (is_integral(d) && v != double(int64_t(v))) d = DType::f32;
  return scalar(v, d, t.device());
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::div, a, b); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary(BinaryOp::pow, a, b); }
Tensor pow(const Tensor& a, double e) { return binary(BinaryOp::pow, a, scalar_like(a, e)); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::minimum, a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary(BinaryOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary(BinaryOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary(BinaryOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary(BinaryOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary(BinaryOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary(BinaryOp::ge, a, b); }

Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(a, b)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(a, b)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(a, b)); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(a, b)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(b, a), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(b, a), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(b, a), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(b, a), b); }

Tensor clamp(const Tensor& x, double lo, double hi) {
  SPARTA_CHECK(lo <= hi, "clamp", "lower bound ", lo, " is above upper bound ", hi);
  return minimum(maximum(x, scalar_like(x, lo)), scalar_like(x, hi));
}

// ---- Where ----------------------------------------------------------------------------------
Tensors Where::eval_cpu(const Tensors& in) { return {cpu::where(in[0], in[1], in[2])}; }

Tensors Where::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums, const Tensors&) {
  Tensors out;
  Tensor zero = scalar(0, cot[0].dtype(), cot[0].device());
  for (int arg : argnums) {
    SPARTA_CHECK(arg != 0, "where", "the condition is not differentiable");
    Tensor d = arg == 1 ? where(primals[0], cot[0], zero) : where(primals[0], zero, cot[0]);
    out.push_back(sum_to(d, primals[arg].shape()));
  }
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  SPARTA_CHECK(cond.dtype() == DType::boolean, "where", "condition must be bool, got ", dtype_name(cond.dtype()));
  broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  DType t = promote_types(a.dtype(), b.dtype());
  return run1(std::make_shared<Where>(), {cond, cast(a, t), cast(b, t)});
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  SPARTA_CHECK(mask.dtype() == DType::boolean, "masked_fill", "mask must be bool, got ", dtype_name(mask.dtype()));
  return where(mask, scalar(value, x.dtype(), x.device()), x);
}

// ---- In-place -------------------------------------------------------------------------------
void copy_(Tensor& dst, const Tensor& src) {
  // A copy between devices moves the values first; copy_into then converts and broadcasts.
  copy_values(dst, src.device() == dst.device() ? src : to_device(src, dst.device()));
}

void fill_(Tensor& dst, double value) {
#ifdef SPARTA_CUDA
  if (dst.device().is_cuda()) return cuda::fill(dst, value);
#endif
  copy_(dst, scalar(value, dst.dtype()));
}

void add_(Tensor& dst, const Tensor& src, double alpha) {
  broadcast_shapes(src.shape(), dst.shape(), "add_");
  SPARTA_CHECK(dst.device() == src.device(), "add_", "tensors on ", dst.device().str(), " and ", src.device().str());
#ifdef SPARTA_CUDA
  if (dst.device().is_cuda()) return cuda::axpy_inplace(dst, cast(src, dst.dtype()), alpha);
#endif
  cpu::axpy_inplace(dst, cast(src, dst.dtype()), alpha);
}

void mul_(Tensor& dst, double value) {
#ifdef SPARTA_CUDA
  if (dst.device().is_cuda()) return cuda::scale_inplace(dst, value);
#endif
  cpu::scale_inplace(dst, value);
}

}  // namespace sparta

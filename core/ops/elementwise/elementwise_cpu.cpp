// Comparison and bool instantiations multiply bools inside the shared maths templates; that is
// intended (they are never called for bool with arithmetic ops), so the warning is noise here.
#pragma GCC diagnostic ignored "-Wint-in-bool-context"
#include <cmath>
#include <type_traits>

#include "core/cpu/convert.h"
#include "core/cpu/fast_exp.h"
#include "core/cpu/loop.h"
#include "core/dispatch.h"
#include "core/ops/elementwise/elementwise.h"

namespace sparta::cpu {
namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

// tanh from the vectorisable exp for float (GELU's tanh form was a scalar libm call per element,
// a sixth of a training step); double keeps libm's.
template <typename C>
inline C tanh_c(C x) {
  if constexpr (std::is_same_v<C, float>) {
    const float e = fast_exp(2.0f * (x > 20.0f ? 20.0f : x));
    return (e - 1.0f) / (e + 1.0f);
  } else {
    return std::tanh(x);
  }
}

template <typename C>
inline C exp_c(C x) {
  if constexpr (std::is_same_v<C, float>) return fast_exp(x);
  else return std::exp(x);
}

template <typename C>
inline C unary_fn(UnaryOp op, C x) {
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return exp_c(x);
    case UnaryOp::log: return std::log(x);
    case UnaryOp::sqrt: return std::sqrt(x);
    case UnaryOp::rsqrt: return C(1) / std::sqrt(x);
    case UnaryOp::abs: return std::abs(x);
    case UnaryOp::sign: return C((x > C(0)) - (x < C(0)));
    case UnaryOp::sin: return std::sin(x);
    case UnaryOp::cos: return std::cos(x);
    case UnaryOp::tanh: return tanh_c(x);
    case UnaryOp::sigmoid: return C(1) / (C(1) + exp_c(-x));
    case UnaryOp::relu: return x > C(0) ? x : C(0);
    case UnaryOp::square: return x * x;
    case UnaryOp::reciprocal: return C(1) / x;
    case UnaryOp::gelu: return C(0.5) * x * (C(1) + std::erf(x * C(kInvSqrt2)));
    case UnaryOp::gelu_tanh: {
      C t = tanh_c(C(kSqrt2OverPi) * (x + C(0.044715) * x * x * x));
      return C(0.5) * x * (C(1) + t);
    }
    case UnaryOp::gelu_grad:
      return C(0.5) * (C(1) + std::erf(x * C(kInvSqrt2))) + x * std::exp(C(-0.5) * x * x) * C(kInvSqrt2Pi);
    case UnaryOp::gelu_tanh_grad: {
      C u = C(kSqrt2OverPi) * (x + C(0.044715) * x * x * x);
      C t = tanh_c(u);
      return C(0.5) * (C(1) + t) + C(0.5) * x * (C(1) - t * t) * C(kSqrt2OverPi) * (C(1) + C(3 * 0.044715) * x * x);
    }
  }
  return x;
}

template <typename C>
inline C binary_fn(BinaryOp op, C a, C b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    case BinaryOp::pow: return C(std::pow(a, b));
    case BinaryOp::maximum: return a >= b ? a : b;
    case BinaryOp::minimum: return a <= b ? a : b;
    default: return C(0);
  }
}

template <typename C>
inline bool compare_fn(BinaryOp op, C a, C b) {
  switch (op) {
    case BinaryOp::eq: return a == b;
    case BinaryOp::ne: return a != b;
    case BinaryOp::lt: return a < b;
    case BinaryOp::le: return a <= b;
    case BinaryOp::gt: return a > b;
    case BinaryOp::ge: return a >= b;
    default: return false;
  }
}

// Each op gets its own instantiation of the loop so the switch folds away and the body vectorises.
template <typename T, UnaryOp OP>
void unary_loop(const Tensor& out, const Tensor& x) {
  using C = compute_t<T>;
  map_elements<T, T>(out, {&x}, [](T v) { return convert<T>(unary_fn<C>(OP, convert<C>(v))); });
}

template <typename T, BinaryOp OP>
void binary_loop(const Tensor& out, const Tensor& a, const Tensor& b) {
  using C = compute_t<T>;
  if constexpr (is_comparison(OP)) {
    map_elements<bool, T, T>(out, {&a, &b}, [](T x, T y) { return compare_fn<C>(OP, convert<C>(x), convert<C>(y)); });
  } else {
    map_elements<T, T, T>(out, {&a, &b},
                          [](T x, T y) { return convert<T>(binary_fn<C>(OP, convert<C>(x), convert<C>(y))); });
  }
}

#define SPARTA_UNARY_CASE(NAME) \
  case UnaryOp::NAME: return unary_loop<T, UnaryOp::NAME>(out, x);
template <typename T>
void unary_dispatch(UnaryOp op, const Tensor& out, const Tensor& x) {
  if constexpr (!std::is_floating_point_v<compute_t<T>>) {
    switch (op) {
      SPARTA_UNARY_INTEGER_OPS(SPARTA_UNARY_CASE)
      default: SPARTA_FAIL(unary_name(op), "needs a floating dtype, got ", dtype_name(x.dtype()));
    }
  } else {
    switch (op) { SPARTA_UNARY_FLOAT_OPS(SPARTA_UNARY_CASE) }
  }
}
#undef SPARTA_UNARY_CASE

#define SPARTA_BINARY_CASE(NAME) \
  case BinaryOp::NAME: return binary_loop<T, BinaryOp::NAME>(out, a, b);
template <typename T>
void binary_dispatch(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  switch (op) { SPARTA_BINARY_ARITHMETIC_OPS(SPARTA_BINARY_CASE) SPARTA_BINARY_COMPARISON_OPS(SPARTA_BINARY_CASE) }
}
#undef SPARTA_BINARY_CASE

}  // namespace

Tensor unary(UnaryOp op, const Tensor& x) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  SPARTA_DISPATCH_ALL(x.dtype(), unary_name(op), [&] { unary_dispatch<scalar_t>(op, out, x); });
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  Shape shape = broadcast_shapes(a.shape(), b.shape(), binary_name(op));
  Tensor out = Tensor::empty(shape, is_comparison(op) ? DType::boolean : a.dtype(), a.device());
  SPARTA_DISPATCH_ALL(a.dtype(), binary_name(op), [&] { binary_dispatch<scalar_t>(op, out, a, b); });
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  SPARTA_DISPATCH_ALL(a.dtype(), "where", [&] {
    using T = scalar_t;
    map_elements<T, bool, T, T>(out, {&cond, &a, &b}, [](bool c, T x, T y) { return c ? x : y; });
  });
  return out;
}

void axpy_inplace(const Tensor& dst, const Tensor& src, double alpha) {
  SPARTA_DISPATCH_ALL(dst.dtype(), "add_", [&] {
    using T = scalar_t;
    using C = compute_t<T>;
    C al = C(alpha);
    map_elements<T, T, T>(dst, {&dst, &src}, [al](T d, T s) { return convert<T>(convert<C>(d) + al * convert<C>(s)); });
  });
}

void scale_inplace(const Tensor& dst, double value) {
  SPARTA_DISPATCH_ALL(dst.dtype(), "mul_", [&] {
    using T = scalar_t;
    using C = compute_t<T>;
    C v = C(value);
    map_elements<T, T>(dst, {&dst}, [v](T d) { return convert<T>(convert<C>(d) * v); });
  });
}

}  // namespace sparta::cpu

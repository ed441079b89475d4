// CUDA twins of elementwise_cpu.cpp: the same maths per element (half types in float, f64 in
// double), one instantiation per op so the switch folds away, through cuda::map.
#include <type_traits>

#include "core/cuda/map.cuh"
#include "core/cuda/math.cuh"
#include "core/cuda/types.cuh"
#include "core/ops/elementwise/elementwise.h"

namespace sparta {
namespace cuda {
namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

// What a value computes in: float for halves, itself otherwise (as compute_t on the CPU).
template <typename T>
using compute_of = std::conditional_t<is_half_v<T>, float, T>;

template <UnaryOp OP, typename C>
__device__ __forceinline__ C unary_fn(C x) {
  if constexpr (OP == UnaryOp::neg) return -x;
  else if constexpr (OP == UnaryOp::abs && std::is_unsigned_v<C>) return x;
  else if constexpr (OP == UnaryOp::abs) return x < C(0) ? C(-x) : x;
  else if constexpr (OP == UnaryOp::sign && std::is_unsigned_v<C>) return C(x > C(0));
  else if constexpr (OP == UnaryOp::sign) return C((x > C(0)) - (x < C(0)));
  else if constexpr (OP == UnaryOp::square) return x * x;
  else if constexpr (OP == UnaryOp::exp) return m_exp(x);
  else if constexpr (OP == UnaryOp::log) return m_log(x);
  else if constexpr (OP == UnaryOp::sqrt) return m_sqrt(x);
  else if constexpr (OP == UnaryOp::rsqrt) return C(1) / m_sqrt(x);
  else if constexpr (OP == UnaryOp::sin) return m_sin(x);
  else if constexpr (OP == UnaryOp::cos) return m_cos(x);
  else if constexpr (OP == UnaryOp::tanh) return m_tanh(x);
  else if constexpr (OP == UnaryOp::sigmoid) return C(1) / (C(1) + m_exp(-x));
  else if constexpr (OP == UnaryOp::relu) return x > C(0) ? x : C(0);
  else if constexpr (OP == UnaryOp::reciprocal) return C(1) / x;
  else if constexpr (OP == UnaryOp::gelu) return C(0.5) * x * (C(1) + m_erf(x * C(kInvSqrt2)));
  else if constexpr (OP == UnaryOp::gelu_tanh) {
    return C(0.5) * x * (C(1) + m_tanh(C(kSqrt2OverPi) * (x + C(0.044715) * x * x * x)));
  } else if constexpr (OP == UnaryOp::gelu_grad) {
    return C(0.5) * (C(1) + m_erf(x * C(kInvSqrt2))) + x * m_exp(C(-0.5) * x * x) * C(kInvSqrt2Pi);
  } else {
    static_assert(OP == UnaryOp::gelu_tanh_grad);
    const C t = m_tanh(C(kSqrt2OverPi) * (x + C(0.044715) * x * x * x));
    return C(0.5) * (C(1) + t) + C(0.5) * x * (C(1) - t * t) * C(kSqrt2OverPi) * (C(1) + C(3 * 0.044715) * x * x);
  }
}

template <UnaryOp OP, typename T>
struct UnaryF {
  __device__ T operator()(T x) const {
    using C = compute_of<T>;
    return convert<T>(unary_fn<OP, C>(convert<C>(x)));
  }
};

template <BinaryOp OP, typename T>
struct BinaryF {
  __device__ auto operator()(T a_, T b_) const {
    using C = compute_of<T>;
    const C a = convert<C>(a_), b = convert<C>(b_);
    if constexpr (OP == BinaryOp::eq) return a == b;
    else if constexpr (OP == BinaryOp::ne) return a != b;
    else if constexpr (OP == BinaryOp::lt) return a < b;
    else if constexpr (OP == BinaryOp::le) return a <= b;
    else if constexpr (OP == BinaryOp::gt) return a > b;
    else if constexpr (OP == BinaryOp::ge) return a >= b;
    else if constexpr (OP == BinaryOp::add) return convert<T>(C(a + b));
    else if constexpr (OP == BinaryOp::sub) return convert<T>(C(a - b));
    else if constexpr (OP == BinaryOp::mul) return convert<T>(C(a * b));
    else if constexpr (OP == BinaryOp::div) return convert<T>(C(a / b));
    else if constexpr (OP == BinaryOp::maximum) return convert<T>(a >= b ? a : b);
    else if constexpr (OP == BinaryOp::minimum) return convert<T>(a <= b ? a : b);
    else {
      static_assert(OP == BinaryOp::pow);
      if constexpr (std::is_floating_point_v<C>) return convert<T>(C(m_pow(a, b)));
      else return convert<T>(C(m_pow(double(a), double(b))));
    }
  }
};

template <typename T>
struct WhereF {
  __device__ T operator()(bool c, T a, T b) const { return c ? a : b; }
};

template <typename T>
struct AxpyF {
  compute_of<T> alpha;
  __device__ T operator()(T d, T s) const {
    using C = compute_of<T>;
    return convert<T>(C(convert<C>(d) + alpha * convert<C>(s)));
  }
};

template <typename T>
struct ScaleF {
  compute_of<T> value;
  __device__ T operator()(T d) const {
    using C = compute_of<T>;
    return convert<T>(C(convert<C>(d) * value));
  }
};

template <typename T>
struct FillF {
  T value;
  __device__ T operator()() const { return value; }
};

template <typename Out, typename In>
struct ConvertF {
  __device__ Out operator()(In x) const { return convert<Out>(x); }
};

#define SPARTA_UNARY_CASE(NAME) \
  case UnaryOp::NAME: return map<T, T>(unary_name(op), out, {&x}, UnaryF<UnaryOp::NAME, T>{});
template <typename T>
void unary_dispatch(UnaryOp op, const Tensor& out, const Tensor& x) {
  if constexpr (!std::is_floating_point_v<compute_of<T>>) {
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
  case BinaryOp::NAME: return map<T, T, T>(binary_name(op), out, {&a, &b}, BinaryF<BinaryOp::NAME, T>{});
#define SPARTA_COMPARISON_CASE(NAME) \
  case BinaryOp::NAME: return map<bool, T, T>(binary_name(op), out, {&a, &b}, BinaryF<BinaryOp::NAME, T>{});
template <typename T>
void binary_dispatch(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  switch (op) { SPARTA_BINARY_ARITHMETIC_OPS(SPARTA_BINARY_CASE) SPARTA_BINARY_COMPARISON_OPS(SPARTA_COMPARISON_CASE) }
}
#undef SPARTA_COMPARISON_CASE
#undef SPARTA_BINARY_CASE

}  // namespace

Tensor unary(UnaryOp op, const Tensor& x) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  SPARTA_CUDA_DISPATCH_ALL(x.dtype(), unary_name(op), [&] { unary_dispatch<scalar_t>(op, out, x); });
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  Shape shape = broadcast_shapes(a.shape(), b.shape(), binary_name(op));
  Tensor out = Tensor::empty(shape, is_comparison(op) ? DType::boolean : a.dtype(), a.device());
  SPARTA_CUDA_DISPATCH_ALL(a.dtype(), binary_name(op), [&] { binary_dispatch<scalar_t>(op, out, a, b); });
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  SPARTA_CUDA_DISPATCH_ALL(a.dtype(), "where", [&] {
    map<scalar_t, bool, scalar_t, scalar_t>("where", out, {&cond, &a, &b}, WhereF<scalar_t>{});
  });
  return out;
}

void axpy_inplace(const Tensor& dst, const Tensor& src, double alpha) {
  SPARTA_CUDA_DISPATCH_ALL(dst.dtype(), "add_", [&] {
    using T = scalar_t;
    map<T, T, T>("add_", dst, {&dst, &src}, AxpyF<T>{compute_of<T>(alpha)});
  });
}

void scale_inplace(const Tensor& dst, double value) {
  SPARTA_CUDA_DISPATCH_ALL(dst.dtype(), "mul_", [&] {
    using T = scalar_t;
    map<T, T>("mul_", dst, {&dst}, ScaleF<T>{compute_of<T>(value)});
  });
}

void fill(const Tensor& dst, double value) {
  SPARTA_CUDA_DISPATCH_ALL(dst.dtype(), "fill_", [&] {
    // The value is converted on the host with the CPU's rules, so both backends fill the same bits.
    using Host = std::conditional_t<std::is_same_v<scalar_t, __nv_bfloat16>, ::sparta::bf16,
                                    std::conditional_t<std::is_same_v<scalar_t, __half>, ::sparta::f16, scalar_t>>;
    const Host h = Host(value);
    scalar_t v;
    static_assert(sizeof(v) == sizeof(h));
    std::memcpy(static_cast<void*>(&v), &h, sizeof(v));
    map<scalar_t>("fill_", dst, {}, FillF<scalar_t>{v});
  });
}

void copy_into(const Tensor& dst, const Tensor& src) {
  SPARTA_CUDA_DISPATCH_ALL(dst.dtype(), "copy", [&] {
    using Out = scalar_t;
    SPARTA_CUDA_DISPATCH_ALL(src.dtype(), "copy", [&] {
      map<Out, scalar_t>("copy", dst, {&src}, ConvertF<Out, scalar_t>{});
    });
  });
}

}  // namespace cuda

Tensors Unary::eval_cuda(const Tensors& in) { return {cuda::unary(op_, in[0])}; }
Tensors Binary::eval_cuda(const Tensors& in) { return {cuda::binary(op_, in[0], in[1])}; }
Tensors Where::eval_cuda(const Tensors& in) { return {cuda::where(in[0], in[1], in[2])}; }

}  // namespace sparta

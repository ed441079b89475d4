#pragma once
// Scores as unsigned keys in the same order (device code), for the top-k selections: the simple
// kernels' radix select (attention_topk_cuda.cu) and the tensor-core path's bit search
// (attention_topk_flash.cu). Positive scores get the sign bit set, negative ones all bits flipped
// (a larger magnitude is a smaller score). NaN has no place in the order.
#include <cstdint>

namespace sparta::cuda::topk {

template <typename C>
struct Radix;
template <>
struct Radix<float> {
  using Key = unsigned;
  static __device__ __forceinline__ Key key(float x) {
    const Key u = __float_as_uint(x);
    return u & 0x80000000u ? ~u : u | 0x80000000u;
  }
  static __device__ __forceinline__ float value(Key k) { return __uint_as_float(k & 0x80000000u ? k & 0x7fffffffu : ~k); }
};
template <>
struct Radix<double> {
  using Key = unsigned long long;
  static constexpr Key kSign = 1ull << 63;
  static __device__ __forceinline__ Key key(double x) {
    const Key u = Key(__double_as_longlong(x));
    return u & kSign ? ~u : u | kSign;
  }
  static __device__ __forceinline__ double value(Key k) {
    return __longlong_as_double(static_cast<long long>(k & kSign ? k & ~kSign : ~k));
  }
};

}  // namespace sparta::cuda::topk

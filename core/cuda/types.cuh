#pragma once
// Device-side element types and conversions, and dtype dispatch that binds `scalar_t` to the type
// kernels compute with: sparta::bf16 and sparta::f16 (host storage types) become __nv_bfloat16
// and __half, whose bits are the same. Half types compute in float and f64 in double, as on the CPU.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "core/dtype.h"
#include "core/error.h"

namespace sparta::cuda {

template <typename T>
struct device_type {
  using type = T;
};
template <>
struct device_type<::sparta::bf16> {
  using type = __nv_bfloat16;
};
template <>
struct device_type<::sparta::f16> {
  using type = __half;
};
template <typename T>
using dev_t = typename device_type<T>::type;

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename T>
inline constexpr bool is_half_v = std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>;

// A half value as float; any other value unchanged.
template <typename T>
__device__ __forceinline__ auto widen(T x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __bfloat162float(x);
  } else if constexpr (std::is_same_v<T, __half>) {
    return __half2float(x);
  } else {
    return x;
  }
}

// Conversion between any two device types with the CPU's semantics (round to nearest even into
// halves, truncation into integers, nonzero is true).
template <typename To, typename From>
__device__ __forceinline__ To convert(From x) {
  if constexpr (std::is_same_v<To, From>) {
    return x;
  } else if constexpr (std::is_same_v<To, bool>) {
    return widen(x) != 0;
  } else if constexpr (std::is_same_v<To, __nv_bfloat16>) {
    return __float2bfloat16_rn(static_cast<float>(widen(x)));
  } else if constexpr (std::is_same_v<To, __half>) {
    return __float2half_rn(static_cast<float>(widen(x)));
  } else {
    return static_cast<To>(widen(x));
  }
}

}  // namespace sparta::cuda

#define SPARTA_CUDA_CASE(DT, T, ...)           \
  case ::sparta::DType::DT: {                  \
    using scalar_t = ::sparta::cuda::dev_t<T>; \
    return __VA_ARGS__();                      \
  }

#define SPARTA_CUDA_DISPATCH_FLOAT(dtype, op, ...)                                          \
  [&] {                                                                                     \
    switch (dtype) {                                                                        \
      SPARTA_CUDA_CASE(f64, double, __VA_ARGS__)                                            \
      SPARTA_CUDA_CASE(f32, float, __VA_ARGS__)                                             \
      SPARTA_CUDA_CASE(bf16, ::sparta::bf16, __VA_ARGS__)                                   \
      SPARTA_CUDA_CASE(f16, ::sparta::f16, __VA_ARGS__)                                     \
      default:                                                                              \
        SPARTA_FAIL(op, "expected a floating dtype, got ", ::sparta::dtype_name(dtype));    \
    }                                                                                       \
  }()

#define SPARTA_CUDA_DISPATCH_ALL(dtype, op, ...)            \
  [&] {                                                     \
    switch (dtype) {                                        \
      SPARTA_CUDA_CASE(f64, double, __VA_ARGS__)            \
      SPARTA_CUDA_CASE(f32, float, __VA_ARGS__)             \
      SPARTA_CUDA_CASE(bf16, ::sparta::bf16, __VA_ARGS__)   \
      SPARTA_CUDA_CASE(f16, ::sparta::f16, __VA_ARGS__)     \
      SPARTA_CUDA_CASE(i32, int32_t, __VA_ARGS__)           \
      SPARTA_CUDA_CASE(i64, int64_t, __VA_ARGS__)           \
      SPARTA_CUDA_CASE(u8, uint8_t, __VA_ARGS__)            \
      SPARTA_CUDA_CASE(boolean, bool, __VA_ARGS__)          \
    }                                                       \
    SPARTA_FAIL(op, "unknown dtype");                       \
  }()

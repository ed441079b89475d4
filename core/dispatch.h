#pragma once
// Runs a generic lambda with `scalar_t` bound to the C++ type of a runtime DType.
#include <cstdint>
#include <cstddef>

#include "core/dtype.h"
#include "core/error.h"

#define SPARTA_CASE(DT, T, ...) \
  case ::sparta::DType::DT: {   \
    using scalar_t = T;         \
    return __VA_ARGS__();       \
  }

#define SPARTA_DISPATCH_FLOAT(dtype, op, ...)                                               \
  [&] {                                                                                     \
    switch (dtype) {                                                                        \
      SPARTA_CASE(f64, double, __VA_ARGS__)                                                 \
      SPARTA_CASE(f32, float, __VA_ARGS__)                                                  \
      SPARTA_CASE(bf16, ::sparta::bf16, __VA_ARGS__)                                        \
      SPARTA_CASE(f16, ::sparta::f16, __VA_ARGS__)                                          \
      default:                                                                              \
        SPARTA_FAIL(op, "expected a floating dtype, got ", ::sparta::dtype_name(dtype));    \
    }                                                                                       \
  }()

#define SPARTA_DISPATCH_ALL(dtype, op, ...)                 \
  [&] {                                                     \
    switch (dtype) {                                        \
      SPARTA_CASE(f64, double, __VA_ARGS__)                 \
      SPARTA_CASE(f32, float, __VA_ARGS__)                  \
      SPARTA_CASE(bf16, ::sparta::bf16, __VA_ARGS__)        \
      SPARTA_CASE(f16, ::sparta::f16, __VA_ARGS__)          \
      SPARTA_CASE(i32, int32_t, __VA_ARGS__)                \
      SPARTA_CASE(i64, int64_t, __VA_ARGS__)                \
      SPARTA_CASE(u8, uint8_t, __VA_ARGS__)                 \
      SPARTA_CASE(boolean, bool, __VA_ARGS__)               \
    }                                                       \
    SPARTA_FAIL(op, "unknown dtype");                       \
  }()

#define SPARTA_DISPATCH_INDEX(dtype, op, ...)                                            \
  [&] {                                                                                  \
    switch (dtype) {                                                                     \
      SPARTA_CASE(i32, int32_t, __VA_ARGS__)                                             \
      SPARTA_CASE(i64, int64_t, __VA_ARGS__)                                             \
      default:                                                                           \
        SPARTA_FAIL(op, "expected an index dtype (i32 or i64), got ",                    \
                    ::sparta::dtype_name(dtype));                                        \
    }                                                                                    \
  }()

namespace sparta {
template <size_t S> struct bits_of;
template <> struct bits_of<1> { using type = uint8_t; };
template <> struct bits_of<2> { using type = uint16_t; };
template <> struct bits_of<4> { using type = uint32_t; };
template <> struct bits_of<8> { using type = uint64_t; };
}  // namespace sparta

// Runs a lambda with `B` bound to an unsigned type of the element size: copies need the bits only.
#define SPARTA_DISPATCH_BITS(size, op, ...)                                            \
  [&] {                                                                                \
    switch (size) {                                                                    \
      case 1: { using B = ::sparta::bits_of<1>::type; return __VA_ARGS__(); }          \
      case 2: { using B = ::sparta::bits_of<2>::type; return __VA_ARGS__(); }          \
      case 4: { using B = ::sparta::bits_of<4>::type; return __VA_ARGS__(); }          \
      case 8: { using B = ::sparta::bits_of<8>::type; return __VA_ARGS__(); }          \
      default: SPARTA_FAIL(op, "unsupported element size ", size);                     \
    }                                                                                  \
  }()

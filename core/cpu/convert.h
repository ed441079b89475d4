#pragma once
// Value conversion between element types; half types go through float.
#include <type_traits>

#include "core/dtype.h"

namespace sparta::cpu {

template <typename T>
constexpr bool is_half_v = std::is_same_v<T, bf16> || std::is_same_v<T, f16>;

template <typename O, typename I>
inline O convert(I x) {
  if constexpr (std::is_same_v<O, I>) {
    return x;
  } else if constexpr (is_half_v<O>) {
    return O(float(x));
  } else if constexpr (is_half_v<I>) {
    return static_cast<O>(float(x));
  } else {
    return static_cast<O>(x);
  }
}

}  // namespace sparta::cpu

#pragma once
// Element types. f64 exists for checks (gradcheck, references); training uses f32, bf16 and f16.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/half.h"

namespace sparta {

enum class DType : uint8_t { f64, f32, bf16, f16, i32, i64, u8, boolean };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
// Parses "f32", "float32", "bf16", ...; throws naming the string on an unknown name.
DType dtype_from_name(const std::string& name);

inline bool is_floating(DType t) {
  return t == DType::f64 || t == DType::f32 || t == DType::bf16 || t == DType::f16;
}
inline bool is_integral(DType t) { return !is_floating(t); }

// The type both operands of a binary op are converted to (NumPy-like, floating wins, wider wins).
DType promote_types(DType a, DType b);

template <typename T> struct dtype_of;
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<f16> { static constexpr DType value = DType::f16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::boolean; };

// The type arithmetic on T is carried out in: half types widen to float.
template <typename T> struct compute_type { using type = T; };
template <> struct compute_type<bf16> { using type = float; };
template <> struct compute_type<f16> { using type = float; };
template <typename T> using compute_t = typename compute_type<T>::type;

// The dtype of statistics a kernel keeps beside its output (row maxima, log-sum-exps, norms):
// f64 for f64 inputs, f32 for every other floating type.
inline DType accumulation_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

}  // namespace sparta

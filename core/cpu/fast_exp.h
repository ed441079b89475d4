#pragma once
// exp for float in plain arithmetic that the compiler vectorises (it needs -fno-trapping-math to
// if-convert the selects): without -ffast-math, glibc's vector expf is not offered to GCC and
// std::exp stays one libm call per element, which was the attention kernel's largest cost. Range reduction x = n ln2 + r (ln2 split in two so r is exact,
// n rounded with the 1.5 * 2^23 trick, which vectorises where nearbyint does not), a degree-6
// polynomial for e^r (Cephes' coefficients), and 2^n put straight into the exponent bits.
// Relative error below 2e-7 down to the smallest normal float, e^-87.3365; below it (and for -inf,
// as masking needs) exactly 0, because 2^n in the exponent bits cannot form a subnormal.
#include <cmath>
#include <cstdint>
#include <cstring>

namespace sparta::cpu {

inline float fast_exp(float x) {
  constexpr float kLowest = -87.33654f;  // ln(FLT_MIN), rounded up: n = -126 is the lowest exponent
  const float xc = x > 88.0f ? 88.0f : (x < kLowest ? kLowest : x);
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (xc * 1.44269504088896341f + shifter) - shifter;
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = __builtin_bit_cast(int32_t, p) + static_cast<int32_t>(n) * (1 << 23);
  const float out = __builtin_bit_cast(float, bits);
  return x < kLowest ? 0.0f : out;
}

// The accumulation types' exp: the fast one for float, libm's for double (the reference type).
inline float exp_acc(float x) { return fast_exp(x); }
inline double exp_acc(double x) { return std::exp(x); }

}  // namespace sparta::cpu

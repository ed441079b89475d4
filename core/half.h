#pragma once
// bf16 and f16 storage types. Arithmetic always widens to float: these types exist only to be
// loaded, converted and stored, as tensor cores and oneDNN treat them.
#include <cstdint>
#include <cstring>

namespace sparta {

struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  bf16(float f) { bits = from_float(f); }  // NOLINT: implicit, like a builtin float type
  operator float() const {                 // NOLINT
    uint32_t u = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  // Round to nearest even; NaN stays a (quiet) NaN instead of rounding into infinity.
  static uint16_t from_float(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
  }
};

struct f16 {
  uint16_t bits = 0;
  f16() = default;
  f16(float f) { bits = from_float(f); }  // NOLINT
  operator float() const { return to_float(bits); }  // NOLINT

  static float to_float(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
      if (man == 0) {
        u = sign;
      } else {  // subnormal: normalise into a float exponent
        exp = 127 - 15 + 1;
        while (!(man & 0x400u)) { man <<= 1; --exp; }
        u = sign | (exp << 23) | ((man & 0x3ffu) << 13);
      }
    } else if (exp == 31) {
      u = sign | 0x7f800000u | (man << 13);
    } else {
      u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  static uint16_t from_float(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u);   // NaN
    if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // overflow (incl. inf) after rounding
    if (a < 0x38800000u) {                                   // result is subnormal or zero
      if (a < 0x33000000u) return uint16_t(sign);            // below half the smallest subnormal
      uint32_t e = a >> 23;
      uint32_t m = (a & 0x7fffffu) | 0x800000u;
      uint32_t shift = 126 - e;  // 14 - (e - 127) + 13 - 1 + 1
      uint32_t half = m >> shift;
      uint32_t rem = m & ((1u << shift) - 1);
      uint32_t mid = 1u << (shift - 1);
      if (rem > mid || (rem == mid && (half & 1u))) ++half;
      return uint16_t(sign | half);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u);  // round to nearest even on the 13 dropped bits
    return uint16_t(sign | (((r >> 23) - 112) << 10) | ((r >> 13) & 0x3ffu));
  }
};

}  // namespace sparta

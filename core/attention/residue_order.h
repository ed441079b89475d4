#pragma once
// The residue-class order of stride l over n tokens (BlockLayout::build_residue_classes: class 0's
// positions 0, l, 2l, .., then class 1's, ..; classes r < n % l hold n / l + 1 tokens, the others
// n / l) in closed form: the token of each index of that order. The CUDA kernels read such a
// segment's rows through it instead of gathered copies; the host checks a layout against it.
#include <cstdint>

#include "core/attention/block_layout.h"

#if defined(__CUDACC__)
#define SPARTA_HOST_DEVICE __host__ __device__
#else
#define SPARTA_HOST_DEVICE
#endif

namespace sparta::attn {

// x / d for 0 <= x < 2^31 as a multiply-high, an add and a shift (Granlund and Montgomery's
// round-up method; x < 2^31 keeps the add inside 32 bits): the kernels map rows several times a
// step, and integer division, which GPUs emulate, was a fifth of their instructions.
struct FastDiv {
  uint32_t m, shift;
  static FastDiv of(uint32_t d) {
    uint32_t l = 0;
    while ((uint64_t(1) << l) < d) ++l;
    return {uint32_t((uint64_t(1) << 32) * ((uint64_t(1) << l) - d) / d + 1), l};
  }
  SPARTA_HOST_DEVICE int operator()(int x) const {
#if defined(__CUDA_ARCH__)
    const uint32_t hi = __umulhi(uint32_t(x), m);
#else
    const uint32_t hi = uint32_t((uint64_t(uint32_t(x)) * m) >> 32);
#endif
    return int((hi + uint32_t(x)) >> shift);
  }
};

// Index p of the order -> its token. l = 0 (a zeroed one): the identity.
struct ResidueOrder {
  int l, c, rem;        // stride, n / l, n % l
  FastDiv by_c, by_c1;  // / c and / (c + 1)
  static ResidueOrder of(int64_t n, int64_t stride) {  // 1 <= stride < n < 2^31
    ResidueOrder o{};
    o.l = int(stride);
    o.c = int(n / stride);
    o.rem = int(n % stride);
    o.by_c = FastDiv::of(uint32_t(o.c));
    o.by_c1 = FastDiv::of(uint32_t(o.c + 1));
    return o;
  }
  SPARTA_HOST_DEVICE int64_t operator()(int64_t p) const {
    if (l == 0) return p;
    const int x = int(p), big = rem * (c + 1);
    const int r = x < big ? by_c1(x) : rem + by_c(x - big);
    const int m = x < big ? x - r * (c + 1) : x - big - (r - rem) * c;
    return int64_t(m) * l + r;
  }
};

// The stride l when both of s's orders (q_pos, k_pos) are the residue-class order of l over all its
// seq_len tokens, else 0 (no permutation, or another one).
int64_t residue_stride(const BlockLayout& s);

}  // namespace sparta::attn

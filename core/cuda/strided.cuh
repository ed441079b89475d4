#pragma once
// The geometry of an N-operand elementwise loop (core/loop_layout.h, Note [Elementwise loops])
// packed into a struct a kernel takes by value: a linear index over the output becomes one byte
// offset per operand. Operand 0 is the output.
#include <array>
#include <cstdint>

#include "core/error.h"
#include "core/loop_layout.h"

namespace sparta::cuda {

constexpr int kMaxDims = 8;

template <int N>
struct Strided {
  int nd = 0;
  int64_t sizes[kMaxDims] = {};          // merged dimensions, innermost last
  int64_t bytes[N][kMaxDims] = {};       // byte strides per operand
  int64_t numel = 0;
  bool contiguous = false;               // every operand dense, none broadcast

  __device__ __forceinline__ void offsets(int64_t i, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = nd - 1; d >= 0; --d) {
      const int64_t idx = i % sizes[d];
      i /= sizes[d];
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += idx * bytes[k][d];
    }
  }
};

template <int N>
Strided<N> make_strided(const Shape& shape, const std::array<const Tensor*, N>& ops) {
  const Loop<N> L = make_loop<N>(shape, ops);
  Strided<N> s;
  SPARTA_CHECK(int(L.shape.size()) <= kMaxDims, "cuda", "a loop over ", L.shape.size(),
               " non-mergeable dimensions; at most ", kMaxDims, " are supported");
  s.nd = int(L.shape.size());
  s.numel = L.numel;
  s.contiguous = s.nd == 1;
  for (int d = 0; d < s.nd; ++d) s.sizes[d] = L.shape[d];
  for (int k = 0; k < N; ++k) {
    for (int d = 0; d < s.nd; ++d) s.bytes[k][d] = L.bytes[k][d];
    // One merged dimension is dense when its stride is the element size (or it has one element).
    s.contiguous = s.contiguous && (L.shape[0] == 1 || L.bytes[k][0] == int64_t(ops[k]->itemsize()));
  }
  return s;
}

// Grid size for a grid-stride loop over n items: enough blocks to fill the GPU, no more.
inline unsigned blocks(int64_t n, int threads = 256) {
  const int64_t b = (n + threads - 1) / threads;
  return unsigned(b < 1 ? 1 : (b > 65536 ? 65536 : b));
}

}  // namespace sparta::cuda

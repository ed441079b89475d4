#pragma once
// How an operand of a batched matmul sits in memory, as both backends' GEMM libraries need it:
// dims and strides in elements with the batch padded on the left to the result's batch rank, and
// whether a library can read it in place. Shared by linalg_cpu.cpp (oneDNN) and linalg_cuda.cu
// (cuBLASLt).
#include <algorithm>

#include "core/tensor.h"

namespace sparta::linalg {

// A batch dim of size > 1 and stride 0 (an expanded view) is recorded as a broadcast dim of size 1.
struct Layout {
  Shape dims, strides;
};

inline Layout layout_of(const Tensor& t, int nb) {
  Layout l;
  const int tb = t.dim() - 2;
  for (int i = 0; i < nb - tb; ++i) {
    l.dims.push_back(1);
    l.strides.push_back(0);
  }
  for (int i = 0; i < t.dim(); ++i) {
    const int64_t s = t.strides()[size_t(i)];
    l.dims.push_back(i < tb && s == 0 ? 1 : t.shape()[size_t(i)]);
    l.strides.push_back(s);
  }
  return l;
}

// Whether a GEMM can read the matrix part in place: one unit stride and the other at least the
// matching extent (row- or column-major with a leading dimension). The stride of a size-1 dim is
// never stepped over, so it is set to what a dense layout would have (oneDNN picks its reference
// kernel for some otherwise harmless values there).
inline bool matrix_readable(Layout& l) {
  const size_t r = l.dims.size() - 2, c = r + 1;
  if (l.dims[c] == 1) l.strides[c] = 1;
  if (l.dims[r] == 1) l.strides[r] = std::max<int64_t>(l.dims[c], 1);
  return (l.strides[c] == 1 && l.strides[r] >= l.dims[c]) || (l.strides[r] == 1 && l.strides[c] >= l.dims[r]);
}

inline bool batch_readable(const Layout& l) {
  for (size_t i = 0; i + 2 < l.dims.size(); ++i) {
    if (l.dims[i] > 1 && l.strides[i] < 0) return false;
  }
  return true;
}

}  // namespace sparta::linalg

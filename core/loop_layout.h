#pragma once
// Note [Elementwise loops]
// Broadcasting and strides are solved here once for every elementwise kernel, CPU and CUDA alike
// (PyTorch's TensorIterator is the model). Operands are viewed at the output's shape with stride 0
// on broadcast dimensions; dimensions that are contiguous for every operand are merged, so the
// common cases collapse to one long inner loop.
#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace sparta {

template <int N>
struct Loop {
  Shape shape;                                // merged dimensions, innermost last
  std::array<std::vector<int64_t>, N> bytes;  // byte strides per operand and dimension
  std::array<char*, N> base;
  int64_t numel = 1;
};

// Operand 0 is the output (shape `shape`); the others broadcast to it.
template <int N>
Loop<N> make_loop(const Shape& shape, const std::array<const Tensor*, N>& ops) {
  Loop<N> L;
  int nd = int(shape.size());
  std::array<std::vector<int64_t>, N> st;
  for (int k = 0; k < N; ++k) {
    const Tensor& t = *ops[k];
    st[k].assign(nd, 0);
    int off = nd - t.dim();
    for (int d = 0; d < t.dim(); ++d) {
      if (t.shape()[d] != 1) st[k][d + off] = t.strides()[d] * int64_t(t.itemsize());
    }
    L.base[k] = static_cast<char*>(t.data_ptr());
  }
  // Merge dimension d into d+1 (outer into inner) while that is a plain reshape for all operands.
  Shape sh;
  std::array<std::vector<int64_t>, N> ms;
  for (int d = 0; d < nd; ++d) {
    if (shape[d] == 1) continue;
    if (!sh.empty()) {
      bool merge = true;
      for (int k = 0; k < N; ++k) merge = merge && ms[k].back() == st[k][d] * shape[d];
      if (merge) {
        sh.back() *= shape[d];
        for (int k = 0; k < N; ++k) ms[k].back() = st[k][d];
        continue;
      }
    }
    sh.push_back(shape[d]);
    for (int k = 0; k < N; ++k) ms[k].push_back(st[k][d]);
  }
  if (sh.empty()) {
    sh.push_back(1);
    for (int k = 0; k < N; ++k) ms[k].push_back(0);
  }
  L.shape = sh;
  L.bytes = ms;
  L.numel = numel_of(shape);
  return L;
}

// Dimensions as (size, stride) with size-1 dims dropped and neighbours merged where the outer one
// steps exactly over the inner one; innermost last. (make_loop does the same for several operands
// at once; reductions walk one tensor's kept and reduced dims separately.)
struct Dims {
  Shape size, stride;
};
inline Dims coalesce(const Shape& size, const Shape& stride) {
  Dims d;
  for (size_t i = 0; i < size.size(); ++i) {
    if (size[i] == 1) continue;
    if (!d.size.empty() && d.stride.back() == stride[i] * size[i]) {
      d.size.back() *= size[i];
      d.stride.back() = stride[i];
      continue;
    }
    d.size.push_back(size[i]);
    d.stride.push_back(stride[i]);
  }
  return d;
}

}  // namespace sparta

#pragma once
// Note [Elementwise loops]
// Broadcasting, strides and parallelism are solved here once for every elementwise CPU kernel
// (PyTorch's TensorIterator is the model). Operands are viewed at the output's shape with stride 0
// on broadcast dimensions; dimensions that are contiguous for every operand are merged, so the
// common cases collapse to one long inner loop. Kernels see (pointers, count, byte strides) and
// take a fast path when every stride equals the element size, which the compiler vectorises.
#include <tbb/parallel_for.h>

#include <array>
#include <tuple>
#include <utility>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace sparta::cpu {

// Elements below which an elementwise loop runs on one thread.
constexpr int64_t kGrain = 32768;

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

// Calls f(ptrs, n, inner_strides) on runs of the inner dimension, in parallel over [0, numel).
template <int N, typename F>
void for_each_run(const Loop<N>& L, F&& f) {
  if (L.numel == 0) return;
  const int nd = int(L.shape.size());
  const int64_t inner = L.shape[nd - 1];
  std::array<int64_t, N> inner_st;
  for (int k = 0; k < N; ++k) inner_st[k] = L.bytes[k][nd - 1];
  auto body = [&](int64_t begin, int64_t end) {
    // Position of `begin` as a multi-index over the outer dimensions plus an inner offset.
    int64_t row = begin / inner, col = begin % inner;
    std::array<char*, N> p;
    for (int k = 0; k < N; ++k) {
      int64_t off = 0, r = row;
      for (int d = nd - 2; d >= 0; --d) {
        off += (r % L.shape[d]) * L.bytes[k][d];
        r /= L.shape[d];
      }
      p[k] = L.base[k] + off + col * inner_st[k];
    }
    int64_t i = begin;
    while (i < end) {
      int64_t n = std::min(inner - col, end - i);
      f(p, n, inner_st);
      i += n;
      col = 0;
      ++row;
      if (i < end) {
        int64_t r = row;
        for (int k = 0; k < N; ++k) {
          int64_t off = 0;
          r = row;
          for (int d = nd - 2; d >= 0; --d) {
            off += (r % L.shape[d]) * L.bytes[k][d];
            r /= L.shape[d];
          }
          p[k] = L.base[k] + off;
        }
      }
    }
  };
  if (L.numel <= kGrain) {
    body(0, L.numel);
  } else {
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, L.numel, kGrain),
                      [&](const tbb::blocked_range<int64_t>& r) { body(r.begin(), r.end()); });
  }
}

// Convenience: out[i] = f(in0[i], in1[i], ...) with per-element types Out, In... .
template <typename Out, typename... In, typename F, size_t... I>
void map_elements_impl(const Tensor& out, const std::array<const Tensor*, sizeof...(In)>& ins, F&& f,
                       std::index_sequence<I...>) {
  constexpr int N = 1 + sizeof...(In);
  std::array<const Tensor*, N> ops{&out, ins[I]...};
  auto L = make_loop<N>(out.shape(), ops);
  for_each_run<N>(L, [&](const std::array<char*, N>& p, int64_t n, const std::array<int64_t, N>& s) {
    bool contiguous = s[0] == int64_t(sizeof(Out)) && ((s[I + 1] == int64_t(sizeof(In))) && ...);
    if (contiguous) {
      Out* __restrict o = reinterpret_cast<Out*>(p[0]);
      std::tuple<const In*...> in{reinterpret_cast<const In*>(p[I + 1])...};
      for (int64_t i = 0; i < n; ++i) o[i] = f(std::get<I>(in)[i]...);
    } else {
      for (int64_t i = 0; i < n; ++i) {
        *reinterpret_cast<Out*>(p[0] + i * s[0]) = f(*reinterpret_cast<const In*>(p[I + 1] + i * s[I + 1])...);
      }
    }
  });
}

template <typename Out, typename... In, typename F>
void map_elements(const Tensor& out, const std::array<const Tensor*, sizeof...(In)>& ins, F&& f) {
  map_elements_impl<Out, In...>(out, ins, std::forward<F>(f), std::index_sequence_for<In...>{});
}

}  // namespace sparta::cpu

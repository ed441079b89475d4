#pragma once
// Parallel CPU loops over the geometry of core/loop_layout.h (Note [Elementwise loops]). Kernels
// see (pointers, count, byte strides) and take a fast path when every stride equals the element
// size, which the compiler vectorises.
#include <tbb/parallel_for.h>

#include <array>
#include <tuple>
#include <utility>
#include <cstdint>
#include <vector>

#include "core/loop_layout.h"
#include "core/tensor.h"

namespace sparta::cpu {

using sparta::Loop;
using sparta::make_loop;

// Elements below which an elementwise loop runs on one thread.
constexpr int64_t kGrain = 32768;

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

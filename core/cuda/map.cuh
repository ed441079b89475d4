#pragma once
// Elementwise maps on the GPU: out[i] = f(in0[i], in1[i], ...) over broadcast, strided operands.
// The dense case (every operand contiguous, nothing broadcast, 16-byte aligned) moves 16 bytes per
// operand per load or store, which is what reaches the copy bandwidth; everything else walks byte
// offsets from core/cuda/strided.cuh. f is a functor with a __device__ operator() (not a lambda,
// so that it can be built inside the dtype-dispatch lambdas).
#include <cuda/std/tuple>

#include <array>
#include <cstdint>
#include <utility>

#include "core/cuda/check.h"
#include "core/cuda/strided.cuh"
#include "core/tensor.h"

namespace sparta::cuda {

template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

template <int N>
struct Ptrs {
  char* p[N];
};

template <typename... T>
constexpr int largest_size() {
  size_t m = 1;
  ((m = sizeof(T) > m ? sizeof(T) : m), ...);
  return int(m);
}

template <int V, typename Out, typename... In, typename F, size_t... I>
__device__ __forceinline__ void map_vector(int64_t i, Out* out, const ::cuda::std::tuple<const In*...>& in, const F& f,
                                           std::index_sequence<I...>) {
  Vec<Out, V> o;
  ::cuda::std::tuple<Vec<In, V>...> x{reinterpret_cast<const Vec<In, V>*>(::cuda::std::get<I>(in))[i]...};
#pragma unroll
  for (int j = 0; j < V; ++j) o.v[j] = f(::cuda::std::get<I>(x).v[j]...);
  reinterpret_cast<Vec<Out, V>*>(out)[i] = o;
}

template <typename Out, typename... In, typename F, size_t... I>
__device__ __forceinline__ void map_scalar(int64_t i, Out* out, const ::cuda::std::tuple<const In*...>& in, const F& f,
                                           std::index_sequence<I...>) {
  out[i] = f(::cuda::std::get<I>(in)[i]...);
}

template <int V, typename F, typename Out, typename... In>
__global__ void map_dense_kernel(int64_t n, Out* out, ::cuda::std::tuple<const In*...> in, F f) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t start = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nvec = n / V;
  for (int64_t i = start; i < nvec; i += stride) map_vector<V>(i, out, in, f, std::index_sequence_for<In...>{});
  for (int64_t i = nvec * V + start; i < n; i += stride) map_scalar(i, out, in, f, std::index_sequence_for<In...>{});
}

template <typename Out, typename... In, typename F, size_t... I>
__device__ __forceinline__ void map_at(const int64_t (&off)[1 + sizeof...(In)], const Ptrs<1 + sizeof...(In)>& base,
                                       const F& f, std::index_sequence<I...>) {
  *reinterpret_cast<Out*>(base.p[0] + off[0]) = f(*reinterpret_cast<const In*>(base.p[I + 1] + off[I + 1])...);
}

template <typename F, typename Out, typename... In>
__global__ void map_strided_kernel(Strided<1 + sizeof...(In)> s, Ptrs<1 + sizeof...(In)> base, F f) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < s.numel; i += stride) {
    int64_t off[1 + sizeof...(In)];
    s.offsets(i, off);
    map_at<Out, In...>(off, base, f, std::index_sequence_for<In...>{});
  }
}

// out = f(ins...) elementwise; the inputs broadcast to out's shape. Out and In are device types
// (core/cuda/types.cuh) matching the tensors' dtypes.
template <typename Out, typename... In, typename F>
void map(const char* op, const Tensor& out, const std::array<const Tensor*, sizeof...(In)>& ins, F f) {
  constexpr int N = 1 + sizeof...(In);
  std::array<const Tensor*, N> ops;
  ops[0] = &out;
  for (int k = 1; k < N; ++k) ops[k] = ins[k - 1];
  const Strided<N> s = make_strided<N>(out.shape(), ops);
  if (s.numel == 0) return;
  constexpr int V = 16 / largest_size<Out, In...>() > 0 ? 16 / largest_size<Out, In...>() : 1;
  bool aligned = true;
  for (int k = 0; k < N; ++k) aligned = aligned && reinterpret_cast<uintptr_t>(ops[k]->data_ptr()) % 16 == 0;
  constexpr int kThreads = 256;
  if (s.contiguous && aligned) {
    ::cuda::std::tuple<const In*...> in = std::apply(
        [](auto*... t) { return ::cuda::std::tuple<const In*...>{static_cast<const In*>(t->data_ptr())...}; }, ins);
    map_dense_kernel<V, F, Out, In...><<<blocks(s.numel / V + 1, kThreads), kThreads, 0, stream()>>>(
        s.numel, static_cast<Out*>(out.data_ptr()), in, f);
  } else {
    Ptrs<N> base;
    for (int k = 0; k < N; ++k) base.p[k] = static_cast<char*>(ops[k]->data_ptr());
    map_strided_kernel<F, Out, In...><<<blocks(s.numel, kThreads), kThreads, 0, stream()>>>(s, base, f);
  }
  SPARTA_CUDA_LAUNCH_CHECK(op);
}

}  // namespace sparta::cuda

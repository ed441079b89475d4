#pragma once
// Warp and block reductions shared by the reduction-shaped kernels (reduce, softmax, norms), and
// the geometry they need. CUDA builds only.
//
// Note [Deterministic reductions]
// Partial results combine in a fixed tree (a warp butterfly, then the warps' results in warp
// order) and partials of several blocks are folded in index order by a second pass; nothing uses
// atomics. A result depends only on the inputs and the launch shape, and launch shapes depend
// only on the sizes and the device's SM count, so a rerun gives the same bits.
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

#include "core/cuda/check.h"

namespace sparta::cuda {

constexpr int kWarpSize = 32;

// n elements loaded as one 16-byte (or smaller) access.
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// Elements per 16-byte load.
template <typename T>
constexpr int pack_width() {
  return sizeof(T) >= 16 ? 1 : int(16 / sizeof(T));
}

// __shfl_xor_sync for any trivially copyable value whose size is a multiple of 4 bytes (int64,
// double, small structs such as (max, sum) or (value, index) pairs).
template <typename T>
__device__ __forceinline__ T shfl_xor(const T& v, int mask) {
  static_assert(sizeof(T) % 4 == 0, "shfl_xor needs a size that is a multiple of 4 bytes");
  constexpr int W = int(sizeof(T) / 4);
  int w[W];
  memcpy(w, &v, sizeof(T));
#pragma unroll
  for (int i = 0; i < W; ++i) w[i] = __shfl_xor_sync(0xffffffffu, w[i], mask);
  T r;
  memcpy(&r, w, sizeof(T));
  return r;
}

// Every lane of each aligned group of W lanes (W a power of two up to 32) gets f folded over the
// group's values: a butterfly, all 32 lanes taking part. f must be commutative, which makes the
// lanes of a group agree bit for bit.
template <int W = kWarpSize, typename T, typename F>
__device__ __forceinline__ T warp_reduce(T v, F f) {
  static_assert(W >= 1 && W <= kWarpSize && (W & (W - 1)) == 0, "group width must be a power of two up to 32");
#pragma unroll
  for (int m = W / 2; m > 0; m >>= 1) v = f(v, shfl_xor(v, m));
  return v;
}

// Every thread of a 1-D block (a multiple of 32 threads, at most 1024) gets f folded over all the
// block's values. Each warp reduces, then every thread folds the warps' results in warp order
// (broadcast reads of shared memory, so no second barrier is needed). Call from all threads.
template <typename T, typename F>
__device__ __forceinline__ T block_reduce(T v, F f) {
  __shared__ T warps[kWarpSize];
  v = warp_reduce(v, f);
  const int lane = int(threadIdx.x) % kWarpSize, warp = int(threadIdx.x) / kWarpSize;
  const int nwarps = int(blockDim.x) / kWarpSize;
  __syncthreads();  // an earlier call's readers are done with `warps`
  if (lane == 0) warps[warp] = v;
  __syncthreads();
  T r = warps[0];
  for (int i = 1; i < nwarps; ++i) r = f(r, warps[i]);
  return r;
}

// A group of G threads (G <= 32: aligned lanes of a warp; otherwise G = blockDim.x, the block)
// folds its values. Every thread of the block must call it (the loops that use it keep their trip
// counts uniform across the block).
template <int G, typename T, typename F>
__device__ __forceinline__ T group_reduce(T v, F f) {
  if constexpr (G <= kWarpSize) {
    return warp_reduce<G>(v, f);
  } else {
    return block_reduce(v, f);
  }
}

// Calls fn(i, p[i]) for the elements of the run p[0, n) that lane `lane` of a group of G threads
// owns: the elements before the first 16-byte boundary one each, then 16-byte packs with four in
// flight per thread (what keeps enough loads outstanding to reach the copy bandwidth), then the tail.
template <typename T, typename Fn>
__device__ __forceinline__ void for_run(const T* __restrict__ p, int64_t n, int lane, int G, Fn&& fn) {
  constexpr int V = pack_width<T>();
  using P = Pack<T, V>;
  const int64_t mis = int64_t(reinterpret_cast<uintptr_t>(p) % sizeof(P)) / int64_t(sizeof(T));
  const int64_t head = mis == 0 ? 0 : (V - mis < n ? V - mis : n);
  for (int64_t j = lane; j < head; j += G) fn(j, p[j]);
  const P* q = reinterpret_cast<const P*>(p + head);
  const int64_t nv = (n - head) / V;
  auto visit = [&](const P& a, int64_t at) {
#pragma unroll
    for (int v = 0; v < V; ++v) fn(head + at * V + v, a.v[v]);
  };
  int64_t i = lane;
  for (; i + 3 * G < nv; i += 4 * G) {
    const P a = q[i], b = q[i + G], c = q[i + 2 * G], d = q[i + 3 * G];
    visit(a, i);
    visit(b, i + G);
    visit(c, i + 2 * G);
    visit(d, i + 3 * G);
  }
  for (; i < nv; i += G) visit(q[i], i);
  for (int64_t j = head + nv * V + lane; j < n; j += G) fn(j, p[j]);
}

// o[i] = fn(i, p[i]) for the lane's elements of a run of n, in 16-byte packs when `packed` (the
// caller's promise that o and p are equally aligned modulo 16 bytes), one element at a time otherwise.
template <typename T, typename Fn>
__device__ __forceinline__ void map_run(const T* __restrict__ p, T* __restrict__ o, int64_t n, int lane, int G,
                                        bool packed, Fn&& fn) {
  constexpr int V = pack_width<T>();
  using P = Pack<T, V>;
  int64_t head = n;
  if (packed) {
    const int64_t mis = int64_t(reinterpret_cast<uintptr_t>(p) % sizeof(P)) / int64_t(sizeof(T));
    head = mis == 0 ? 0 : (V - mis < n ? V - mis : n);
  }
  for (int64_t j = lane; j < head; j += G) o[j] = fn(j, p[j]);
  if (head == n) return;
  const P* q = reinterpret_cast<const P*>(p + head);
  P* r = reinterpret_cast<P*>(o + head);
  const int64_t nv = (n - head) / V;
  for (int64_t i = lane; i < nv; i += G) {
    const P a = q[i];
    P b;
#pragma unroll
    for (int v = 0; v < V; ++v) b.v[v] = fn(head + i * V + v, a.v[v]);
    r[i] = b;
  }
  for (int64_t j = head + nv * V + lane; j < n; j += G) o[j] = fn(j, p[j]);
}

// Element offsets of a linear index over up to kGeomDims dimensions (sizes and strides in
// elements, innermost last): the positions of a reduction's outputs in its input.
constexpr int kGeomDims = 8;
struct Geom {
  int nd;
  int64_t size[kGeomDims];
  int64_t stride[kGeomDims];

  __device__ __forceinline__ int64_t offset(int64_t i) const {
    if (nd == 1) return i * stride[0];
    int64_t off = 0;
    for (int d = nd - 1; d >= 0; --d) {
      off += (i % size[d]) * stride[d];
      i /= size[d];
    }
    return off;
  }
};

// Streaming multiprocessors of the current device (cached per device).
inline int sm_count() {
  static std::atomic<int> cache[64];
  int dev = 0;
  SPARTA_CUDA_CHECK("cuda", cudaGetDevice(&dev));
  int n = dev < 64 ? cache[dev].load(std::memory_order_relaxed) : 0;
  if (n == 0) {
    SPARTA_CUDA_CHECK("cuda", cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    if (dev < 64) cache[dev].store(n, std::memory_order_relaxed);
  }
  return n;
}

// Blocks of 256 threads that fill every SM (2048 resident threads each): the grid size a split
// reduction aims for.
inline int64_t fill_blocks() { return int64_t(sm_count()) * 8; }

}  // namespace sparta::cuda

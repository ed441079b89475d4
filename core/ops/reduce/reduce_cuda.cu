// CUDA reductions: sum / max / min over any set of axes, and argmax.
//
// Dimensions are merged as in the CPU kernel; then one of two layouts is reduced in place:
//  rows  each output's elements are one contiguous run. A thread, eight lanes, a warp or a block
//        per run by its length, loading 16 bytes at a time from the run's first aligned element.
//        When there are too few runs to fill the GPU (a full reduction is one run), each run is cut
//        into segments, one block each, and a second pass folds the segments' partials in order.
//  cols  the outputs are contiguous and their elements lie along one strided dimension (a bias
//        gradient: (R, C) summed over R). Threads own columns (16-byte groups when aligned), so
//        loads are coalesced across columns; a block folds a chunk of rows in a fixed tree, and a
//        second pass folds the chunks' partials in order.
// Any other layout is copied with the reduced axes last and reduced as rows. Accumulation: float
// for f32 and half types, double for f64, i64 for integers and bool, as on the CPU. No atomics:
// see Note [Deterministic reductions] in core/cuda/reduce.cuh.
#include <algorithm>
#include <limits>
#include <type_traits>

#include "core/cuda/check.h"
#include "core/cuda/reduce.cuh"
#include "core/cuda/types.cuh"
#include "core/ops.h"
#include "core/loop_layout.h"
#include "core/ops/reduce/reduce.h"

namespace sparta {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kThreadRun = 16;    // runs up to this long: a thread each
constexpr int64_t kOctetRun = 256;    // runs up to this long: eight lanes each
constexpr int64_t kWarpRun = 1024;    // runs up to this long: a warp each
constexpr int64_t kWarpRunMax = 16384;  // ... or up to this long when there are runs for every warp
constexpr int64_t kMinSegment = 8192;  // elements below which a run is not cut further

template <typename T>
using red_acc_t = std::conditional_t<std::is_integral_v<T>, int64_t, acc_t<T>>;

template <ReduceOp OP, typename A>
struct Fold {
  // The CPU's identities and comparisons, so that -inf-only inputs and NaNs come out the same.
  __device__ __forceinline__ static A identity() {
    if constexpr (OP == ReduceOp::sum) return A(0);
    else if constexpr (OP == ReduceOp::max) return std::numeric_limits<A>::lowest();
    else return std::numeric_limits<A>::max();
  }
  __device__ __forceinline__ A operator()(A a, A b) const {
    if constexpr (OP == ReduceOp::sum) return a + b;
    else if constexpr (OP == ReduceOp::max) return b > a ? b : a;
    else return b < a ? b : a;
  }
};

// Lane `lane` of G threads folds its share of the run p[0, n).
template <typename A, typename T, typename F>
__device__ __forceinline__ A fold_run(const T* __restrict__ p, int64_t n, int lane, int G, F f) {
  A acc = F::identity();
  for_run(p, n, lane, G, [&](int64_t, T v) { acc = f(acc, convert<A>(v)); });
  return acc;
}

// x: runs of length n starting at kept.offset(k), k < nk; out (nk) in x's type.
template <ReduceOp OP, typename T, typename A>
__global__ void rows_thread_kernel(const T* __restrict__ x, Geom kept, int64_t nk, int64_t n, T* __restrict__ out) {
  Fold<OP, A> f;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < nk; k += int64_t(gridDim.x) * blockDim.x) {
    const T* p = x + kept.offset(k);
    A acc = f.identity();
    for (int64_t i = 0; i < n; ++i) acc = f(acc, convert<A>(p[i]));
    out[k] = convert<T>(acc);
  }
}

// Groups of G threads (lanes of a warp, or the whole block) take work items w < nk * splits:
// segment w % splits of run w / splits. With one split the result goes to out; otherwise its
// partial goes to part[w] (nk rows of `splits`).
template <ReduceOp OP, typename T, typename A, int G>
__global__ void rows_kernel(const T* __restrict__ x, Geom kept, int64_t nk, int64_t n, int64_t splits, int64_t seg,
                            T* __restrict__ out, A* __restrict__ part) {
  Fold<OP, A> f;
  constexpr int kGroups = kThreads / G;
  const int lane = int(threadIdx.x) % G, group = int(threadIdx.x) / G;
  const int64_t items = nk * splits;
  // The loop runs over block-uniform bases so that every thread reaches the group reductions.
  for (int64_t base = int64_t(blockIdx.x) * kGroups; base < items; base += int64_t(gridDim.x) * kGroups) {
    const int64_t w = base + group;
    A acc = f.identity();
    if (w < items) {
      const int64_t k = w / splits, lo = (w % splits) * seg;
      acc = fold_run<A>(x + kept.offset(k) + lo, std::min(seg, n - lo), lane, G, f);
    }
    acc = group_reduce<G>(acc, f);
    if (w < items && lane == 0) {
      if (splits == 1) out[w] = convert<T>(acc);
      else part[w] = acc;
    }
  }
}

// out[k] = fold over j < n of part[k * ks + j * js], in order of j by a warp's fixed tree.
template <ReduceOp OP, typename T, typename A>
__global__ void fold_partials_kernel(const A* __restrict__ part, int64_t nk, int64_t n, int64_t ks, int64_t js,
                                     T* __restrict__ out) {
  Fold<OP, A> f;
  constexpr int kWarps = kThreads / kWarpSize;
  const int lane = int(threadIdx.x) % kWarpSize;
  for (int64_t k = int64_t(blockIdx.x) * kWarps + threadIdx.x / kWarpSize; k < nk; k += int64_t(gridDim.x) * kWarps) {
    A acc = f.identity();
    for (int64_t j = lane; j < n; j += kWarpSize) acc = f(acc, part[k * ks + j * js]);
    acc = warp_reduce(acc, f);
    if (lane == 0) out[k] = convert<T>(acc);
  }
}

// x: (nr, nk) with row stride rstride (elements) and unit column stride; out (nk). Block (bx, by):
// threadIdx.x owns V adjacent columns, threadIdx.y strides over the rows of chunk blockIdx.y.
// One chunk: out gets the result; several: part (chunks, nk) gets each chunk's.
template <ReduceOp OP, typename T, typename A, int V>
__global__ void cols_kernel(const T* __restrict__ x, int64_t nr, int64_t rstride, int64_t nk, int64_t chunk,
                            T* __restrict__ out, A* __restrict__ part) {
  extern __shared__ unsigned char smem_raw[];
  A* sm = reinterpret_cast<A*>(smem_raw);  // (by, bx, V)
  using P = Pack<T, V>;
  Fold<OP, A> f;
  const int tx = int(threadIdx.x), ty = int(threadIdx.y), bx = int(blockDim.x), by = int(blockDim.y);
  const int64_t c0 = (int64_t(blockIdx.x) * bx + tx) * V;
  A acc[V];
#pragma unroll
  for (int v = 0; v < V; ++v) acc[v] = f.identity();
  const int64_t r0 = int64_t(blockIdx.y) * chunk, r1 = std::min(nr, r0 + chunk);
  if (c0 < nk) {
    const T* p = x + c0;
    int64_t r = r0 + ty;
    for (; r + 3 * by < r1; r += 4 * by) {
      const P a = *reinterpret_cast<const P*>(p + r * rstride);
      const P b = *reinterpret_cast<const P*>(p + (r + by) * rstride);
      const P c = *reinterpret_cast<const P*>(p + (r + 2 * by) * rstride);
      const P d = *reinterpret_cast<const P*>(p + (r + 3 * by) * rstride);
#pragma unroll
      for (int v = 0; v < V; ++v) {
        acc[v] = f(acc[v], convert<A>(a.v[v]));
        acc[v] = f(acc[v], convert<A>(b.v[v]));
        acc[v] = f(acc[v], convert<A>(c.v[v]));
        acc[v] = f(acc[v], convert<A>(d.v[v]));
      }
    }
    for (; r < r1; r += by) {
      const P a = *reinterpret_cast<const P*>(p + r * rstride);
#pragma unroll
      for (int v = 0; v < V; ++v) acc[v] = f(acc[v], convert<A>(a.v[v]));
    }
  }
#pragma unroll
  for (int v = 0; v < V; ++v) sm[(ty * bx + tx) * V + v] = acc[v];
  __syncthreads();
  for (int s = by / 2; s > 0; s >>= 1) {  // by is a power of two
    if (ty < s) {
#pragma unroll
      for (int v = 0; v < V; ++v) sm[(ty * bx + tx) * V + v] = f(sm[(ty * bx + tx) * V + v], sm[((ty + s) * bx + tx) * V + v]);
    }
    __syncthreads();
  }
  if (ty == 0 && c0 < nk) {
#pragma unroll
    for (int v = 0; v < V; ++v) {
      if (part) part[int64_t(blockIdx.y) * nk + c0 + v] = sm[tx * V + v];
      else out[c0 + v] = convert<T>(sm[tx * V + v]);
    }
  }
}

unsigned grid_for(int64_t items, int per_block) {
  const int64_t b = (items + per_block - 1) / per_block;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(b, fill_blocks() * 4)));
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename A>
Tensor partials(int64_t n, Device device) {
  return Tensor::empty({n}, dtype_of<A>::value, device);
}

template <ReduceOp OP, typename T>
void reduce_rows(const char* op, const T* x, const Geom& kept, int64_t nk, int64_t n, T* out, Device device) {
  using A = red_acc_t<T>;
  if (n <= kThreadRun) {
    rows_thread_kernel<OP, T, A><<<grid_for(nk, kThreads), kThreads, 0, stream()>>>(x, kept, nk, n, out);
    SPARTA_CUDA_LAUNCH_CHECK(op);
    return;
  }
  if (n <= kOctetRun) {
    rows_kernel<OP, T, A, 8><<<grid_for(nk, kThreads / 8), kThreads, 0, stream()>>>(x, kept, nk, n, 1, n, out,
                                                                                     nullptr);
    SPARTA_CUDA_LAUNCH_CHECK(op);
    return;
  }
  const int64_t warps_resident = fill_blocks() * (kThreads / kWarpSize);
  if (n <= kWarpRun || (n <= kWarpRunMax && nk >= warps_resident)) {
    rows_kernel<OP, T, A, kWarpSize><<<grid_for(nk, kThreads / kWarpSize), kThreads, 0, stream()>>>(
        x, kept, nk, n, 1, n, out, nullptr);
    SPARTA_CUDA_LAUNCH_CHECK(op);
    return;
  }
  // A block per run; runs cut into segments while there are fewer runs than the GPU holds blocks.
  int64_t splits = 1;
  if (nk < fill_blocks()) splits = std::max<int64_t>(1, std::min(ceil_div(fill_blocks(), nk), n / kMinSegment));
  const int64_t seg = ceil_div(n, splits);
  splits = ceil_div(n, seg);
  Tensor part = splits > 1 ? partials<A>(nk * splits, device) : Tensor();
  A* pp = splits > 1 ? static_cast<A*>(part.data_ptr()) : nullptr;
  rows_kernel<OP, T, A, kThreads><<<grid_for(nk * splits, 1), kThreads, 0, stream()>>>(x, kept, nk, n, splits, seg,
                                                                                        out, pp);
  SPARTA_CUDA_LAUNCH_CHECK(op);
  if (splits > 1) {
    fold_partials_kernel<OP, T, A><<<grid_for(nk, kThreads / kWarpSize), kThreads, 0, stream()>>>(pp, nk, splits,
                                                                                                  splits, 1, out);
    SPARTA_CUDA_LAUNCH_CHECK(op);
  }
}

template <ReduceOp OP, typename T, int V>
void reduce_cols(const char* op, const T* x, int64_t nr, int64_t rstride, int64_t nk, T* out, Device device) {
  using A = red_acc_t<T>;
  const int64_t groups = nk / V;
  int bx = 1;
  while (bx < groups && bx < kWarpSize) bx <<= 1;
  const int by = kThreads / bx;
  const int64_t col_blocks = ceil_div(groups, bx);
  // Chunks of rows fill the GPU, each thread folding at least ~16 rows.
  int64_t chunks = std::min(ceil_div(fill_blocks(), col_blocks), std::max<int64_t>(1, nr / (int64_t(by) * 16)));
  chunks = std::max<int64_t>(1, std::min<int64_t>(chunks, 65535));
  const int64_t chunk = ceil_div(nr, chunks);
  chunks = ceil_div(nr, chunk);
  Tensor part = chunks > 1 ? partials<A>(chunks * nk, device) : Tensor();
  A* pp = chunks > 1 ? static_cast<A*>(part.data_ptr()) : nullptr;
  const dim3 grid{unsigned(col_blocks), unsigned(chunks)}, block{unsigned(bx), unsigned(by)};
  cols_kernel<OP, T, A, V><<<grid, block, size_t(kThreads) * V * sizeof(A), stream()>>>(x, nr, rstride, nk, chunk,
                                                                                         out, pp);
  SPARTA_CUDA_LAUNCH_CHECK(op);
  if (chunks > 1) {
    fold_partials_kernel<OP, T, A><<<grid_for(nk, kThreads / kWarpSize), kThreads, 0, stream()>>>(pp, nk, chunks, 1,
                                                                                                  nk, out);
    SPARTA_CUDA_LAUNCH_CHECK(op);
  }
}

using sparta::Dims;
using sparta::coalesce;

Geom geom_of(const Dims& d) {
  Geom g{};
  if (d.size.empty()) {  // a single output at offset 0
    g.nd = 1;
    g.size[0] = 1;
    g.stride[0] = 0;
    return g;
  }
  g.nd = int(d.size.size());
  for (int i = 0; i < g.nd; ++i) {
    g.size[i] = d.size[size_t(i)];
    g.stride[i] = d.stride[size_t(i)];
  }
  return g;
}

template <ReduceOp OP, typename T>
void reduce_typed(const char* op, const Tensor& x, const std::vector<int>& axes, const Tensor& out) {
  Shape kept_size, kept_stride, red_size, red_stride;
  for (int d = 0; d < x.dim(); ++d) {
    const bool r = std::binary_search(axes.begin(), axes.end(), d);
    (r ? red_size : kept_size).push_back(x.shape(d));
    (r ? red_stride : kept_stride).push_back(x.strides()[size_t(d)]);
  }
  const Dims kept = coalesce(kept_size, kept_stride), red = coalesce(red_size, red_stride);
  const int64_t nk = numel_of(kept_size), nr = numel_of(red_size);
  const T* px = static_cast<const T*>(x.data_ptr());
  T* po = static_cast<T*>(out.data_ptr());
  if (nr == 0) {  // an empty reduction: every output is the identity
    reduce_rows<OP, T>(op, px, geom_of(Dims{}), nk, 0, po, x.device());
    return;
  }
  const bool rows = (red.size.empty() || (red.size.size() == 1 && red.stride[0] == 1)) &&
                    int(kept.size.size()) <= kGeomDims;
  const bool cols = !rows && kept.size.size() == 1 && kept.stride[0] == 1 && red.size.size() == 1;
  if (rows) {
    reduce_rows<OP, T>(op, px, geom_of(kept), nk, nr, po, x.device());
  } else if (cols) {
    constexpr int V = pack_width<T>();
    const int64_t rstride = red.stride[0];
    const bool packed = V > 1 && nk % V == 0 && reinterpret_cast<uintptr_t>(px) % 16 == 0 &&
                        (rstride * int64_t(sizeof(T))) % 16 == 0;
    if (packed) reduce_cols<OP, T, V>(op, px, nr, rstride, nk, po, x.device());
    else reduce_cols<OP, T, 1>(op, px, nr, rstride, nk, po, x.device());
  } else {
    // Kept axes first, reduced axes last, copied dense: each output becomes one contiguous run.
    std::vector<int> perm;
    for (int d = 0; d < x.dim(); ++d)
      if (!std::binary_search(axes.begin(), axes.end(), d)) perm.push_back(d);
    perm.insert(perm.end(), axes.begin(), axes.end());
    const Tensor y = contiguous(permute(x, perm)).detach();
    reduce_rows<OP, T>(op, static_cast<const T*>(y.data_ptr()), geom_of(Dims{{nk}, {nr}}), nk, nr, po, x.device());
  }
}

// ---- argmax ----------------------------------------------------------------------------------

template <typename A>
struct Best {
  A v;
  int64_t i;  // -1: none yet
};

template <typename A>
__device__ __forceinline__ bool is_nan(A v) {
  if constexpr (std::is_floating_point_v<A>) return v != v;
  else return false;
}

// The CPU scans in order keeping the first strict maximum, starting from element 0: so the first
// maximum among the non-NaN elements, or 0 when element 0 is NaN. Partials keep the earliest
// index among equal values, which makes the fold order irrelevant.
template <typename A>
struct BetterOf {
  __device__ __forceinline__ Best<A> operator()(const Best<A>& a, const Best<A>& b) const {
    if (a.i < 0) return b;
    if (b.i < 0) return a;
    return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
  }
};

// x: runs of n elements with stride `stride` starting at kept.offset(k); out (nk) i64.
template <typename T, int G>
__global__ void argmax_kernel(const T* __restrict__ x, Geom kept, int64_t nk, int64_t n, int64_t stride,
                              int64_t* __restrict__ out) {
  using A = red_acc_t<T>;
  constexpr int kGroups = kThreads / G;
  const int lane = int(threadIdx.x) % G, group = int(threadIdx.x) / G;
  for (int64_t base = int64_t(blockIdx.x) * kGroups; base < nk; base += int64_t(gridDim.x) * kGroups) {
    const int64_t k = base + group;
    const T* p = x + (k < nk ? kept.offset(k) : 0);
    Best<A> best{A(0), -1};
    for (int64_t i = lane; k < nk && i < n; i += G) {
      const A v = convert<A>(p[i * stride]);
      if (!is_nan(v) && (best.i < 0 || v > best.v)) best = {v, i};
    }
    best = group_reduce<G>(best, BetterOf<A>{});
    if (k < nk && lane == 0) out[k] = (n == 0 || best.i < 0 || is_nan(convert<A>(p[0]))) ? 0 : best.i;
  }
}

}  // namespace

Tensor reduce(ReduceOp op, const Tensor& x_in, const std::vector<int>& axes) {
  const Tensor x = x_in.detach();
  const char* name = op == ReduceOp::sum ? "sum" : op == ReduceOp::max ? "max" : "min";
  Shape out_shape = x.shape();
  for (int a : axes) out_shape[size_t(a)] = 1;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (out.numel() == 0) return out;
  SPARTA_CUDA_DISPATCH_ALL(x.dtype(), name, [&] {
    using T = scalar_t;
    switch (op) {
      case ReduceOp::sum: return reduce_typed<ReduceOp::sum, T>(name, x, axes, out);
      case ReduceOp::max: return reduce_typed<ReduceOp::max, T>(name, x, axes, out);
      case ReduceOp::min: return reduce_typed<ReduceOp::min, T>(name, x, axes, out);
    }
  });
  return out;
}

Tensor argmax(const Tensor& x_in, int axis) {
  Tensor x = x_in.detach();
  Shape out_shape = x.shape();
  out_shape[size_t(axis)] = 1;
  Tensor out = Tensor::empty(out_shape, DType::i64, x.device());
  if (out.numel() == 0) return out;
  Shape ks = x.shape(), kst = x.strides();
  ks.erase(ks.begin() + axis);
  kst.erase(kst.begin() + axis);
  Dims kept = coalesce(ks, kst);
  if (int(kept.size.size()) > kGeomDims) {
    x = contiguous(x).detach();
    kst = x.strides();
    kst.erase(kst.begin() + axis);
    kept = coalesce(ks, kst);
  }
  const int64_t nk = numel_of(ks), n = x.shape(axis), stride = x.strides()[size_t(axis)];
  const Geom g = geom_of(kept);
  int64_t* po = static_cast<int64_t*>(out.data_ptr());
  SPARTA_CUDA_DISPATCH_ALL(x.dtype(), "argmax", [&] {
    using T = scalar_t;
    const T* px = static_cast<const T*>(x.data_ptr());
    if (n <= 4096) {
      argmax_kernel<T, kWarpSize><<<grid_for(nk, kThreads / kWarpSize), kThreads, 0, stream()>>>(px, g, nk, n, stride, po);
    } else {
      argmax_kernel<T, kThreads><<<grid_for(nk, 1), kThreads, 0, stream()>>>(px, g, nk, n, stride, po);
    }
    SPARTA_CUDA_LAUNCH_CHECK("argmax");
  });
  return out;
}

}  // namespace cuda

Tensors Reduce::eval_cuda(const Tensors& in) { return {drop_reduced(cuda::reduce(op_, in[0], axes_), in[0])}; }

Tensors ArgMax::eval_cuda(const Tensors& in) {
  Tensor r = cuda::argmax(in[0], axis_);
  if (!keepdim_) r = squeeze(r, axis_).detach();
  return {r};
}

}  // namespace sparta

// CUDA layer normalisation over the last axis, forward and fused backward.
//
// x, y, dy, dx: (R, C); weight, bias: (C) or absent; mean, rstd: (R) in the accumulation type.
// Rows: eight lanes, a warp or a block of 256 per row by C (any C; 4096 is 16 per thread of a
// block). The forward is two-pass like the CPU's (mean, then the centred variance), re-reading
// the row, which the L1/L2 caches serve. The backward forms dx per row in one kernel; dweight and
// dbias are column sums over the rows: blocks of (32 columns, 8 row lanes) fold a chunk of rows in
// a fixed tree, and a second pass folds the chunks in order (Note [Deterministic reductions]).
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/cuda/check.h"
#include "core/cuda/math.cuh"
#include "core/cuda/reduce.cuh"
#include "core/cuda/types.cuh"
#include "core/ops.h"
#include "core/ops/norm/norm.h"

namespace sparta {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kColLanes = 32, kRowLanes = kThreads / kColLanes;  // the parameter-gradient block

template <typename A>
struct Add {
  __device__ __forceinline__ A operator()(A a, A b) const { return a + b; }
};

template <typename A>
struct Pair {
  A a, b;
};
template <typename A>
struct AddPair {
  __device__ __forceinline__ Pair<A> operator()(const Pair<A>& x, const Pair<A>& y) const {
    return {x.a + y.a, x.b + y.b};
  }
};

// `packed`: x and y are equally aligned modulo 16 bytes.
template <typename T, int G>
__global__ void layer_norm_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                  int64_t R, int64_t C, acc_t<T> eps, T* __restrict__ y, acc_t<T>* __restrict__ mean,
                                  acc_t<T>* __restrict__ rstd, bool packed) {
  using A = acc_t<T>;
  constexpr int kGroups = kThreads / G;
  const int lane = int(threadIdx.x) % G, group = int(threadIdx.x) / G;
  for (int64_t base = int64_t(blockIdx.x) * kGroups; base < R; base += int64_t(gridDim.x) * kGroups) {
    const int64_t r = base + group;
    const bool active = r < R;
    const T* p = x + (active ? r : 0) * C;
    A s = 0;
    if (active) for_run(p, C, lane, G, [&](int64_t, T v) { s += convert<A>(v); });
    const A mu = group_reduce<G>(s, Add<A>{}) / A(C);
    A q = 0;
    if (active) {
      for_run(p, C, lane, G, [&](int64_t, T v) {
        const A d = convert<A>(v) - mu;
        q += d * d;
      });
    }
    const A rs = A(1) / m_sqrt(group_reduce<G>(q, Add<A>{}) / A(C) + eps);
    if (!active) continue;
    if (lane == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
    map_run(p, y + r * C, C, lane, G, packed, [&](int64_t c, T v) {
      A h = (convert<A>(v) - mu) * rs;
      if (w) h *= convert<A>(w[c]);
      if (b) h += convert<A>(b[c]);
      return convert<T>(h);
    });
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) per row, g = dy * weight (or dy).
template <typename T, int G>
__global__ void layer_norm_dx_kernel(const T* __restrict__ x, const T* __restrict__ w, const acc_t<T>* __restrict__ mean,
                                     const acc_t<T>* __restrict__ rstd, const T* __restrict__ dy, int64_t R, int64_t C,
                                     T* __restrict__ dx) {
  using A = acc_t<T>;
  constexpr int kGroups = kThreads / G;
  const int lane = int(threadIdx.x) % G, group = int(threadIdx.x) / G;
  for (int64_t base = int64_t(blockIdx.x) * kGroups; base < R; base += int64_t(gridDim.x) * kGroups) {
    const int64_t r = base + group;
    const bool active = r < R;
    const T* xr = x + (active ? r : 0) * C;
    const T* gr = dy + (active ? r : 0) * C;
    const A mu = active ? mean[r] : A(0), rs = active ? rstd[r] : A(0);
    Pair<A> acc{0, 0};  // sums of g and g * xhat
    for (int64_t c = lane; active && c < C; c += G) {
      const A xh = (convert<A>(xr[c]) - mu) * rs;
      const A g = w ? convert<A>(gr[c]) * convert<A>(w[c]) : convert<A>(gr[c]);
      acc.a += g;
      acc.b += g * xh;
    }
    acc = group_reduce<G>(acc, AddPair<A>{});
    if (!active) continue;
    const A mean_g = acc.a / A(C), mean_gx = acc.b / A(C);
    T* o = dx + r * C;
    for (int64_t c = lane; c < C; c += G) {
      const A xh = (convert<A>(xr[c]) - mu) * rs;
      const A g = w ? convert<A>(gr[c]) * convert<A>(w[c]) : convert<A>(gr[c]);
      o[c] = convert<T>(rs * (g - mean_g - xh * mean_gx));
    }
  }
}

// Column sums of dy * xhat (-> dweight) and dy (-> dbias) over the rows of chunk blockIdx.y.
// One chunk: dw, db get the sums; several: part_w, part_b (chunks, C) get each chunk's.
template <typename T>
__global__ void layer_norm_params_kernel(const T* __restrict__ x, const T* __restrict__ dy,
                                         const acc_t<T>* __restrict__ mean, const acc_t<T>* __restrict__ rstd,
                                         int64_t R, int64_t C, int64_t chunk, acc_t<T>* __restrict__ dw,
                                         acc_t<T>* __restrict__ db, acc_t<T>* __restrict__ part_w,
                                         acc_t<T>* __restrict__ part_b) {
  using A = acc_t<T>;
  __shared__ A sw[kRowLanes][kColLanes], sb[kRowLanes][kColLanes];
  const int tx = int(threadIdx.x), ty = int(threadIdx.y);
  const int64_t c = int64_t(blockIdx.x) * kColLanes + tx;
  const int64_t r0 = int64_t(blockIdx.y) * chunk, r1 = std::min(R, r0 + chunk);
  A aw = 0, ab = 0;
  if (c < C) {
    for (int64_t r = r0 + ty; r < r1; r += kRowLanes) {
      const A gy = convert<A>(dy[r * C + c]);
      aw += gy * ((convert<A>(x[r * C + c]) - mean[r]) * rstd[r]);
      ab += gy;
    }
  }
  sw[ty][tx] = aw;
  sb[ty][tx] = ab;
  __syncthreads();
  for (int s = kRowLanes / 2; s > 0; s >>= 1) {
    if (ty < s) {
      sw[ty][tx] += sw[ty + s][tx];
      sb[ty][tx] += sb[ty + s][tx];
    }
    __syncthreads();
  }
  if (ty == 0 && c < C) {
    if (part_w) {
      part_w[int64_t(blockIdx.y) * C + c] = sw[0][tx];
      part_b[int64_t(blockIdx.y) * C + c] = sb[0][tx];
    } else {
      dw[c] = sw[0][tx];
      db[c] = sb[0][tx];
    }
  }
}

// out[c] = sum over j < chunks of part[j * C + c], a warp per column folding in a fixed tree.
template <typename A>
__global__ void fold_chunks_kernel(const A* __restrict__ part, int64_t chunks, int64_t C, A* __restrict__ out) {
  constexpr int kWarps = kThreads / kWarpSize;
  const int lane = int(threadIdx.x) % kWarpSize;
  for (int64_t c = int64_t(blockIdx.x) * kWarps + threadIdx.x / kWarpSize; c < C; c += int64_t(gridDim.x) * kWarps) {
    A acc = 0;
    for (int64_t j = lane; j < chunks; j += kWarpSize) acc += part[j * C + c];
    acc = warp_reduce(acc, Add<A>{});
    if (lane == 0) out[c] = acc;
  }
}

template <typename Launch>
void by_row_width(int64_t C, Launch&& launch) {
  if (C <= 64) launch(std::integral_constant<int, 8>{});
  else if (C <= 1024) launch(std::integral_constant<int, kWarpSize>{});
  else launch(std::integral_constant<int, kThreads>{});
}

unsigned grid_for(int64_t items, int per_block) {
  const int64_t b = (items + per_block - 1) / per_block;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(b, fill_blocks() * 4)));
}

template <typename T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.data_ptr()) : nullptr;
}

}  // namespace

void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y,
                const Tensor& mean, const Tensor& rstd) {
  const int64_t R = x.shape(0), C = x.shape(1);
  if (R == 0) return;
  const bool packed = reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == reinterpret_cast<uintptr_t>(y.data_ptr()) % 16;
  SPARTA_CUDA_DISPATCH_FLOAT(x.dtype(), "layer_norm", [&] {
    using T = scalar_t;
    using A = acc_t<T>;
    by_row_width(C, [&](auto g) {
      constexpr int G = decltype(g)::value;
      layer_norm_kernel<T, G><<<grid_for(R, kThreads / G), kThreads, 0, stream()>>>(
          static_cast<const T*>(x.data_ptr()), ptr_or_null<T>(weight), ptr_or_null<T>(bias), R, C, A(eps),
          static_cast<T*>(y.data_ptr()), static_cast<A*>(mean.data_ptr()), static_cast<A*>(rstd.data_ptr()), packed);
    });
    SPARTA_CUDA_LAUNCH_CHECK("layer_norm");
  });
}

void layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean_in, const Tensor& rstd_in,
                         const Tensor& dy, const Tensor& dx, const Tensor& dweight, const Tensor& dbias) {
  const char* op = "layer_norm_backward";
  const int64_t R = x.shape(0), C = x.shape(1);
  const Tensor mean = contiguous(mean_in).detach(), rstd = contiguous(rstd_in).detach();
  SPARTA_CUDA_DISPATCH_FLOAT(x.dtype(), op, [&] {
    using T = scalar_t;
    using A = acc_t<T>;
    const T* px = static_cast<const T*>(x.data_ptr());
    const T* pdy = static_cast<const T*>(dy.data_ptr());
    const A* pm = static_cast<const A*>(mean.data_ptr());
    const A* pr = static_cast<const A*>(rstd.data_ptr());
    if (R > 0) {
      by_row_width(C, [&](auto g) {
        constexpr int G = decltype(g)::value;
        layer_norm_dx_kernel<T, G><<<grid_for(R, kThreads / G), kThreads, 0, stream()>>>(
            px, ptr_or_null<T>(weight), pm, pr, pdy, R, C, static_cast<T*>(dx.data_ptr()));
      });
      SPARTA_CUDA_LAUNCH_CHECK(op);
    }
    // Row chunks fill the GPU, each thread folding at least ~16 rows.
    const int64_t col_blocks = (C + kColLanes - 1) / kColLanes;
    int64_t chunks = std::min((fill_blocks() + col_blocks - 1) / col_blocks, R / (int64_t(kRowLanes) * 16));
    chunks = std::max<int64_t>(1, std::min<int64_t>(chunks, 65535));
    const int64_t chunk = std::max<int64_t>(1, (R + chunks - 1) / chunks);
    chunks = std::max<int64_t>(1, (R + chunk - 1) / chunk);
    A* dw = static_cast<A*>(dweight.data_ptr());
    A* db = static_cast<A*>(dbias.data_ptr());
    Tensor part = chunks > 1 ? Tensor::empty({2, chunks, C}, dtype_of<A>::value, x.device()) : Tensor();
    A* part_w = chunks > 1 ? static_cast<A*>(part.data_ptr()) : nullptr;
    A* part_b = chunks > 1 ? part_w + chunks * C : nullptr;
    const dim3 grid{unsigned(col_blocks), unsigned(chunks)}, block{unsigned(kColLanes), unsigned(kRowLanes)};
    layer_norm_params_kernel<T><<<grid, block, 0, stream()>>>(px, pdy, pm, pr, R, C, chunk, dw, db, part_w, part_b);
    SPARTA_CUDA_LAUNCH_CHECK(op);
    if (chunks > 1) {
      fold_chunks_kernel<A><<<grid_for(C, kThreads / kWarpSize), kThreads, 0, stream()>>>(part_w, chunks, C, dw);
      SPARTA_CUDA_LAUNCH_CHECK(op);
      fold_chunks_kernel<A><<<grid_for(C, kThreads / kWarpSize), kThreads, 0, stream()>>>(part_b, chunks, C, db);
      SPARTA_CUDA_LAUNCH_CHECK(op);
    }
  });
}

}  // namespace cuda

Tensors LayerNorm::eval_cuda(const Tensors& in) { return eval_with(in, cuda::layer_norm); }

Tensors LayerNormBackward::eval_cuda(const Tensors& in) { return eval_with(in, cuda::layer_norm_backward); }

}  // namespace sparta

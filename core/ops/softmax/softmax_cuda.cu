// CUDA softmax / log_softmax over rows, and cross-entropy fused with log_softmax over the classes.
//
// A group of threads per row (eight lanes, a warp, or a block of 256 for rows over 2048 wide such
// as a 50304-token vocabulary). One pass forms the row's maximum and its sum of exponentials
// together (the online softmax: when the maximum grows, the sum so far is rescaled by
// exp(old - new)); a second pass writes the outputs. Accumulation in float (double for f64).
// The cross-entropy's row losses, their sum, the count of counted rows and the division all stay
// on the device, so neither direction reads anything back to the host.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "core/cuda/check.h"
#include "core/cuda/math.cuh"
#include "core/cuda/reduce.cuh"
#include "core/cuda/types.cuh"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/softmax/softmax.h"

namespace sparta {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// A row's running maximum m and sum s of exp(x - m).
template <typename A>
struct MaxSum {
  A m, s;
};

// exp(from - to), exactly 1 when they are equal: -inf maxima (empty partials, rows of -inf) then
// rescale by 1 instead of by exp(-inf + inf) = NaN.
template <typename A>
__device__ __forceinline__ A rescale(A from, A to) {
  return from == to ? A(1) : m_exp(from - to);
}

template <typename A>
__device__ __forceinline__ void push(MaxSum<A>& a, A v) {
  if (v > a.m) {
    a.s = a.s * rescale(a.m, v) + A(1);
    a.m = v;
  } else {
    a.s += rescale(v, a.m);  // a NaN v makes s NaN, as on the CPU
  }
}

template <typename A>
struct MergeMaxSum {
  __device__ __forceinline__ MaxSum<A> operator()(const MaxSum<A>& a, const MaxSum<A>& b) const {
    const A m = b.m > a.m ? b.m : a.m;
    return {m, a.s * rescale(a.m, m) + b.s * rescale(b.m, m)};
  }
};

// The (max, sum) of row p[0, n) as every thread of the group sees it.
template <int G, typename T, typename A = acc_t<T>>
__device__ __forceinline__ MaxSum<A> row_max_sum(const T* p, int64_t n, bool active, int lane) {
  MaxSum<A> ms{-std::numeric_limits<A>::infinity(), A(0)};
  if (active) for_run(p, n, lane, G, [&](int64_t, T v) { push(ms, convert<A>(v)); });
  return group_reduce<G>(ms, MergeMaxSum<A>{});
}

// x, out: (R, C) contiguous. `packed`: x and out are equally aligned modulo 16 bytes.
template <typename T, int G>
__global__ void softmax_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t R, int64_t C, bool log,
                               bool packed) {
  using A = acc_t<T>;
  constexpr int kGroups = kThreads / G;
  const int lane = int(threadIdx.x) % G, group = int(threadIdx.x) / G;
  for (int64_t base = int64_t(blockIdx.x) * kGroups; base < R; base += int64_t(gridDim.x) * kGroups) {
    const int64_t r = base + group;
    const bool active = r < R;
    const T* p = x + (active ? r : 0) * C;
    const MaxSum<A> ms = row_max_sum<G>(p, C, active, lane);
    if (!active) continue;
    T* o = out + r * C;
    if (log) {
      const A ls = m_log(ms.s);
      map_run(p, o, C, lane, G, packed, [&](int64_t, T v) { return convert<T>((convert<A>(v) - ms.m) - ls); });
    } else {
      const A inv = A(1) / ms.s;
      map_run(p, o, C, lane, G, packed, [&](int64_t, T v) { return convert<T>(m_exp(convert<A>(v) - ms.m) * inv); });
    }
  }
}

// logits (R, C), targets (R) -> loss (R): -log_softmax(logits)[target], 0 for ignored rows.
template <typename T, typename I, int G>
__global__ void cross_entropy_kernel(const T* __restrict__ x, const I* __restrict__ targets, int64_t R, int64_t C,
                                     int64_t ignore, acc_t<T>* __restrict__ loss) {
  using A = acc_t<T>;
  constexpr int kGroups = kThreads / G;
  const int lane = int(threadIdx.x) % G, group = int(threadIdx.x) / G;
  for (int64_t base = int64_t(blockIdx.x) * kGroups; base < R; base += int64_t(gridDim.x) * kGroups) {
    const int64_t r = base + group;
    const int64_t t = r < R ? int64_t(targets[r]) : ignore;
    const bool active = r < R && t != ignore;
    const T* p = x + (r < R ? r : 0) * C;
    const MaxSum<A> ms = row_max_sum<G>(p, C, active, lane);
    if (r < R && lane == 0) {
      // Targets were checked on the host; one outside the row still must not be read.
      if (!active) loss[r] = A(0);
      else if (t < 0 || t >= C) loss[r] = std::numeric_limits<A>::quiet_NaN();
      else loss[r] = m_log(ms.s) - (convert<A>(p[t]) - ms.m);
    }
  }
}

struct SumCount {
  double s;
  int64_t n;
};
struct AddSumCount {
  __device__ __forceinline__ SumCount operator()(const SumCount& a, const SumCount& b) const {
    return {a.s + b.s, a.n + b.n};
  }
};

// One block: out = (sum of the counted rows' losses) / count, or 0 when no row counts (as the
// CPU, in double, then rounded to the loss dtype).
template <typename A, typename I>
__global__ void cross_entropy_mean_kernel(const A* __restrict__ loss, const I* __restrict__ targets, int64_t R,
                                          int64_t ignore, A* __restrict__ out) {
  SumCount acc{0.0, 0};
  for (int64_t r = threadIdx.x; r < R; r += blockDim.x) {
    if (int64_t(targets[r]) == ignore) continue;
    acc.s += double(loss[r]);
    acc.n += 1;
  }
  acc = block_reduce(acc, AddSumCount{});
  if (threadIdx.x == 0) out[0] = A(acc.n > 0 ? acc.s / double(acc.n) : 0.0);
}

// One block: scale = g / count of counted rows, or 0 when none counts.
template <typename I>
__global__ void cross_entropy_scale_kernel(const I* __restrict__ targets, int64_t R, int64_t ignore,
                                           const double* __restrict__ g, double* __restrict__ scale) {
  int64_t n = 0;
  for (int64_t r = threadIdx.x; r < R; r += blockDim.x) n += int64_t(targets[r]) != ignore;
  n = block_reduce(n, [](int64_t a, int64_t b) { return a + b; });
  if (threadIdx.x == 0) scale[0] = n > 0 ? g[0] / double(n) : 0.0;
}

// dlogits = (softmax(logits) - onehot(target)) * scale per row; ignored rows get 0.
template <typename T, typename I, int G>
__global__ void cross_entropy_backward_kernel(const T* __restrict__ x, const I* __restrict__ targets, int64_t R,
                                              int64_t C, int64_t ignore, const double* __restrict__ scale,
                                              T* __restrict__ d, bool packed) {
  using A = acc_t<T>;
  constexpr int kGroups = kThreads / G;
  const int lane = int(threadIdx.x) % G, group = int(threadIdx.x) / G;
  const A sc = A(scale[0]);
  for (int64_t base = int64_t(blockIdx.x) * kGroups; base < R; base += int64_t(gridDim.x) * kGroups) {
    const int64_t r = base + group;
    const int64_t t = r < R ? int64_t(targets[r]) : ignore;
    const bool active = r < R && t != ignore;
    const T* p = x + (r < R ? r : 0) * C;
    const MaxSum<A> ms = row_max_sum<G>(p, C, active, lane);
    if (r >= R) continue;
    T* o = d + r * C;
    if (!active) {
      map_run(p, o, C, lane, G, packed, [&](int64_t, T) { return convert<T>(A(0)); });
      continue;
    }
    const A inv = A(1) / ms.s;
    map_run(p, o, C, lane, G, packed, [&](int64_t c, T v) {
      A q = m_exp(convert<A>(v) - ms.m) * inv;
      if (c == t) q -= A(1);
      return convert<T>(q * sc);
    });
  }
}

// Launches kernel<G> with G lanes per row chosen by the row length.
template <typename Launch>
void by_row_width(int64_t C, Launch&& launch) {
  if (C <= 64) launch(std::integral_constant<int, 8>{});
  else if (C <= 2048) launch(std::integral_constant<int, kWarpSize>{});
  else launch(std::integral_constant<int, kThreads>{});
}

unsigned grid_for(int64_t rows, int rows_per_block) {
  const int64_t b = (rows + rows_per_block - 1) / rows_per_block;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(b, fill_blocks() * 4)));
}

bool same_alignment(const void* a, const void* b) {
  return reinterpret_cast<uintptr_t>(a) % 16 == reinterpret_cast<uintptr_t>(b) % 16;
}

}  // namespace

void softmax_rows(const Tensor& x, const Tensor& out, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  const int64_t R = x.shape(0), C = x.shape(1);
  if (R == 0 || C == 0) return;
  const bool packed = same_alignment(x.data_ptr(), out.data_ptr());
  SPARTA_CUDA_DISPATCH_FLOAT(x.dtype(), op, [&] {
    using T = scalar_t;
    by_row_width(C, [&](auto g) {
      constexpr int G = decltype(g)::value;
      softmax_kernel<T, G><<<grid_for(R, kThreads / G), kThreads, 0, stream()>>>(
          static_cast<const T*>(x.data_ptr()), static_cast<T*>(out.data_ptr()), R, C, log, packed);
    });
    SPARTA_CUDA_LAUNCH_CHECK(op);
  });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  const char* op = "cross_entropy";
  const int64_t R = logits.shape(0), C = logits.shape(1);
  const DType acc = accumulation_dtype(logits.dtype());
  Tensor out = Tensor::empty({}, acc, logits.device());
  Tensor loss = Tensor::empty({std::max<int64_t>(R, 1)}, acc, logits.device());
  SPARTA_CUDA_DISPATCH_FLOAT(logits.dtype(), op, [&] {
    using T = scalar_t;
    using A = acc_t<T>;
    SPARTA_DISPATCH_INDEX(targets.dtype(), op, [&] {
      using I = scalar_t;
      const I* pt = static_cast<const I*>(targets.data_ptr());
      A* pl = static_cast<A*>(loss.data_ptr());
      if (R > 0) {
        by_row_width(C, [&](auto g) {
          constexpr int G = decltype(g)::value;
          cross_entropy_kernel<T, I, G><<<grid_for(R, kThreads / G), kThreads, 0, stream()>>>(
              static_cast<const T*>(logits.data_ptr()), pt, R, C, ignore_index, pl);
        });
        SPARTA_CUDA_LAUNCH_CHECK(op);
      }
      cross_entropy_mean_kernel<A, I><<<1, 1024, 0, stream()>>>(pl, pt, R, ignore_index,
                                                               static_cast<A*>(out.data_ptr()));
      SPARTA_CUDA_LAUNCH_CHECK(op);
    });
  });
  return out;
}

void cross_entropy_backward_rows(const Tensor& logits, const Tensor& targets, int64_t ignore_index, const Tensor& g,
                                 const Tensor& dlogits) {
  const char* op = "cross_entropy_backward";
  const int64_t R = logits.shape(0), C = logits.shape(1);
  if (R == 0 || C == 0) return;
  Tensor scale = Tensor::empty({}, DType::f64, logits.device());
  const bool packed = same_alignment(logits.data_ptr(), dlogits.data_ptr());
  SPARTA_CUDA_DISPATCH_FLOAT(logits.dtype(), op, [&] {
    using T = scalar_t;
    SPARTA_DISPATCH_INDEX(targets.dtype(), op, [&] {
      using I = scalar_t;
      const I* pt = static_cast<const I*>(targets.data_ptr());
      double* ps = static_cast<double*>(scale.data_ptr());
      cross_entropy_scale_kernel<I><<<1, 1024, 0, stream()>>>(pt, R, ignore_index,
                                                             static_cast<const double*>(g.data_ptr()), ps);
      SPARTA_CUDA_LAUNCH_CHECK(op);
      by_row_width(C, [&](auto gw) {
        constexpr int G = decltype(gw)::value;
        cross_entropy_backward_kernel<T, I, G><<<grid_for(R, kThreads / G), kThreads, 0, stream()>>>(
            static_cast<const T*>(logits.data_ptr()), pt, R, C, ignore_index, ps,
            static_cast<T*>(dlogits.data_ptr()), packed);
      });
      SPARTA_CUDA_LAUNCH_CHECK(op);
    });
  });
}

}  // namespace cuda

Tensors Softmax::eval_cuda(const Tensors& in) { return eval_rows(in, cuda::softmax_rows); }

Tensors CrossEntropy::eval_cuda(const Tensors& in) {
  const Tensor logits = contiguous(in[0].detach()), targets = contiguous(in[1].detach());
  return {cuda::cross_entropy(logits, targets, ignore_index_)};
}

Tensors CrossEntropyBackward::eval_cuda(const Tensors& in) {
  const Tensor logits = contiguous(in[0].detach()), targets = contiguous(in[1].detach());
  const Tensor g = cast(in[2].detach(), DType::f64).detach();
  Tensor d = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  cuda::cross_entropy_backward_rows(logits, targets, ignore_index_, g, d);
  return {d};
}

}  // namespace sparta

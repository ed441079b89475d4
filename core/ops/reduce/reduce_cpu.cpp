#include <tbb/parallel_for.h>

#include <algorithm>
#include <limits>
#include <numeric>

#include "core/cpu/convert.h"
#include "core/dispatch.h"
#include "core/loop_layout.h"
#include "core/ops.h"
#include "core/ops/reduce/reduce.h"

namespace sparta::cpu {
namespace {

// Fixed chunk of a reduced run: partial results are formed per chunk and combined in order.
constexpr int64_t kChunk = 16384;

template <typename T> struct acc_type { using type = float; };
template <> struct acc_type<double> { using type = double; };
template <> struct acc_type<int64_t> { using type = int64_t; };
template <> struct acc_type<int32_t> { using type = int64_t; };
template <> struct acc_type<uint8_t> { using type = int64_t; };
template <> struct acc_type<bool> { using type = int64_t; };
// Partial results combine in the widest type of their kind.
template <typename A> struct wide_type { using type = double; };
template <> struct wide_type<int64_t> { using type = int64_t; };

template <ReduceOp OP, typename A>
inline A identity() {
  if constexpr (OP == ReduceOp::sum) return A(0);
  else if constexpr (OP == ReduceOp::max) return std::numeric_limits<A>::lowest();
  else return std::numeric_limits<A>::max();
}

template <ReduceOp OP, typename A>
inline A combine(A a, A b) {
  if constexpr (OP == ReduceOp::sum) return a + b;
  else if constexpr (OP == ReduceOp::max) return b > a ? b : a;
  else return b < a ? b : a;
}

// Reduces a contiguous run with eight independent lanes (so it vectorises).
template <ReduceOp OP, typename T, typename A>
A reduce_run(const T* p, int64_t n) {
  A lane[8];
  for (auto& l : lane) l = identity<OP, A>();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) lane[j] = combine<OP, A>(lane[j], convert<A>(p[i + j]));
  }
  A r = identity<OP, A>();
  for (; i < n; ++i) r = combine<OP, A>(r, convert<A>(p[i]));
  A a = combine<OP, A>(combine<OP, A>(lane[0], lane[1]), combine<OP, A>(lane[2], lane[3]));
  A b = combine<OP, A>(combine<OP, A>(lane[4], lane[5]), combine<OP, A>(lane[6], lane[7]));
  return combine<OP, A>(combine<OP, A>(a, b), r);
}

template <ReduceOp OP, typename T, typename A, typename W>
W reduce_long_run(const T* p, int64_t n) {
  if (n <= kChunk) return W(reduce_run<OP, T, A>(p, n));
  int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<W> part(static_cast<size_t>(chunks));
  tbb::parallel_for(int64_t(0), chunks, [&](int64_t c) {
    int64_t b = c * kChunk;
    part[size_t(c)] = W(reduce_run<OP, T, A>(p + b, std::min(kChunk, n - b)));
  });
  W r = identity<OP, W>();
  for (W v : part) r = combine<OP, W>(r, v);
  return r;
}

using sparta::Dims;
using sparta::coalesce;

// Element offset of the linear index i over dims.
inline int64_t offset_of(const Dims& d, int64_t i) {
  int64_t off = 0;
  for (int k = int(d.size.size()) - 1; k >= 0; --k) {
    off += (i % d.size[k]) * d.stride[k];
    i /= d.size[k];
  }
  return off;
}

template <ReduceOp OP, typename T>
Tensor reduce_typed(const Tensor& x, const std::vector<int>& axes, DType out_dtype) {
  using A = typename acc_type<T>::type;
  using W = typename wide_type<A>::type;
  using O = T;
  Shape kept_size, kept_stride, red_size, red_stride, out_shape = x.shape();
  for (int d = 0; d < x.dim(); ++d) {
    if (std::binary_search(axes.begin(), axes.end(), d)) {
      red_size.push_back(x.shape()[d]);
      red_stride.push_back(x.strides()[d]);
      out_shape[d] = 1;
    } else {
      kept_size.push_back(x.shape()[d]);
      kept_stride.push_back(x.strides()[d]);
    }
  }
  Dims kept = coalesce(kept_size, kept_stride), red = coalesce(red_size, red_stride);
  int64_t nk = numel_of(kept.size), nr = numel_of(red.size);
  Tensor out = Tensor::empty(out_shape, out_dtype);
  O* o = out.data<O>();
  const T* base = static_cast<const T*>(x.data_ptr());
  bool rows = red.size.size() <= 1 && (red.size.empty() || red.stride[0] == 1);
  bool cols = !rows && kept.size.size() == 1 && kept.stride[0] == 1;
  if (rows) {
    // Each output is one contiguous run.
    auto body = [&](int64_t k) { o[k] = convert<O>(reduce_long_run<OP, T, A, W>(base + offset_of(kept, k), nr)); };
    if (nk >= 16) tbb::parallel_for(int64_t(0), nk, body);
    else for (int64_t k = 0; k < nk; ++k) body(k);
  } else if (cols) {
    // Outputs are contiguous: accumulate whole rows into them (vectorised over the outputs);
    // the reduced index is split into fixed chunks whose partial rows combine in order.
    int64_t chunk = std::max<int64_t>(1, kChunk / std::max<int64_t>(nk, 1));
    int64_t chunks = (nr + chunk - 1) / chunk;
    std::vector<std::vector<W>> part(static_cast<size_t>(chunks));
    tbb::parallel_for(int64_t(0), chunks, [&](int64_t c) {
      std::vector<A> acc(size_t(nk), identity<OP, A>());
      for (int64_t r = c * chunk; r < std::min(nr, (c + 1) * chunk); ++r) {
        const T* p = base + offset_of(red, r);
        for (int64_t k = 0; k < nk; ++k) acc[k] = combine<OP, A>(acc[k], convert<A>(p[k]));
      }
      part[size_t(c)].assign(acc.begin(), acc.end());
    });
    for (int64_t k = 0; k < nk; ++k) {
      W r = identity<OP, W>();
      for (auto& p : part) r = combine<OP, W>(r, p[size_t(k)]);
      o[k] = convert<O>(r);
    }
  } else {
    // General layout: gather each output's elements through the strides.
    tbb::parallel_for(int64_t(0), nk, [&](int64_t k) {
      const T* p = base + offset_of(kept, k);
      W r = identity<OP, W>();
      for (int64_t i = 0; i < nr; ++i) r = combine<OP, W>(r, W(convert<A>(p[offset_of(red, i)])));
      o[k] = convert<O>(r);
    });
  }
  return out;
}

}  // namespace

Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int>& axes) {
  return SPARTA_DISPATCH_ALL(x.dtype(), "reduce", [&]() -> Tensor {
    using T = scalar_t;
    switch (op) {
      case ReduceOp::sum: return reduce_typed<ReduceOp::sum, T>(x, axes, x.dtype());
      case ReduceOp::max: return reduce_typed<ReduceOp::max, T>(x, axes, x.dtype());
      case ReduceOp::min: return reduce_typed<ReduceOp::min, T>(x, axes, x.dtype());
    }
    return Tensor();
  });
}

Tensor argmax(const Tensor& x, int axis) {
  Shape out_shape = x.shape();
  out_shape[axis] = 1;
  Tensor out = Tensor::empty(out_shape, DType::i64);
  int64_t n = x.shape()[axis], stride = x.strides()[axis];
  Shape ks = x.shape(), kst = x.strides();
  ks.erase(ks.begin() + axis);
  kst.erase(kst.begin() + axis);
  Dims kept = coalesce(ks, kst);
  int64_t nk = numel_of(kept.size);
  int64_t* o = out.data<int64_t>();
  SPARTA_DISPATCH_ALL(x.dtype(), "argmax", [&] {
    using T = scalar_t;
    using C = compute_t<T>;
    const T* base = static_cast<const T*>(x.data_ptr());
    tbb::parallel_for(int64_t(0), nk, [&](int64_t k) {
      const T* p = base + offset_of(kept, k);
      int64_t best = 0;
      C bv = convert<C>(p[0]);
      for (int64_t i = 1; i < n; ++i) {
        C v = convert<C>(p[i * stride]);
        if (v > bv) {  // strict: the first maximum wins, as in NumPy and PyTorch
          bv = v;
          best = i;
        }
      }
      o[k] = best;
    });
  });
  return out;
}

}  // namespace sparta::cpu

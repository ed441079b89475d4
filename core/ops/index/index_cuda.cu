// CUDA kernels of the joining and indexing ops (index.h).
//
// Reads go through each operand's strides: a tensor is walked over its dimensions merged where
// the strides allow (Walk), with the indexed axis kept apart, so a strided x is read in place.
// Copies move raw bits (any dtype).
//
// Determinism of index_add and scatter_add: no atomics. The targets are sorted stably (CUB radix
// sort of (target, position) pairs), and one thread per output element walks its run of the
// sorted list, so every output element sums its additions in index order in the accumulation
// type and is rounded once: the CPU's order, bit for bit, whatever the launch shape.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <climits>
#include <cstring>

#include "core/cuda/check.h"
#include "core/cuda/strided.cuh"
#include "core/cuda/types.cuh"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/index/index.h"

namespace sparta {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxDims = 16;

// A row-major walk over `size`, giving an operand's element offset through `stride`; dimension
// `axis` is the indexed one, whose coordinate the kernel replaces by an index value.
struct Walk {
  int dims = 0, axis = 0;
  int64_t size[kMaxDims];
  int64_t stride[kMaxDims];
};

// Drops dimensions of size 1 and merges neighbours whose strides allow it, never the axis.
Walk make_walk(const Shape& size, const Shape& stride, int axis, const char* op) {
  Walk w;
  w.axis = -1;
  for (int d = 0; d < int(size.size()); ++d) {
    const bool is_axis = d == axis;
    if (size[size_t(d)] == 1 && !is_axis) continue;
    const bool after_axis = w.dims > 0 && w.axis == w.dims - 1;
    if (!is_axis && w.dims > 0 && !after_axis && w.stride[w.dims - 1] == stride[size_t(d)] * size[size_t(d)]) {
      w.size[w.dims - 1] *= size[size_t(d)];
      w.stride[w.dims - 1] = stride[size_t(d)];
      continue;
    }
    SPARTA_CHECK(w.dims < kMaxDims, op, "tensors of more than ", kMaxDims, " dimensions are not supported, got shape ",
                 shape_str(size));
    if (is_axis) w.axis = w.dims;
    w.size[w.dims] = size[size_t(d)];
    w.stride[w.dims] = stride[size_t(d)];
    ++w.dims;
  }
  return w;
}

// Offset of element e of the walk, with the axis coordinate c replaced by idx[c] (index_select:
// a 1-D index) or by idx[e] (gather, scatter_add: an index of the walk's shape).
template <typename I, bool kPerElement>
__device__ int64_t walk_offset(const Walk& w, int64_t e, const I* idx) {
  int64_t off = 0, r = e;
  for (int d = w.dims - 1; d >= 0; --d) {
    int64_t c = r % w.size[d];
    r /= w.size[d];
    if (d == w.axis) c = int64_t(idx[kPerElement ? e : c]);
    off += c * w.stride[d];
  }
  return off;
}

// ---- index range ------------------------------------------------------------------------------

// One block reduces the whole index: checks are read back once per call, and a single block
// saves a second pass over per-block partials (index tensors are small next to the data).
constexpr int kBoundsThreads = 1024;

template <typename I>
__global__ void bounds_kernel(const I* idx, int64_t n, int64_t* out) {
  __shared__ int64_t lo_s[kBoundsThreads], hi_s[kBoundsThreads];
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const int64_t v = int64_t(idx[i]);
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  lo_s[threadIdx.x] = lo;
  hi_s[threadIdx.x] = hi;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (int(threadIdx.x) < s) {
      if (lo_s[threadIdx.x + s] < lo_s[threadIdx.x]) lo_s[threadIdx.x] = lo_s[threadIdx.x + s];
      if (hi_s[threadIdx.x + s] > hi_s[threadIdx.x]) hi_s[threadIdx.x] = hi_s[threadIdx.x + s];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    out[0] = lo_s[0];
    out[1] = hi_s[0];
  }
}

// Every index must lie in [0, size); the smallest or largest entry that does not is reported.
void check_range(const Tensor& idx, int64_t size, const char* op, int axis, const Shape& shape) {
  auto [lo, hi] = index_bounds(idx);
  if (idx.numel() == 0) return;
  const int64_t bad = lo < 0 ? lo : hi;
  SPARTA_CHECK(lo >= 0 && hi < size, op, "index ", bad, " is out of range for axis ", axis, " of size ", size,
               " (x shape ", shape_str(shape), ")");
}

// ---- copies -----------------------------------------------------------------------------------

// out (contiguous, the walk's shape) = x at the walk's offsets, the axis read through idx.
template <typename B, typename I, bool kPerElement>
__global__ void select_kernel(Walk w, const B* x, const I* idx, B* out, int64_t n) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    out[e] = x[walk_offset<I, kPerElement>(w, e, idx)];
}

// ---- sorted adds ------------------------------------------------------------------------------

template <typename I>
__global__ void keys_from_index(const I* idx, int64_t n, uint64_t* keys, int64_t* order) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    keys[e] = uint64_t(idx[e]);
    order[e] = e;
  }
}

// scatter_add's targets: the element offset in (contiguous) out of every index element.
template <typename I>
__global__ void keys_from_walk(Walk w, const I* idx, int64_t n, uint64_t* keys, int64_t* order) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    keys[e] = uint64_t(walk_offset<I, true>(w, e, idx));
    order[e] = e;
  }
}

// The keys sorted stably (equal keys keep their order), with each one's original position.
struct Sorted {
  Tensor keys, order;  // i64 on the device; keys hold the uint64_t bits
};

template <typename MakeKeys>
Sorted sort_keys(int64_t n, uint64_t bound, Device dev, const char* op, MakeKeys make_keys) {
  SPARTA_CHECK(n <= INT_MAX, op, "at most ", INT_MAX, " index entries are supported, got ", n);
  Tensor keys = Tensor::empty({n}, DType::i64, dev), order = Tensor::empty({n}, DType::i64, dev);
  make_keys(reinterpret_cast<uint64_t*>(keys.data_ptr()), static_cast<int64_t*>(order.data_ptr()));
  Sorted out{Tensor::empty({n}, DType::i64, dev), Tensor::empty({n}, DType::i64, dev)};
  int end_bit = 1;
  while (end_bit < 64 && (uint64_t(1) << end_bit) < bound) ++end_bit;
  const uint64_t* kin = reinterpret_cast<const uint64_t*>(keys.data_ptr());
  uint64_t* kout = reinterpret_cast<uint64_t*>(out.keys.data_ptr());
  const int64_t* vin = static_cast<const int64_t*>(order.data_ptr());
  int64_t* vout = static_cast<int64_t*>(out.order.data_ptr());
  size_t temp_bytes = 0;
  SPARTA_CUDA_CHECK(op, cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, kin, kout, vin, vout, int(n), 0, end_bit,
                                                        stream()));
  Tensor temp = Tensor::empty({int64_t(std::max<size_t>(temp_bytes, 1))}, DType::u8, dev);
  SPARTA_CUDA_CHECK(op, cub::DeviceRadixSort::SortPairs(temp.data_ptr(), temp_bytes, kin, kout, vin, vout, int(n), 0,
                                                        end_bit, stream()));
  return out;
}

// index_add: out (outer, n, inner) already holds x. Thread (o, s, k) with s the first of a run of
// equal sorted keys j adds src[o, order[s..], k] into out[o, j, k], in order.
template <typename T, typename A>
__global__ void index_add_runs(T* out, const T* src, const uint64_t* keys, const int64_t* order, int64_t outer,
                               int64_t n, int64_t m, int64_t inner) {
  const int64_t total = outer * m * inner;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = e % inner, t = e / inner, s = t % m, o = t / m;
    const uint64_t j = keys[s];
    if (s > 0 && keys[s - 1] == j) continue;
    T* dst = out + (o * n + int64_t(j)) * inner + k;
    A sum = convert<A>(*dst);
    for (int64_t u = s; u < m && keys[u] == j; ++u) sum += convert<A>(src[(o * m + order[u]) * inner + k]);
    *dst = convert<T>(sum);
  }
}

// scatter_add: out (contiguous) already holds x; the run of sorted targets starting at s adds
// src[order[s..]] (src contiguous, the index's shape) into out[target], in order.
template <typename T, typename A>
__global__ void scatter_add_runs(T* out, const T* src, const uint64_t* keys, const int64_t* order, int64_t count) {
  for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < count; s += int64_t(gridDim.x) * blockDim.x) {
    const uint64_t j = keys[s];
    if (s > 0 && keys[s - 1] == j) continue;
    A sum = convert<A>(out[j]);
    for (int64_t u = s; u < count && keys[u] == j; ++u) sum += convert<A>(src[order[u]]);
    out[j] = convert<T>(sum);
  }
}

int64_t prod(const Shape& s, int from, int to) {
  int64_t n = 1;
  for (int d = from; d < to; ++d) n *= s[size_t(d)];
  return n;
}

// A fresh contiguous copy of x: the buffer the adds go into.
Tensor copy_of(const Tensor& x) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  copy_(out, x);
  return out;
}

}  // namespace

std::pair<int64_t, int64_t> index_bounds(const Tensor& index) {
  if (index.numel() == 0) return {0, -1};
  const Tensor idx = index.contiguous();
  Tensor out = Tensor::empty({2}, DType::i64, idx.device());
  SPARTA_DISPATCH_INDEX(idx.dtype(), "index_bounds", [&] {
    bounds_kernel<scalar_t><<<1, kBoundsThreads, 0, stream()>>>(static_cast<const scalar_t*>(idx.data_ptr()),
                                                               idx.numel(), static_cast<int64_t*>(out.data_ptr()));
    SPARTA_CUDA_LAUNCH_CHECK("index_bounds");
  });
  const std::vector<int64_t> v = out.to_vector<int64_t>();
  return {v[0], v[1]};
}

// Contiguous inputs are one 2-D copy each (a row of n_j * inner elements per outer position);
// strided ones go through the elementwise copy into their slice of the output.
Tensor concat(const Tensors& xs, int axis) {
  const Tensor& x0 = xs[0];
  Shape shape = x0.shape();
  int64_t total = 0;
  for (const Tensor& x : xs) total += x.shape()[size_t(axis)];
  shape[size_t(axis)] = total;
  Tensor out = Tensor::empty(shape, x0.dtype(), x0.device());
  if (out.numel() == 0) return out;
  const int64_t outer = prod(shape, 0, axis), inner = prod(shape, axis + 1, int(shape.size()));
  const size_t item = out.itemsize(), row_bytes = size_t(total * inner) * item;
  char* base = static_cast<char*>(out.data_ptr());
  int64_t start = 0;
  for (const Tensor& x : xs) {
    const int64_t n = x.shape()[size_t(axis)];
    if (n == 0) continue;
    const size_t bytes = size_t(n * inner) * item;
    char* dst = base + size_t(start * inner) * item;
    if (x.is_contiguous() && outer == 1) {
      SPARTA_CUDA_CHECK("concat", cudaMemcpyAsync(dst, x.data_ptr(), bytes, cudaMemcpyDeviceToDevice, stream()));
    } else if (x.is_contiguous() && row_bytes <= size_t(INT_MAX)) {  // 2-D copies limit their pitch
      SPARTA_CUDA_CHECK("concat", cudaMemcpy2DAsync(dst, row_bytes, x.data_ptr(), bytes, bytes, size_t(outer),
                                                    cudaMemcpyDeviceToDevice, stream()));
    } else {
      const Shape& st = out.strides();
      Tensor region(out.storage(), x.shape(), st, out.offset() + start * st[size_t(axis)], out.dtype());
      copy_(region, x);
    }
    start += n;
  }
  return out;
}

// out (outer, m, inner) contiguous; out[o, i, :] = x[o, index[i], :].
Tensor index_select(const Tensor& x, int axis, const Tensor& index) {
  const Tensor idx = index.contiguous();
  check_range(idx, x.shape()[size_t(axis)], "index_select", axis, x.shape());
  Shape shape = x.shape();
  shape[size_t(axis)] = idx.numel();
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  const Walk w = make_walk(shape, x.strides(), axis, "index_select");
  SPARTA_DISPATCH_INDEX(idx.dtype(), "index_select", [&] {
    using I = scalar_t;
    SPARTA_DISPATCH_BITS(out.itemsize(), "index_select", [&] {
      select_kernel<B, I, false><<<blocks(n, kThreads), kThreads, 0, stream()>>>(
          w, static_cast<const B*>(x.data_ptr()), static_cast<const I*>(idx.data_ptr()),
          static_cast<B*>(out.data_ptr()), n);
      SPARTA_CUDA_LAUNCH_CHECK("index_select");
    });
  });
  return out;
}

// out has index's shape; out[o, i, k] = x[o, index[o, i, k], k] (x read over index's extent).
Tensor gather(const Tensor& x, int axis, const Tensor& index) {
  const Tensor idx = index.contiguous();
  check_range(idx, x.shape()[size_t(axis)], "gather", axis, x.shape());
  Tensor out = Tensor::empty(idx.shape(), x.dtype(), x.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  const Walk w = make_walk(idx.shape(), x.strides(), axis, "gather");
  SPARTA_DISPATCH_INDEX(idx.dtype(), "gather", [&] {
    using I = scalar_t;
    SPARTA_DISPATCH_BITS(out.itemsize(), "gather", [&] {
      select_kernel<B, I, true><<<blocks(n, kThreads), kThreads, 0, stream()>>>(
          w, static_cast<const B*>(x.data_ptr()), static_cast<const I*>(idx.data_ptr()),
          static_cast<B*>(out.data_ptr()), n);
      SPARTA_CUDA_LAUNCH_CHECK("gather");
    });
  });
  return out;
}

// out = x; out[o, index[i], k] += src[o, i, k], i in order for each output element.
Tensor index_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src) {
  const Tensor idx = index.contiguous();
  const int64_t m = idx.numel(), n = x.shape()[size_t(axis)];
  check_range(idx, n, "index_add", axis, x.shape());
  Tensor out = copy_of(x);
  const int64_t outer = prod(x.shape(), 0, axis), inner = prod(x.shape(), axis + 1, x.dim());
  if (m == 0 || out.numel() == 0) return out;
  const Tensor s = src.contiguous();
  const Device dev = x.device();
  const Sorted sorted = sort_keys(m, uint64_t(n), dev, "index_add", [&](uint64_t* keys, int64_t* order) {
    SPARTA_DISPATCH_INDEX(idx.dtype(), "index_add", [&] {
      keys_from_index<scalar_t><<<blocks(m, kThreads), kThreads, 0, stream()>>>(
          static_cast<const scalar_t*>(idx.data_ptr()), m, keys, order);
      SPARTA_CUDA_LAUNCH_CHECK("index_add");
    });
  });
  const int64_t total = outer * m * inner;
  SPARTA_CUDA_DISPATCH_FLOAT(x.dtype(), "index_add", [&] {
    using T = scalar_t;
    index_add_runs<T, acc_t<T>><<<blocks(total, kThreads), kThreads, 0, stream()>>>(
        static_cast<T*>(out.data_ptr()), static_cast<const T*>(s.data_ptr()),
        reinterpret_cast<const uint64_t*>(sorted.keys.data_ptr()), static_cast<const int64_t*>(sorted.order.data_ptr()),
        outer, n, m, inner);
    SPARTA_CUDA_LAUNCH_CHECK("index_add");
  });
  return out;
}

// out = x; out[o, index[o, i, k], k] += src[o, i, k] over index's extent, i in order.
Tensor scatter_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src) {
  const Tensor idx = index.contiguous();
  const int64_t count = idx.numel();
  check_range(idx, x.shape()[size_t(axis)], "scatter_add", axis, x.shape());
  Tensor out = copy_of(x);
  if (count == 0) return out;
  // src is index-shaped (ops.h narrows it), so once contiguous its element e pairs with idx's.
  const Tensor s = src.contiguous();
  const Walk w = make_walk(idx.shape(), out.strides(), axis, "scatter_add");
  const Sorted sorted =
      sort_keys(count, uint64_t(out.numel()), x.device(), "scatter_add", [&](uint64_t* keys, int64_t* order) {
        SPARTA_DISPATCH_INDEX(idx.dtype(), "scatter_add", [&] {
          keys_from_walk<scalar_t><<<blocks(count, kThreads), kThreads, 0, stream()>>>(
              w, static_cast<const scalar_t*>(idx.data_ptr()), count, keys, order);
          SPARTA_CUDA_LAUNCH_CHECK("scatter_add");
        });
      });
  SPARTA_CUDA_DISPATCH_FLOAT(x.dtype(), "scatter_add", [&] {
    using T = scalar_t;
    scatter_add_runs<T, acc_t<T>><<<blocks(count, kThreads), kThreads, 0, stream()>>>(
        static_cast<T*>(out.data_ptr()), static_cast<const T*>(s.data_ptr()),
        reinterpret_cast<const uint64_t*>(sorted.keys.data_ptr()), static_cast<const int64_t*>(sorted.order.data_ptr()),
        count);
    SPARTA_CUDA_LAUNCH_CHECK("scatter_add");
  });
  return out;
}

}  // namespace cuda

// ---- primitives -------------------------------------------------------------------------------
Tensors Concat::eval_cuda(const Tensors& in) {
  Tensors xs;
  xs.reserve(in.size());
  for (const Tensor& t : in) xs.push_back(t.detach());
  return {cuda::concat(xs, axis_)};
}

Tensors IndexSelect::eval_cuda(const Tensors& in) {
  return {cuda::index_select(in[0].detach(), axis_, in[1].detach())};
}

Tensors IndexAdd::eval_cuda(const Tensors& in) {
  return {cuda::index_add(in[0].detach(), axis_, in[1].detach(), in[2].detach())};
}

Tensors Gather::eval_cuda(const Tensors& in) { return {cuda::gather(in[0].detach(), axis_, in[1].detach())}; }

Tensors ScatterAdd::eval_cuda(const Tensors& in) {
  return {cuda::scatter_add(in[0].detach(), axis_, in[1].detach(), in[2].detach())};
}

}  // namespace sparta

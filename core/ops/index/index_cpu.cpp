// CPU kernels of the indexing ops. Every tensor is seen as (outer, axis, inner) around the indexed
// axis; outer and inner positions map to element offsets through each tensor's own strides
// (Offsets), so strided inputs are read in place. Copies move raw bits (any dtype); the adds
// accumulate in compute_t.
//
// Determinism of index_add and scatter_add: work is split over (outer, inner block) only, and
// each task walks the index entries in order, so every output element receives its additions
// from one thread in a fixed order, whatever the thread count.
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <cstring>

#include "core/cpu/convert.h"
#include "core/dispatch.h"
#include "core/ops/index/index.h"
#include "core/ops/view/view.h"

namespace sparta::cpu {
namespace {

// Elements per parallel task, roughly.
constexpr int64_t kWork = 32768;
// Inner elements per index_add / scatter_add task: splits the inner extent when outer is small.
constexpr int64_t kBlock = 4096;

// Element offset of position i in a row-major walk over some dimensions of a tensor.
struct Offsets {
  int64_t stride = 0;            // offset = i * stride when the dims merge into one
  std::vector<int64_t> table;    // otherwise one offset per position
  int64_t operator()(int64_t i) const { return table.empty() ? i * stride : table[size_t(i)]; }
  bool unit() const { return table.empty() && stride == 1; }
};

Offsets offsets_of(const Shape& size, const Shape& stride) {
  Shape ms, mt;
  for (size_t d = 0; d < size.size(); ++d) {
    if (size[d] == 1) continue;
    if (!ms.empty() && mt.back() == stride[d] * size[d]) {
      ms.back() *= size[d];
      mt.back() = stride[d];
      continue;
    }
    ms.push_back(size[d]);
    mt.push_back(stride[d]);
  }
  Offsets o;
  if (ms.empty()) {
    o.stride = 1;  // a single position: any stride gives offset 0
  } else if (ms.size() == 1) {
    o.stride = mt[0];
  } else {
    int64_t n = numel_of(ms);
    o.table.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
      int64_t off = 0, r = i;
      for (int d = int(ms.size()) - 1; d >= 0; --d) {
        off += (r % ms[size_t(d)]) * mt[size_t(d)];
        r /= ms[size_t(d)];
      }
      o.table[size_t(i)] = off;
    }
  }
  return o;
}

// The dims of (shape, strides) before and after `axis`, as offsets.
struct AxisView {
  Offsets outer, inner;
  int64_t axis_stride;
};
AxisView axis_view(const Shape& shape, const Shape& strides, int axis) {
  Shape os(shape.begin(), shape.begin() + axis), ot(strides.begin(), strides.begin() + axis);
  Shape is(shape.begin() + axis + 1, shape.end()), it(strides.begin() + axis + 1, strides.end());
  return {offsets_of(os, ot), offsets_of(is, it), strides[size_t(axis)]};
}

int64_t prod(const Shape& s, int from, int to) {
  int64_t n = 1;
  for (int d = from; d < to; ++d) n *= s[size_t(d)];
  return n;
}

Tensor contig(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor c = Tensor::empty(t.shape(), t.dtype(), t.device());
  copy_into(c, t);
  return c;
}

// Every index must lie in [0, size); the first one that does not is reported.
template <typename I>
void check_range(const I* idx, int64_t n, int64_t size, const char* op, int axis, const Shape& shape) {
  int bad = tbb::parallel_reduce(
      tbb::blocked_range<int64_t>(0, n, kWork), 0,
      [&](const tbb::blocked_range<int64_t>& r, int b) {
        for (int64_t i = r.begin(); i < r.end(); ++i) b |= int(idx[i] < 0) | int(idx[i] >= size);
        return b;
      },
      [](int a, int b) { return a | b; });
  if (!bad) return;
  for (int64_t i = 0; i < n; ++i) {
    SPARTA_CHECK(idx[i] >= 0 && idx[i] < size, op, "index ", int64_t(idx[i]), " is out of range for axis ", axis,
                 " of size ", size, " (x shape ", shape_str(shape), ")");
  }
}

template <typename F>
void parallel_rows(int64_t rows, int64_t per_row, F&& f) {
  if (rows == 0) return;
  int64_t grain = std::max<int64_t>(1, kWork / std::max<int64_t>(1, per_row));
  if (rows <= grain) {
    f(0, rows);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { f(r.begin(), r.end()); });
}

}  // namespace

// out (outer, m, inner) contiguous; out[o, i, :] = x[o, index[i], :].
Tensor index_select(const Tensor& x, int axis, const Tensor& index) {
  Tensor idx = contig(index);
  const int64_t m = idx.numel(), n = x.shape()[size_t(axis)];
  Shape shape = x.shape();
  shape[size_t(axis)] = m;
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  const int64_t outer = prod(shape, 0, axis), inner = prod(shape, axis + 1, int(shape.size()));
  AxisView xv = axis_view(x.shape(), x.strides(), axis);
  SPARTA_DISPATCH_INDEX(idx.dtype(), "index_select", [&] {
    using I = scalar_t;
    const I* ip = idx.data<I>();
    check_range(ip, m, n, "index_select", axis, x.shape());
    if (out.numel() == 0) return;
    SPARTA_DISPATCH_BITS(out.itemsize(), "index_select", [&] {
      const B* xp = static_cast<const B*>(x.data_ptr());
      B* op = static_cast<B*>(out.data_ptr());
      parallel_rows(outer * m, inner, [&](int64_t r0, int64_t r1) {
        // (o, i) of row r, stepped along rather than divided out per row (inner may be 1).
        for (int64_t r = r0, o = r0 / m, i = r0 % m; r < r1; ++r) {
          const B* src = xp + xv.outer(o) + int64_t(ip[i]) * xv.axis_stride;
          B* dst = op + r * inner;
          if (inner == 1) {
            dst[0] = src[0];
          } else if (xv.inner.unit()) {
            std::memcpy(dst, src, size_t(inner) * sizeof(B));
          } else {
            for (int64_t k = 0; k < inner; ++k) dst[k] = src[xv.inner(k)];
          }
          if (++i == m) {
            i = 0;
            ++o;
          }
        }
      });
    });
  });
  return out;
}

// out has index's shape; out[o, i, k] = x[o, index[o, i, k], k].
Tensor gather(const Tensor& x, int axis, const Tensor& index) {
  Tensor idx = contig(index);
  const Shape& shape = idx.shape();
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  const int64_t m = shape[size_t(axis)], n = x.shape()[size_t(axis)];
  const int64_t outer = prod(shape, 0, axis), inner = prod(shape, axis + 1, int(shape.size()));
  // x walked over index's extent, with x's strides.
  AxisView xv = axis_view(shape, x.strides(), axis);
  SPARTA_DISPATCH_INDEX(idx.dtype(), "gather", [&] {
    using I = scalar_t;
    const I* ip = idx.data<I>();
    check_range(ip, idx.numel(), n, "gather", axis, x.shape());
    if (out.numel() == 0) return;
    SPARTA_DISPATCH_BITS(out.itemsize(), "gather", [&] {
      const B* xp = static_cast<const B*>(x.data_ptr());
      B* op = static_cast<B*>(out.data_ptr());
      const int64_t sa = xv.axis_stride;
      parallel_rows(outer * m, inner, [&](int64_t r0, int64_t r1) {
        if (inner == 1) {
          // The indexed axis is innermost: walk whole rows of m entries.
          for (int64_t r = r0; r < r1;) {
            int64_t o = r / m, end = std::min(r1, (o + 1) * m);
            const B* row = xp + xv.outer(o);
            for (; r < end; ++r) op[r] = row[int64_t(ip[r]) * sa];
          }
          return;
        }
        for (int64_t r = r0; r < r1; ++r) {
          const B* row = xp + xv.outer(r / m);
          const I* irow = ip + r * inner;
          B* dst = op + r * inner;
          if (xv.inner.unit()) {
            for (int64_t k = 0; k < inner; ++k) dst[k] = row[int64_t(irow[k]) * sa + k];
          } else {
            for (int64_t k = 0; k < inner; ++k) dst[k] = row[int64_t(irow[k]) * sa + xv.inner(k)];
          }
        }
      });
    });
  });
  return out;
}

namespace {

// Runs body(o, k0, k1) over outer positions and inner blocks, each pair on one thread.
template <typename F>
void for_outer_blocks(int64_t outer, int64_t inner, int64_t m, F&& body) {
  const int64_t nb = (inner + kBlock - 1) / kBlock;
  const int64_t per_task = std::max<int64_t>(1, m) * std::min(inner, kBlock);
  parallel_rows(outer * nb, per_task, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      int64_t o = t / nb, k0 = (t % nb) * kBlock;
      body(o, k0, std::min(inner, k0 + kBlock));
    }
  });
}

// x converted to the accumulation type A, contiguous: the buffer the adds go into.
template <typename A>
Tensor accumulator(const Tensor& x) {
  Tensor acc = Tensor::empty(x.shape(), dtype_of<A>::value, x.device());
  copy_into(acc, x);
  return acc;
}

template <typename T, typename A>
Tensor finish(const Tensor& acc) {
  if constexpr (std::is_same_v<T, A>) {
    return acc;
  } else {
    Tensor out = Tensor::empty(acc.shape(), dtype_of<T>::value, acc.device());
    copy_into(out, acc);
    return out;
  }
}

}  // namespace

// acc (outer, n, inner); acc[o, index[i], k] += src[o, i, k], i in order.
Tensor index_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src) {
  Tensor idx = contig(index);
  const int64_t m = idx.numel(), n = x.shape()[size_t(axis)];
  const int64_t outer = prod(x.shape(), 0, axis), inner = prod(x.shape(), axis + 1, x.dim());
  AxisView sv = axis_view(src.shape(), src.strides(), axis);
  return SPARTA_DISPATCH_FLOAT(x.dtype(), "index_add", [&] {
    using T = scalar_t;
    using A = compute_t<T>;
    Tensor acc = accumulator<A>(x);
    SPARTA_DISPATCH_INDEX(idx.dtype(), "index_add", [&] {
      using I = scalar_t;
      const I* ip = idx.data<I>();
      check_range(ip, m, n, "index_add", axis, x.shape());
      if (acc.numel() == 0) return;
      A* ap = acc.data<A>();
      const T* sp = static_cast<const T*>(src.data_ptr());
      for_outer_blocks(outer, inner, m, [&](int64_t o, int64_t k0, int64_t k1) {
        A* arow = ap + o * n * inner;
        const T* srow = sp + sv.outer(o);
        for (int64_t i = 0; i < m; ++i) {
          A* __restrict dst = arow + int64_t(ip[i]) * inner;
          const T* s = srow + i * sv.axis_stride;
          if (sv.inner.unit()) {
            for (int64_t k = k0; k < k1; ++k) dst[k] += convert<A>(s[k]);
          } else {
            for (int64_t k = k0; k < k1; ++k) dst[k] += convert<A>(s[sv.inner(k)]);
          }
        }
      });
    });
    return finish<T, A>(acc);
  });
}

// acc has x's shape; acc[o, index[o, i, k], k] += src[o, i, k] over index's extent, i in order.
Tensor scatter_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src) {
  Tensor idx = contig(index);
  const Shape& shape = idx.shape();
  const int64_t m = shape[size_t(axis)], n = x.shape()[size_t(axis)];
  const int64_t outer = prod(shape, 0, axis), inner = prod(shape, axis + 1, int(shape.size()));
  AxisView sv = axis_view(shape, src.strides(), axis);
  AxisView av = axis_view(shape, contiguous_strides(x.shape()), axis);
  return SPARTA_DISPATCH_FLOAT(x.dtype(), "scatter_add", [&] {
    using T = scalar_t;
    using A = compute_t<T>;
    Tensor acc = accumulator<A>(x);
    SPARTA_DISPATCH_INDEX(idx.dtype(), "scatter_add", [&] {
      using I = scalar_t;
      const I* ip = idx.data<I>();
      check_range(ip, idx.numel(), n, "scatter_add", axis, x.shape());
      if (idx.numel() == 0) return;
      A* ap = acc.data<A>();
      const T* sp = static_cast<const T*>(src.data_ptr());
      const int64_t sa = av.axis_stride;
      for_outer_blocks(outer, inner, m, [&](int64_t o, int64_t k0, int64_t k1) {
        A* arow = ap + av.outer(o);
        const T* srow = sp + sv.outer(o);
        if (inner == 1) {  // the indexed axis is innermost
          const I* irow = ip + o * m;
          for (int64_t i = 0; i < m; ++i) arow[int64_t(irow[i]) * sa] += convert<A>(srow[i * sv.axis_stride]);
          return;
        }
        for (int64_t i = 0; i < m; ++i) {
          const I* irow = ip + (o * m + i) * inner;
          const T* s = srow + i * sv.axis_stride;
          if (av.inner.unit() && sv.inner.unit()) {
            for (int64_t k = k0; k < k1; ++k) arow[int64_t(irow[k]) * sa + k] += convert<A>(s[k]);
          } else {
            for (int64_t k = k0; k < k1; ++k) arow[int64_t(irow[k]) * sa + av.inner(k)] += convert<A>(s[sv.inner(k)]);
          }
        }
      });
    });
    return finish<T, A>(acc);
  });
}

}  // namespace sparta::cpu

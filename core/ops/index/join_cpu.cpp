// concat: the output seen as (outer, total, inner); input j fills columns [start_j, start_j + n_j)
// of every outer row. Contiguous inputs are copied as raw bytes (any dtype), one run of
// n_j * inner elements per outer row; strided inputs go through the elementwise copy into their
// slice of the output.
#include <tbb/parallel_for.h>

#include <cstring>

#include "core/ops/index/index.h"
#include "core/ops/view/view.h"

namespace sparta::cpu {
namespace {

// Bytes below which a copy runs on one thread.
constexpr int64_t kCopyGrain = 1 << 16;

void parallel_memcpy(char* dst, const char* src, int64_t bytes) {
  if (bytes <= kCopyGrain) {
    std::memcpy(dst, src, size_t(bytes));
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, bytes, kCopyGrain), [&](const tbb::blocked_range<int64_t>& r) {
    std::memcpy(dst + r.begin(), src + r.begin(), size_t(r.size()));
  });
}

}  // namespace

Tensor concat(const Tensors& xs, int axis) {
  const Tensor& x0 = xs[0];
  Shape shape = x0.shape();
  int64_t total = 0;
  for (const Tensor& x : xs) total += x.shape()[axis];
  shape[axis] = total;
  Tensor out = Tensor::empty(shape, x0.dtype(), x0.device());
  if (out.numel() == 0) return out;

  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= shape[d];
  for (int d = axis + 1; d < int(shape.size()); ++d) inner *= shape[d];
  const int64_t item = int64_t(out.itemsize());
  const int64_t row_bytes = total * inner * item;
  char* base = static_cast<char*>(out.data_ptr());

  // Contiguous inputs: (source, byte offset in an output row, bytes per outer row).
  struct Piece {
    const char* src;
    int64_t at, bytes;
  };
  std::vector<Piece> pieces;
  int64_t start = 0;
  for (const Tensor& x : xs) {
    int64_t n = x.shape()[axis];
    if (n > 0 && x.is_contiguous()) {
      pieces.push_back({static_cast<const char*>(x.data_ptr()), start * inner * item, n * inner * item});
    } else if (n > 0) {
      Shape st = out.strides();
      Tensor region(out.storage(), x.shape(), st, out.offset() + start * st[size_t(axis)], out.dtype());
      copy_into(region, x);
    }
    start += n;
  }
  if (pieces.empty()) return out;

  if (outer == 1) {
    // One row: the parallelism is inside each piece.
    for (const Piece& p : pieces) parallel_memcpy(base + p.at, p.src, p.bytes);
    return out;
  }
  int64_t grain = std::max<int64_t>(1, kCopyGrain / std::max<int64_t>(1, row_bytes));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, outer, grain), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t o = r.begin(); o < r.end(); ++o) {
      char* row = base + o * row_bytes;
      for (const Piece& p : pieces) std::memcpy(row + p.at, p.src + o * p.bytes, size_t(p.bytes));
    }
  });
  return out;
}

}  // namespace sparta::cpu

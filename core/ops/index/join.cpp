// concat and stack build a new tensor; split and chunk are slices of their input, so they share
// its storage and their gradients come from slice's vjp.
#include <algorithm>

#include "core/ops.h"
#include "core/ops/index/index.h"

namespace sparta {

Tensors Concat::eval_cpu(const Tensors& in) {
  Tensors xs;
  xs.reserve(in.size());
  for (const Tensor& t : in) xs.push_back(t.detach());
  return {cpu::concat(xs, axis_)};
}

// Each input's cotangent is its own stretch of the output's along the axis.
Tensors Concat::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums, const Tensors&) {
  std::vector<int64_t> start(primals.size() + 1, 0);
  for (size_t i = 0; i < primals.size(); ++i) start[i + 1] = start[i] + primals[i].shape()[axis_];
  Tensors out;
  for (int a : argnums) out.push_back(slice(cot[0], axis_, start[size_t(a)], start[size_t(a) + 1]));
  return out;
}

Tensor concat(const std::vector<Tensor>& xs, int axis) {
  SPARTA_CHECK(!xs.empty(), "concat", "expected at least one tensor, got an empty list");
  const Tensor& x0 = xs[0];
  SPARTA_CHECK(x0.dim() > 0, "concat", "cannot concatenate 0-d tensors (tensor 0 has shape ", shape_str(x0.shape()),
               ")");
  int a = normalize_axis(axis, x0.dim(), "concat");
  for (size_t i = 1; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    SPARTA_CHECK(x.dtype() == x0.dtype(), "concat", "tensor ", i, " has dtype ", dtype_name(x.dtype()),
                 " but tensor 0 has dtype ", dtype_name(x0.dtype()));
    SPARTA_CHECK(x.dim() == x0.dim(), "concat", "tensor ", i, " has shape ", shape_str(x.shape()),
                 " but tensor 0 has shape ", shape_str(x0.shape()), " (ranks differ)");
    for (int d = 0; d < x0.dim(); ++d) {
      SPARTA_CHECK(d == a || x.shape()[d] == x0.shape()[d], "concat", "tensor ", i, " has shape ",
                   shape_str(x.shape()), " but tensor 0 has shape ", shape_str(x0.shape()),
                   "; sizes must match except on axis ", axis, " (dimension ", d, ")");
    }
  }
  return run1(std::make_shared<Concat>(a), xs);
}

Tensor stack(const std::vector<Tensor>& xs, int axis) {
  SPARTA_CHECK(!xs.empty(), "stack", "expected at least one tensor, got an empty list");
  int a = normalize_axis(axis, xs[0].dim() + 1, "stack");
  for (size_t i = 1; i < xs.size(); ++i) {
    SPARTA_CHECK(xs[i].shape() == xs[0].shape(), "stack", "tensor ", i, " has shape ", shape_str(xs[i].shape()),
                 " but tensor 0 has shape ", shape_str(xs[0].shape()), "; stacked tensors need equal shapes");
  }
  Tensors parts;
  parts.reserve(xs.size());
  for (const Tensor& x : xs) parts.push_back(unsqueeze(x, a));
  return concat(parts, a);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int axis) {
  int a = normalize_axis(axis, x.dim(), "split");
  int64_t n = x.shape()[a], total = 0;
  std::string list = "[";
  for (size_t i = 0; i < sizes.size(); ++i) list += (i ? ", " : "") + std::to_string(sizes[i]);
  list += "]";
  for (int64_t s : sizes) {
    SPARTA_CHECK(s >= 0, "split", "negative size in sizes ", list);
    total += s;
  }
  SPARTA_CHECK(total == n, "split", "sizes ", list, " sum to ", total, " but axis ", axis, " of shape ",
               shape_str(x.shape()), " has length ", n);
  std::vector<Tensor> out;
  out.reserve(sizes.size());
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(slice(x, a, start, start + s));
    start += s;
  }
  return out;
}

// torch.chunk: pieces of ceil(n / chunks), the last one smaller, so there may be fewer than
// `chunks` pieces (5 into 4 gives 2, 2, 1). An empty axis gives `chunks` empty pieces.
std::vector<Tensor> chunk(const Tensor& x, int chunks, int axis) {
  SPARTA_CHECK(chunks > 0, "chunk", "chunks must be positive, got ", chunks);
  int a = normalize_axis(axis, x.dim(), "chunk");
  int64_t n = x.shape()[a];
  if (n == 0) return split(x, std::vector<int64_t>(size_t(chunks), 0), a);
  int64_t size = (n + chunks - 1) / chunks;
  std::vector<int64_t> sizes;
  for (int64_t start = 0; start < n; start += size) sizes.push_back(std::min(size, n - start));
  return split(x, sizes, a);
}

}  // namespace sparta

// Batched matmul on the CPU. a (batch_a..., M, K) @ b (batch_b..., K, N) -> out (batch..., M, N),
// batch_a and batch_b broadcasting to batch.
//
// f32 (and bf16/f16 where oneDNN has kernels for them) goes to oneDNN with the operands' own
// strides: transposed views, sliced batches and broadcast batch dimensions (size 1 in oneDNN's
// descriptor) cost no copy. What oneDNN's fast kernels cannot read (stride 0 or no unit stride
// inside a matrix, some broadcast patterns at rank 5+) is made dense first; that is decided per
// operand where the rule is known, and otherwise by asking oneDNN which kernel it would pick.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <array>

#include "core/cpu/dnnl.h"
#include "core/ops.h"
#include "core/ops/linalg/linalg.h"
#include "core/ops/linalg/matmul_layout.h"
#include "core/ops/view/view.h"

namespace sparta::cpu {
namespace {

using dnnl_support::MatDesc;

constexpr int kMaxDnnlRank = 12;  // DNNL_MAX_NDIMS

using linalg::Layout;
using linalg::batch_readable;
using linalg::layout_of;
using linalg::matrix_readable;

// Drops batch dims where the result has size 1 and merges neighbours that every operand walks
// as one (both broadcast, or both present with outer stride = inner stride * inner size), so
// the common cases reach oneDNN as 2-D or 3-D descriptors: fewer primitives, and oneDNN's batched
// gemm takes a narrower set of layouts at higher rank. ops = {a, b, out}.
void simplify(std::array<Layout*, 3> ops) {
  const size_t nb = ops[2]->dims.size() - 2;
  std::array<Layout, 3> merged;
  for (size_t i = 0; i < nb; ++i) {
    const int64_t size = ops[2]->dims[i];
    if (size == 1) continue;
    bool joins = !merged[2].dims.empty();
    for (int o = 0; o < 3 && joins; ++o) {
      const Layout& l = *ops[size_t(o)];
      const Layout& m = merged[size_t(o)];
      const bool outer_present = m.dims.back() > 1, inner_present = l.dims[i] > 1;
      if (outer_present != inner_present) joins = false;
      else if (inner_present && m.strides.back() != l.strides[i] * l.dims[i]) joins = false;
    }
    for (int o = 0; o < 3; ++o) {
      const Layout& l = *ops[size_t(o)];
      Layout& m = merged[size_t(o)];
      if (joins) {
        m.dims.back() *= l.dims[i];
        m.strides.back() = l.strides[i];
      } else {
        m.dims.push_back(l.dims[i]);
        m.strides.push_back(l.strides[i]);
      }
    }
  }
  for (int o = 0; o < 3; ++o) {
    Layout& l = *ops[size_t(o)];
    Layout& m = merged[size_t(o)];
    for (size_t j = nb; j < nb + 2; ++j) {
      m.dims.push_back(l.dims[j]);
      m.strides.push_back(l.strides[j]);
    }
    // A broadcast dim's stride is unused; give it the extent of the dims inside it, as a dense
    // tensor would have (oneDNN picks its reference kernel for stride 0 at some ranks).
    const size_t mb = m.dims.size() - 2;
    int64_t extent = std::max(m.dims[mb] * m.strides[mb], m.dims[mb + 1] * m.strides[mb + 1]);
    for (size_t j = mb; j-- > 0;) {
      if (m.dims[j] == 1) m.strides[j] = extent;
      extent = std::max(extent, m.dims[j] * m.strides[j]);
    }
    l = std::move(m);
  }
}

MatDesc desc_of(const Layout& l, DType dtype) {
  return MatDesc{std::vector<int64_t>(l.dims.begin(), l.dims.end()),
                 std::vector<int64_t>(l.strides.begin(), l.strides.end()), dtype};
}

// out = a @ b reading a and b in place where oneDNN allows. False when oneDNN would only run its
// reference kernel on these layouts (the caller then makes everything dense).
bool matmul_strided(const Tensor& a, const Tensor& b, const Tensor& out) {
  const int nb = out.dim() - 2;
  Tensor ta = a, tb = b;  // keep dense copies alive through the call
  Layout la = layout_of(ta, nb), lb = layout_of(tb, nb), lc = layout_of(out, nb);
  if (!matrix_readable(la) || !batch_readable(la)) {
    ta = contiguous(a).detach();
    la = layout_of(ta, nb);
    matrix_readable(la);
  }
  if (!matrix_readable(lb) || !batch_readable(lb)) {
    tb = contiguous(b).detach();
    lb = layout_of(tb, nb);
    matrix_readable(lb);
  }
  matrix_readable(lc);
  simplify({&la, &lb, &lc});
  if (int(lc.dims.size()) > kMaxDnnlRank) return false;
  // oneDNN broadcasts a batch dim only from one operand to the other's size; a dim where both
  // operands are expanded views (stride 0) has no such descriptor.
  for (size_t i = 0; i + 2 < lc.dims.size(); ++i) {
    if (lc.dims[i] > 1 && la.dims[i] == 1 && lb.dims[i] == 1) return false;
  }
  return dnnl_support::matmul(desc_of(la, a.dtype()), ta.data_ptr(), desc_of(lb, b.dtype()), tb.data_ptr(),
                              desc_of(lc, out.dtype()), out.data_ptr(), /*allow_reference=*/false);
}

// The fallback that always has a fast kernel: both operands expanded to the full batch and made
// dense, one (batch, rows, cols) product.
void matmul_dense(const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t m = a.shape(-2), k = a.shape(-1), n = b.shape(-1), batch = out.numel() / (m * n);
  Shape sa(out.shape().begin(), out.shape().end() - 2), sb = sa;
  sa.insert(sa.end(), {m, k});
  sb.insert(sb.end(), {k, n});
  const Tensor ta = contiguous(expand(a, sa)).detach(), tb = contiguous(expand(b, sb)).detach();
  const MatDesc da{{batch, m, k}, {m * k, k, 1}, a.dtype()}, db{{batch, k, n}, {k * n, n, 1}, b.dtype()},
      dc{{batch, m, n}, {m * n, n, 1}, out.dtype()};
  dnnl_support::matmul(da, ta.data_ptr(), db, tb.data_ptr(), dc, out.data_ptr(), /*allow_reference=*/true);
}

// Element offset of each result batch entry's matrix in a dense operand with layout l (batch
// dims of size 1 broadcast).
std::vector<int64_t> batch_offsets(const Layout& l, const Shape& batch) {
  const size_t nb = batch.size();
  std::vector<int64_t> offsets(size_t(numel_of(batch)));
  Shape idx(nb, 0);
  for (size_t t = 0; t < offsets.size(); ++t) {
    int64_t off = 0;
    for (size_t i = 0; i < nb; ++i) off += l.dims[i] == 1 ? 0 : idx[i] * l.strides[i];
    offsets[t] = off;
    for (size_t i = nb; i-- > 0;) {
      if (++idx[i] < batch[i]) break;
      idx[i] = 0;
    }
  }
  return offsets;
}

// f64 is for checks (gradcheck, references), so a cache-blocked loop is enough: tiles of
// kRows x kCols of the result accumulate over kDepth-deep panels of b, which stay in L2, with
// the innermost loop a contiguous axpy over a row of b that the compiler vectorises.
void matmul_f64(const Tensor& a, const Tensor& b, const Tensor& out) {
  constexpr int64_t kRows = 16, kDepth = 64, kCols = 256;
  const Tensor ta = contiguous(a).detach(), tb = contiguous(b).detach();
  const int nb = out.dim() - 2;
  const Shape batch(out.shape().begin(), out.shape().end() - 2);
  const std::vector<int64_t> offa = batch_offsets(layout_of(ta, nb), batch), offb = batch_offsets(layout_of(tb, nb), batch);
  const int64_t m = a.shape(-2), k = a.shape(-1), n = b.shape(-1);
  const int64_t row_blocks = (m + kRows - 1) / kRows, tasks = int64_t(offa.size()) * row_blocks;
  const double* pa = ta.data<double>();
  const double* pb = tb.data<double>();
  double* pc = out.data<double>();
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, tasks), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t task = r.begin(); task < r.end(); ++task) {
      const int64_t bi = task / row_blocks, i0 = (task % row_blocks) * kRows, i1 = std::min(m, i0 + kRows);
      const double* A = pa + offa[size_t(bi)];
      const double* B = pb + offb[size_t(bi)];
      double* C = pc + bi * m * n;
      std::fill(C + i0 * n, C + i1 * n, 0.0);
      for (int64_t j0 = 0; j0 < n; j0 += kCols) {
        const int64_t j1 = std::min(n, j0 + kCols);
        for (int64_t p0 = 0; p0 < k; p0 += kDepth) {
          const int64_t p1 = std::min(k, p0 + kDepth);
          for (int64_t i = i0; i < i1; ++i) {
            double* crow = C + i * n;
            for (int64_t p = p0; p < p1; ++p) {
              const double av = A[i * k + p];
              const double* brow = B + p * n;
              for (int64_t j = j0; j < j1; ++j) crow[j] += av * brow[j];
            }
          }
        }
      }
    }
  });
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& out) {
  if (out.numel() == 0) return;
  if (a.shape(-1) == 0) {
    Tensor o = out;
    fill_(o, 0);
    return;
  }
  if (a.dtype() == DType::f64) return matmul_f64(a, b, out);
  if (a.dtype() != DType::f32 && !dnnl_support::matmul_is_fast(a.dtype(), a.dtype())) {
    // No bf16/f16 kernel on this CPU (oneDNN 2.x needs AVX-512 for them and refuses otherwise):
    // convert to f32, multiply, round the result once. That is what a native kernel computes
    // too (half inputs, f32 accumulation, one rounding), and the conversions are O(n^2) against
    // the product's O(n^3).
    Tensor c32 = Tensor::empty(out.shape(), DType::f32);
    matmul(cast(a, DType::f32).detach(), cast(b, DType::f32).detach(), c32);
    copy_into(out, c32);
    return;
  }
  if (!matmul_strided(a, b, out)) matmul_dense(a, b, out);
}

}  // namespace sparta::cpu

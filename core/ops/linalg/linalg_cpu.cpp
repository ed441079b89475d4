#include <tbb/parallel_for.h>

#include "core/cpu/dnnl.h"
#include "core/ops.h"
#include "core/ops/linalg/linalg.h"
#include "core/ops/view/view.h"

namespace sparta::cpu {
namespace {

using dnnl_support::MatDesc;

// Describes t (batch..., R, C) as one batch dimension with a single stride, if its strides allow
// (broadcast batches become batch 1, which oneDNN broadcasts). False when a copy is needed.
bool describe(const Tensor& t, MatDesc& d) {
  const int nb = t.dim() - 2;
  d.rows = t.shape(-2);
  d.cols = t.shape(-1);
  d.sr = t.strides()[size_t(nb)];
  d.sc = t.strides()[size_t(nb + 1)];
  d.dtype = t.dtype();
  // oneDNN's kernels want one of the matrix dimensions dense.
  if (d.rows > 1 && d.cols > 1 && d.sr != 1 && d.sc != 1) return false;
  if (d.rows == 1) d.sr = d.cols * (d.sc == 0 ? 1 : d.sc);
  if (d.cols == 1) d.sc = 1;
  int64_t batch = 1, stride = 0;
  bool all_broadcast = true;
  for (int i = nb - 1; i >= 0; --i) {
    const int64_t size = t.shape()[size_t(i)], s = t.strides()[size_t(i)];
    if (size == 1) continue;
    if (s != 0) all_broadcast = false;
    if (batch == 1) {
      stride = s;
    } else if (s != stride * batch) {
      return false;
    }
    batch *= size;
  }
  if (all_broadcast) {
    d.batch = 1;
    d.sb = d.rows * d.cols;
    return true;
  }
  d.batch = batch;
  d.sb = stride;
  return stride != 0;
}

void matmul_f64(const Tensor& a, const Tensor& b, const Tensor& out) {
  const Tensor ac = contiguous(a), bc = contiguous(b);
  const int64_t m = a.shape(-2), k = a.shape(-1), n = b.shape(-1), batch = out.numel() / std::max<int64_t>(1, m * n);
  const double* pa = ac.data<double>();
  const double* pb = bc.data<double>();
  double* pc = out.data<double>();
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, batch * m), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t row = r.begin(); row < r.end(); ++row) {
      const int64_t bi = row / m;
      const double* arow = pa + row * k;
      const double* bmat = pb + bi * k * n;
      double* crow = pc + row * n;
      for (int64_t j = 0; j < n; ++j) crow[j] = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double av = arow[p];
        const double* brow = bmat + p * n;
        for (int64_t j = 0; j < n; ++j) crow[j] += av * brow[j];
      }
    }
  });
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& out) {
  if (out.numel() == 0) return;
  if (a.shape(-1) == 0) {
    fill_(const_cast<Tensor&>(out), 0);
    return;
  }
  if (a.dtype() == DType::f64) return matmul_f64(a, b, out);
  if (a.dtype() != DType::f32 && !dnnl_support::matmul_is_fast(a.dtype(), a.dtype())) {
    Tensor c32 = Tensor::empty(out.shape(), DType::f32);
    matmul(cast(a, DType::f32).detach(), cast(b, DType::f32).detach(), c32);
    copy_into(out, c32);
    return;
  }
  MatDesc da{}, db{}, dc{};
  Tensor ta = a, tb = b;
  if (!describe(ta, da)) {
    ta = contiguous(a).detach();
    describe(ta, da);
  }
  if (!describe(tb, db)) {
    tb = contiguous(b).detach();
    describe(tb, db);
  }
  describe(out, dc);
  if (dc.batch == 1 && (da.batch > 1 || db.batch > 1)) dc.batch = std::max(da.batch, db.batch);
  dnnl_support::matmul(da, ta.data_ptr(), db, tb.data_ptr(), dc, out.data_ptr());
}

}  // namespace sparta::cpu

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/convert.h"
#include "core/cpu/fast_exp.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/softmax/softmax.h"

namespace sparta::cpu {
namespace {

// Rows per task: enough work to amortise scheduling for short rows.
int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)); }

// One row shifted by its max (buf = x - max, exact in floating point near the max) and the sum of
// exp(buf): results are formed from these rather than from x - logsumexp, which would round the
// large log-sum-exp first.
template <typename T, typename C>
C shifted_row(const T* x, int64_t n, C* buf) {
  C mx = -std::numeric_limits<C>::infinity();
  for (int64_t c = 0; c < n; ++c) {
    buf[c] = convert<C>(x[c]);
    mx = std::max(mx, buf[c]);
  }
  for (int64_t c = 0; c < n; ++c) buf[c] -= mx;
  C s = 0;
  for (int64_t c = 0; c < n; ++c) s += exp_acc(buf[c]);
  return s;
}

template <typename Fn>
void for_rows(int64_t rows, int64_t cols, Fn&& fn) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, row_grain(cols)), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) fn(i);
  });
}

}  // namespace

void softmax_rows(const Tensor& x, const Tensor& out, bool log) {
  const int64_t rows = x.shape(0), cols = x.shape(1);
  SPARTA_DISPATCH_FLOAT(x.dtype(), log ? "log_softmax" : "softmax", [&] {
    using T = scalar_t;
    using C = compute_t<T>;
    const T* px = x.data<T>();
    T* po = out.data<T>();
    for_rows(rows, cols, [&](int64_t i) {
      thread_local std::vector<C> buf;
      buf.resize(size_t(cols));
      const C s = shifted_row(px + i * cols, cols, buf.data());
      T* o = po + i * cols;
      if (log) {
        const C log_s = std::log(s);
        for (int64_t c = 0; c < cols; ++c) o[c] = convert<T>(buf[size_t(c)] - log_s);
      } else {
        const C inv = C(1) / s;
        for (int64_t c = 0; c < cols; ++c) o[c] = convert<T>(exp_acc(buf[size_t(c)]) * inv);
      }
    });
  });
}

std::pair<double, int64_t> cross_entropy_rows(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  const int64_t rows = logits.shape(0), cols = logits.shape(1);
  const Tensor t64 = cast(targets, DType::i64).detach();
  const int64_t* tgt = t64.data<int64_t>();
  std::vector<double> loss(static_cast<size_t>(rows), 0.0);
  SPARTA_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&] {
    using T = scalar_t;
    using C = compute_t<T>;
    const T* px = logits.data<T>();
    for_rows(rows, cols, [&](int64_t i) {
      if (tgt[i] == ignore_index) return;
      thread_local std::vector<C> buf;
      buf.resize(size_t(cols));
      const C s = shifted_row(px + i * cols, cols, buf.data());
      loss[size_t(i)] = double(std::log(s) - buf[size_t(tgt[i])]);
    });
  });
  // Summed in row order, so the loss does not depend on the thread count.
  double total = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < rows; ++i) {
    if (tgt[i] == ignore_index) continue;
    total += loss[size_t(i)];
    ++count;
  }
  return {total, count};
}

void cross_entropy_backward_rows(const Tensor& logits, const Tensor& targets, int64_t ignore_index, double g_over_n,
                                 const Tensor& dlogits) {
  const int64_t rows = logits.shape(0), cols = logits.shape(1);
  const Tensor t64 = cast(targets, DType::i64).detach();
  const int64_t* tgt = t64.data<int64_t>();
  SPARTA_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&] {
    using T = scalar_t;
    using C = compute_t<T>;
    const T* px = logits.data<T>();
    T* pd = dlogits.data<T>();
    const C scale = C(g_over_n);
    for_rows(rows, cols, [&](int64_t i) {
      T* d = pd + i * cols;
      if (tgt[i] == ignore_index) {
        for (int64_t c = 0; c < cols; ++c) d[c] = convert<T>(C(0));
        return;
      }
      thread_local std::vector<C> buf;
      buf.resize(size_t(cols));
      const C inv = C(1) / shifted_row(px + i * cols, cols, buf.data());
      for (int64_t c = 0; c < cols; ++c) d[c] = convert<T>(exp_acc(buf[size_t(c)]) * inv * scale);
      d[tgt[i]] = convert<T>((exp_acc(buf[size_t(tgt[i])]) * inv - C(1)) * scale);
    });
  });
}

}  // namespace sparta::cpu

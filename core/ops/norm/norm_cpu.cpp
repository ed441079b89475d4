#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu/convert.h"
#include "core/dispatch.h"
#include "core/ops/norm/norm.h"

namespace sparta::cpu {
namespace {

// Rows are cut into this many chunks for the weight and bias gradients whatever the thread count,
// and the chunks' partial sums are added in order: the same bits on 1 or 64 threads.
constexpr int64_t kChunks = 64;

}  // namespace

void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y,
                const Tensor& mean, const Tensor& rstd) {
  const int64_t rows = x.shape(0), cols = x.shape(1);
  SPARTA_DISPATCH_FLOAT(x.dtype(), "layer_norm", [&] {
    using T = scalar_t;
    using C = compute_t<T>;
    const T* px = x.data<T>();
    const T* pw = weight.defined() ? weight.data<T>() : nullptr;
    const T* pb = bias.defined() ? bias.data<T>() : nullptr;
    T* py = y.data<T>();
    C* pm = mean.data<C>();
    C* pr = rstd.data<C>();
    const int64_t grain = std::max<int64_t>(1, 8192 / cols);
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, grain), [&](const tbb::blocked_range<int64_t>& r) {
      std::vector<C> buf(static_cast<size_t>(cols));
      for (int64_t i = r.begin(); i < r.end(); ++i) {
        const T* xr = px + i * cols;
        C s = 0;
        for (int64_t c = 0; c < cols; ++c) {
          buf[size_t(c)] = convert<C>(xr[c]);
          s += buf[size_t(c)];
        }
        const C mu = s / C(cols);
        C v = 0;
        for (int64_t c = 0; c < cols; ++c) v += (buf[size_t(c)] - mu) * (buf[size_t(c)] - mu);
        const C rs = C(1) / std::sqrt(v / C(cols) + C(eps));
        pm[i] = mu;
        pr[i] = rs;
        T* yr = py + i * cols;
        for (int64_t c = 0; c < cols; ++c) {
          C h = (buf[size_t(c)] - mu) * rs;
          if (pw) h *= convert<C>(pw[c]);
          if (pb) h += convert<C>(pb[c]);
          yr[c] = convert<T>(h);
        }
      }
    });
  });
}

void layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                         const Tensor& dy, const Tensor& dx, const Tensor& dweight, const Tensor& dbias) {
  const int64_t rows = x.shape(0), cols = x.shape(1);
  SPARTA_DISPATCH_FLOAT(x.dtype(), "layer_norm", [&] {
    using T = scalar_t;
    using C = compute_t<T>;
    const T* px = x.data<T>();
    const T* pw = weight.defined() ? weight.data<T>() : nullptr;
    const T* pdy = dy.data<T>();
    const C* pm = mean.data<C>();
    const C* pr = rstd.data<C>();
    T* pdx = dx.data<T>();
    const int64_t chunks = std::min(kChunks, std::max<int64_t>(rows, 1));
    const int64_t per = (rows + chunks - 1) / chunks;
    std::vector<C> part_w(static_cast<size_t>(chunks * cols), C(0)), part_b(static_cast<size_t>(chunks * cols), C(0));
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, chunks, 1), [&](const tbb::blocked_range<int64_t>& r) {
      std::vector<C> xhat(static_cast<size_t>(cols)), g(static_cast<size_t>(cols));
      for (int64_t ch = r.begin(); ch < r.end(); ++ch) {
        C* sw = part_w.data() + ch * cols;
        C* sb = part_b.data() + ch * cols;
        for (int64_t i = ch * per; i < std::min(rows, (ch + 1) * per); ++i) {
          const T* xr = px + i * cols;
          const T* gr = pdy + i * cols;
          C mean_g = 0, mean_gx = 0;
          for (int64_t c = 0; c < cols; ++c) {
            const C gy = convert<C>(gr[c]);
            xhat[size_t(c)] = (convert<C>(xr[c]) - pm[i]) * pr[i];
            sw[c] += gy * xhat[size_t(c)];
            sb[c] += gy;
            g[size_t(c)] = pw ? gy * convert<C>(pw[c]) : gy;
            mean_g += g[size_t(c)];
            mean_gx += g[size_t(c)] * xhat[size_t(c)];
          }
          mean_g /= C(cols);
          mean_gx /= C(cols);
          T* dxr = pdx + i * cols;
          for (int64_t c = 0; c < cols; ++c)
            dxr[c] = convert<T>(pr[i] * (g[size_t(c)] - mean_g - xhat[size_t(c)] * mean_gx));
        }
      }
    });
    C* dw = dweight.data<C>();
    C* db = dbias.data<C>();
    for (int64_t c = 0; c < cols; ++c) {
      dw[c] = 0;
      db[c] = 0;
    }
    for (int64_t ch = 0; ch < chunks; ++ch)
      for (int64_t c = 0; c < cols; ++c) {
        dw[c] += part_w[size_t(ch * cols + c)];
        db[c] += part_b[size_t(ch * cols + c)];
      }
  });
}

}  // namespace sparta::cpu

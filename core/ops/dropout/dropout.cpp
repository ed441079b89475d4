#include "core/ops/dropout/dropout.h"

#include <tbb/parallel_for.h>

#include "core/cpu/convert.h"
#include "core/dispatch.h"
#include "core/ops.h"

namespace sparta {

Tensors Dropout::eval_cpu(const Tensors& in) {
  const Tensor x = contiguous(in[0].detach());
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  const int64_t n = x.numel();
  const float p = float(p_);
  SPARTA_DISPATCH_FLOAT(x.dtype(), "dropout", [&] {
    using T = scalar_t;
    using C = compute_t<T>;
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const C scale = C(1) / (C(1) - C(p_));
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 16384), [&](const tbb::blocked_range<int64_t>& r) {
      for (int64_t i = r.begin(); i < r.end(); ++i)
        po[i] = dropout_keep(key_, uint64_t(i), p) ? cpu::convert<T>(cpu::convert<C>(px[i]) * scale) : T(0);
    });
  });
  return {out};
}

Tensors Dropout::vjp(const Tensors&, const Tensors& cot, const std::vector<int>&, const Tensors&) {
  return {run1(std::make_shared<Dropout>(p_, key_), {cot[0]})};
}

Tensor dropout(const Tensor& x, double p, Generator* gen) {
  SPARTA_CHECK(is_floating(x.dtype()), "dropout", "needs a floating tensor, got ", dtype_name(x.dtype()));
  SPARTA_CHECK(p >= 0 && p < 1, "dropout", "probability must be in [0, 1), got ", p);
  if (p == 0) return x;
  Generator& g = gen ? *gen : default_generator();
  const PhiloxKey key = g.take((uint64_t(x.numel()) + 3) / 4);
  return run1(std::make_shared<Dropout>(p, key), {x});
}

}  // namespace sparta

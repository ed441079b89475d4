#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/autograd.h"
#include "core/ops.h"

namespace sparta::autograd {

GradcheckResult gradcheck(const std::function<Tensor(const Tensors&)>& fn, const Tensors& inputs,
                          const GradcheckOptions& opt) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    SPARTA_CHECK(!requires_grad_of(inputs[i]) || inputs[i].dtype() == DType::f64, "gradcheck", "input ", i,
                 " has dtype ", dtype_name(inputs[i].dtype()), ": finite differences need f64");
  }
  // Leaves of our own, so the caller's tensors keep their gradients untouched.
  Tensors leaves;
  for (const Tensor& t : inputs) {
    Tensor c = contiguous(clone(t.detach()));
    if (requires_grad_of(t)) requires_grad(c);
    leaves.push_back(c);
  }
  Tensor out = fn(leaves);
  Generator gen(opt.seed);
  Tensor proj = randn(out.shape(), DType::f64, &gen);
  auto objective = [&](const Tensors& xs) {
    NoGradGuard no_grad;
    return sum(mul(cast(fn(xs), DType::f64), proj)).item<double>();
  };

  GradcheckResult result;
  if (requires_grad_of(out)) backward(out, cast(proj, out.dtype()));
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (!requires_grad_of(leaves[i])) continue;
    Tensor analytic = grad(leaves[i]);
    std::vector<double> a = analytic.defined() ? analytic.to_vector<double>()
                                               : std::vector<double>(size_t(leaves[i].numel()), 0.0);
    double* x = leaves[i].data<double>();
    for (int64_t k = 0; k < leaves[i].numel(); ++k) {
      const double saved = x[k];
      x[k] = saved + opt.eps;
      const double up = objective(leaves);
      x[k] = saved - opt.eps;
      const double down = objective(leaves);
      x[k] = saved;
      const double numeric = (up - down) / (2 * opt.eps);
      const double analytical = a[size_t(k)];
      if (!(std::abs(analytical - numeric) <= opt.atol + opt.rtol * std::abs(numeric))) {
        result.ok = false;
        result.message = detail::concat("input ", i, " element ", k, " of shape ", shape_str(leaves[i].shape()),
                                        ": analytical ", analytical, " vs numerical ", numeric);
        return result;
      }
    }
  }
  return result;
}

}  // namespace sparta::autograd

#pragma once
// Checks a function's analytical gradients (the vjps on the tape) against central differences,
// both in f64. The function may return any shape: it is reduced to a scalar through a fixed random
// projection, so one backward pass checks every output at once.
#include <functional>
#include <string>

#include "core/tensor.h"
#include "core/primitive.h"

namespace sparta::autograd {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-4;
  uint64_t seed = 1234;  // of the projection
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // the first mismatch: input, element, analytical and numerical values
};

// inputs must be f64; those to check are marked with requires_grad, the others stay fixed.
GradcheckResult gradcheck(const std::function<Tensor(const Tensors&)>& fn, const Tensors& inputs,
                          const GradcheckOptions& options = {});

}  // namespace sparta::autograd

#include "nn/linear.h"

#include <cmath>

#include "core/autocast.h"
#include "core/ops.h"

namespace sparta::nn {

Linear::Linear(int64_t in, int64_t out, bool bias, Generator* gen) {
  SPARTA_CHECK(in >= 1 && out >= 1, "Linear", "sizes must be positive, got ", in, " -> ", out);
  const double bound = 1 / std::sqrt(double(in));
  weight_ = register_parameter("weight", uniform({out, in}, -bound, bound, DType::f32, gen));
  if (bias) bias_ = register_parameter("bias", uniform({out}, -bound, bound, DType::f32, gen));
}

Tensor Linear::forward(const Tensor& x) const {
  SPARTA_CHECK(x.dim() >= 1 && x.shape(-1) == weight_.shape(1), "Linear", "input of shape ", shape_str(x.shape()),
               " does not end in ", weight_.shape(1), " features");
  Tensor y = matmul(x, transpose(weight_, 0, 1));
  // Under autocast the bias joins the product's precision (as in PyTorch's autocast); an f32 bias
  // would promote the sum to f32 and the tape would hold the layer's output twice.
  return bias_.defined() ? y + autocast_low(bias_) : y;
}

}  // namespace sparta::nn

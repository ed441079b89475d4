#include "nn/layers.h"

#include "core/ops.h"

namespace sparta::nn {

Embedding::Embedding(int64_t vocab, int64_t dim, Generator* gen) {
  SPARTA_CHECK(vocab >= 1 && dim >= 1, "Embedding", "sizes must be positive, got ", vocab, " x ", dim);
  weight_ = register_parameter("weight", randn({vocab, dim}, DType::f32, gen) * 0.02);
}

Tensor Embedding::forward(const Tensor& indices) const { return embedding(weight_, indices); }

LayerNorm::LayerNorm(int64_t dim, double eps) : eps_(eps) {
  weight_ = register_parameter("weight", ones({dim}));
  bias_ = register_parameter("bias", zeros({dim}));
}

Tensor LayerNorm::forward(const Tensor& x) const { return layer_norm(x, weight_, bias_, eps_); }

Tensor GELU::forward(const Tensor& x) const { return gelu(x, tanh_ ? GeluApprox::tanh : GeluApprox::none); }

Tensor Dropout::forward(const Tensor& x) const {
  if (!is_training() || p_ == 0) return x;
  return dropout(x, p_, gen_);
}

MLP::MLP(int64_t dim, int64_t hidden, double p, Generator* gen) {
  fc_ = register_module("fc", std::make_shared<Linear>(dim, hidden, true, gen));
  proj_ = register_module("proj", std::make_shared<Linear>(hidden, dim, true, gen));
  drop_ = register_module("drop", std::make_shared<Dropout>(p, gen));
}

Tensor MLP::forward(const Tensor& x) const { return drop_->forward(proj_->forward(act_.forward(fc_->forward(x)))); }

}  // namespace sparta::nn

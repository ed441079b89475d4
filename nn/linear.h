#pragma once
// y = x W^T + b, with W (out, in) as in PyTorch, initialised uniform in +-1/sqrt(in) (PyTorch's
// default for nn.Linear).
#include "core/random.h"
#include "nn/module.h"

namespace sparta::nn {

class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) const;
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  Tensor weight_, bias_;
};

}  // namespace sparta::nn

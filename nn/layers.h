#pragma once
// The small layers of a transformer, each a Module whose parameter names match PyTorch's
// (weight, bias): Embedding, LayerNorm, GELU, Dropout, and the feed-forward MLP (fc, proj).
#include "core/random.h"
#include "nn/linear.h"

namespace sparta::nn {

class Embedding : public Module {
 public:
  // Initialised N(0, 0.02), as GPT-2.
  Embedding(int64_t vocab, int64_t dim, Generator* gen = nullptr);
  Tensor forward(const Tensor& indices) const;
  const Tensor& weight() const { return weight_; }

 private:
  Tensor weight_;
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5);
  Tensor forward(const Tensor& x) const;

 private:
  Tensor weight_, bias_;
  double eps_;
};

// GELU with the tanh approximation (GPT-2's) or the exact erf form.
class GELU : public Module {
 public:
  explicit GELU(bool tanh_approx = true) : tanh_(tanh_approx) {}
  Tensor forward(const Tensor& x) const;

 private:
  bool tanh_;
};

// Active only in training mode; its masks come from `gen` (the trainer's generator, so that a
// resumed run draws the same masks).
class Dropout : public Module {
 public:
  explicit Dropout(double p, Generator* gen = nullptr) : p_(p), gen_(gen) {}
  Tensor forward(const Tensor& x) const;

 private:
  double p_;
  Generator* gen_;
};

// d -> hidden -> d with GELU between: GPT-2's MLP (fc, proj).
class MLP : public Module {
 public:
  MLP(int64_t dim, int64_t hidden, double dropout = 0, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) const;

 private:
  std::shared_ptr<Linear> fc_, proj_;
  GELU act_;
  std::shared_ptr<Dropout> drop_;
};

}  // namespace sparta::nn

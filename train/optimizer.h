#pragma once
// Optimizers over named parameters: AdamW (Loshchilov & Hutter: weight decay applied to the
// weights directly, not through the gradient) and SGD with momentum. Parameters whose name
// contains one of the no-decay patterns (biases, norms, embeddings by default) get no weight decay.
// The update is one fused TBB-parallel pass per parameter, in f32 (or the parameter's f64).
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace sparta::train {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with learning rate lr from the parameters' .grad (a parameter without one is skipped).
  virtual void step(double lr) = 0;
  // Moment buffers by name ("exp_avg/<param>", ...) for checkpoints; load_state copies into them.
  virtual NamedTensors state() const = 0;
  void load_state(const NamedTensors& state);
  void zero_grad();
  const NamedTensors& params() const { return params_; }
  bool decays(const std::string& name) const;

 protected:
  Optimizer(NamedTensors params, double weight_decay, std::vector<std::string> no_decay);
  // Calls update(i, w, g, wd) with raw f32 or f64 pointers for every parameter that has a
  // gradient (cast to the parameter's type), wd its weight decay (0 when excluded by name).
  template <typename Update>
  void each_gradient(Update&& update);
  NamedTensors params_;
  double weight_decay_;
  std::vector<std::string> no_decay_;
};

class AdamW : public Optimizer {
 public:
  AdamW(NamedTensors params, double beta1, double beta2, double eps, double weight_decay,
        std::vector<std::string> no_decay);
  void step(double lr) override;
  NamedTensors state() const override;

 private:
  double beta1_, beta2_, eps_;
  Tensor step_count_;  // 0-d f64, a tensor so that it travels with the other state
  std::vector<Tensor> m_, v_;
};

class SGD : public Optimizer {
 public:
  SGD(NamedTensors params, double momentum, double weight_decay, std::vector<std::string> no_decay);
  void step(double lr) override;
  NamedTensors state() const override;

 private:
  double momentum_;
  std::vector<Tensor> buf_;
};

// Scales every gradient so that their global L2 norm is at most max_norm (0: no clipping).
// Returns the norm before clipping (inf/NaN are returned as they are, and nothing is scaled).
double clip_grad_norm(const NamedTensors& params, double max_norm);

}  // namespace sparta::train

#pragma once
// Optimizers over named parameters: AdamW (Loshchilov & Hutter: weight decay applied to the
// weights directly, not through the gradient) and SGD with momentum. Parameters whose name
// contains one of the no-decay patterns (biases, norms, embeddings by default) get no weight decay.
// On the CPU the update is one fused TBB-parallel pass per parameter; on CUDA one multi-tensor
// launch over all parameters (train/optimizer_cuda.h); in f32 (or the parameters' f64) either way.
#include <memory>
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
  // Moment buffers by name ("exp_avg/<param>", ...); load_state copies into them.
  virtual NamedTensors state() const = 0;
  // The whole state for a checkpoint. Every rank of a data-parallel job calls it: a sharded
  // optimizer (train/dist/sharded_optimizer.h) gathers it with collectives.
  virtual NamedTensors full_state() { return state(); }
  virtual void load_state(const NamedTensors& state);
  void zero_grad();
  const NamedTensors& params() const { return params_; }
  bool decays(const std::string& name) const;

 protected:
  Optimizer(NamedTensors params, double weight_decay, std::vector<std::string> no_decay);
  // Calls update(i, w, g, wd) with raw f32 or f64 pointers for every parameter that has a
  // gradient (cast to the parameter's type), wd its weight decay (0 when excluded by name).
  template <typename Update>
  void each_gradient(Update&& update);
  // Whether the parameters live on a CUDA device: step() then runs the fused kernels.
  bool on_cuda() const { return !params_.empty() && params_.front().second.device().is_cuda(); }
  // CUDA: calls launch(group, grads) per dtype group (f32, f64) with each parameter's gradient
  // pointer (null: no gradient); the group's descriptors over (param, m, v) are built on first use
  // and again only if the parameter set changes. v may be empty (SGD).
  template <typename Launch>
  void each_cuda_group(const std::vector<Tensor>& m, const std::vector<Tensor>& v, Launch&& launch);
  NamedTensors params_;
  double weight_decay_;
  std::vector<std::string> no_decay_;
  struct CudaGroups;  // defined in optimizer.cpp (CUDA builds)
  std::shared_ptr<CudaGroups> cuda_;
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

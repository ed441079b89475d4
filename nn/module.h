#pragma once
// Module: a tree of layers owning named parameters. Names follow PyTorch's convention (children's
// names joined by dots: "blocks.0.attn.qkv.weight"), so state dicts and checkpoints map one to
// one onto a PyTorch model of the same shape.
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace sparta::nn {

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter of this module and its children, depth first in registration order.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<Tensor> parameters() const;
  // Name -> tensor (the same storage: writing into it writes the parameter).
  std::map<std::string, Tensor> state_dict() const;
  // Copies values in; strict: every parameter must be present and no extra names. Shapes must match.
  void load_state_dict(const std::map<std::string, Tensor>& state, bool strict = true);
  int64_t parameter_count() const;
  // Moves every parameter to the device in place (as PyTorch's module.to): each parameter keeps its
  // identity, so layers' handles and optimizers built afterwards see the moved values. Gradients
  // are dropped.
  void to(Device device);

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

 protected:
  // Registers t as a parameter (it becomes a leaf that requires grad) and returns it.
  Tensor register_parameter(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace sparta::nn

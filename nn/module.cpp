#include "nn/module.h"

#include <set>

#include "autograd/autograd.h"
#include "core/ops.h"

namespace sparta::nn {

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  for (const auto& [n, _] : params_) SPARTA_CHECK(n != name, "module", "parameter '", name, "' registered twice");
  autograd::requires_grad(t);
  params_.emplace_back(name, t);
  return t;
}

void Module::collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, t] : params_) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_parameters()) out.push_back(t);
  return out;
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : named_parameters()) out.emplace(name, t);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (auto& [_, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state, bool strict) {
  std::set<std::string> used;
  autograd::NoGradGuard no_grad;
  for (auto& [name, t] : named_parameters()) {
    auto it = state.find(name);
    if (it == state.end()) {
      SPARTA_CHECK(!strict, "load_state_dict", "missing parameter '", name, "'");
      continue;
    }
    SPARTA_CHECK(it->second.shape() == t.shape(), "load_state_dict", "parameter '", name, "' has shape ",
                 shape_str(t.shape()), " but the state holds ", shape_str(it->second.shape()));
    Tensor dst = t;
    copy_(dst, it->second);
    used.insert(name);
  }
  if (strict) {
    for (auto& [name, _] : state) {
      SPARTA_CHECK(used.count(name), "load_state_dict", "unexpected parameter '", name, "' in the state");
    }
  }
}

void Module::to(Device device) {
  for (auto& [name, t] : named_parameters()) {
    if (t.device() == device) continue;
    Tensor moved = to_device(contiguous(t.detach()), device);
    TensorImpl& impl = t.impl();
    impl.storage = moved.storage();
    impl.strides = moved.strides();
    impl.offset = 0;
    autograd::zero_grad(t);
  }
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [_, child] : children_) child->train(on);
}

}  // namespace sparta::nn

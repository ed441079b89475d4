#include "core/primitive.h"

namespace sparta {
namespace {
detail::RecordHook g_hook = nullptr;
}

void detail::set_record_hook(RecordHook hook) { g_hook = hook; }

Tensors Primitive::eval_cuda(const Tensors&) { SPARTA_FAIL(name(), "has no CUDA kernel yet"); }

Tensors Primitive::vjp(const Tensors&, const Tensors&, const std::vector<int>&, const Tensors&) {
  SPARTA_FAIL(name(), "is not differentiable");
}

Tensors run(const std::shared_ptr<Primitive>& p, const Tensors& inputs) {
  // Undefined inputs stand for optional arguments (a layer norm without bias) and have no device.
  Device dev = Device::cpu();
  bool first = true;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) continue;
    if (first) {
      dev = inputs[i].device();
      first = false;
    } else {
      SPARTA_CHECK(inputs[i].device() == dev, p->name(), "inputs on different devices: ", dev.str(),
                   " and ", inputs[i].device().str(), " (argument ", i, ")");
    }
  }
  Tensors out = dev.is_cpu() ? p->eval_cpu(inputs) : p->eval_cuda(inputs);
  if (g_hook) g_hook(p, inputs, out);
  return out;
}

Tensor run1(const std::shared_ptr<Primitive>& p, const Tensors& inputs) { return run(p, inputs).at(0); }

}  // namespace sparta

#pragma once
// CPU/CUDA parity helpers: the same computation on both backends from the same random inputs.
#include <functional>

#include "core/determinism.h"

#include "tests/cuda/gpu.h"
#include "tests/support.h"

namespace sparta::test {

// Sets deterministic_algorithms() for a scope.
struct DeterministicScope {
  bool before = deterministic_algorithms();
  explicit DeterministicScope(bool on) { set_deterministic_algorithms(on); }
  ~DeterministicScope() { set_deterministic_algorithms(before); }
};

inline Tensor gpu(const Tensor& t) { return to_device(t, Device::cuda()); }
inline Tensor host(const Tensor& t) { return to_device(t, Device::cpu()); }

// x's values on the GPU in a view whose last axis has stride 2 (the strided kernels' path).
inline Tensor gpu_noncontiguous(const Tensor& x) {
  Shape wide = x.shape();
  if (wide.empty()) return gpu(x);
  wide.back() *= 2;
  Tensor big = full(wide, 12345.0, x.dtype(), Device::cuda());
  Tensor view = slice(big, -1, 0, wide.back(), 2);
  copy_(view, x);
  return view;
}

// The gradients of sum(fn(xs) * w) with respect to every floating x (undefined for integer inputs),
// computed on device d (xs and w are CPU tensors; the gradients come back to the CPU).
inline Tensors grads_on(Device d, const std::function<Tensor(const Tensors&)>& fn, const Tensors& xs, const Tensor& w) {
  Tensors leaves;
  for (const Tensor& x : xs) {
    Tensor l = to_device(x, d).detach();
    leaves.push_back(is_floating(x.dtype()) ? autograd::requires_grad(std::move(l)) : l);
  }
  Tensor y = fn(leaves);
  autograd::backward(sum(mul(y, to_device(cast(w, y.dtype()), d))));
  Tensors g;
  for (const Tensor& l : leaves) {
    g.push_back(is_floating(l.dtype()) ? to_device(autograd::grad(l), Device::cpu()) : Tensor());
  }
  return g;
}

// Runs fn on the CPU and on the GPU, compares the outputs and the gradients of every input.
inline void check_fn_parity(const std::string& what, const std::function<Tensor(const Tensors&)>& fn, const Tensors& xs,
                            double rtol, double atol) {
  Tensors on_gpu;
  for (const Tensor& x : xs) on_gpu.push_back(gpu(x));
  Tensor want = fn(xs);
  Tensor got = fn(on_gpu);
  BOOST_CHECK(got.device() == Device::cuda());
  check_close(got, want, rtol, atol, what + " forward");
  if (!is_floating(want.dtype())) return;
  Tensor w = random(want.shape(), DType::f64);
  Tensors gw = grads_on(Device::cpu(), fn, xs, w), gg = grads_on(Device::cuda(), fn, xs, w);
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!gw[i].defined()) continue;
    check_close(gg[i], gw[i], rtol, atol, what + " gradient of input " + std::to_string(i));
  }
}

}  // namespace sparta::test

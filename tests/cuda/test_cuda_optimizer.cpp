// The fused CUDA optimiser steps (one multi-tensor launch) against the CPU path: the same
// parameters and gradients for several steps must give the same parameters and moments; and
// gradient clipping by global norm on CUDA against the CPU.
#include <cmath>
#include <limits>

#include "tests/cuda/parity.h"
#include "train/optimizer.h"

using namespace sparta;
using namespace sparta::train;
using namespace sparta::test;

namespace {

Tensor dev(const Tensor& x) { return to_device(x, Device::cuda()); }

struct Pair {
  NamedTensors cpu, gpu;
};

// Odd sizes, one parameter over 1M elements (many chunks, a partial last one), names that the
// no-decay patterns match, and optionally an f64 parameter (a second dtype group).
Pair make_params(bool with_f64) {
  std::vector<std::pair<std::string, Tensor>> init = {
      {"blocks.0.attn.qkv.weight", random({1031, 1027})},
      {"blocks.0.attn.qkv.bias", random({3081})},
      {"blocks.0.ln_1.weight", random({33})},
      {"blocks.0.mlp.fc.weight", random({17, 65})},
      {"wte.weight", random({7, 5})}};
  if (with_f64) init.push_back({"head.weight", random({13, 9}, DType::f64)});
  Pair p;
  for (auto& [name, x] : init) {
    p.cpu.emplace_back(name, autograd::requires_grad(clone(x)));
    p.gpu.emplace_back(name, autograd::requires_grad(dev(x)));
  }
  return p;
}

// Fresh random gradients, the same on both sides; parameter `skip` (if any) gets none.
void set_grads(const Pair& p, int skip = -1) {
  for (size_t i = 0; i < p.cpu.size(); ++i) {
    autograd::zero_grad(p.cpu[i].second);
    autograd::zero_grad(p.gpu[i].second);
    if (int(i) == skip) continue;
    Tensor g = random(p.cpu[i].second.shape(), p.cpu[i].second.dtype());
    autograd::set_grad(p.cpu[i].second, g);
    autograd::set_grad(p.gpu[i].second, dev(g));
  }
}

void check_same(const NamedTensors& gpu, const NamedTensors& cpu, const std::string& what) {
  BOOST_REQUIRE_EQUAL(gpu.size(), cpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    BOOST_CHECK_EQUAL(gpu[i].first, cpu[i].first);
    BOOST_CHECK(gpu[i].second.device() == (cpu[i].first == "step" ? Device::cpu() : Device::cuda()));
    check_close(host(gpu[i].second), cpu[i].second, 1e-6, 1e-7, what + " " + cpu[i].first);
  }
}

// Five steps on both backends from the same start with the same gradients; steps 2 and 4 leave
// one parameter without a gradient (it must not move, and its moments must not either).
template <typename Make>
void run_both(Make make, bool with_f64, const std::string& what) {
  Pair p = make_params(with_f64);
  auto cpu = make(p.cpu);
  auto gpu = make(p.gpu);
  for (int t = 1; t <= 5; ++t) {
    set_grads(p, t == 2 ? 1 : (t == 4 ? 3 : -1));
    const double lr = 1e-2 * t;
    cpu.step(lr);
    gpu.step(lr);
    const std::string step = what + " step " + std::to_string(t);
    check_same(p.gpu, p.cpu, step + " param");
    check_same(gpu.state(), cpu.state(), step + " state");
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(adamw_matches_cpu, SPARTA_NEEDS_GPU) {
  for (bool with_f64 : {false, true}) {
    run_both([](const NamedTensors& ps) { return AdamW(ps, 0.9, 0.95, 1e-8, 0.1, {"bias", "ln_", "wte"}); },
             with_f64, with_f64 ? "adamw (f32 + f64)" : "adamw");
  }
}

BOOST_AUTO_TEST_CASE(adamw_without_weight_decay_matches_cpu, SPARTA_NEEDS_GPU) {
  run_both([](const NamedTensors& ps) { return AdamW(ps, 0.8, 0.999, 1e-6, 0.0, {}); }, false, "adamw wd 0");
}

BOOST_AUTO_TEST_CASE(sgd_with_momentum_matches_cpu, SPARTA_NEEDS_GPU) {
  for (bool with_f64 : {false, true}) {
    run_both([](const NamedTensors& ps) { return SGD(ps, 0.9, 0.01, {"bias"}); }, with_f64,
             with_f64 ? "sgd (f32 + f64)" : "sgd");
  }
  run_both([](const NamedTensors& ps) { return SGD(ps, 0.0, 0.0, {}); }, false, "sgd plain");
}

// A CUDA optimizer resumed from another's state continues as the original does.
BOOST_AUTO_TEST_CASE(adamw_state_round_trip_on_cuda, SPARTA_NEEDS_GPU) {
  Pair p = make_params(false);
  AdamW opt(p.gpu, 0.9, 0.95, 1e-8, 0.1, {"bias"});
  set_grads(p);
  opt.step(0.01);
  NamedTensors copy;
  for (auto& [n, x] : p.gpu) copy.emplace_back(n, autograd::requires_grad(clone(x.detach())));
  AdamW other(copy, 0.9, 0.95, 1e-8, 0.1, {"bias"});
  other.load_state(opt.state());
  set_grads(p);
  for (size_t i = 0; i < copy.size(); ++i) autograd::set_grad(copy[i].second, autograd::grad(p.gpu[i].second));
  opt.step(0.02);
  other.step(0.02);
  for (size_t i = 0; i < copy.size(); ++i)
    check_exact(host(copy[i].second), host(p.gpu[i].second), "resumed " + copy[i].first);
}

BOOST_AUTO_TEST_CASE(parameters_on_two_devices_are_an_error, SPARTA_NEEDS_GPU) {
  NamedTensors ps = {{"a", autograd::requires_grad(random({3}))}, {"b", autograd::requires_grad(dev(random({3})))}};
  check_error([&] { AdamW(ps, 0.9, 0.95, 1e-8, 0, {}); }, {"[optimizer]", "different devices"});
}

BOOST_AUTO_TEST_CASE(clip_grad_norm_matches_cpu, SPARTA_NEEDS_GPU) {
  for (double max_norm : {0.5, 1e6, 0.0}) {
    Pair p = make_params(true);
    set_grads(p, 2);
    const double want = clip_grad_norm(p.cpu, max_norm);
    const double got = clip_grad_norm(p.gpu, max_norm);
    BOOST_CHECK_CLOSE(got, want, 1e-8);  // percent
    for (size_t i = 0; i < p.cpu.size(); ++i) {
      Tensor gc = autograd::grad(p.cpu[i].second), gg = autograd::grad(p.gpu[i].second);
      if (!gc.defined()) {
        BOOST_CHECK(!gg.defined());
        continue;
      }
      BOOST_CHECK(gg.device() == Device::cuda());
      check_close(host(gg), gc, 1e-6, 1e-9, "clipped gradient " + p.cpu[i].first);
    }
  }
}

// Strided and half-precision gradients go through the same reduction; inf is returned unscaled.
BOOST_AUTO_TEST_CASE(clip_grad_norm_strided_half_and_inf, SPARTA_NEEDS_GPU) {
  NamedTensors cpu, gpu;
  const Shape shapes[] = {{65, 33}, {1000, 1100}, {7}};
  const DType dtypes[] = {DType::f32, DType::bf16, DType::f16};
  for (int i = 0; i < 3; ++i) {
    Tensor x = random(shapes[i], dtypes[i]);
    cpu.emplace_back("p" + std::to_string(i), autograd::requires_grad(clone(x)));
    gpu.emplace_back("p" + std::to_string(i), autograd::requires_grad(dev(x)));
    Tensor g = random(shapes[i], dtypes[i], -3, 3);
    autograd::set_grad(cpu.back().second, g);
    // The first gradient is a transposed view on the device.
    Tensor dg = i == 0 ? dev(contiguous(transpose(g, 0, 1))).transpose(0, 1) : dev(g);
    autograd::set_grad(gpu.back().second, dg);
  }
  const double want = clip_grad_norm(cpu, 1.0), got = clip_grad_norm(gpu, 1.0);
  BOOST_CHECK_CLOSE(got, want, 1e-8);  // percent
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double t = i == 0 ? 1e-6 : 1e-2;
    check_close(host(autograd::grad(gpu[i].second)), autograd::grad(cpu[i].second), t, t,
                "clipped " + std::string(dtype_name(dtypes[i])));
  }
  const double inf = std::numeric_limits<double>::infinity();
  autograd::set_grad(gpu[0].second, full({65, 33}, inf, DType::f32, Device::cuda()));
  const Tensor before = host(autograd::grad(gpu[1].second));
  BOOST_CHECK(std::isinf(clip_grad_norm(gpu, 1.0)));
  check_exact(host(autograd::grad(gpu[1].second)), before, "not scaled after an inf norm");
}

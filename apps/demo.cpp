// `sparta demo`: trains a small MLP on a smooth 2-D regression problem with autograd and Adam,
// printing the falling loss. It exercises matmul, broadcasting, GELU, reductions and backward end
// to end; the quickstart Sparse Transformer run replaces it as the main job.
#include <chrono>
#include <cmath>
#include <cstdio>

#include "apps/commands.h"
#include "autograd/autograd.h"
#include "core/ops.h"

namespace sparta::apps {
namespace {

struct DemoOptions {
  int steps = 600;
  int hidden = 64;
  int samples = 1024;
  double lr = 3e-3;
  uint64_t seed = 0;
};

struct Adam {
  double lr, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  int t = 0;
  Tensors params, m, v;

  Adam(Tensors ps, double lr_) : lr(lr_), params(std::move(ps)) {
    for (const Tensor& p : params) {
      m.push_back(zeros_like(p));
      v.push_back(zeros_like(p));
    }
  }
  void step() {
    autograd::NoGradGuard no_grad;
    ++t;
    const double c1 = 1 - std::pow(b1, t), c2 = 1 - std::pow(b2, t);
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor g = autograd::grad(params[i]);
      m[i] = m[i] * b1 + g * (1 - b1);
      v[i] = v[i] * b2 + square(g) * (1 - b2);
      add_(params[i], (m[i] / c1) / (sqrt(v[i] / c2) + eps), -lr);
      autograd::zero_grad(params[i]);
    }
  }
};

Tensor init_weight(int64_t fan_in, int64_t fan_out, Generator& gen) {
  const double bound = 1 / std::sqrt(double(fan_in));
  return autograd::requires_grad(uniform({fan_in, fan_out}, -bound, bound, DType::f32, &gen));
}

void run_demo(const DemoOptions& o) {
  Generator gen(o.seed);
  // Target: a smooth bump-and-ripple surface on [-1, 1]^2.
  Tensor x = uniform({o.samples, 2}, -1, 1, DType::f32, &gen);
  Tensor x0 = slice(x, 1, 0, 1), x1 = slice(x, 1, 1, 2);
  Tensor y = sin(x0 * 3.0) * cos(x1 * 2.0) + x0 * x1 * 0.5;

  Tensor w1 = init_weight(2, o.hidden, gen), w2 = init_weight(o.hidden, o.hidden, gen),
         w3 = init_weight(o.hidden, 1, gen);
  Tensor b1 = autograd::requires_grad(zeros({o.hidden})), b2 = autograd::requires_grad(zeros({o.hidden})),
         b3 = autograd::requires_grad(zeros({1}));
  Adam opt({w1, b1, w2, b2, w3, b3}, o.lr);

  std::printf("demo: MLP 2-%d-%d-1 on %d samples of sin(3x)cos(2y)+xy/2, Adam lr %g\n", o.hidden, o.hidden,
              o.samples, o.lr);
  const auto start = std::chrono::steady_clock::now();
  double first = 0, last = 0;
  for (int step = 1; step <= o.steps; ++step) {
    Tensor h = gelu(matmul(x, w1) + b1);
    h = gelu(matmul(h, w2) + b2);
    Tensor loss = mean(square(matmul(h, w3) + b3 - y));
    autograd::backward(loss);
    opt.step();
    last = loss.item<double>();
    if (step == 1) first = last;
    if (step == 1 || step % 50 == 0 || step == o.steps) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      double eta = secs / step * (o.steps - step);
      std::printf("step %5d/%d  loss %.6f  %.0f steps/s  eta %.1fs\n", step, o.steps, last, step / secs, eta);
      std::fflush(stdout);
    }
  }
  std::printf("loss fell from %.6f to %.6f (%.1fx)\n", first, last, first / last);
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto opts = std::make_shared<DemoOptions>();
  CLI::App* cmd = app.add_subcommand("demo", "train a small MLP with autograd and print its falling loss");
  cmd->add_option("--steps", opts->steps, "optimizer steps")->check(CLI::PositiveNumber);
  cmd->add_option("--hidden", opts->hidden, "hidden width")->check(CLI::PositiveNumber);
  cmd->add_option("--samples", opts->samples, "training points")->check(CLI::PositiveNumber);
  cmd->add_option("--lr", opts->lr, "Adam learning rate")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", opts->seed, "random seed");
  cmd->callback([opts] { run_demo(*opts); });
}

}  // namespace sparta::apps

// Optimizers against their textbook formulas evaluated in double, weight-decay exclusion by name,
// gradient clipping and the learning-rate schedules.
#include <cmath>

#include "train/lr_schedule.h"
#include "train/optimizer.h"
#include "tests/support.h"

using namespace sparta;
using namespace sparta::train;
using namespace sparta::test;

namespace {

NamedTensors make_params() {
  return {{"blocks.0.mlp.fc.weight", autograd::requires_grad(random({3, 4}))},
          {"blocks.0.mlp.fc.bias", autograd::requires_grad(random({4}))}};
}

void set_grads(const NamedTensors& ps, std::vector<std::vector<double>>& grads) {
  grads.clear();
  for (auto& [_, p] : ps) {
    Tensor g = random(p.shape());
    autograd::set_grad(p, g);
    grads.push_back(g.to_vector<double>());
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(adamw_matches_the_formula) {
  NamedTensors ps = make_params();
  std::vector<std::vector<double>> w, m, v;
  for (auto& [_, p] : ps) {
    w.push_back(p.to_vector<double>());
    m.emplace_back(size_t(p.numel()), 0.0);
    v.emplace_back(size_t(p.numel()), 0.0);
  }
  AdamW opt(ps, 0.9, 0.95, 1e-8, 0.1, {"bias"});
  std::vector<std::vector<double>> g;
  for (int t = 1; t <= 5; ++t) {
    set_grads(ps, g);
    const double lr = 1e-2 * t;
    opt.step(lr);
    for (size_t i = 0; i < ps.size(); ++i) {
      const double wd = i == 0 ? 0.1 : 0.0;  // the bias is excluded by name
      for (size_t j = 0; j < w[i].size(); ++j) {
        m[i][j] = 0.9 * m[i][j] + 0.1 * g[i][j];
        v[i][j] = 0.95 * v[i][j] + 0.05 * g[i][j] * g[i][j];
        const double mh = m[i][j] / (1 - std::pow(0.9, t)), vh = v[i][j] / (1 - std::pow(0.95, t));
        w[i][j] = w[i][j] * (1 - lr * wd) - lr * mh / (std::sqrt(vh) + 1e-8);
      }
      check_close(ps[i].second, from_vector(w[i], ps[i].second.shape(), DType::f64), 1e-5, 1e-6,
                  "adamw step " + std::to_string(t) + " " + ps[i].first);
    }
  }
  BOOST_CHECK(!opt.decays("blocks.0.mlp.fc.bias"));
  BOOST_CHECK(opt.decays("blocks.0.mlp.fc.weight"));
  // State round trip: a second optimizer loaded from the first continues identically.
  NamedTensors copy;
  for (auto& [n, p] : ps) copy.emplace_back(n, autograd::requires_grad(clone(p.detach())));
  AdamW other(copy, 0.9, 0.95, 1e-8, 0.1, {"bias"});
  other.load_state(opt.state());
  set_grads(ps, g);
  for (size_t i = 0; i < ps.size(); ++i) autograd::set_grad(copy[i].second, autograd::grad(ps[i].second));
  opt.step(0.01);
  other.step(0.01);
  for (size_t i = 0; i < ps.size(); ++i) check_exact(copy[i].second, ps[i].second, "resumed optimizer");
}

BOOST_AUTO_TEST_CASE(sgd_with_momentum) {
  NamedTensors ps = make_params();
  std::vector<std::vector<double>> w, b, g;
  for (auto& [_, p] : ps) {
    w.push_back(p.to_vector<double>());
    b.emplace_back(size_t(p.numel()), 0.0);
  }
  SGD opt(ps, 0.9, 0.01, {"bias"});
  for (int t = 0; t < 4; ++t) {
    set_grads(ps, g);
    opt.step(0.1);
    for (size_t i = 0; i < ps.size(); ++i) {
      for (size_t j = 0; j < w[i].size(); ++j) {
        b[i][j] = 0.9 * b[i][j] + g[i][j];
        w[i][j] = w[i][j] * (1 - 0.1 * (i == 0 ? 0.01 : 0.0)) - 0.1 * b[i][j];
      }
      check_close(ps[i].second, from_vector(w[i], ps[i].second.shape(), DType::f64), 1e-5, 1e-6, "sgd");
    }
  }
  check_error([&] { SGD(ps, 1.0, 0, {}); }, {"[sgd]", "momentum"});
  check_error([&] { AdamW(ps, 0.9, 1.5, 1e-8, 0, {}); }, {"[adamw]", "betas"});
}

BOOST_AUTO_TEST_CASE(clipping_by_global_norm) {
  NamedTensors ps = make_params();
  std::vector<std::vector<double>> g;
  set_grads(ps, g);
  double sq = 0;
  for (auto& v : g)
    for (double e : v) sq += e * e;
  const double norm = clip_grad_norm(ps, 0.5);
  BOOST_CHECK_CLOSE(norm, std::sqrt(sq), 1e-4);
  double after = 0;
  for (auto& [_, p] : ps) after += sum(square(cast(autograd::grad(p), DType::f64))).item<double>();
  BOOST_CHECK_CLOSE(std::sqrt(after), std::min(0.5, std::sqrt(sq)), 1e-3);
  BOOST_CHECK_CLOSE(clip_grad_norm(ps, 0), std::sqrt(after), 1e-4);  // 0: measure only
}

BOOST_AUTO_TEST_CASE(schedules) {
  LrSchedule s{ScheduleKind::cosine, 1.0, 0.1, 10, 110};
  BOOST_CHECK_CLOSE(s.at(5), 0.5, 1e-9);
  BOOST_CHECK_CLOSE(s.at(10), 1.0, 1e-9);
  BOOST_CHECK_CLOSE(s.at(60), 0.55, 1e-9);
  BOOST_CHECK_CLOSE(s.at(110), 0.1, 1e-9);
  BOOST_CHECK_CLOSE(s.at(500), 0.1, 1e-9);
  s.kind = ScheduleKind::linear;
  BOOST_CHECK_CLOSE(s.at(60), 0.55, 1e-9);
  BOOST_CHECK_CLOSE(s.at(35), 0.775, 1e-9);
  s.kind = ScheduleKind::constant;
  BOOST_CHECK_CLOSE(s.at(1000), 1.0, 1e-9);
  check_error([] { schedule_from_name("exponential"); }, {"[schedule]", "exponential"});
}

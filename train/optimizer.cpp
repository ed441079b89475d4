#include "train/optimizer.h"

#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <cmath>
#include <map>
#include <type_traits>

#include "autograd/autograd.h"
#include "core/ops.h"

namespace sparta::train {
namespace {

// Runs fn(i) over n elements in parallel chunks.
template <typename Fn>
void parallel_elements(int64_t n, Fn&& fn) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 1 << 14), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) fn(i);
  });
}

void check_param(const std::string& name, const Tensor& p) {
  SPARTA_CHECK(p.is_contiguous() && (p.dtype() == DType::f32 || p.dtype() == DType::f64), "optimizer",
               "parameter '", name, "' must be a contiguous f32 or f64 tensor (master weights), got ",
               dtype_name(p.dtype()));
}

}  // namespace

Optimizer::Optimizer(NamedTensors params, double weight_decay, std::vector<std::string> no_decay)
    : params_(std::move(params)), weight_decay_(weight_decay), no_decay_(std::move(no_decay)) {
  SPARTA_CHECK(weight_decay >= 0, "optimizer", "weight_decay must be non-negative, got ", weight_decay);
  for (auto& [name, p] : params_) check_param(name, p);
}

bool Optimizer::decays(const std::string& name) const {
  for (const std::string& pat : no_decay_)
    if (name.find(pat) != std::string::npos) return false;
  return true;
}

void Optimizer::zero_grad() {
  for (auto& [_, p] : params_) autograd::zero_grad(p);
}

void Optimizer::load_state(const NamedTensors& saved) {
  // By name: a checkpoint may list the tensors in another order (grouped by prefix).
  std::map<std::string, Tensor> by_name(saved.begin(), saved.end());
  NamedTensors mine = state();
  SPARTA_CHECK(saved.size() == mine.size(), "optimizer", "checkpoint holds ", saved.size(),
               " optimizer tensors, this optimizer has ", mine.size());
  for (auto& [name, t] : mine) {
    auto it = by_name.find(name);
    SPARTA_CHECK(it != by_name.end(), "optimizer", "checkpoint has no optimizer tensor '", name, "'");
    SPARTA_CHECK(it->second.shape() == t.shape(), "optimizer", "'", name, "' has shape ", shape_str(t.shape()),
                 " but the checkpoint ", shape_str(it->second.shape()));
    copy_(t, it->second);
  }
}

template <typename Update>
void Optimizer::each_gradient(Update&& update) {
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i].second;
    Tensor g = autograd::grad(p);
    if (!g.defined()) continue;
    g = contiguous(cast(g, p.dtype()));
    const double wd = decays(params_[i].first) ? weight_decay_ : 0.0;
    if (p.dtype() == DType::f64) {
      update(i, p.data<double>(), g.data<double>(), wd);
    } else {
      update(i, p.data<float>(), g.data<float>(), wd);
    }
  }
}

AdamW::AdamW(NamedTensors params, double beta1, double beta2, double eps, double weight_decay,
             std::vector<std::string> no_decay)
    : Optimizer(std::move(params), weight_decay, std::move(no_decay)), beta1_(beta1), beta2_(beta2), eps_(eps) {
  SPARTA_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "adamw", "betas must be in [0, 1), got ", beta1,
               ", ", beta2);
  SPARTA_CHECK(eps > 0, "adamw", "eps must be positive, got ", eps);
  step_count_ = scalar(0, DType::f64);
  for (auto& [_, p] : params_) {
    m_.push_back(zeros_like(p));
    v_.push_back(zeros_like(p));
  }
}

void AdamW::step(double lr) {
  double* count = step_count_.data<double>();
  *count += 1;
  const double c1 = 1 - std::pow(beta1_, *count), c2 = 1 - std::pow(beta2_, *count);
  each_gradient([&](size_t i, auto* w, const auto* gr, double wd) {
    using T = std::remove_pointer_t<decltype(w)>;
    T* m = m_[i].data<T>();
    T* v = v_[i].data<T>();
    const T b1 = T(beta1_), b2 = T(beta2_), e = T(eps_), lr_t = T(lr), decay = T(1 - lr * wd);
    const T ic1 = T(1 / c1), isc2 = T(1 / std::sqrt(c2));
    parallel_elements(params_[i].second.numel(), [&](int64_t j) {
      m[j] = b1 * m[j] + (1 - b1) * gr[j];
      v[j] = b2 * v[j] + (1 - b2) * gr[j] * gr[j];
      w[j] = w[j] * decay - lr_t * (m[j] * ic1) / (std::sqrt(v[j]) * isc2 + e);
    });
  });
}

NamedTensors AdamW::state() const {
  NamedTensors s{{"step", step_count_}};
  for (size_t i = 0; i < params_.size(); ++i) {
    s.emplace_back("exp_avg/" + params_[i].first, m_[i]);
    s.emplace_back("exp_avg_sq/" + params_[i].first, v_[i]);
  }
  return s;
}

SGD::SGD(NamedTensors params, double momentum, double weight_decay, std::vector<std::string> no_decay)
    : Optimizer(std::move(params), weight_decay, std::move(no_decay)), momentum_(momentum) {
  SPARTA_CHECK(momentum >= 0 && momentum < 1, "sgd", "momentum must be in [0, 1), got ", momentum);
  for (auto& [_, p] : params_) buf_.push_back(zeros_like(p));
}

void SGD::step(double lr) {
  each_gradient([&](size_t i, auto* w, const auto* gr, double wd) {
    using T = std::remove_pointer_t<decltype(w)>;
    T* b = buf_[i].data<T>();
    const T mu = T(momentum_), lr_t = T(lr), decay = T(1 - lr * wd);
    parallel_elements(params_[i].second.numel(), [&](int64_t j) {
      b[j] = mu * b[j] + gr[j];
      w[j] = w[j] * decay - lr_t * b[j];
    });
  });
}

NamedTensors SGD::state() const {
  NamedTensors s;
  for (size_t i = 0; i < params_.size(); ++i) s.emplace_back("momentum/" + params_[i].first, buf_[i]);
  return s;
}

double clip_grad_norm(const NamedTensors& params, double max_norm) {
  double total = 0;
  for (auto& [_, p] : params) {
    Tensor g = autograd::grad(p);
    if (g.defined()) total += sum(square(cast(g, DType::f64))).item<double>();
  }
  const double norm = std::sqrt(total);
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (auto& [_, p] : params) {
      Tensor g = autograd::grad(p);
      if (g.defined()) mul_(g, scale);
    }
  }
  return norm;
}

}  // namespace sparta::train

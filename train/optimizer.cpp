#include "train/optimizer.h"

#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <cmath>
#include <map>
#include <type_traits>

#include "autograd/autograd.h"
#include "core/ops.h"
#ifdef SPARTA_CUDA
#include "train/optimizer_cuda.h"
#endif

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
  for (auto& [name, p] : params_) {
    check_param(name, p);
    const auto& [first, p0] = params_.front();
    SPARTA_CHECK(p.device() == p0.device(), "optimizer", "parameters on different devices: '", first, "' on ",
                 p0.device().str(), ", '", name, "' on ", p.device().str());
  }
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

#ifdef SPARTA_CUDA
// The fused kernels' descriptors: one group per parameter dtype and the indices of its members.
struct Optimizer::CudaGroups {
  std::vector<const void*> signature;  // the addresses of every parameter and state tensor when built
  std::unique_ptr<fused::MultiTensor> group[2];  // f32, f64
  std::vector<size_t> members[2];
};

template <typename Launch>
void Optimizer::each_cuda_group(const std::vector<Tensor>& m, const std::vector<Tensor>& v, Launch&& launch) {
  std::vector<const void*> signature;
  for (size_t i = 0; i < params_.size(); ++i) {
    signature.push_back(params_[i].second.data_ptr());
    signature.push_back(m[i].data_ptr());
    signature.push_back(v.empty() ? nullptr : v[i].data_ptr());
  }
  if (!cuda_ || cuda_->signature != signature) {
    auto groups = std::make_shared<CudaGroups>();
    groups->signature = signature;
    std::vector<fused::Slot> slots[2];
    for (size_t i = 0; i < params_.size(); ++i) {
      const auto& [name, p] = params_[i];
      const int k = p.dtype() == DType::f64 ? 1 : 0;
      groups->members[k].push_back(i);
      slots[k].push_back({p.data_ptr(), m[i].data_ptr(), v.empty() ? nullptr : v[i].data_ptr(), p.numel(),
                          decays(name) ? weight_decay_ : 0.0});
    }
    const int device = params_.front().second.device().index;
    for (int k = 0; k < 2; ++k) {
      if (!slots[k].empty())
        groups->group[k] = std::make_unique<fused::MultiTensor>(device, k ? DType::f64 : DType::f32, slots[k]);
    }
    cuda_ = std::move(groups);
  }
  std::vector<Tensor> keep;  // converted gradients stay alive until their kernel is queued
  for (int k = 0; k < 2; ++k) {
    if (!cuda_->group[k]) continue;
    std::vector<const void*> grads;
    for (size_t i : cuda_->members[k]) {
      const auto& [name, p] = params_[i];
      Tensor g = autograd::grad(p);
      if (!g.defined()) {
        grads.push_back(nullptr);
        continue;
      }
      SPARTA_CHECK(g.device() == p.device(), "optimizer", "gradient of '", name, "' is on ", g.device().str(),
                   ", the parameter on ", p.device().str());
      g = contiguous(cast(g, p.dtype()));
      keep.push_back(g);
      grads.push_back(g.data_ptr());
    }
    launch(*cuda_->group[k], grads);
  }
}
#endif

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
#ifdef SPARTA_CUDA
  if (on_cuda()) {
    const fused::AdamWArgs args{lr, beta1_, beta2_, eps_, 1 / c1, 1 / std::sqrt(c2)};
    each_cuda_group(m_, v_, [&](fused::MultiTensor& group, const std::vector<const void*>& grads) {
      group.adamw(grads, args);
    });
    return;
  }
#endif
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
#ifdef SPARTA_CUDA
  if (on_cuda()) {
    each_cuda_group(buf_, {}, [&](fused::MultiTensor& group, const std::vector<const void*>& grads) {
      group.sgd(grads, lr, momentum_);
    });
    return;
  }
#endif
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

#ifdef SPARTA_CUDA
namespace {

// One reduction over every gradient and one read of the total; one launch to scale. A strided
// gradient is measured and scaled through a dense copy, then copied back.
double clip_grad_norm_cuda(const std::vector<Tensor>& grads, double max_norm) {
  const Device dev = grads.front().device();
  std::vector<fused::GradRef> refs;
  std::vector<std::pair<Tensor, Tensor>> strided;  // (gradient, its dense copy)
  for (const Tensor& g : grads) {
    SPARTA_CHECK(g.device() == dev, "clip_grad_norm", "gradients on different devices: ", dev.str(), " and ",
                 g.device().str());
    Tensor d = g;
    if (!g.is_contiguous()) {
      d = contiguous(g);
      strided.emplace_back(g, d);
    }
    refs.push_back({d.data_ptr(), d.numel(), d.dtype()});
  }
  fused::GradSet set(dev.index, refs);
  const double norm = std::sqrt(set.sum_of_squares());
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm) {
    set.scale(max_norm / (norm + 1e-6));
    for (auto& [g, d] : strided) copy_(g, d);
  }
  return norm;
}

}  // namespace
#endif

double clip_grad_norm(const NamedTensors& params, double max_norm) {
#ifdef SPARTA_CUDA
  std::vector<Tensor> grads;
  for (auto& [_, p] : params) {
    Tensor g = autograd::grad(p);
    if (g.defined()) grads.push_back(g);
  }
  if (!grads.empty() && grads.front().device().is_cuda()) return clip_grad_norm_cuda(grads, max_norm);
#endif
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

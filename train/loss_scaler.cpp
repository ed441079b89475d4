#include "train/loss_scaler.h"

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "core/ops.h"

namespace sparta::train {

LossScaler::LossScaler(bool enabled, double initial_scale, int64_t growth_interval)
    : enabled_(enabled), scale_(initial_scale), growth_interval_(growth_interval) {
  SPARTA_CHECK(initial_scale > 0 && growth_interval > 0, "loss_scaler", "scale ", initial_scale, " and interval ",
               growth_interval, " must be positive");
}

void LossScaler::unscale(const NamedTensors& params) const {
  if (!enabled_) return;
  autograd::NoGradGuard no_grad;
  for (const auto& [name, p] : params) {
    Tensor g = autograd::grad(p);
    if (g.defined()) mul_(g, 1.0 / scale_);
  }
}

void LossScaler::update(bool finite) {
  if (!enabled_) return;
  if (!finite) {
    // Below 1 the scale would shrink gradients instead of protecting them; f32 gradients that
    // overflow at scale 1 are a diverging run, which the trainer's skip limit stops.
    scale_ = std::max(1.0, scale_ / 2);
    good_steps_ = 0;
  } else if (++good_steps_ >= growth_interval_) {
    scale_ = std::min(scale_ * 2, 16777216.0);  // 2^24: beyond it f16 gradients overflow at once
    good_steps_ = 0;
  }
}

void LossScaler::save(std::map<std::string, double>& scalars, std::map<std::string, int64_t>& counters) const {
  if (!enabled_) return;
  scalars["loss_scale"] = scale_;
  counters["loss_scale.good_steps"] = good_steps_;
}

void LossScaler::load(const std::map<std::string, double>& scalars, const std::map<std::string, int64_t>& counters) {
  if (!enabled_) return;
  if (auto it = scalars.find("loss_scale"); it != scalars.end()) scale_ = it->second;
  if (auto it = counters.find("loss_scale.good_steps"); it != counters.end()) good_steps_ = it->second;
}

}  // namespace sparta::train

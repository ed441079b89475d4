#pragma once
// Dynamic loss scaling for fp16 training (bf16 and f32 have f32's exponent range and need none).
// The loss is multiplied by scale() before backward so that small gradients do not flush to zero
// in f16; unscale() divides the gradients back before clipping and the optimizer. A step whose
// gradients overflowed is skipped by the trainer and the scale halves; after growth_interval clean
// steps in a row it doubles. Its state travels in checkpoints.
#include <cstdint>
#include <map>
#include <string>

#include "train/optimizer.h"

namespace sparta::train {

class LossScaler {
 public:
  explicit LossScaler(bool enabled, double initial_scale = 65536.0, int64_t growth_interval = 2000);
  bool enabled() const { return enabled_; }
  double scale() const { return enabled_ ? scale_ : 1.0; }
  // Divides every parameter's gradient by the scale (nothing when disabled).
  void unscale(const NamedTensors& params) const;
  // After a step: finite says whether the unscaled gradients were all finite.
  void update(bool finite);
  void save(std::map<std::string, double>& scalars, std::map<std::string, int64_t>& counters) const;
  void load(const std::map<std::string, double>& scalars, const std::map<std::string, int64_t>& counters);

 private:
  bool enabled_;
  double scale_;
  int64_t growth_interval_;
  int64_t good_steps_ = 0;
};

}  // namespace sparta::train

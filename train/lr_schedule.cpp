#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace sparta::train {

ScheduleKind schedule_from_name(const std::string& name) {
  if (name == "constant") return ScheduleKind::constant;
  if (name == "linear") return ScheduleKind::linear;
  if (name == "cosine") return ScheduleKind::cosine;
  SPARTA_FAIL("schedule", "unknown schedule '", name, "' (expected constant, linear or cosine)");
}

const char* schedule_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::constant: return "constant";
    case ScheduleKind::linear: return "linear";
    case ScheduleKind::cosine: return "cosine";
  }
  return "?";
}

double LrSchedule::at(int64_t step) const {
  if (warmup > 0 && step <= warmup) return lr * double(step) / double(warmup);
  if (kind == ScheduleKind::constant) return lr;
  const double span = double(std::max<int64_t>(1, total - warmup));
  const double progress = std::clamp(double(step - warmup) / span, 0.0, 1.0);
  if (kind == ScheduleKind::linear) return lr + (min_lr - lr) * progress;
  return min_lr + 0.5 * (lr - min_lr) * (1 + std::cos(M_PI * progress));
}

}  // namespace sparta::train

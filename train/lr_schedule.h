#pragma once
// Learning-rate schedules: a linear warmup from 0 over `warmup` steps, then constant, linear decay
// to min_lr at `total` steps, or cosine decay to min_lr at `total` steps.
#include <cstdint>
#include <string>

namespace sparta::train {

enum class ScheduleKind { constant, linear, cosine };
ScheduleKind schedule_from_name(const std::string& name);  // throws naming the bad value
const char* schedule_name(ScheduleKind kind);

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::cosine;
  double lr = 3e-4;
  double min_lr = 0;
  int64_t warmup = 0;
  int64_t total = 1;
  // The learning rate of optimizer step `step` (1-based).
  double at(int64_t step) const;
};

}  // namespace sparta::train

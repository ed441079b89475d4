#pragma once
// The console progress line, formatted from numbers alone so it can be tested:
//   step 120/1000 | loss 2.3412 | lr 2.9e-04 | 10.2k tok/s | 1.2 GB | eta 3m12s
// and the ETA behind it, from a moving average of recent step times (the first steps, slowed by
// warm-up and allocation, leave the window once enough later ones arrive).
#include <cmath>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

namespace sparta::train {

struct ProgressInfo {
  int64_t step = 0;
  int64_t total_steps = 0;  // 0: unknown, shown as "step 120"
  double loss = 0;
  double lr = 0;
  double tokens_per_s = 0;
  std::optional<int64_t> memory_bytes;  // left out when not measured
  double eta_s = NAN;                   // NaN: not known yet, shown as "eta ?"
};

std::string format_progress(const ProgressInfo& info);

// 3 significant digits with k, M, G, T suffixes: 950, 1.23k, 10.2k, 102k, 1.23M.
std::string format_count(double value);
// Decimal units, one decimal below 100: 512 B, 1.5 kB, 12.3 MB, 1.2 GB, 123 GB.
std::string format_bytes(int64_t bytes);
// Two units at most, rounded to the smaller: 45s, 3m12s, 1h05m, 2d03h; "?" for NaN or negative.
std::string format_duration(double seconds);

// Seconds per step averaged over the last `window` recorded intervals, weighted by their steps.
class EtaEstimator {
 public:
  explicit EtaEstimator(size_t window = 20);
  // `seconds` spent on `steps` steps (several when the trainer measures once per log interval).
  void record(double seconds, int64_t steps = 1);
  double seconds_per_step() const;  // NaN before the first record
  double eta_s(int64_t steps_left) const;

 private:
  struct Interval {
    double seconds;
    int64_t steps;
  };
  size_t window_;
  std::deque<Interval> intervals_;
  int64_t steps_ = 0;
};

}  // namespace sparta::train

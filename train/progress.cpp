#include "train/progress.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"

namespace sparta::train {

namespace {

template <typename... Args>
std::string printf_string(const char* format, Args... args) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, args...);
  return buf;
}

// `a` (>= 0, below 999.5 after scaling) with 3 significant digits.
std::string three_digits(double a) {
  if (a < 9.995) return printf_string("%.2f", a);
  if (a < 99.95) return printf_string("%.1f", a);
  return printf_string("%.0f", a);
}

}  // namespace

std::string format_count(double value) {
  if (std::isnan(value)) return "?";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  static const char* const suffix[] = {"", "k", "M", "G", "T"};
  double a = std::abs(value);
  int unit = 0;
  // Compare with the rounding threshold, not 1000, so 999.7 becomes 1.00k rather than "1000".
  while (a >= 999.5 && unit < 4) {
    a /= 1000;
    ++unit;
  }
  return (value < 0 ? "-" : "") + three_digits(a) + suffix[unit];
}

std::string format_bytes(int64_t bytes) {
  if (bytes < 0) return "?";
  if (bytes < 1000) return std::to_string(bytes) + " B";
  static const char* const suffix[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double a = double(bytes) / 1000;
  int unit = 1;
  while (a >= 999.95 && unit < 5) {
    a /= 1000;
    ++unit;
  }
  return printf_string(a < 99.95 ? "%.1f %s" : "%.0f %s", a, suffix[unit]);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long long s = std::llround(seconds);
  if (s < 60) return printf_string("%llds", s);
  if (s < 3600) return printf_string("%lldm%02llds", s / 60, s % 60);
  const long long minutes = std::llround(seconds / 60);
  if (minutes < 24 * 60) return printf_string("%lldh%02lldm", minutes / 60, minutes % 60);
  const long long hours = std::llround(seconds / 3600);
  return printf_string("%lldd%02lldh", hours / 24, hours % 24);
}

std::string format_progress(const ProgressInfo& info) {
  std::string line = "step " + std::to_string(info.step);
  if (info.total_steps > 0) line += "/" + std::to_string(info.total_steps);
  line += printf_string(" | loss %.4f | lr %.1e | ", info.loss, info.lr);
  line += format_count(info.tokens_per_s) + " tok/s";
  if (info.memory_bytes) line += " | " + format_bytes(*info.memory_bytes);
  line += " | eta " + format_duration(info.eta_s);
  return line;
}

EtaEstimator::EtaEstimator(size_t window) : window_(window) {
  SPARTA_CHECK(window > 0, "progress", "ETA window must hold at least one interval, got 0");
}

void EtaEstimator::record(double seconds, int64_t steps) {
  SPARTA_CHECK(std::isfinite(seconds) && seconds >= 0, "progress", "step time ", seconds, "s is not a duration");
  SPARTA_CHECK(steps > 0, "progress", "an interval of ", steps, " steps (expected at least 1)");
  intervals_.push_back({seconds, steps});
  steps_ += steps;
  if (intervals_.size() > window_) {
    steps_ -= intervals_.front().steps;
    intervals_.pop_front();
  }
}

double EtaEstimator::seconds_per_step() const {
  if (intervals_.empty()) return NAN;
  double seconds = 0;
  for (const Interval& i : intervals_) seconds += i.seconds;
  return seconds / double(steps_);
}

double EtaEstimator::eta_s(int64_t steps_left) const {
  return seconds_per_step() * double(std::max<int64_t>(0, steps_left));
}

}  // namespace sparta::train

#pragma once
// Reading a job's metrics.jsonl while its trainer appends to it. The trainer's file is the one
// source of truth (nothing is copied into the daemon), so what the API serves is what the run
// logged; a resume rewrites the file without the lines past its checkpoint and then logs those steps
// again, so readers go by step, not by line.
#include <sys/types.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "train/metrics.h"

namespace sparta::daemon {

// The last complete record, reading only the file's tail; nullopt when there is none yet.
std::optional<train::MetricsRecord> last_metrics(const std::string& path);

// New complete lines, each with its step, from where the previous poll stopped. Lines of steps at
// or below the last one returned are skipped, so a file replaced by a resume yields each step once.
class MetricsFollower {
 public:
  MetricsFollower(std::string path, int64_t since_step = std::numeric_limits<int64_t>::min());
  std::vector<std::pair<int64_t, std::string>> poll();
  int64_t last_step() const { return last_step_; }

 private:
  std::string path_;
  int64_t last_step_;
  ino_t inode_ = 0;
  off_t offset_ = 0;
};

}  // namespace sparta::daemon

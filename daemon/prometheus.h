#pragma once
// GET /metrics in Prometheus' text exposition format (version 0.0.4): per job its last logged step,
// loss, tokens/s and its state (one series per job, state as a label, value 1); per daemon the
// queue length, jobs by state and the devices in use.
#include <optional>
#include <string>
#include <vector>

#include "daemon/job.h"
#include "daemon/supervisor.h"
#include "train/metrics.h"

namespace sparta::daemon {

struct JobSample {
  Job job;
  std::optional<train::MetricsRecord> last;  // its metrics.jsonl's last line
};

std::string prometheus_text(const std::vector<JobSample>& jobs, const Usage& usage);

// A label value with backslash, double quote and newline escaped, as the format requires.
std::string prometheus_label(const std::string& value);

}  // namespace sparta::daemon

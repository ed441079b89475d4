#pragma once
// The daemon's settings: defaults here, then <state>/daemon.yaml when present (every key checked,
// a misspelt one named with its nearest valid name), then command-line flags.
//
//   port: 7450                 # 127.0.0.1 only; 0 picks a free port (the CLI finds it in daemon.json)
//   cpu_slots: 1               # CPU jobs running at once (each uses all cores through TBB/OpenMP)
//   gpus: [0, 1]               # GPU indices to hand out; default every GPU visible to the daemon
//   resume_interrupted: true   # at start-up, resume jobs that were running when the daemon stopped
//   cancel_grace_s: 30         # after SIGTERM, how long a job may take to checkpoint before SIGKILL
//   chart_js: /usr/share/javascript/chart.js/chart.min.js   # the dashboard's charting library
#include <optional>
#include <string>
#include <vector>

namespace sparta::daemon {

struct DaemonConfig {
  int port = 7450;
  int cpu_slots = 1;
  std::optional<std::vector<int>> gpus;  // unset: every visible GPU
  bool resume_interrupted = true;
  double cancel_grace_s = 30;
  std::string chart_js = "/usr/share/javascript/chart.js/chart.min.js";
};

// Applies `yaml_text` (named `source` in errors) over `base`.
DaemonConfig parse_daemon_config(const std::string& yaml_text, const std::string& source, DaemonConfig base = {});
// Reads `path` when it exists; the defaults otherwise.
DaemonConfig load_daemon_config(const std::string& path);
// Checks ranges; throws "[daemon] <what>: ..." naming the setting.
void validate(const DaemonConfig& c);

// The GPU indices the daemon hands out: config.gpus, or 0..n-1 for the n visible devices.
std::vector<int> daemon_gpus(const DaemonConfig& c);

}  // namespace sparta::daemon

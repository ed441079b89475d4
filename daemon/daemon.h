#pragma once
// `sparta daemon`: the long-running service. In the foreground, logging to stderr, as systemd
// expects (Type=simple); SIGTERM or SIGINT stop it cleanly: the API closes, running jobs get
// SIGTERM, checkpoint within the grace period and are marked interrupted, to resume at the next
// start. A SIGKILL loses nothing either: the store is transactional, jobs die with the daemon
// (PR_SET_PDEATHSIG) after checkpointing, and the next start recovers them (Supervisor::recover).
#include <optional>
#include <string>
#include <vector>

namespace sparta::daemon {

struct DaemonOptions {
  std::string state_dir;  // "" for default_state_dir()
  // Command-line settings; each overrides daemon.yaml's.
  std::optional<int> port;
  std::optional<int> cpu_slots;
  std::optional<std::vector<int>> gpus;
  std::optional<bool> resume_interrupted;
  std::optional<double> cancel_grace_s;
};

// Runs until SIGTERM or SIGINT; throws sparta::Error for what stops it from starting.
void run_daemon(const DaemonOptions& options);

}  // namespace sparta::daemon

#pragma once
// How a job's attempt is started: the command, its environment and its files.
//
// The first attempt runs `sparta train <state>/jobs/<id>/config.yaml --runs <state>/runs` in the
// job folder. A later attempt (after an interruption, a failure or a cancel) runs
// `sparta resume <state>/runs/<run_name>` when the run has a checkpoint, which continues bit for bit
// and rewrites metrics.jsonl to drop the lines past the checkpoint (they are logged again, once); a
// run with no checkpoint yet starts over, its stale metric lines dropped first.
#include <string>
#include <vector>

#include "daemon/job.h"
#include "daemon/process.h"
#include "daemon/state_dir.h"

namespace sparta::daemon {

// The run directory holds a checkpoint to resume from.
bool run_has_checkpoint(const std::string& run_dir);

// CUDA_VISIBLE_DEVICES for the daemon's GPU indices `gpus`: indices count within the daemon's own
// CUDA_VISIBLE_DEVICES when it has one (index 0 of a daemon started with "2,3" is GPU 2).
std::string visible_devices(const std::vector<int>& gpus);

// The spec for the job's next attempt; writes the job's config file when it is missing and
// prepares the run directory for a fresh start. `description` receives a one-line summary.
SpawnSpec attempt_spec(const StateDir& dir, const Job& job, const std::string& config_yaml,
                       const std::vector<int>& gpus, const std::string& sparta_bin, std::string* description);

// The line of the job's log that best says why it failed: the last "error" line, else the last one.
std::string last_error_line(const std::string& log_path);

// Appends a line from the daemon to the job's log, so the log tells the whole story of its attempts.
void append_to_job_log(const std::string& log_path, const std::string& line);

}  // namespace sparta::daemon

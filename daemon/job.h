#pragma once
// A training job as the daemon records it. States and their transitions (DESIGN: daemon):
//
//   queued ──start──> running ──exit 0──> succeeded
//     │                 │ ├──exit != 0 / signal──> failed
//     │ cancel          │ ├──cancel (SIGTERM, grace, SIGKILL)──> cancelled
//     v                 │ └──daemon stopped or killed──> interrupted ──(resume_interrupted)──> queued
//   cancelled           │
//   failed, cancelled, interrupted ──`sparta resume JOB`──> queued (resumes from the last checkpoint)
//
// succeeded, failed and cancelled are final until a manual resume; only succeeded is final for good.
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sparta::daemon {

enum class JobState { queued, running, succeeded, failed, cancelled, interrupted };

const char* state_name(JobState s);
std::optional<JobState> state_from_name(const std::string& name);
const std::vector<JobState>& all_states();
// The job's process is over for now: logs -f and event streams end, cancel has nothing to stop.
bool is_settled(JobState s);
inline std::ostream& operator<<(std::ostream& os, JobState s) { return os << state_name(s); }

struct Job {
  int64_t id = 0;
  std::string name;         // display name: the request's name or the config's `name`
  std::string run_name;     // "<id>-<name>": the run directory <state>/runs/<run_name>
  std::string config_name;  // the file the user submitted (what config errors name)
  JobState state = JobState::queued;
  int64_t queue_seq = 0;    // queue order; a job that was running keeps its place when re-queued
  int64_t gpus = 0;         // GPUs it needs; 0: one CPU slot
  std::string assigned_gpus;  // CUDA_VISIBLE_DEVICES of the current or last attempt ("0,2")
  int64_t total_steps = 0;  // train.steps of its config
  bool resume = false;      // the next start resumes from the run's latest checkpoint
  int64_t attempts = 0;     // starts so far
  std::optional<int64_t> pid;        // process (and process group) of the running attempt
  std::optional<int64_t> pid_start;  // its start time (/proc/<pid>/stat), to tell a reused pid apart
  bool cancel_requested = false;
  std::optional<int64_t> exit_code;  // of the last attempt: exit status, or 128 + signal
  std::string message;      // why it ended as it did (the job's last error line, "cancelled", ...)
  std::string submit_key;   // client-chosen idempotency key: a retried submit returns the same job
  double created_at = 0;    // Unix seconds
  std::optional<double> started_at, finished_at;  // of the last attempt
};

struct JobEvent {
  double at = 0;
  std::string state;
  std::string message;
};

nlohmann::json job_to_json(const Job& job);
nlohmann::json event_to_json(const JobEvent& e);

double unix_now();

}  // namespace sparta::daemon

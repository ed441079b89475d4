#include "daemon/job.h"

#include <chrono>

namespace sparta::daemon {

const char* state_name(JobState s) {
  switch (s) {
    case JobState::queued: return "queued";
    case JobState::running: return "running";
    case JobState::succeeded: return "succeeded";
    case JobState::failed: return "failed";
    case JobState::cancelled: return "cancelled";
    case JobState::interrupted: return "interrupted";
  }
  return "?";
}

const std::vector<JobState>& all_states() {
  static const std::vector<JobState> s{JobState::queued,    JobState::running,   JobState::succeeded,
                                       JobState::failed,    JobState::cancelled, JobState::interrupted};
  return s;
}

std::optional<JobState> state_from_name(const std::string& name) {
  for (JobState s : all_states()) {
    if (name == state_name(s)) return s;
  }
  return std::nullopt;
}

bool is_settled(JobState s) { return s != JobState::queued && s != JobState::running; }

nlohmann::json job_to_json(const Job& j) {
  nlohmann::json o;
  o["id"] = j.id;
  o["name"] = j.name;
  o["run_name"] = j.run_name;
  o["config_name"] = j.config_name;
  o["state"] = state_name(j.state);
  o["queue_seq"] = j.queue_seq;
  o["gpus"] = j.gpus;
  o["assigned_gpus"] = j.assigned_gpus;
  o["total_steps"] = j.total_steps;
  o["resume"] = j.resume;
  o["attempts"] = j.attempts;
  o["pid"] = j.pid ? nlohmann::json(*j.pid) : nlohmann::json(nullptr);
  o["cancel_requested"] = j.cancel_requested;
  o["exit_code"] = j.exit_code ? nlohmann::json(*j.exit_code) : nlohmann::json(nullptr);
  o["message"] = j.message;
  o["created_at"] = j.created_at;
  o["started_at"] = j.started_at ? nlohmann::json(*j.started_at) : nlohmann::json(nullptr);
  o["finished_at"] = j.finished_at ? nlohmann::json(*j.finished_at) : nlohmann::json(nullptr);
  return o;
}

nlohmann::json event_to_json(const JobEvent& e) { return {{"at", e.at}, {"state", e.state}, {"message", e.message}}; }

double unix_now() {
  using namespace std::chrono;
  return double(duration_cast<microseconds>(system_clock::now().time_since_epoch()).count()) * 1e-6;
}

}  // namespace sparta::daemon

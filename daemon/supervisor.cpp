#include "daemon/supervisor.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "daemon/http_error.h"
#include "daemon/launch.h"
#include "daemon/log.h"
#include "daemon/placement.h"
#include "daemon/process.h"

namespace sparta::daemon {
namespace {

using Clock = std::chrono::steady_clock;

std::chrono::milliseconds grace_of(const DaemonConfig& c) {
  return std::chrono::milliseconds(int64_t(c.cancel_grace_s * 1000));
}

std::string job_label(const Job& j) { return "job " + std::to_string(j.id) + " (" + j.name + ")"; }

}  // namespace

Supervisor::Supervisor(JobStore& store, const StateDir& dir, DaemonConfig config, std::vector<int> gpus,
                       std::string sparta_bin)
    : store_(store), dir_(dir), config_(std::move(config)), gpus_(std::move(gpus)), sparta_bin_(std::move(sparta_bin)) {
  std::sort(gpus_.begin(), gpus_.end());
}

Supervisor::~Supervisor() {
  if (thread_.joinable()) shutdown();
}

void Supervisor::recover() {
  std::vector<Job> orphans = store_.in_state(JobState::running);
  // Wait for the processes that outlived the previous daemon, all at once, up to the grace period.
  std::vector<Job> alive;
  for (const Job& j : orphans) {
    if (j.pid && j.pid_start && same_process_alive(pid_t(*j.pid), *j.pid_start)) {
      log_info(job_label(j) + ": its process " + std::to_string(*j.pid) +
               " outlived the previous daemon; waiting for it to checkpoint and exit");
      // It had SIGTERM from the kernel when its daemon died; again does no harm (the trainer
      // stops once) and covers a process that missed it.
      signal_group(pid_t(*j.pid), SIGTERM);
      alive.push_back(j);
    }
  }
  const auto deadline = Clock::now() + grace_of(config_);
  while (!alive.empty()) {
    alive.erase(std::remove_if(alive.begin(), alive.end(),
                               [](const Job& j) { return !same_process_alive(pid_t(*j.pid), *j.pid_start); }),
                alive.end());
    if (alive.empty()) break;
    if (Clock::now() >= deadline) {
      for (const Job& j : alive) {
        log_warning(job_label(j) + ": process " + std::to_string(*j.pid) + " did not exit in time; killing it");
        signal_group(pid_t(*j.pid), SIGKILL);
      }
      for (int i = 0; i < 50 && !alive.empty(); ++i) {
        alive.erase(std::remove_if(alive.begin(), alive.end(),
                                   [](const Job& j) { return !same_process_alive(pid_t(*j.pid), *j.pid_start); }),
                    alive.end());
        usleep(20000);
      }
      break;
    }
    usleep(50000);
  }
  for (const Job& j : orphans) {
    const std::string msg = "the daemon stopped while it ran" +
                            (j.pid ? " (pid " + std::to_string(*j.pid) + ")" : std::string());
    if (store_.mark_ended(j.id, JobState::interrupted, std::nullopt, msg)) {
      append_to_job_log(dir_.job_log(j.id), std::string("interrupted: ") + msg);
      log_info(job_label(j) + " interrupted: " + msg);
    }
  }
  if (!config_.resume_interrupted) return;
  for (const Job& j : store_.in_state(JobState::interrupted)) {
    if (store_.transition(j.id, {JobState::interrupted}, JobState::queued, "queued to resume after a daemon restart")) {
      log_info(job_label(j) + " queued to resume in its old place");
    }
  }
}

void Supervisor::start() { thread_ = std::thread([this] { loop(); }); }

void Supervisor::wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void Supervisor::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      const auto deadline = Clock::now() + grace_of(config_);
      for (auto& [id, r] : running_) {
        r.interrupting = true;
        r.kill_at = r.kill_at ? std::min(*r.kill_at, deadline) : deadline;
        signal_group(r.pid, SIGTERM);
      }
      if (!running_.empty()) {
        log_info("stopping " + std::to_string(running_.size()) + " running job(s); they checkpoint and resume later");
      }
    }
    woken_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Supervisor::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    try {
      reap_locked();
      enforce_deadlines_locked();
      if (stopping_) {
        if (running_.empty()) return;
      } else {
        start_ready_locked();
      }
    } catch (const std::exception& e) {
      // A full disk or a broken store must not stop the supervision of running jobs.
      log_warning(std::string("supervisor: ") + e.what());
    }
    cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return woken_; });
    woken_ = false;
  }
}

void Supervisor::reap_locked() {
  for (auto it = running_.begin(); it != running_.end();) {
    std::optional<int> status = try_reap(it->second.pid);
    if (!status) {
      ++it;
      continue;
    }
    const int64_t id = it->first;
    const Running r = it->second;
    it = running_.erase(it);
    finish_locked(id, r, *status);
  }
}

void Supervisor::finish_locked(int64_t id, const Running& r, int status) {
  std::optional<Job> job = store_.get(id);
  if (!job) return;
  // The process group may hold helpers the trainer started; none may outlive the job.
  signal_group(r.pid, SIGKILL);
  const std::string how = describe_wait_status(status);
  JobState to;
  std::string msg;
  if (r.interrupting) {
    to = JobState::interrupted;
    msg = "the daemon stopped (" + how + ")";
  } else if (job->cancel_requested) {
    to = JobState::cancelled;
    msg = "stopped on request (" + how + ")";
  } else if (status == 0) {
    to = JobState::succeeded;
  } else {
    to = JobState::failed;
    const std::string why = last_error_line(dir_.job_log(id));
    msg = how + (why.empty() ? "" : ": " + why);
  }
  store_.mark_ended(id, to, exit_code_of(status), msg);
  append_to_job_log(dir_.job_log(id), std::string(state_name(to)) + (msg.empty() ? "" : ": " + msg));
  log_info(job_label(*job) + " " + state_name(to) + (msg.empty() ? "" : ": " + msg));
}

void Supervisor::enforce_deadlines_locked() {
  const auto now = Clock::now();
  for (auto& [id, r] : running_) {
    if (r.kill_at && now >= *r.kill_at) {
      log_warning("job " + std::to_string(id) + " did not stop within the grace period; sending SIGKILL");
      signal_group(r.pid, SIGKILL);
      r.kill_at.reset();
    }
  }
}

void Supervisor::start_ready_locked() {
  FreeResources free;
  free.cpu_slots = config_.cpu_slots;
  std::set<int> busy;
  for (const auto& [id, r] : running_) {
    if (r.gpus.empty()) --free.cpu_slots;
    busy.insert(r.gpus.begin(), r.gpus.end());
  }
  for (int g : gpus_) {
    if (!busy.count(g)) free.gpus.push_back(g);
  }
  if (free.cpu_slots <= 0 && free.gpus.empty()) return;
  const std::vector<Job> queued = store_.in_state(JobState::queued);
  for (const Placement& p : place_jobs(queued, free)) {
    const auto it = std::find_if(queued.begin(), queued.end(), [&](const Job& j) { return j.id == p.job_id; });
    start_job_locked(*it, p.gpus);
  }
}

void Supervisor::start_job_locked(const Job& job, const std::vector<int>& gpus) {
  std::string description;
  try {
    const std::string yaml = store_.config_yaml(job.id).value_or("");
    const SpawnSpec spec = attempt_spec(dir_, job, yaml, gpus, sparta_bin_, &description);
    append_to_job_log(spec.log_path, "attempt " + std::to_string(job.attempts + 1) + ": " + description);
    // Recorded before it runs: a daemon killed at any point leaves no job its store does not know.
    std::unique_ptr<HeldChild> held = fork_held(spec);
    const ChildProcess child = held->child();
    if (!store_.mark_running(job.id, child.pid, child.start_time, visible_devices(gpus),
                             "attempt " + std::to_string(job.attempts + 1) + ": " + description)) {
      held->abort();
      return;  // no longer queued (cannot happen under mu_, but never run a job twice)
    }
    Running r;
    r.pid = child.pid;
    r.gpus = gpus;
    running_[job.id] = r;
    try {
      held->start(spec.argv[0]);
    } catch (const std::exception& e) {
      running_.erase(job.id);
      const std::string msg = std::string("could not start: ") + e.what();
      store_.mark_ended(job.id, JobState::failed, std::nullopt, msg);
      append_to_job_log(spec.log_path, msg);
      log_warning(job_label(job) + " " + msg);
      return;
    }
    log_info(job_label(job) + " started (pid " + std::to_string(child.pid) + "): " + description);
  } catch (const std::exception& e) {
    const std::string msg = std::string("could not start: ") + e.what();
    store_.transition(job.id, {JobState::queued}, JobState::failed, msg);
    append_to_job_log(dir_.job_log(job.id), msg);
    log_warning(job_label(job) + " " + msg);
  }
}

Job Supervisor::cancel(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<Job> job = store_.get(id);
  if (!job) throw HttpError(404, "no job " + std::to_string(id));
  switch (job->state) {
    case JobState::queued:
    case JobState::interrupted:
      store_.transition(id, {JobState::queued, JobState::interrupted}, JobState::cancelled,
                        job->state == JobState::queued ? "cancelled before it started" : "cancelled while interrupted");
      append_to_job_log(dir_.job_log(id), "cancelled");
      log_info(job_label(*job) + " cancelled");
      break;
    case JobState::running: {
      auto it = running_.find(id);
      if (store_.mark_cancel_requested(id) && it != running_.end()) {
        signal_group(it->second.pid, SIGTERM);
        it->second.kill_at = Clock::now() + grace_of(config_);
        append_to_job_log(dir_.job_log(id), "cancel requested: SIGTERM sent, the job checkpoints and stops");
        log_info(job_label(*job) + ": cancel requested, SIGTERM sent");
      }
      break;
    }
    case JobState::cancelled:
      break;  // idempotent
    case JobState::succeeded:
    case JobState::failed:
      throw HttpError(409, "job " + std::to_string(id) + " has already " + state_name(job->state) +
                               "; there is nothing to cancel");
  }
  return *store_.get(id);
}

Job Supervisor::resume(int64_t id) {
  std::optional<Job> job;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job = store_.get(id);
    if (!job) throw HttpError(404, "no job " + std::to_string(id));
    if (job->state == JobState::succeeded) {
      throw HttpError(409, "job " + std::to_string(id) + " has succeeded; there is nothing left to resume");
    }
    if (job->state == JobState::queued || job->state == JobState::running) {
      throw HttpError(409, "job " + std::to_string(id) + " is " + state_name(job->state) + "; only a failed, " +
                               "cancelled or interrupted job can be resumed");
    }
    store_.transition(id, {JobState::failed, JobState::cancelled, JobState::interrupted}, JobState::queued,
                      "queued to resume (requested)", /*keep_place=*/false);
    append_to_job_log(dir_.job_log(id), "queued to resume");
    log_info(job_label(*job) + " queued to resume");
    woken_ = true;
  }
  cv_.notify_all();
  return *store_.get(id);
}

Usage Supervisor::usage() {
  std::lock_guard<std::mutex> lock(mu_);
  Usage u;
  u.cpu_slots = config_.cpu_slots;
  u.gpus_total = int(gpus_.size());
  for (const auto& [id, r] : running_) {
    if (r.gpus.empty()) ++u.cpu_running;
    u.gpus_busy += int(r.gpus.size());
  }
  return u;
}

}  // namespace sparta::daemon

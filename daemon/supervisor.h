#pragma once
// Runs the queue: starts queued jobs as child processes when their devices are free (placement.h),
// reaps them and records how they ended, stops them on cancel (SIGTERM to the process group, a grace
// period in which the trainer checkpoints, then SIGKILL), and on start-up recovers what a previous
// daemon left behind.
//
// One thread owns the children; the API calls cancel/resume from its threads. A mutex orders the
// two, so a job is never started and cancelled at once. The thread wakes on wake() (a submit, or
// SIGCHLD relayed by the daemon's signal loop) and otherwise every 200 ms.
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon/daemon_config.h"
#include "daemon/job_store.h"
#include "daemon/state_dir.h"

namespace sparta::daemon {

struct Usage {
  int cpu_running = 0, cpu_slots = 0;
  int gpus_busy = 0, gpus_total = 0;
};

class Supervisor {
 public:
  Supervisor(JobStore& store, const StateDir& dir, DaemonConfig config, std::vector<int> gpus,
             std::string sparta_bin);
  ~Supervisor();

  // Before start(): a job recorded as running belonged to a previous daemon. Its process, when it
  // outlived that daemon, got SIGTERM from the kernel (PR_SET_PDEATHSIG) and is checkpointing:
  // it is given the grace period to exit, then killed. Such jobs become interrupted, and with
  // resume_interrupted every interrupted job is queued again in its old place, to resume.
  void recover();
  void start();
  void wake();
  // Stops every running job (SIGTERM, grace, SIGKILL), marks them interrupted and returns when
  // all have exited. No job starts after it is called.
  void shutdown();

  // Throw HttpError 404 (no such job) or 409 (its state does not allow it).
  Job cancel(int64_t id);  // idempotent: cancelling a cancelled job, or one being stopped, is fine
  Job resume(int64_t id);  // failed, cancelled or interrupted -> queued, at the end of the queue

  Usage usage();
  const std::vector<int>& gpus() const { return gpus_; }

 private:
  struct Running {
    pid_t pid = 0;
    std::vector<int> gpus;
    std::optional<std::chrono::steady_clock::time_point> kill_at;  // SIGKILL when passed
    bool interrupting = false;  // stopped by a daemon shutdown, not by the user
  };
  void loop();
  void reap_locked();
  void enforce_deadlines_locked();
  void start_ready_locked();
  void start_job_locked(const Job& job, const std::vector<int>& gpus);
  void finish_locked(int64_t id, const Running& r, int status);

  JobStore& store_;
  const StateDir& dir_;
  DaemonConfig config_;
  std::vector<int> gpus_;
  std::string sparta_bin_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false, stopping_ = false;
  std::map<int64_t, Running> running_;
  std::thread thread_;
};

}  // namespace sparta::daemon

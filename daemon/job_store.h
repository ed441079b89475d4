#pragma once
// The daemon's record of every job: one SQLite file (<state>/jobs.db) in WAL mode with
// synchronous=FULL, so a job the API acknowledged survives a SIGKILL of the daemon or a power cut.
// Every change is one transaction that also appends to the job's event history, and each
// transition names the states it may start from, so two threads (the API and the supervisor) can
// never move a job along two paths: the loser sees `false` and re-reads the job.
//
// One connection serialised by a mutex: the daemon's writes are a few per job, far below what
// SQLite does in a second, and a single writer keeps the transactions simple.
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/job.h"
#include "daemon/sqlite.h"

namespace sparta::daemon {

struct NewJob {
  std::string name;
  std::string config_name;
  std::string submit_key;  // "" for none
  int64_t gpus = 0;
  int64_t total_steps = 0;
};

class JobStore {
 public:
  explicit JobStore(const std::string& db_path);

  // Records a queued job at the end of the queue. `prepare` runs inside the transaction with the
  // job (id and run_name assigned) and returns its resolved config YAML, stored with it; when it
  // throws nothing is recorded. A submit_key already recorded returns that job and false.
  std::pair<Job, bool> add(const NewJob& job, const std::function<std::string(const Job&)>& prepare);

  std::optional<Job> get(int64_t id);
  std::vector<Job> list();                       // by id
  std::vector<Job> in_state(JobState state);     // by queue_seq
  std::optional<std::string> config_yaml(int64_t id);
  std::vector<JobEvent> events(int64_t id);
  std::map<JobState, int64_t> counts();

  // queued -> running: a new attempt with its process and GPUs.
  bool mark_running(int64_t id, int64_t pid, int64_t pid_start, const std::string& gpus, const std::string& message);
  // running -> `to` (a settled state): the attempt is over.
  bool mark_ended(int64_t id, JobState to, std::optional<int64_t> exit_code, const std::string& message);
  // running: remember that the user asked to stop it (the process ends later).
  bool mark_cancel_requested(int64_t id);
  // Moves a job from one of `from` to `to` with no process involved (cancel of a queued job,
  // re-queueing for a resume). Re-queueing keeps the job's queue place when keep_place, else puts
  // it at the end of the queue.
  bool transition(int64_t id, const std::vector<JobState>& from, JobState to, const std::string& message,
                  bool keep_place = true);

  const std::string& path() const { return db_.path(); }

 private:
  void record_event(int64_t id, JobState state, const std::string& message);
  std::vector<Job> select(const std::string& where_and_order, const std::function<void(Statement&)>& bind);

  std::mutex mu_;
  Database db_;
};

}  // namespace sparta::daemon

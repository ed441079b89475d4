#pragma once
// The daemon's state directory, the one place it writes (default ~/.local/state/sparta):
//
//   daemon.yaml      optional settings (daemon_config.h)
//   daemon.lock      held (flock) by the running daemon: one daemon per state directory
//   daemon.json      {"address","port","pid"} of the running daemon, for the CLI; removed at exit
//   token            the API's bearer token, mode 0600
//   jobs.db          the job store (SQLite, WAL)
//   jobs/<id>/       config.yaml (the resolved config the job runs) and job.log (its stdout and stderr)
//   runs/<id>-<name>/  the job's run directory (metrics.jsonl, checkpoints/, ...), written by `sparta train`
//
// Job names become directory names, so they are checked here: a name that could leave the state
// directory (a slash, "..", an absolute path) is refused before anything is written.
#include <cstdint>
#include <string>

namespace sparta::daemon {

// $SPARTA_STATE_DIR, else $XDG_STATE_HOME/sparta, else $HOME/.local/state/sparta.
std::string default_state_dir();

class StateDir {
 public:
  explicit StateDir(std::string root);
  const std::string& root() const { return root_; }
  std::string file(const char* name) const { return root_ + "/" + name; }
  std::string db() const { return file("jobs.db"); }
  std::string token() const { return file("token"); }
  std::string address() const { return file("daemon.json"); }
  std::string lock() const { return file("daemon.lock"); }
  std::string settings() const { return file("daemon.yaml"); }
  std::string runs() const { return file("runs"); }
  std::string job_dir(int64_t id) const { return file("jobs") + "/" + std::to_string(id); }
  std::string job_config(int64_t id) const { return job_dir(id) + "/config.yaml"; }
  std::string job_log(int64_t id) const { return job_dir(id) + "/job.log"; }
  std::string run_dir(const std::string& run_name) const { return runs() + "/" + run_name; }

  // Creates the directory (and jobs/, runs/) with mode 0700: it holds the token and users' runs.
  void create() const;

 private:
  std::string root_;
};

// Letters, digits, '.', '_', '-', at most 64 characters, not "." or "..": a single path component.
bool valid_job_name(const std::string& name);
// Throws "[daemon] job name '<name>' ..." explaining what is wrong.
void check_job_name(const std::string& name);

// An exclusive flock on daemon.lock for the daemon's lifetime (released by the kernel even after
// SIGKILL, so a crashed daemon never blocks its successor). The descriptor is close-on-exec so
// jobs never inherit it.
class StateLock {
 public:
  explicit StateLock(const StateDir& dir);
  ~StateLock();
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;

 private:
  int fd_ = -1;
};

struct DaemonAddress {
  std::string host = "127.0.0.1";
  int port = 0;
  int64_t pid = 0;
};
void write_address(const StateDir& dir, const DaemonAddress& a);
// Throws a message telling the user to start the daemon when daemon.json is missing.
DaemonAddress read_address(const StateDir& dir);

}  // namespace sparta::daemon

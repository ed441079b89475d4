#pragma once
// Child processes for jobs: fork/exec with the job's output appended to its log file, each child
// the leader of its own process group (so a cancel reaches everything the job started), dying with
// SIGTERM when the daemon dies (PR_SET_PDEATHSIG: the trainer then checkpoints and exits, and the
// restarted daemon resumes it), and inheriting no descriptor of the daemon's (its listening socket,
// its database, its lock) so that a job outliving a killed daemon never blocks its successor.
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sparta::daemon {

struct SpawnSpec {
  std::vector<std::string> argv;  // argv[0] is the program's path
  std::vector<std::string> env;   // "KEY=value", the whole environment
  std::string cwd;
  std::string log_path;           // stdout and stderr, appended; stdin is /dev/null
};

struct ChildProcess {
  pid_t pid = 0;            // also its process group id
  int64_t start_time = 0;   // from /proc/<pid>/stat, to recognise the process later
};

// A forked child held before exec until start(): the daemon records its pid first, so a daemon
// killed in between never leaves a job running that its store does not know (the held child sees
// the daemon's end of the pipe close and exits without running anything).
class HeldChild {
 public:
  HeldChild(ChildProcess child, int go_fd, int report_fd) : child_(child), go_fd_(go_fd), report_fd_(report_fd) {}
  ~HeldChild();  // abort() unless started
  HeldChild(const HeldChild&) = delete;
  HeldChild& operator=(const HeldChild&) = delete;

  const ChildProcess& child() const { return child_; }
  // Lets the child exec; throws naming the program when exec fails (the child is reaped then).
  void start(const std::string& program);
  // Lets the child exit without running, and reaps it.
  void abort();

 private:
  ChildProcess child_;
  int go_fd_ = -1, report_fd_ = -1;
};

// Forks the child and holds it before exec. Throws when it cannot fork.
std::unique_ptr<HeldChild> fork_held(const SpawnSpec& spec);
// fork_held and start at once.
ChildProcess spawn(const SpawnSpec& spec);

// The raw wait status when the child has exited (reaping it), nullopt while it runs, kLostStatus
// when it is not (or no longer) a child of this process.
constexpr int kLostStatus = -1;
std::optional<int> try_reap(pid_t pid);
// Blocks until the child exits; its raw wait status.
int wait_for(pid_t pid);

// Start time in clock ticks since boot of a live process, nullopt when there is none.
std::optional<int64_t> process_start_time(pid_t pid);
// The process `pid` still exists and is the one that started at `start_time` (not a reused pid).
bool same_process_alive(pid_t pid, int64_t start_time);

// Sends `sig` to the process group (ignoring a group that has already gone).
void signal_group(pid_t pgid, int sig);

// Exit code convention of shells: the exit status, or 128 + the signal number.
int64_t exit_code_of(int wait_status);
// "exit status 1", "killed by signal 9 (Killed)".
std::string describe_wait_status(int wait_status);

// The environment of this process as "KEY=value" strings, with `overrides` replacing or adding.
std::vector<std::string> environment_with(const std::vector<std::pair<std::string, std::string>>& overrides);

// The absolute path of the running executable (/proc/self/exe), for launching `sparta train`.
std::string self_executable();

}  // namespace sparta::daemon

#include "daemon/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

extern char** environ;

namespace sparta::daemon {
namespace {

// Closes every descriptor from `first` up: close_range where the kernel has it (5.9+), else one by
// one up to the descriptor limit. Only async-signal-safe calls: this runs between fork and exec.
void close_from(int first) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, unsigned(first), ~0u, 0u) == 0) return;
#endif
  const long max = sysconf(_SC_OPEN_MAX);
  for (long fd = first; fd < (max > 0 ? max : 65536); ++fd) close(int(fd));
}

[[noreturn]] void child_fail(int report_fd, int err) {
  (void)!write(report_fd, &err, sizeof err);
  _exit(127);
}

}  // namespace

std::unique_ptr<HeldChild> fork_held(const SpawnSpec& spec) {
  SPARTA_CHECK(!spec.argv.empty(), "daemon", "spawn: empty command");
  // Everything the child needs is built before fork: after fork, in a process with other threads,
  // only async-signal-safe calls are allowed (no malloc, no locks) until exec.
  std::vector<char*> argv, envp;
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const std::string& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  const int log_fd = ::open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  SPARTA_CHECK(log_fd >= 0, "daemon", "cannot open job log ", spec.log_path, ": ", std::strerror(errno));
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  // report: the child writes errno here when exec fails; exec closes it (O_CLOEXEC) when it works.
  // go: the child waits for a byte before exec; end of file means the daemon gave up (or died).
  int report[2] = {-1, -1}, go[2] = {-1, -1};
  if (null_fd < 0 || ::pipe2(report, O_CLOEXEC) != 0 || ::pipe2(go, O_CLOEXEC) != 0) {
    const int err = errno;
    for (int fd : {log_fd, null_fd, report[0], report[1], go[0], go[1]}) {
      if (fd >= 0) ::close(fd);
    }
    SPARTA_FAIL("daemon", "cannot prepare a child process: ", std::strerror(err));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(report[0]);
    ::close(go[1]);
    ::setpgid(0, 0);
    // Die with the daemon, by SIGTERM so the trainer checkpoints on its way out. A daemon that
    // died before this line ran would be missed, hence the getppid check.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) _exit(1);
    // The daemon blocks its signals for sigwait and ignores SIGPIPE; the job gets the defaults.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGPIPE, &dfl, nullptr);
    if (::dup2(null_fd, 0) < 0 || ::dup2(log_fd, 1) < 0 || ::dup2(log_fd, 2) < 0) child_fail(report[1], errno);
    // Keep the report pipe as descriptor 3 and the go pipe as 4 (both close-on-exec), close the rest.
    if (::dup2(report[1], 3) < 0 || ::dup2(go[0], 4) < 0) child_fail(report[1], errno);
    ::fcntl(3, F_SETFD, FD_CLOEXEC);
    ::fcntl(4, F_SETFD, FD_CLOEXEC);
    close_from(5);
    char byte = 0;
    ssize_t n;
    do {
      n = ::read(4, &byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) _exit(1);
    if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) child_fail(3, errno);
    ::execve(argv[0], argv.data(), envp.data());
    child_fail(3, errno);
  }
  const int fork_err = errno;
  for (int fd : {report[1], go[0], log_fd, null_fd}) ::close(fd);
  if (pid < 0) {
    ::close(report[0]);
    ::close(go[1]);
    SPARTA_FAIL("daemon", "cannot fork for ", spec.argv[0], ": ", std::strerror(fork_err));
  }
  ::setpgid(pid, pid);  // also here, so that a signal sent right after the fork reaches the group
  ChildProcess c;
  c.pid = pid;
  c.start_time = process_start_time(pid).value_or(0);
  return std::make_unique<HeldChild>(c, go[1], report[0]);
}

void HeldChild::start(const std::string& program) {
  SPARTA_CHECK(go_fd_ >= 0, "daemon", "child ", child_.pid, " was already started or aborted");
  const char byte = 1;
  const bool sent = ::write(go_fd_, &byte, 1) == 1;
  ::close(go_fd_);
  go_fd_ = -1;
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(report_fd_, &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(report_fd_);
  report_fd_ = -1;
  if (!sent || n == ssize_t(sizeof child_errno)) {
    wait_for(child_.pid);
    SPARTA_FAIL("daemon", "cannot run ", program, ": ", sent ? std::strerror(child_errno) : "the child exited early");
  }
}

void HeldChild::abort() {
  if (go_fd_ < 0) return;
  ::close(go_fd_);
  ::close(report_fd_);
  go_fd_ = report_fd_ = -1;
  wait_for(child_.pid);
}

HeldChild::~HeldChild() { abort(); }

ChildProcess spawn(const SpawnSpec& spec) {
  std::unique_ptr<HeldChild> held = fork_held(spec);
  held->start(spec.argv[0]);
  return held->child();
}

std::optional<int> try_reap(pid_t pid) {
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid) return status;
  if (r < 0 && errno == ECHILD) return kLostStatus;  // not our child (any more): its outcome is unknown
  return std::nullopt;
}

int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 0;
  }
  return status;
}

std::optional<int64_t> process_start_time(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return std::nullopt;
  std::string line;
  std::getline(in, line);
  // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  // Field 3 (state) is the first after ')'; starttime is field 22.
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return std::nullopt;
    if (i == 3 && field == "Z") return std::nullopt;  // a zombie has finished
  }
  return std::stoll(field);
}

bool same_process_alive(pid_t pid, int64_t start_time) {
  if (pid <= 0) return false;
  auto t = process_start_time(pid);
  return t && *t == start_time;
}

void signal_group(pid_t pgid, int sig) {
  if (pgid > 1) ::kill(-pgid, sig);
}

int64_t exit_code_of(int status) {
  if (status == kLostStatus) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string describe_wait_status(int status) {
  if (status == kLostStatus) return "lost (the process could not be waited for)";
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return "killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : "");
  }
  return "wait status " + std::to_string(status);
}

std::vector<std::string> environment_with(const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    bool replaced = false;
    for (const auto& [k, v] : overrides) replaced = replaced || k == key;
    if (!replaced) env.push_back(kv);
  }
  for (const auto& [k, v] : overrides) env.push_back(k + "=" + v);
  return env;
}

std::string self_executable() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  SPARTA_CHECK(n > 0, "daemon", "cannot find this program's path (/proc/self/exe): ", std::strerror(errno));
  return std::string(buf, size_t(n));
}

}  // namespace sparta::daemon

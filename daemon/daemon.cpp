#include "daemon/daemon.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "daemon/api.h"
#include "daemon/daemon_config.h"
#include "daemon/job_store.h"
#include "daemon/log.h"
#include "daemon/process.h"
#include "daemon/state_dir.h"
#include "daemon/supervisor.h"
#include "daemon/token.h"

namespace sparta::daemon {
namespace {

// Descriptors 0-2 must be open: a descriptor the daemon opens must never become a job's stdin or
// stdout by accident when the daemon was started with one of them closed.
void ensure_standard_fds() {
  for (int fd = 0; fd < 3; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0 && errno == EBADF) ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
  }
}

std::string read_chart_js(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SPARTA_CHECK(in, "daemon", "the dashboard's charting library ", path,
               " is missing: install Debian's libjs-chart.js (tools/install-deps.sh does) or set chart_js in "
               "daemon.yaml to a Chart.js 3 or 4 UMD build (chart.min.js / chart.umd.js)");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

DaemonConfig resolve_config(const StateDir& dir, const DaemonOptions& o) {
  DaemonConfig c = load_daemon_config(dir.settings());
  if (o.port) c.port = *o.port;
  if (o.cpu_slots) c.cpu_slots = *o.cpu_slots;
  if (o.gpus) c.gpus = *o.gpus;
  if (o.resume_interrupted) c.resume_interrupted = *o.resume_interrupted;
  if (o.cancel_grace_s) c.cancel_grace_s = *o.cancel_grace_s;
  validate(c);
  return c;
}

std::string gpu_list(const std::vector<int>& g) {
  if (g.empty()) return "none";
  std::string s;
  for (size_t i = 0; i < g.size(); ++i) s += (i ? "," : "") + std::to_string(g[i]);
  return s;
}

}  // namespace

void run_daemon(const DaemonOptions& options) {
  ensure_standard_fds();
  // Signals are taken synchronously by this thread (sigwait below): blocked here, before any
  // thread starts, so every thread inherits the mask and none runs a handler at a bad moment.
  // Children get an empty mask back before they exec (process.cpp).
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client that hangs up mid-stream must not kill the daemon

  const StateDir dir(options.state_dir.empty() ? default_state_dir() : options.state_dir);
  dir.create();
  StateLock lock(dir);
  const DaemonConfig config = resolve_config(dir, options);
  const std::string chart_js = read_chart_js(config.chart_js);
  std::string warning;
  const std::string token = load_or_create_token(dir.token(), &warning);
  if (!warning.empty()) log_warning(warning);
  JobStore store(dir.db());
  const std::vector<int> gpus = daemon_gpus(config);
  const std::string sparta_bin = self_executable();

  Supervisor supervisor(store, dir, config, gpus, sparta_bin);
  supervisor.recover();
  std::atomic<bool> stopping{false};
  ApiServer server(ApiContext{store, supervisor, dir, token, chart_js, sparta_bin, stopping});
  const int port = server.bind(config.port);
  write_address(dir, DaemonAddress{"127.0.0.1", port, int64_t(::getpid())});
  supervisor.start();
  std::thread http([&] {
    server.run();
    if (!stopping) {
      log_warning("the HTTP server stopped unexpectedly; shutting down");
      ::kill(::getpid(), SIGTERM);
    }
  });
  server.wait_until_running();
  log_info("listening on http://127.0.0.1:" + std::to_string(port) + " (state " + dir.root() + ", " +
           std::to_string(config.cpu_slots) + " CPU slot(s), GPUs " + gpu_list(gpus) +
           "); dashboard: `sparta dashboard` prints its address with the token");

  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGCHLD) {
      supervisor.wake();  // a job ended: reap it and start the next at once
    } else if (sig == SIGHUP) {
      log_info("SIGHUP ignored (settings are read at start-up; restart to change them)");
    } else {
      log_info(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", shutting down");
      break;
    }
  }
  stopping = true;
  server.stop();
  http.join();
  supervisor.shutdown();
  std::error_code ec;
  std::filesystem::remove(dir.address(), ec);
  log_info("stopped");
}

}  // namespace sparta::daemon

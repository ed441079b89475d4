// `sparta daemon` and its clients: `submit`, `status`, `logs`, `cancel`, `dashboard`, and the job
// forms of `resume` and `export` (train_commands.cpp hands a job id over to resume_job/export_job).
// The clients find the daemon through its state directory (--state, else SPARTA_STATE_DIR, else
// ~/.local/state/sparta): its address in daemon.json, its token in the 0600 token file.
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "apps/commands.h"
#include "core/error.h"
#include "daemon/client.h"
#include "daemon/daemon.h"
#include "daemon/job.h"
#include "daemon/token.h"

namespace sparta::apps {
namespace {

using nlohmann::json;

int64_t parse_job_id(const std::string& text) {
  bool digits = !text.empty() && text.size() <= 18;
  for (char c : text) digits = digits && c >= '0' && c <= '9';
  SPARTA_CHECK(digits, "daemon", "'", text, "' is not a job id (a number, as `sparta status` lists them)");
  return std::stoll(text);
}

std::string age(double since) {
  const double s = std::max(0.0, daemon::unix_now() - since);
  char buf[32];
  if (s < 90) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 5400) std::snprintf(buf, sizeof buf, "%.0fm", s / 60);
  else if (s < 172800) std::snprintf(buf, sizeof buf, "%.1fh", s / 3600);
  else std::snprintf(buf, sizeof buf, "%.1fd", s / 86400);
  return buf;
}

std::string when(double t) {
  const std::time_t tt = std::time_t(t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&tt));
  return buf;
}

std::string devices(const json& j) {
  if (j["gpus"].get<int64_t>() == 0) return "cpu";
  const std::string a = j["assigned_gpus"].get<std::string>();
  return "gpu x" + std::to_string(j["gpus"].get<int64_t>()) + (a.empty() ? "" : " [" + a + "]");
}

std::string step_of(const json& j) {
  const std::string total = std::to_string(j["total_steps"].get<int64_t>());
  if (j["last_metrics"].is_null()) return "-/" + total;
  return std::to_string(j["last_metrics"]["step"].get<int64_t>()) + "/" + total;
}

std::string loss_of(const json& j) {
  if (j["last_metrics"].is_null() || !j["last_metrics"]["loss"].is_number()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", j["last_metrics"]["loss"].get<double>());
  return buf;
}

void print_table(const json& list) {
  std::printf("%-6s %-24s %-12s %-14s %-9s %-12s %s\n", "ID", "NAME", "STATE", "STEP", "LOSS", "DEVICES", "AGE");
  for (const json& j : list["jobs"]) {
    std::string state = j["state"].get<std::string>();
    if (j["cancel_requested"].get<bool>() && state == "running") state = "stopping";
    std::printf("%-6lld %-24s %-12s %-14s %-9s %-12s %s\n", static_cast<long long>(j["id"].get<int64_t>()),
                j["name"].get<std::string>().c_str(), state.c_str(), step_of(j).c_str(), loss_of(j).c_str(),
                devices(j).c_str(), age(j["created_at"].get<double>()).c_str());
  }
  std::printf("%lld queued; CPU slots %lld/%lld busy; GPUs %lld/%lld busy\n",
              static_cast<long long>(list["queue_length"].get<int64_t>()),
              static_cast<long long>(list["cpu_slots_busy"].get<int64_t>()),
              static_cast<long long>(list["cpu_slots"].get<int64_t>()),
              static_cast<long long>(list["gpus_busy"].get<int64_t>()),
              static_cast<long long>(list["gpus"].get<int64_t>()));
}

void print_job(const json& j) {
  std::printf("job %lld (%s): %s, step %s, loss %s\n", static_cast<long long>(j["id"].get<int64_t>()),
              j["name"].get<std::string>().c_str(), j["state"].get<std::string>().c_str(), step_of(j).c_str(),
              loss_of(j).c_str());
  std::printf("  submitted  %s from %s\n", when(j["created_at"].get<double>()).c_str(),
              j["config_name"].get<std::string>().c_str());
  std::printf("  config     %s\n", j["config"].get<std::string>().c_str());
  std::printf("  run dir    %s\n", j["run_dir"].get<std::string>().c_str());
  std::printf("  log        %s\n", j["log"].get<std::string>().c_str());
  std::printf("  devices    %s\n", devices(j).c_str());
  std::printf("  attempts   %lld\n", static_cast<long long>(j["attempts"].get<int64_t>()));
  if (!j["message"].get<std::string>().empty()) std::printf("  message    %s\n", j["message"].get<std::string>().c_str());
  if (j.contains("history")) {
    std::printf("history:\n");
    for (const json& e : j["history"]) {
      std::printf("  %s  %-11s %s\n", when(e["at"].get<double>()).c_str(), e["state"].get<std::string>().c_str(),
                  e["message"].get<std::string>().c_str());
    }
  }
}

// Prints the job's log from the start; with `follow`, keeps printing until the job has settled and
// the log is read to its end. Returns the job's final state.
std::string stream_log(daemon::Client& client, int64_t id, bool follow) {
  int64_t offset = 0;
  for (;;) {
    const daemon::Client::Raw r = client.get_raw("/api/jobs/" + std::to_string(id) + "/log?offset=" + std::to_string(offset));
    std::fwrite(r.body.data(), 1, r.body.size(), stdout);
    std::fflush(stdout);
    auto header = [&](const char* k) {
      auto it = r.headers.find(k);
      return it == r.headers.end() ? std::string() : it->second;
    };
    offset = std::stoll(header("X-Log-Offset"));
    const bool at_end = offset >= std::stoll(header("X-Log-Size"));
    const std::string state = header("X-Job-State");
    const bool settled = daemon::state_from_name(state) && daemon::is_settled(*daemon::state_from_name(state));
    if (!r.body.empty() && !at_end) continue;
    if (!follow || (settled && at_end)) return state;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

struct DaemonArgs {
  daemon::DaemonOptions o;
  int port = -1, cpu_slots = -1;
  double grace = -1;
  std::string gpus;
  bool no_resume = false;
};

struct SubmitArgs {
  std::string config, name, state;
  std::vector<std::string> overrides;
  int64_t gpus = -1;
  bool quiet = false, follow = false;
};

struct JobArgs {
  std::string job, state;
  bool follow = false, json = false;
};

}  // namespace

void resume_job(const std::string& job, const std::string& state) {
  daemon::Client client(state);
  const int64_t id = parse_job_id(job);
  const json j = client.post("/api/jobs/" + std::to_string(id) + "/resume");
  std::printf("job %lld (%s) queued to resume from its last checkpoint\n", static_cast<long long>(id),
              j["name"].get<std::string>().c_str());
}

void export_job(const std::string& job, const std::string& state) {
  daemon::Client client(state);
  const int64_t id = parse_job_id(job);
  const json j = client.post("/api/jobs/" + std::to_string(id) + "/export");
  std::printf("exported to %s\n", j["export_dir"].get<std::string>().c_str());
}

bool is_job_argument(const std::string& arg) {
  if (arg.empty() || std::filesystem::exists(arg)) return false;  // an existing path is a run directory
  for (char c : arg) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

void add_daemon_commands(CLI::App& app) {
  auto d = std::make_shared<DaemonArgs>();
  CLI::App* dc = app.add_subcommand("daemon", "run the training daemon (job queue, HTTP API, dashboard) in the foreground");
  dc->add_option("--state", d->o.state_dir, "state directory (default $SPARTA_STATE_DIR or ~/.local/state/sparta)");
  dc->add_option("--port", d->port, "port on 127.0.0.1 (default 7450; 0: any free port)");
  dc->add_option("--cpu-slots", d->cpu_slots, "CPU jobs running at once (default 1)");
  dc->add_option("--gpus", d->gpus, "GPU indices to hand out, e.g. 0,1 ('none' for none; default every visible GPU)");
  dc->add_option("--cancel-grace", d->grace, "seconds a stopped job may take to checkpoint before SIGKILL (default 30)");
  dc->add_flag("--no-resume-interrupted", d->no_resume, "leave jobs interrupted by a daemon stop for `sparta resume`");
  dc->callback([d] {
    daemon::DaemonOptions o = d->o;
    if (d->port >= 0) o.port = d->port;
    if (d->cpu_slots >= 0) o.cpu_slots = d->cpu_slots;
    if (d->grace >= 0) o.cancel_grace_s = d->grace;
    if (d->no_resume) o.resume_interrupted = false;
    if (!d->gpus.empty()) {
      std::vector<int> g;
      if (d->gpus != "none") {
        std::stringstream ss(d->gpus);
        for (std::string item; std::getline(ss, item, ',');) {
          try {
            g.push_back(std::stoi(item));
          } catch (const std::exception&) {
            SPARTA_FAIL("daemon", "--gpus '", d->gpus, "': '", item, "' is not a GPU index");
          }
        }
      }
      o.gpus = g;
    }
    daemon::run_daemon(o);
  });

  auto s = std::make_shared<SubmitArgs>();
  CLI::App* sc = app.add_subcommand("submit", "queue a training job with the daemon (checked as `sparta train` checks it)");
  sc->add_option("config", s->config, "run config (YAML)")->required();
  sc->add_option("overrides", s->overrides, "key=value overrides, as for `sparta train`");
  sc->add_option("--name", s->name, "job name (default: the config's name)");
  sc->add_option("--gpus", s->gpus, "GPUs the job needs (default 1 for a cuda config, else 0: a CPU slot)");
  sc->add_option("--state", s->state, "the daemon's state directory");
  sc->add_flag("--quiet,-q", s->quiet, "print only the job id");
  sc->add_flag("--follow,-f", s->follow, "then print the job's log until it ends");
  sc->callback([s] {
    std::ifstream in(s->config, std::ios::binary);
    // The message `sparta train` gives for a file it cannot open.
    if (!in) throw Error("[config] cannot open config file '" + s->config + "': " + std::strerror(errno));
    std::stringstream text;
    text << in.rdbuf();
    daemon::Client client(s->state);
    json req{{"config", text.str()},
             {"config_name", s->config},
             {"overrides", s->overrides},
             {"cwd", std::filesystem::current_path().string()},
             {"submit_key", daemon::random_hex(16)}};
    if (!s->name.empty()) req["name"] = s->name;
    if (s->gpus >= 0) req["gpus"] = s->gpus;
    // The key makes a retried submit return the job the first attempt recorded: never two jobs.
    const json j = client.post("/api/jobs", req, 3);
    const int64_t id = j["id"].get<int64_t>();
    if (s->quiet) {
      std::printf("%lld\n", static_cast<long long>(id));
    } else {
      std::printf("job %lld (%s) queued; `sparta logs -f %lld` follows it\n", static_cast<long long>(id),
                  j["name"].get<std::string>().c_str(), static_cast<long long>(id));
    }
    std::fflush(stdout);
    if (s->follow) {
      const std::string state = stream_log(client, id, true);
      if (state != "succeeded") throw CLI::RuntimeError(1);
    }
  });

  auto st = std::make_shared<JobArgs>();
  CLI::App* stc = app.add_subcommand("status", "list the daemon's jobs, or show one");
  stc->add_option("job", st->job, "job id");
  stc->add_option("--state", st->state, "the daemon's state directory");
  stc->add_flag("--json", st->json, "print the API's JSON");
  stc->callback([st] {
    daemon::Client client(st->state);
    const json j = st->job.empty() ? client.get("/api/jobs")
                                   : client.get("/api/jobs/" + std::to_string(parse_job_id(st->job)));
    if (st->json) {
      std::printf("%s\n", j.dump(2).c_str());
    } else if (st->job.empty()) {
      print_table(j);
    } else {
      print_job(j);
    }
  });

  auto l = std::make_shared<JobArgs>();
  CLI::App* lc = app.add_subcommand("logs", "print a job's log (stdout and stderr of its attempts)");
  lc->add_option("job", l->job, "job id")->required();
  lc->add_flag("--follow,-f", l->follow, "keep printing until the job ends; exit status 0 only if it succeeded");
  lc->add_option("--state", l->state, "the daemon's state directory");
  lc->callback([l] {
    daemon::Client client(l->state);
    const int64_t id = parse_job_id(l->job);
    const std::string state = stream_log(client, id, l->follow);
    if (l->follow && state != "succeeded") {
      std::fprintf(stderr, "sparta: job %lld %s\n", static_cast<long long>(id), state.c_str());
      throw CLI::RuntimeError(1);
    }
  });

  auto c = std::make_shared<JobArgs>();
  CLI::App* cc = app.add_subcommand("cancel", "stop a job: a queued one at once, a running one after it checkpoints");
  cc->add_option("job", c->job, "job id")->required();
  cc->add_option("--state", c->state, "the daemon's state directory");
  cc->callback([c] {
    daemon::Client client(c->state);
    const int64_t id = parse_job_id(c->job);
    const json j = client.post("/api/jobs/" + std::to_string(id) + "/cancel");
    if (j["state"] == "running") {
      std::printf("job %lld (%s): stopping (SIGTERM sent; it checkpoints, then ends as cancelled)\n",
                  static_cast<long long>(id), j["name"].get<std::string>().c_str());
    } else {
      std::printf("job %lld (%s) %s\n", static_cast<long long>(id), j["name"].get<std::string>().c_str(),
                  j["state"].get<std::string>().c_str());
    }
  });

  auto b = std::make_shared<JobArgs>();
  CLI::App* bc = app.add_subcommand("dashboard", "print the address of the daemon's dashboard (with its token)");
  bc->add_option("--state", b->state, "the daemon's state directory");
  bc->callback([b] {
    daemon::Client client(b->state);
    client.get("/api/jobs");  // fails clearly when the daemon is not running
    std::printf("%s/?token=%s\n", client.base_url().c_str(), client.token().c_str());
  });
}

}  // namespace sparta::apps

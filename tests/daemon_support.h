#pragma once
// Helpers for the daemon's tests: a small generated corpus and tiny run configs (for a TempDir),
// a `sparta daemon` child process on a free loopback port (SPARTA_BIN), an HTTP client
// holding its token, the sparta CLI run with its output captured, and polling with a deadline.
#include <boost/test/unit_test.hpp>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/child_process.h"
#include "tests/temp_dir.h"

namespace sparta::test {

namespace fs = std::filesystem;
using nlohmann::json;

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// 24 KB of words: enough for seq 32 windows, a validation split and a unigram entropy.
inline void write_corpus(const std::string& path) {
  static const char* words[] = {"the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "sparse",
                                "attention", "block", "layout", "step", "loss", "train"};
  std::mt19937 rng(7);
  std::string text;
  while (text.size() < 24000) text += std::string(words[rng() % 16]) + (rng() % 9 == 0 ? ".\n" : " ");
  write_file(path, text);
}

// A tiny model (d_model 16, 2 layers, seq 32) that trains a step in milliseconds.
inline std::string tiny_config(const std::string& name, int steps, int log_every = 1, int eval_every = 0,
                               int checkpoint_every = 0) {
  std::ostringstream c;
  c << "name: " << name << "\n"
    << "model: {d_model: 16, n_layers: 2, n_heads: 2, seq_len: 32, block: 16}\n"
    << "data: {path: corpus.txt, prefetch: 0}\n"
    << "train: {steps: " << steps << ", batch_size: 4, eval_every: " << eval_every << ", eval_batches: 2}\n"
    << "logging: {every: " << log_every << ", tensorboard: false}\n"
    << "checkpoint: {every: " << checkpoint_every << ", keep_last: 2}\n";
  return c.str();
}

// Polls `ok` every 50 ms until it holds or `seconds` pass; false on timeout.
inline bool wait_until(const std::function<bool()>& ok, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(seconds * 1000));
  while (std::chrono::steady_clock::now() < end) {
    if (ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ok();
}

struct CliResult {
  int rc = -1;
  std::string out, err;
};

// Runs `sparta <args>` in `cwd` with its stdout and stderr captured.
inline CliResult run_sparta(const std::vector<std::string>& args, const std::string& cwd) {
  static int counter = 0;
  const std::string out = cwd + "/.cli-out-" + std::to_string(++counter), err = out + ".err";
  std::vector<std::string> argv{sparta_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = spawn(argv, [&] {
    return ::chdir(cwd.c_str()) == 0 && std::freopen(out.c_str(), "w", stdout) &&
           std::freopen(err.c_str(), "w", stderr);
  });
  CliResult r;
  r.rc = exit_status(pid);
  r.out = read_file(out);
  r.err = read_file(err);
  fs::remove(out);
  fs::remove(err);
  return r;
}

// `sparta daemon --state <state> --port 0 <extra>` as a child process, its stderr in <state>.log.
class DaemonProcess {
 public:
  DaemonProcess(std::string state, std::vector<std::string> extra = {})
      : state_(std::move(state)), extra_(std::move(extra)) {
    start();
  }
  ~DaemonProcess() {
    if (pid_ > 0) stop(SIGTERM);
  }

  void start() {
    log_ = state_ + ".log";
    std::vector<std::string> argv{sparta_bin(), "daemon", "--state", state_, "--port", "0"};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    pid_ = spawn(argv, [&] {
      return std::freopen(log_.c_str(), "a", stderr) && std::freopen(log_.c_str(), "a", stdout);
    });
    // Ready once daemon.json names this process (a killed predecessor's file may still be there).
    const bool up = wait_until(
        [&] {
          try {
            const json a = json::parse(read_file(state_ + "/daemon.json"));
            if (a["pid"].get<int64_t>() != pid_) return false;
            port_ = a["port"].get<int>();
            return true;
          } catch (const std::exception&) {
            return false;
          }
        },
        30);
    BOOST_TEST_REQUIRE(up, "the daemon did not start; its log:\n" << read_file(log_));
    token_ = read_file(state_ + "/token");
    while (!token_.empty() && token_.back() == '\n') token_.pop_back();
  }

  // Sends `sig` and waits for the daemon to exit; its exit status.
  int stop(int sig) {
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  httplib::Client client(bool with_token = true) const {
    httplib::Client c("127.0.0.1", port_);
    if (with_token) c.set_bearer_token_auth(token_);
    c.set_read_timeout(60);
    return c;
  }

  json get(const std::string& path) const {
    auto c = client();
    auto r = c.Get(path.c_str());
    BOOST_TEST_REQUIRE(bool(r), "GET " << path << " failed: " << httplib::to_string(r.error()));
    BOOST_TEST_REQUIRE(r->status == 200, "GET " << path << ": " << r->status << " " << r->body);
    return json::parse(r->body);
  }

  httplib::Result post(const std::string& path, const std::string& body = "{}") const {
    auto c = client();
    return c.Post(path.c_str(), body, "application/json");
  }

  // Submits `config` (YAML text); the job's JSON.
  json submit(const std::string& config, const std::string& cwd, const std::vector<std::string>& overrides = {},
              const std::string& name = "") const {
    json req{{"config", config}, {"config_name", "test.yaml"}, {"cwd", cwd}, {"overrides", overrides}};
    if (!name.empty()) req["name"] = name;
    auto r = post("/api/jobs", req.dump());
    BOOST_TEST_REQUIRE(bool(r), "submit failed: " << httplib::to_string(r.error()));
    BOOST_TEST_REQUIRE(r->status == 201, "submit: " << r->status << " " << r->body);
    return json::parse(r->body);
  }

  json job(int64_t id) const { return get("/api/jobs/" + std::to_string(id)); }

  // Waits for the job to reach `state`; fails the test (with the job and its log) on timeout.
  json wait_state(int64_t id, const std::string& state, double seconds = 60) const {
    json j;
    const bool ok = wait_until(
        [&] {
          j = job(id);
          return j["state"] == state;
        },
        seconds);
    BOOST_TEST_REQUIRE(ok, "job " << id << " did not reach " << state << ": " << j.dump(1) << "\nits log:\n"
                                  << read_file(j.value("log", std::string())));
    return j;
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& token() const { return token_; }
  const std::string& state() const { return state_; }
  std::string log() const { return read_file(log_); }

 private:
  std::string state_, log_, token_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// The steps of a metrics.jsonl, in file order.
inline std::vector<int64_t> metric_steps(const std::string& path) {
  std::vector<int64_t> steps;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) steps.push_back(json::parse(line)["step"].get<int64_t>());
  }
  return steps;
}

}  // namespace sparta::test

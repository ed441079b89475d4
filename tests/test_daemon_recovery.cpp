// Crashes: a daemon killed with SIGKILL while a job runs and another waits loses neither (the
// running one is marked interrupted and resumed from its checkpoint, the queued one stays queued,
// and every metric line is there exactly once); with resume_interrupted off the job waits for
// `sparta resume JOB`; a job that crashes fails alone, and the daemon goes on.
#include "tests/daemon_support.h"

using namespace sparta::test;

namespace {

std::vector<int64_t> every(int64_t step, int64_t last) {
  std::vector<int64_t> v;
  for (int64_t s = step; s <= last; s += step) v.push_back(s);
  return v;
}

std::vector<std::string> history_states(const json& job) {
  std::vector<std::string> s;
  for (const json& e : job["history"]) s.push_back(e["state"].get<std::string>());
  return s;
}

bool gone(pid_t pid) {
  // The orphan is reaped by init (or lingers as a zombie where init does not reap): either way,
  // not running.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  return line.substr(line.rfind(')') + 2, 1) == "Z";
}

}  // namespace

BOOST_AUTO_TEST_CASE(sigkill_with_a_job_running_and_one_queued_loses_nothing) {
  TempDir dir("recovery");
  write_corpus(dir / "corpus.txt");
  const std::string state = dir / "state";
  auto daemon = std::make_unique<DaemonProcess>(state, std::vector<std::string>{"--cpu-slots", "1", "--cancel-grace", "20"});
  const int64_t a = daemon->submit(tiny_config("running", 1500, 10, 0, 100), dir.path.string())["id"].get<int64_t>();
  const int64_t b = daemon->submit(tiny_config("waiting", 20), dir.path.string())["id"].get<int64_t>();
  json ja;
  BOOST_TEST_REQUIRE(wait_until([&] {
    ja = daemon->job(a);
    return !ja["last_metrics"].is_null() && ja["last_metrics"]["step"].get<int>() >= 150;
  }, 60), ja.dump(1));
  BOOST_TEST(daemon->job(b)["state"] == "queued");
  const pid_t job_pid = pid_t(ja["pid"].get<int64_t>());

  const int status = daemon->stop(SIGKILL);
  BOOST_TEST(WIFSIGNALED(status));
  // Restarted at once, as systemd's Restart= would: the kernel has sent the job SIGTERM as its
  // daemon died, and the new daemon waits for it to checkpoint and exit before it resumes it.
  daemon->start();  // the same state directory
  BOOST_TEST(gone(job_pid), "job process " << job_pid << " still runs beside the new daemon");
  const json after_a = daemon->job(a);
  const json after_b = daemon->job(b);
  // The interrupted job resumes first (it keeps its place); the queued one is still queued.
  BOOST_TEST(after_b["state"] == "queued");
  BOOST_TEST(after_b["attempts"].get<int>() == 0);
  const std::vector<std::string> h = history_states(after_a);
  BOOST_TEST_REQUIRE(h.size() >= 4u);
  BOOST_TEST((std::vector<std::string>(h.begin(), h.begin() + 4) ==
              std::vector<std::string>{"queued", "running", "interrupted", "queued"}),
             after_a["history"].dump(1));
  BOOST_TEST(daemon->get("/api/jobs")["jobs"].size() == 2u);

  const json done_a = daemon->wait_state(a, "succeeded", 120);
  const json done_b = daemon->wait_state(b, "succeeded", 60);
  BOOST_TEST(done_a["attempts"].get<int>() == 2);
  BOOST_TEST(read_file(done_a["log"].get<std::string>()).find("sparta resume " + done_a["run_dir"].get<std::string>()) !=
             std::string::npos);
  // No metric line lost or repeated: the resume dropped those past its checkpoint and logged them again.
  BOOST_TEST(metric_steps(done_a["run_dir"].get<std::string>() + "/metrics.jsonl") == every(10, 1500),
             boost::test_tools::per_element());
  BOOST_TEST(metric_steps(done_b["run_dir"].get<std::string>() + "/metrics.jsonl") == every(1, 20),
             boost::test_tools::per_element());
  BOOST_TEST(done_b["started_at"].get<double>() >= done_a["finished_at"].get<double>());
  BOOST_TEST(daemon->stop(SIGTERM) == 0);  // a clean exit
  BOOST_TEST(!fs::exists(state + "/daemon.json"));
}

BOOST_AUTO_TEST_CASE(without_resume_interrupted_the_job_waits_for_sparta_resume) {
  TempDir dir("recovery-manual");
  write_corpus(dir / "corpus.txt");
  const std::string state = dir / "state";
  fs::create_directories(state);
  write_file(state + "/daemon.yaml", "resume_interrupted: false\ncpu_slots: 1\n");
  auto daemon = std::make_unique<DaemonProcess>(state);
  const int64_t a = daemon->submit(tiny_config("manual", 1000, 10, 0, 50), dir.path.string())["id"].get<int64_t>();
  BOOST_TEST_REQUIRE(wait_until([&] {
    const json j = daemon->job(a);
    return !j["last_metrics"].is_null() && j["last_metrics"]["step"].get<int>() >= 100;
  }, 60));
  const pid_t job_pid = pid_t(daemon->job(a)["pid"].get<int64_t>());
  daemon->stop(SIGKILL);
  BOOST_TEST(wait_until([&] { return gone(job_pid); }, 30));
  daemon->start();
  BOOST_TEST(daemon->job(a)["state"] == "interrupted");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  BOOST_TEST(daemon->job(a)["state"] == "interrupted");  // nobody resumes it

  setenv("SPARTA_STATE_DIR", state.c_str(), 1);
  const CliResult r = run_sparta({"resume", std::to_string(a)}, dir.path.string());
  unsetenv("SPARTA_STATE_DIR");
  BOOST_TEST(r.rc == 0, r.err);
  BOOST_TEST(r.out.find("queued to resume") != std::string::npos, r.out);
  const json done = daemon->wait_state(a, "succeeded", 120);
  BOOST_TEST(metric_steps(done["run_dir"].get<std::string>() + "/metrics.jsonl") == every(10, 1000),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_crashing_job_fails_alone) {
  TempDir dir("crash");
  write_corpus(dir / "corpus.txt");
  DaemonProcess daemon(dir / "state", {"--cpu-slots", "1"});
  const int64_t a = daemon.submit(tiny_config("crashes", 100000, 100), dir.path.string())["id"].get<int64_t>();
  const int64_t b = daemon.submit(tiny_config("after", 5), dir.path.string())["id"].get<int64_t>();
  const json running = daemon.wait_state(a, "running");
  ::kill(pid_t(running["pid"].get<int64_t>()), SIGSEGV);
  const json failed = daemon.wait_state(a, "failed");
  BOOST_TEST(failed["message"].get<std::string>().find("killed by signal 11") != std::string::npos, failed.dump(1));
  BOOST_TEST(failed["exit_code"].get<int>() == 128 + SIGSEGV);
  daemon.wait_state(b, "succeeded");  // the daemon carried on with the queue
  // A job that fails on its own (a corpus too short for one window, found when the trainer opens
  // it): the reason is its last error line.
  write_file(dir / "short.txt", "too short");
  const int64_t c = daemon.submit(tiny_config("short-data", 5), dir.path.string(), {"data.path=short.txt"})["id"].get<int64_t>();
  const json bad = daemon.wait_state(c, "failed");
  BOOST_TEST(bad["exit_code"].get<int>() == 1);
  BOOST_TEST(bad["message"].get<std::string>().find("sparta: error:") != std::string::npos, bad.dump(1));
}

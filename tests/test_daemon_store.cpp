// The daemon's parts on their own, without processes or sockets: the SQLite job store (concurrent
// submits each recorded once, idempotent retries, transitions only from the states they name),
// queue placement, job names, the token file, submit validation, the Prometheus text and the
// metrics.jsonl readers.
#include <sys/stat.h>

#include <set>
#include <thread>

#include "core/error.h"
#include "daemon/daemon_config.h"
#include "daemon/http_error.h"
#include "daemon/job_store.h"
#include "daemon/metrics_reader.h"
#include "daemon/placement.h"
#include "daemon/process.h"
#include "daemon/prometheus.h"
#include "daemon/state_dir.h"
#include "daemon/submission.h"
#include "daemon/supervisor.h"
#include "daemon/token.h"
#include "tests/daemon_support.h"

using namespace sparta;
using namespace sparta::daemon;
using namespace sparta::test;

namespace {

NewJob new_job(const std::string& name, int64_t gpus = 0, const std::string& key = "") {
  NewJob j;
  j.name = name;
  j.config_name = name + ".yaml";
  j.gpus = gpus;
  j.total_steps = 10;
  j.submit_key = key;
  return j;
}

auto yaml_of = [](const Job& j) { return "name: " + j.run_name + "\n"; };

template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

BOOST_AUTO_TEST_CASE(store_records_concurrent_submits_once_each_in_queue_order) {
  TempDir dir("store");
  JobStore store(dir / "jobs.db");
  std::vector<std::thread> threads;
  for (int t = 0; t < 10; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) store.add(new_job("job-" + std::to_string(t * 10 + i)), yaml_of);
    });
  }
  for (auto& t : threads) t.join();
  const std::vector<Job> jobs = store.list();
  BOOST_TEST(jobs.size() == 100u);
  std::set<std::string> names;
  std::set<int64_t> seqs;
  for (const Job& j : jobs) {
    names.insert(j.name);
    seqs.insert(j.queue_seq);
    BOOST_TEST(j.state == JobState::queued);
    BOOST_TEST(j.run_name == std::to_string(j.id) + "-" + j.name);
    BOOST_TEST(*store.config_yaml(j.id) == "name: " + j.run_name + "\n");
  }
  BOOST_TEST(names.size() == 100u);
  BOOST_TEST(seqs.size() == 100u);
  // Reopening finds the same jobs: everything acknowledged is on disk.
  JobStore again(dir / "jobs.db");
  BOOST_TEST(again.list().size() == 100u);
}

BOOST_AUTO_TEST_CASE(store_submit_key_makes_a_retry_return_the_same_job) {
  TempDir dir("store-key");
  JobStore store(dir / "jobs.db");
  auto [a, created_a] = store.add(new_job("a", 0, "key-1"), yaml_of);
  auto [b, created_b] = store.add(new_job("a", 0, "key-1"), yaml_of);
  BOOST_TEST(created_a);
  BOOST_TEST(!created_b);
  BOOST_TEST(a.id == b.id);
  BOOST_TEST(store.list().size() == 1u);
  // A failing prepare records nothing.
  BOOST_CHECK_THROW(store.add(new_job("b"), [](const Job&) -> std::string { throw Error("disk full"); }), Error);
  BOOST_TEST(store.list().size() == 1u);
}

BOOST_AUTO_TEST_CASE(store_transitions_only_from_the_states_they_name) {
  TempDir dir("store-states");
  JobStore store(dir / "jobs.db");
  const Job j = store.add(new_job("x"), yaml_of).first;
  BOOST_TEST(!store.mark_ended(j.id, JobState::succeeded, 0, ""));  // not running
  BOOST_TEST(store.mark_running(j.id, 4242, 1, "", "attempt 1"));
  BOOST_TEST(!store.mark_running(j.id, 4243, 1, "", "attempt 1"));  // already running
  BOOST_TEST(store.mark_cancel_requested(j.id));
  BOOST_TEST(!store.mark_cancel_requested(j.id));  // once
  BOOST_TEST(store.mark_ended(j.id, JobState::cancelled, 143, "stopped on request"));
  Job c = *store.get(j.id);
  BOOST_TEST(c.state == JobState::cancelled);
  BOOST_TEST(c.attempts == 1);
  BOOST_TEST(!c.pid.has_value());
  BOOST_TEST(*c.exit_code == 143);
  // Resume: back to the end of the queue.
  const Job later = store.add(new_job("y"), yaml_of).first;
  BOOST_TEST(store.transition(j.id, {JobState::cancelled}, JobState::queued, "resume", false));
  BOOST_TEST(store.get(j.id)->queue_seq > later.queue_seq);
  BOOST_TEST(!store.transition(j.id, {JobState::cancelled}, JobState::queued, "resume", false));
  const std::vector<JobEvent> ev = store.events(j.id);
  BOOST_TEST(ev.size() == 5u);
  BOOST_TEST(ev.back().state == "queued");
  BOOST_TEST(store.counts()[JobState::queued] == 2);
}

BOOST_AUTO_TEST_CASE(placement_keeps_queue_order_per_lane) {
  auto job = [](int64_t id, int64_t gpus) {
    Job j;
    j.id = id;
    j.gpus = gpus;
    return j;
  };
  // CPU lane: two slots, jobs 1 and 3 start, 5 waits. GPU lane: job 2 takes GPUs 0-1, job 4 needs
  // two more and only one is free: it waits, and job 6 (one GPU) waits behind it.
  const std::vector<Job> queued = {job(1, 0), job(2, 2), job(3, 0), job(4, 2), job(5, 0), job(6, 1)};
  const std::vector<Placement> p = place_jobs(queued, FreeResources{2, {0, 1, 3}});
  BOOST_TEST_REQUIRE(p.size() == 3u);
  BOOST_TEST(p[0].job_id == 1);
  BOOST_TEST(p[1].job_id == 2);
  BOOST_TEST((p[1].gpus == std::vector<int>{0, 1}));
  BOOST_TEST(p[2].job_id == 3);
  BOOST_TEST(place_jobs(queued, FreeResources{0, {}}).empty());
}

BOOST_AUTO_TEST_CASE(job_names_cannot_leave_the_state_directory) {
  for (const char* bad : {"", ".", "..", "../x", "/etc/passwd", "a/b", "a b", "x\n"}) {
    BOOST_TEST(!valid_job_name(bad), bad);
  }
  for (const char* good : {"tiny", "run-2.v1_a", "..x"}) BOOST_TEST(valid_job_name(good), good);
  BOOST_TEST(valid_job_name(std::string(64, 'a')));
  BOOST_TEST(!valid_job_name(std::string(65, 'a')));
  BOOST_TEST(error_of([] { check_job_name("../up"); }).find("paths (with '/' or '..') are not allowed") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(token_file_is_private_and_replaced_when_exposed) {
  TempDir dir("token");
  const std::string path = dir / "token";
  const std::string t = load_or_create_token(path);
  BOOST_TEST(t.size() == 64u);
  struct stat st {};
  BOOST_TEST_REQUIRE(::stat(path.c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0600u);
  BOOST_TEST(load_or_create_token(path) == t);  // kept across restarts
  ::chmod(path.c_str(), 0644);
  std::string warning;
  const std::string t2 = load_or_create_token(path, &warning);
  BOOST_TEST(t2 != t);
  BOOST_TEST(warning.find("mode 644") != std::string::npos);
  BOOST_TEST_REQUIRE(::stat(path.c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0600u);
  BOOST_TEST(tokens_equal(t2, t2));
  BOOST_TEST(!tokens_equal(t2, t));
  BOOST_TEST(!tokens_equal(t2, t2.substr(1)));
}

BOOST_AUTO_TEST_CASE(submit_requests_are_checked_field_by_field) {
  auto status_and_text = [](const std::string& body) -> std::pair<int, std::string> {
    try {
      parse_submit_request(body);
    } catch (const HttpError& e) {
      return {e.status(), e.what()};
    }
    return {200, ""};
  };
  BOOST_TEST(status_and_text("{oops").first == 400);
  BOOST_TEST(status_and_text("{oops").second.find("malformed JSON") != std::string::npos);
  BOOST_TEST(status_and_text("[]").second.find("JSON object") != std::string::npos);
  BOOST_TEST(status_and_text("{}").second.find("'config'") != std::string::npos);
  BOOST_TEST(status_and_text(R"({"config": 3})").second.find("'config' must be a string") != std::string::npos);
  BOOST_TEST(status_and_text(R"({"config": "", "overrides": "a=b"})").second.find("'overrides'") != std::string::npos);
  BOOST_TEST(status_and_text(R"({"config": "", "runs": "/tmp"})").second.find("unknown field 'runs'") !=
             std::string::npos);
  BOOST_TEST(status_and_text(R"({"config": "", "cwd": "rel/dir"})").second.find("absolute") != std::string::npos);
  BOOST_TEST(status_and_text(R"({"config": "", "gpus": -1})").second.find("'gpus'") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(submissions_are_validated_as_sparta_train_validates_them) {
  TempDir dir("submission");
  write_corpus(dir / "corpus.txt");
  SubmitRequest r;
  r.config_yaml = tiny_config("tiny", 5);
  r.config_name = "tiny.yaml";
  r.cwd = dir.path.string();
  const PreparedJob p = prepare_submission(r, 0);
  BOOST_TEST(p.job.name == "tiny");
  BOOST_TEST(p.job.gpus == 0);
  BOOST_TEST(p.job.total_steps == 5);
  BOOST_TEST(p.config.data.path == dir / "corpus.txt");  // made absolute: the job runs elsewhere

  // The same text as parse_config gives `sparta train`.
  SubmitRequest bad = r;
  bad.config_yaml = "name: x\nmodel: {d_modle: 16}\n";
  const std::string want = error_of([&] { train::parse_config(bad.config_yaml, "tiny.yaml"); });
  BOOST_TEST(error_of([&] { prepare_submission(bad, 0); }) == want);
  BOOST_TEST(want.find("did you mean 'model.d_model'") != std::string::npos);

  SubmitRequest up = r;
  up.config_yaml = "name: ../up\n" + r.config_yaml.substr(r.config_yaml.find('\n') + 1);
  BOOST_TEST(error_of([&] { prepare_submission(up, 0); }).find("is not a directory name") != std::string::npos);
  SubmitRequest named = r;
  named.name = "/abs/path";
  BOOST_TEST(error_of([&] { prepare_submission(named, 0); }).find("is not allowed") != std::string::npos);
  SubmitRequest missing = r;
  missing.overrides = {"data.path=nope.txt"};
  BOOST_TEST(error_of([&] { prepare_submission(missing, 0); }) == "[data] data.path 'nope.txt' does not exist");
  SubmitRequest no_cwd = r;
  no_cwd.cwd = "";
  BOOST_TEST(error_of([&] { prepare_submission(no_cwd, 0); }).find("is relative") != std::string::npos);
  SubmitRequest gpu = r;
  gpu.overrides = {"device=cuda:1"};
  BOOST_TEST(error_of([&] { prepare_submission(gpu, 0); }).find("this daemon has none") != std::string::npos);
  const PreparedJob g = prepare_submission(gpu, 2);
  BOOST_TEST(g.job.gpus == 1);
  Job j;
  j.run_name = "7-tiny";
  j.gpus = 1;
  const train::RunConfig resolved = train::parse_config(resolved_config_yaml(g.config, j), "resolved");
  BOOST_TEST(resolved.name == "7-tiny");
  BOOST_TEST(resolved.device.str() == "cuda:0");  // renumbered by CUDA_VISIBLE_DEVICES
}

BOOST_AUTO_TEST_CASE(daemon_settings_name_the_key_at_fault) {
  const DaemonConfig c = parse_daemon_config("cpu_slots: 3\ngpus: [0, 2]\nresume_interrupted: false\n", "d.yaml");
  BOOST_TEST(c.cpu_slots == 3);
  BOOST_TEST((*c.gpus == std::vector<int>{0, 2}));
  BOOST_TEST(!c.resume_interrupted);
  BOOST_TEST(error_of([] { parse_daemon_config("cpu_slot: 3\n", "d.yaml"); }).find("cpu_slots") != std::string::npos);
  BOOST_TEST(error_of([] { parse_daemon_config("cpu_slots: 0\n", "d.yaml"); }).find("d.yaml:1") != std::string::npos);
  BOOST_TEST(error_of([] { parse_daemon_config("gpus: [x]\n", "d.yaml"); }).find("not a GPU index") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(prometheus_text_has_per_job_and_daemon_series) {
  JobSample a;
  a.job.id = 1;
  a.job.name = "we\"ird\\name";
  a.job.state = JobState::running;
  a.job.total_steps = 100;
  train::MetricsRecord r;
  r.step = 40;
  r.loss = 2.5;
  r.tokens_per_s = 1000;
  a.last = r;
  JobSample b;
  b.job.id = 2;
  b.job.name = "q";
  b.job.state = JobState::queued;
  Usage u;
  u.cpu_slots = 2;
  u.cpu_running = 1;
  const std::string text = prometheus_text({a, b}, u);
  const std::string labels = "job=\"1\",name=\"we\\\"ird\\\\name\"";
  for (const std::string& want :
       {std::string("sparta_queue_length 1\n"), std::string("sparta_jobs{state=\"running\"} 1\n"),
        std::string("sparta_jobs{state=\"failed\"} 0\n"), "sparta_job_step{" + labels + "} 40\n",
        "sparta_job_loss{" + labels + "} 2.5\n", "sparta_job_tokens_per_second{" + labels + "} 1000\n",
        "sparta_job_state{" + labels + ",state=\"running\"} 1\n",
        std::string("sparta_job_state{job=\"2\",name=\"q\",state=\"queued\"} 1\n"),
        std::string("# TYPE sparta_job_loss gauge\n")}) {
    BOOST_TEST(text.find(want) != std::string::npos, "missing: " << want);
  }
  BOOST_TEST(text.find("sparta_job_step{job=\"2\"") == std::string::npos);  // no metrics yet: no series
}

BOOST_AUTO_TEST_CASE(metrics_readers_follow_appends_torn_lines_and_rewrites) {
  TempDir dir("metrics");
  const std::string path = dir / "metrics.jsonl";
  BOOST_TEST(!last_metrics(path).has_value());
  MetricsFollower f(path);
  BOOST_TEST(f.poll().empty());
  auto line = [](int step) { return R"({"step":)" + std::to_string(step) + R"(,"loss":1.5,"lr":0.1,"grad_norm":1,"tokens_per_s":10,"elapsed_s":1,"memory_bytes":0})"; };
  write_file(path, line(1) + "\n" + line(2) + "\n" + line(3).substr(0, 10));  // a torn last line
  auto got = f.poll();
  BOOST_TEST_REQUIRE(got.size() == 2u);
  BOOST_TEST(got[1].first == 2);
  BOOST_TEST(last_metrics(path)->step == 2);
  { std::ofstream(path, std::ios::app) << line(3).substr(10) << "\n"; }
  got = f.poll();
  BOOST_TEST_REQUIRE(got.size() == 1u);
  BOOST_TEST(got[0].first == 3);
  // A resume rewrites the file (new inode) without step 3, then logs 3 and 4 again: 4 is new.
  fs::remove(path);
  write_file(path, line(1) + "\n" + line(2) + "\n" + line(3) + "\n" + line(4) + "\n");
  got = f.poll();
  BOOST_TEST_REQUIRE(got.size() == 1u);
  BOOST_TEST(got[0].first == 4);
  BOOST_TEST(last_metrics(path)->step == 4);
}

BOOST_AUTO_TEST_CASE(recovery_waits_for_surviving_job_processes_then_kills_them) {
  // Jobs a killed daemon left "running" whose processes still live: one stops on SIGTERM, one
  // ignores it and is killed when the grace period ends; both become interrupted and, with
  // resume_interrupted, queued again in their old places.
  TempDir dir("recover");
  StateDir state(dir / "state");
  state.create();
  JobStore store(state.db());
  auto spawn_shell = [&](const std::string& script) {
    SpawnSpec s;
    s.argv = {"/bin/sh", "-c", script};
    s.env = environment_with({});
    s.cwd = dir.path.string();
    s.log_path = dir / "sh.log";
    return spawn(s);
  };
  const ChildProcess polite = spawn_shell("exec sleep 30");
  const ChildProcess stubborn = spawn_shell("trap '' TERM; : > trapped; sleep 30 & wait; sleep 30");
  // Under load the shell may not have set its trap yet when recovery signals it; wait until it has.
  for (int i = 0; i < 500 && !fs::exists(dir / "trapped"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  BOOST_TEST_REQUIRE(fs::exists(dir / "trapped"));
  std::vector<int64_t> ids;
  for (const ChildProcess& c : {polite, stubborn}) {
    const Job j = store.add(new_job("orphan"), yaml_of).first;
    BOOST_TEST_REQUIRE(store.mark_running(j.id, c.pid, c.start_time, "", "attempt 1"));
    ids.push_back(j.id);
  }
  const Job queued = store.add(new_job("waiting"), yaml_of).first;
  DaemonConfig config;
  config.cancel_grace_s = 1.0;
  Supervisor supervisor(store, state, config, {}, "/bin/false");
  const auto t0 = std::chrono::steady_clock::now();
  supervisor.recover();
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  BOOST_TEST(waited >= 0.9);  // the stubborn one had its grace period
  BOOST_TEST(waited < 10.0);
  BOOST_TEST(!same_process_alive(polite.pid, polite.start_time));
  BOOST_TEST(!same_process_alive(stubborn.pid, stubborn.start_time));
  const int polite_status = wait_for(polite.pid), stubborn_status = wait_for(stubborn.pid);
  BOOST_TEST((WIFSIGNALED(polite_status) && WTERMSIG(polite_status) == SIGTERM));
  BOOST_TEST((WIFSIGNALED(stubborn_status) && WTERMSIG(stubborn_status) == SIGKILL));
  for (int64_t id : ids) {
    const Job j = *store.get(id);
    BOOST_TEST(j.state == JobState::queued);
    BOOST_TEST(j.queue_seq < queued.queue_seq);  // ahead of the job submitted after them
    std::vector<std::string> states;
    for (const JobEvent& e : store.events(id)) states.push_back(e.state);
    BOOST_TEST((states == std::vector<std::string>{"queued", "running", "interrupted", "queued"}));
  }
  BOOST_TEST(store.get(queued.id)->state == JobState::queued);
}

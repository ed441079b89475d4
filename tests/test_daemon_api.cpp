// The daemon's HTTP API over real loopback HTTP, with a `sparta daemon` process and real training
// jobs: the token (401, and nothing changes), refusals with their reasons (400 for malformed JSON
// or YAML and for names or paths that would leave the state directory, 404, 409), submit, status,
// metrics (all, since a step, as a server-sent-events stream), Prometheus text, cancel and resume,
// export, and the CLI's commands against the same daemon.
#include "tests/daemon_support.h"

using namespace sparta::test;

namespace {

// One daemon and corpus for the whole file: starting them is what costs time.
struct ApiFixture {
  TempDir dir{"api"};
  std::unique_ptr<DaemonProcess> daemon;
  ApiFixture() {
    write_corpus(dir / "corpus.txt");
    write_file(dir / "tiny.yaml", tiny_config("tiny", 20, 2, 5));
    daemon = std::make_unique<DaemonProcess>(dir / "state", std::vector<std::string>{"--cpu-slots", "2", "--cancel-grace", "20"});
  }
};

std::pair<int, std::string> raw_post(const DaemonProcess& d, const std::string& path, const std::string& body,
                                     bool with_token = true) {
  auto c = d.client(with_token);
  auto r = c.Post(path.c_str(), body, "application/json");
  BOOST_TEST_REQUIRE(bool(r));
  return {r->status, r->body};
}

std::string error_text(const std::string& body) { return json::parse(body)["error"].get<std::string>(); }

}  // namespace

BOOST_FIXTURE_TEST_SUITE(api, ApiFixture)

BOOST_AUTO_TEST_CASE(requests_without_the_token_get_401_and_change_nothing) {
  const json req{{"config", tiny_config("intruder", 5)}, {"cwd", dir.path.string()}};
  auto [status, body] = raw_post(*daemon, "/api/jobs", req.dump(), false);
  BOOST_TEST(status == 401);
  BOOST_TEST(error_text(body).find("bearer token") != std::string::npos);
  auto wrong = daemon->client(false);
  wrong.set_bearer_token_auth(std::string(64, '0'));
  auto r = wrong.Post("/api/jobs", req.dump(), "application/json");
  BOOST_TEST(r->status == 401);
  BOOST_TEST(r->get_header_value("WWW-Authenticate").find("Bearer") != std::string::npos);
  for (const char* path : {"/api/jobs", "/api/jobs/1", "/api/jobs/1/metrics", "/metrics"}) {
    auto anon = daemon->client(false);
    BOOST_TEST(anon.Get(path)->status == 401, path);
  }
  BOOST_TEST(daemon->get("/api/jobs")["jobs"].size() == 0u);  // nothing was recorded
  // The dashboard's files need no token: they hold no data.
  auto anon = daemon->client(false);
  auto page = anon.Get("/");
  BOOST_TEST(page->status == 200);
  BOOST_TEST(page->body.find("<canvas") != std::string::npos);
  auto chart = anon.Get("/chart.js");
  BOOST_TEST(chart->status == 200);
  BOOST_TEST(chart->body.find("Chart.js") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_requests_are_refused_with_their_reason) {
  auto expect = [&](const std::string& body, int want, const std::string& fragment) {
    auto [status, text] = raw_post(*daemon, "/api/jobs", body);
    BOOST_TEST(status == want, body << " -> " << status << " " << text);
    BOOST_TEST(error_text(text).find(fragment) != std::string::npos, error_text(text) << " lacks " << fragment);
  };
  expect("{\"config\": ", 400, "malformed JSON");
  expect(json{{"config", "name: [unclosed\n"}, {"config_name", "x.yaml"}}.dump(), 400, "x.yaml:");
  expect(json{{"config", "name: [unclosed\n"}, {"config_name", "x.yaml"}}.dump(), 400, "not valid YAML");
  expect(json{{"config", "model: {d_modle: 16}\n"}, {"config_name", "x.yaml"}}.dump(), 400,
         "[config] x.yaml:1: unknown key 'model.d_modle'; did you mean 'model.d_model'?");
  const std::string ok = tiny_config("tiny", 5);
  expect(json{{"config", ok}, {"cwd", dir.path.string()}, {"name", "../escape"}}.dump(), 400, "not allowed");
  expect(json{{"config", ok}, {"cwd", dir.path.string()}, {"name", "/etc/cron.d"}}.dump(), 400, "not allowed");
  expect(json{{"config", ok}, {"cwd", dir.path.string()}, {"overrides", {"name=../../up"}}}.dump(), 400,
         "is not a directory name");
  expect(json{{"config", ok}, {"cwd", dir.path.string()}, {"runs", "/tmp"}}.dump(), 400, "unknown field 'runs'");
  expect(json{{"config", ok}, {"cwd", "relative/dir"}}.dump(), 400, "absolute");
  expect(json{{"config", ok}, {"cwd", dir.path.string()}, {"overrides", {"data.path=missing.txt"}}}.dump(), 400,
         "data.path 'missing.txt' does not exist");
  expect(json{{"config", ok}, {"cwd", dir.path.string()}, {"overrides", {"device=cuda"}}}.dump(), 400,
         "this daemon has none");
  BOOST_TEST(daemon->get("/api/jobs")["jobs"].size() == 0u);
  // Unknown jobs and routes: 404 as JSON.
  auto c = daemon->client();
  BOOST_TEST(c.Get("/api/jobs/999")->status == 404);
  BOOST_TEST(error_text(c.Get("/api/jobs/999")->body) == "no job 999");
  BOOST_TEST(c.Get("/api/nothing")->status == 404);
  BOOST_TEST(c.Get("/api/jobs/999/metrics?since=x")->status == 404);
}

BOOST_AUTO_TEST_CASE(submit_status_metrics_events_and_prometheus) {
  const json submitted = daemon->submit(tiny_config("tiny", 20, 2, 5), dir.path.string());
  const int64_t id = submitted["id"].get<int64_t>();
  BOOST_TEST(submitted["created"].get<bool>());
  BOOST_TEST(submitted["run_dir"].get<std::string>() == daemon->state() + "/runs/" + std::to_string(id) + "-tiny");
  // Live: the event stream delivers every metric line as it is written, then the end.
  auto c = daemon->client();
  std::string stream;
  auto r = c.Get(("/api/jobs/" + std::to_string(id) + "/events").c_str(),
                 [&](const char* data, size_t n) {
                   stream.append(data, n);
                   return true;
                 });
  BOOST_TEST_REQUIRE(bool(r));
  BOOST_TEST(r->status == 200);
  BOOST_TEST(r->get_header_value("Content-Type") == "text/event-stream");
  const json j = daemon->wait_state(id, "succeeded");
  BOOST_TEST(j["attempts"].get<int>() == 1);
  BOOST_TEST(j["last_metrics"]["step"].get<int>() == 20);
  BOOST_TEST(j["history"].size() == 3u);

  const std::vector<int64_t> steps = metric_steps(j["run_dir"].get<std::string>() + "/metrics.jsonl");
  BOOST_TEST(steps.size() == 12u);  // every 2 steps, plus evaluations at 5 and 15
  size_t metric_events = 0;
  for (size_t at = 0; (at = stream.find("event: metric\n", at)) != std::string::npos; ++at) ++metric_events;
  BOOST_TEST(metric_events == steps.size());
  BOOST_TEST(stream.find("event: state\ndata: {\"id\":" + std::to_string(id)) != std::string::npos);
  BOOST_TEST(stream.find("event: end") != std::string::npos);

  const json all = daemon->get("/api/jobs/" + std::to_string(id) + "/metrics");
  BOOST_TEST(all["metrics"].size() == steps.size());
  BOOST_TEST(all["metrics"][0]["loss"].is_number());
  const json since = daemon->get("/api/jobs/" + std::to_string(id) + "/metrics?since=10");
  BOOST_TEST(since["metrics"].size() == 6u);  // 12, 14, 15, 16, 18, 20
  BOOST_TEST(since["metrics"][0]["step"].get<int>() == 12);
  BOOST_TEST(since["metrics"][2]["val_loss"].is_number());
  BOOST_TEST(c.Get(("/api/jobs/" + std::to_string(id) + "/metrics?since=ten").c_str())->status == 400);

  const json list = daemon->get("/api/jobs");
  BOOST_TEST(list["jobs"].size() >= 1u);
  const std::string prom = c.Get("/metrics")->body;
  const std::string labels = "{job=\"" + std::to_string(id) + "\",name=\"tiny\"}";
  BOOST_TEST(prom.find("sparta_job_step" + labels + " 20\n") != std::string::npos, prom);
  BOOST_TEST(prom.find("sparta_job_loss" + labels + " ") != std::string::npos);
  BOOST_TEST(prom.find("sparta_job_tokens_per_second" + labels + " ") != std::string::npos);
  BOOST_TEST(prom.find("sparta_job_state{job=\"" + std::to_string(id) + "\",name=\"tiny\",state=\"succeeded\"} 1") !=
             std::string::npos);
  BOOST_TEST(prom.find("sparta_queue_length 0\n") != std::string::npos);
  BOOST_TEST(prom.find("sparta_jobs{state=\"succeeded\"}") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(cancel_checkpoints_and_resume_continues) {
  // Long enough to be cancelled mid-run: 1500 steps, a checkpoint every 100.
  const json s = daemon->submit(tiny_config("long", 1500, 10, 0, 100), dir.path.string());
  const int64_t id = s["id"].get<int64_t>();
  const std::string path = "/api/jobs/" + std::to_string(id);
  BOOST_TEST_REQUIRE(wait_until([&] {
    const json j = daemon->job(id);
    return j["state"] == "running" && !j["last_metrics"].is_null() && j["last_metrics"]["step"].get<int>() >= 50;
  }, 60));
  auto [status, body] = raw_post(*daemon, path + "/cancel", "");
  BOOST_TEST(status == 200, body);
  const json cancelled = daemon->wait_state(id, "cancelled");
  BOOST_TEST(cancelled["exit_code"].get<int>() == 128 + SIGTERM);  // stopped by the trainer itself, after a checkpoint
  // Idempotent; a second cancel is fine.
  BOOST_TEST(raw_post(*daemon, path + "/cancel", "").first == 200);
  const std::string run_dir = cancelled["run_dir"].get<std::string>();
  const std::vector<int64_t> before = metric_steps(run_dir + "/metrics.jsonl");
  BOOST_TEST_REQUIRE(!before.empty());

  // Resume: from the checkpoint the cancel wrote, to the end; every step logged once.
  auto [rs, rbody] = raw_post(*daemon, path + "/resume", "");
  BOOST_TEST(rs == 200, rbody);
  BOOST_TEST(raw_post(*daemon, path + "/resume", "").first == 409);  // already queued or running
  const json done = daemon->wait_state(id, "succeeded", 120);
  BOOST_TEST(done["attempts"].get<int>() == 2);
  std::vector<int64_t> want;
  for (int64_t s = 10; s <= 1500; s += 10) want.push_back(s);
  BOOST_TEST(metric_steps(run_dir + "/metrics.jsonl") == want, boost::test_tools::per_element());
  BOOST_TEST(read_file(done["log"].get<std::string>()).find("sparta resume " + run_dir) != std::string::npos);

  // Finished: cancel and resume are state conflicts.
  auto [cs, cbody] = raw_post(*daemon, path + "/cancel", "");
  BOOST_TEST(cs == 409);
  BOOST_TEST(error_text(cbody).find("nothing to cancel") != std::string::npos);
  BOOST_TEST(raw_post(*daemon, path + "/resume", "").first == 409);
  BOOST_TEST(raw_post(*daemon, "/api/jobs/999/cancel", "").first == 404);

  // Export through the API: the run's export directory.
  auto [es, ebody] = raw_post(*daemon, path + "/export", "");
  BOOST_TEST(es == 200, ebody);
  BOOST_TEST(fs::exists(run_dir + "/export/model.safetensors"));
}

BOOST_AUTO_TEST_CASE(a_queued_job_is_cancelled_at_once) {
  // Two slots: two long jobs fill them, the third waits and is cancelled before it starts.
  std::vector<int64_t> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(daemon->submit(tiny_config("fill", 100000, 100), dir.path.string())["id"].get<int64_t>());
  BOOST_TEST_REQUIRE(wait_until([&] { return daemon->job(ids[1])["state"] == "running"; }, 30));
  BOOST_TEST(daemon->job(ids[2])["state"] == "queued");
  BOOST_TEST(raw_post(*daemon, "/api/jobs/" + std::to_string(ids[2]) + "/cancel", "").first == 200);
  const json j = daemon->job(ids[2]);
  BOOST_TEST(j["state"] == "cancelled");
  BOOST_TEST(j["attempts"].get<int>() == 0);
  for (int i = 0; i < 2; ++i) raw_post(*daemon, "/api/jobs/" + std::to_string(ids[size_t(i)]) + "/cancel", "");
  for (int i = 0; i < 2; ++i) daemon->wait_state(ids[size_t(i)], "cancelled");
}

BOOST_AUTO_TEST_CASE(cli_commands_find_the_daemon_without_flags) {
  const std::string state = daemon->state();
  setenv("SPARTA_STATE_DIR", state.c_str(), 1);  // inherited by the CLI: no --state needed
  write_file(dir / "bad.yaml", "name: bad\nmodel: {d_modle: 16}\n");
  const CliResult train = run_sparta({"train", "bad.yaml"}, dir.path.string());
  const CliResult submit = run_sparta({"submit", "bad.yaml"}, dir.path.string());
  BOOST_TEST(train.rc == 1);
  BOOST_TEST(submit.rc == 1);
  BOOST_TEST(submit.err == train.err);  // the same message, word for word
  BOOST_TEST(train.err.find("did you mean 'model.d_model'") != std::string::npos);
  const CliResult missing = run_sparta({"submit", "nope.yaml"}, dir.path.string());
  BOOST_TEST(missing.err == run_sparta({"train", "nope.yaml"}, dir.path.string()).err);

  const CliResult ok = run_sparta({"submit", "tiny.yaml", "train.steps=10", "--name", "cli", "-q"}, dir.path.string());
  BOOST_TEST_REQUIRE(ok.rc == 0, ok.err);
  const std::string id = ok.out.substr(0, ok.out.find('\n'));
  const CliResult logs = run_sparta({"logs", "-f", id}, dir.path.string());
  BOOST_TEST(logs.rc == 0, logs.err);
  BOOST_TEST(logs.out.find("done: step 10") != std::string::npos, logs.out);
  const CliResult status = run_sparta({"status"}, dir.path.string());
  BOOST_TEST(status.out.find("cli") != std::string::npos);
  BOOST_TEST(status.out.find("succeeded") != std::string::npos);
  const CliResult one = run_sparta({"status", id}, dir.path.string());
  BOOST_TEST(one.out.find("job " + id + " (cli): succeeded, step 10/10") != std::string::npos, one.out);

  // `export JOB` goes to the daemon; `export RUN_DIR` works as before.
  const CliResult ex = run_sparta({"export", id}, dir.path.string());
  BOOST_TEST(ex.rc == 0, ex.err);
  const std::string run_dir = state + "/runs/" + id + "-cli";
  BOOST_TEST(ex.out == "exported to " + run_dir + "/export\n");
  const CliResult ex_dir = run_sparta({"export", run_dir, "--out", dir / "exp"}, dir.path.string());
  BOOST_TEST(ex_dir.rc == 0, ex_dir.err);
  BOOST_TEST(fs::exists(dir / "exp/model.safetensors"));
  // `resume JOB` of a finished job: the daemon's 409, as an error.
  const CliResult res = run_sparta({"resume", id}, dir.path.string());
  BOOST_TEST(res.rc == 1);
  BOOST_TEST(res.err.find("nothing left to resume") != std::string::npos, res.err);
  const CliResult cancel = run_sparta({"cancel", "12345"}, dir.path.string());
  BOOST_TEST(cancel.err == "sparta: error: no job 12345\n");
  const CliResult url = run_sparta({"dashboard"}, dir.path.string());
  BOOST_TEST(url.out == "http://127.0.0.1:" + std::to_string(daemon->port()) + "/?token=" + daemon->token() + "\n");
  unsetenv("SPARTA_STATE_DIR");
  const CliResult none = run_sparta({"status", "--state", dir / "nowhere"}, dir.path.string());
  BOOST_TEST(none.err.find("no daemon is running for state directory") != std::string::npos, none.err);
}

BOOST_AUTO_TEST_SUITE_END()

// The queue under load: 100 jobs submitted at once from 10 threads over HTTP are each recorded
// exactly once (a retried submit with the same key included), and run to completion in queue
// order with never more than the daemon's CPU slots running at a time.
#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/daemon_support.h"

using namespace sparta::test;

BOOST_AUTO_TEST_CASE(hundred_concurrent_submits_run_once_each_in_order_within_the_slots) {
  TempDir dir("queue");
  write_corpus(dir / "corpus.txt");
  constexpr int kSlots = 3, kJobs = 100, kThreads = 10;
  DaemonProcess daemon(dir / "state", {"--cpu-slots", std::to_string(kSlots)});
  const std::string config = tiny_config("one-step", 1);

  std::mutex mu;
  std::map<std::string, int64_t> id_of;  // job name -> id the daemon answered
  std::vector<std::string> failures;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto c = daemon.client();
      for (int i = t; i < kJobs; i += kThreads) {
        const std::string name = "job-" + std::to_string(i);
        const json req{{"config", config}, {"cwd", dir.path.string()}, {"name", name}, {"submit_key", "key-" + name}};
        auto r = c.Post("/api/jobs", req.dump(), "application/json");
        std::lock_guard<std::mutex> lock(mu);
        if (!r || r->status != 201) {
          failures.push_back(name + ": " + (r ? r->body : httplib::to_string(r.error())));
        } else {
          id_of[name] = json::parse(r->body)["id"].get<int64_t>();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  BOOST_TEST_REQUIRE(failures.empty(), failures.front());
  BOOST_TEST(id_of.size() == size_t(kJobs));

  // A client that retries (its first answer lost) gets the same job back, not a second one.
  const json retry{{"config", config}, {"cwd", dir.path.string()}, {"name", "job-7"}, {"submit_key", "key-job-7"}};
  auto again = daemon.post("/api/jobs", retry.dump());
  BOOST_TEST(again->status == 200);
  BOOST_TEST(json::parse(again->body)["id"].get<int64_t>() == id_of["job-7"]);

  json jobs;
  const bool done = wait_until(
      [&] {
        jobs = daemon.get("/api/jobs")["jobs"];
        return std::all_of(jobs.begin(), jobs.end(), [](const json& j) { return j["state"] == "succeeded"; });
      },
      150);
  BOOST_TEST_REQUIRE(done, "not all jobs succeeded: " << jobs.dump(1));

  // Recorded exactly once each: 100 jobs, 100 distinct names, the ids the submits were told.
  BOOST_TEST(jobs.size() == size_t(kJobs));
  std::set<std::string> names;
  for (const json& j : jobs) {
    names.insert(j["name"].get<std::string>());
    BOOST_TEST(j["id"].get<int64_t>() == id_of[j["name"].get<std::string>()]);
    BOOST_TEST(j["attempts"].get<int>() == 1);
  }
  BOOST_TEST(names.size() == size_t(kJobs));

  // Started in queue order; at most kSlots running at any moment (intervals [start, finish)).
  std::vector<json> by_queue(jobs.begin(), jobs.end());
  std::sort(by_queue.begin(), by_queue.end(),
            [](const json& a, const json& b) { return a["queue_seq"].get<int64_t>() < b["queue_seq"].get<int64_t>(); });
  for (size_t i = 1; i < by_queue.size(); ++i) {
    BOOST_TEST(by_queue[i - 1]["started_at"].get<double>() <= by_queue[i]["started_at"].get<double>(),
               "job " << by_queue[i]["id"] << " started before job " << by_queue[i - 1]["id"]);
  }
  std::vector<std::pair<double, int>> edges;
  for (const json& j : jobs) {
    edges.emplace_back(j["started_at"].get<double>(), +1);
    edges.emplace_back(j["finished_at"].get<double>(), -1);
  }
  std::sort(edges.begin(), edges.end());  // at equal times the finish (-1) sorts first
  int running = 0, most = 0;
  for (const auto& [t, d] : edges) most = std::max(most, running += d);
  BOOST_TEST(most <= kSlots);
  BOOST_TEST_MESSAGE("at most " << most << " jobs ran at once");
}

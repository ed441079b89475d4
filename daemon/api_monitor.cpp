// Monitoring routes: a job's metric lines (all since a step, or as a live server-sent-events
// stream), its log, and the daemon's Prometheus metrics.
#include <chrono>
#include <fstream>
#include <limits>
#include <thread>

#include "daemon/api.h"
#include "daemon/http_error.h"
#include "daemon/metrics_reader.h"
#include "daemon/prometheus.h"
#include "train/metrics.h"

namespace sparta::daemon {
namespace {

int64_t int_param(const httplib::Request& req, const char* name, int64_t fallback) {
  if (!req.has_param(name)) return fallback;
  const std::string v = req.get_param_value(name);
  try {
    size_t used = 0;
    const int64_t n = std::stoll(v, &used);
    if (used == v.size()) return n;
  } catch (const std::exception&) {
  }
  throw HttpError(400, std::string("query parameter '") + name + "' must be an integer, got '" + v + "'");
}

std::string metrics_path(const ApiContext& ctx, const Job& j) { return ctx.dir.run_dir(j.run_name) + "/metrics.jsonl"; }

void metrics(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  const Job j = job_or_404(ctx, job_id_of(req));
  const int64_t since = int_param(req, "since", std::numeric_limits<int64_t>::min());
  nlohmann::json lines = nlohmann::json::array();
  for (const train::MetricsRecord& r : train::read_metrics(metrics_path(ctx, j), since)) {
    lines.push_back(nlohmann::json::parse(train::metrics_line(r)));
  }
  send_json(res, {{"id", j.id}, {"state", state_name(j.state)}, {"total_steps", j.total_steps}, {"metrics", lines}});
}

// text/event-stream: "event: metric" with each new metrics.jsonl line as data (its step as the
// event id, so a client reconnecting with Last-Event-ID misses nothing), "event: state" when the
// job's state changes, and "event: end" once the job has settled and every line was sent.
void events(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  const Job j = job_or_404(ctx, job_id_of(req));
  int64_t since = int_param(req, "since", std::numeric_limits<int64_t>::min());
  if (req.has_header("Last-Event-ID")) {
    try {
      since = std::stoll(req.get_header_value("Last-Event-ID"));
    } catch (const std::exception&) {
    }
  }
  const int64_t id = j.id;
  auto follower = std::make_shared<MetricsFollower>(metrics_path(ctx, j), since);
  auto last_state = std::make_shared<std::string>();
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [&ctx, id, follower, last_state](size_t, httplib::DataSink& sink) {
    auto send = [&sink](const std::string& s) { return sink.write(s.data(), s.size()); };
    auto idle_since = std::chrono::steady_clock::now();
    for (;;) {
      if (ctx.stopping) {
        sink.done();
        return true;
      }
      // The state is read before the file, so when it says settled every line is already there.
      const std::optional<Job> job = ctx.store.get(id);
      if (!job) {
        sink.done();
        return true;
      }
      bool sent = false;
      for (const auto& [step, line] : follower->poll()) {
        if (!send("event: metric\nid: " + std::to_string(step) + "\ndata: " + line + "\n\n")) return false;
        sent = true;
      }
      const std::string state = state_name(job->state);
      if (state != *last_state) {
        *last_state = state;
        const nlohmann::json s{{"id", id}, {"state", state}, {"message", job->message}};
        if (!send("event: state\ndata: " + s.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n")) {
          return false;
        }
        sent = true;
      }
      if (is_settled(job->state)) {
        send("event: end\ndata: {}\n\n");
        sink.done();
        return true;
      }
      if (sent) return true;
      if (!sink.is_writable()) return false;
      if (std::chrono::steady_clock::now() - idle_since > std::chrono::seconds(15)) {
        return send(": keep-alive\n\n");  // proxies and clients drop silent connections
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });
}

// The job's log from byte `offset` (at most 1 MiB per request): the body is the text, the headers
// say where to continue (X-Log-Offset) and the job's state (X-Job-State), so `logs -f` can stop
// once the job has settled and the log is read to its end.
void log(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  const Job j = job_or_404(ctx, job_id_of(req));
  const int64_t offset = std::max<int64_t>(0, int_param(req, "offset", 0));
  std::ifstream in(ctx.dir.job_log(j.id), std::ios::binary | std::ios::ate);
  std::string text;
  int64_t size = 0;
  if (in) {
    size = int64_t(in.tellg());
    if (offset < size) {
      in.seekg(offset);
      text.resize(size_t(std::min<int64_t>(size - offset, 1 << 20)));
      in.read(text.data(), std::streamsize(text.size()));
      text.resize(size_t(in.gcount()));
    }
  }
  res.set_header("X-Log-Offset", std::to_string(offset + int64_t(text.size())));
  res.set_header("X-Log-Size", std::to_string(size));
  res.set_header("X-Job-State", state_name(j.state));
  res.set_content(text, "text/plain; charset=utf-8");
}

void prometheus(ApiContext& ctx, const httplib::Request&, httplib::Response& res) {
  std::vector<JobSample> samples;
  for (Job& j : ctx.store.list()) {
    JobSample s;
    s.last = last_metrics(metrics_path(ctx, j));
    s.job = std::move(j);
    samples.push_back(std::move(s));
  }
  res.set_content(prometheus_text(samples, ctx.supervisor.usage()), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace

void add_monitor_routes(httplib::Server& server, ApiContext& ctx) {
  server.Get(R"(/api/jobs/(\d+)/metrics)", [&ctx](const httplib::Request& q, httplib::Response& r) { metrics(ctx, q, r); });
  server.Get(R"(/api/jobs/(\d+)/events)", [&ctx](const httplib::Request& q, httplib::Response& r) { events(ctx, q, r); });
  server.Get(R"(/api/jobs/(\d+)/log)", [&ctx](const httplib::Request& q, httplib::Response& r) { log(ctx, q, r); });
  server.Get("/metrics", [&ctx](const httplib::Request& q, httplib::Response& r) { prometheus(ctx, q, r); });
}

}  // namespace sparta::daemon

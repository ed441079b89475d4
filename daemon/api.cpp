#include "daemon/api.h"

#include <chrono>
#include <thread>

#include "core/error.h"
#include "daemon/http_error.h"
#include "daemon/log.h"
#include "daemon/metrics_reader.h"
#include "daemon/token.h"

namespace sparta::daemon {

nlohmann::json job_view(const ApiContext& ctx, const Job& job) {
  nlohmann::json v = job_to_json(job);
  const std::string run_dir = ctx.dir.run_dir(job.run_name);
  v["run_dir"] = run_dir;
  v["job_dir"] = ctx.dir.job_dir(job.id);
  v["log"] = ctx.dir.job_log(job.id);
  v["config"] = ctx.dir.job_config(job.id);
  nlohmann::json last = nullptr;
  if (auto r = last_metrics(run_dir + "/metrics.jsonl")) last = nlohmann::json::parse(train::metrics_line(*r));
  v["last_metrics"] = last;
  return v;
}

int64_t job_id_of(const httplib::Request& req) {
  try {
    return std::stoll(req.matches[1].str());
  } catch (const std::exception&) {
    throw HttpError(404, "no job " + req.matches[1].str());
  }
}

Job job_or_404(ApiContext& ctx, int64_t id) {
  std::optional<Job> j = ctx.store.get(id);
  if (!j) throw HttpError(404, "no job " + std::to_string(id));
  return *j;
}

void send_json(httplib::Response& res, const nlohmann::json& body, int status) {
  res.status = status;
  // error_handler "replace" keeps the API answering when a name or message holds invalid UTF-8.
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "application/json");
}

namespace {

bool needs_token(const std::string& path) { return path.rfind("/api/", 0) == 0 || path == "/metrics"; }

const char* reason_of(int status) {
  switch (status) {
    case 400: return "bad request";
    case 401: return "missing or wrong bearer token";
    case 404: return "not found";
    case 405: return "method not allowed";
    case 409: return "conflict";
    case 413: return "request body too large";
    default: return "error";
  }
}

}  // namespace

ApiServer::ApiServer(ApiContext ctx) : ctx_(std::move(ctx)) {
  // Event streams hold a thread each while they last; 32 leaves room for several dashboards.
  server_.new_task_queue = [] { return new httplib::ThreadPool(32); };
  server_.set_payload_max_length(16 << 20);
  server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!needs_token(req.path)) return httplib::Server::HandlerResponse::Unhandled;
    const std::string h = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    const bool ok = h.size() > prefix.size() && h.compare(0, prefix.size(), prefix) == 0 &&
                    tokens_equal(h.substr(prefix.size()), ctx_.token);
    if (ok) return httplib::Server::HandlerResponse::Unhandled;
    // Refused before any route runs: a request without the token changes nothing.
    res.set_header("WWW-Authenticate", "Bearer realm=\"sparta\"");
    send_json(res, {{"error", "missing or wrong bearer token: send 'Authorization: Bearer <token>' with the token in " +
                                  ctx_.dir.token()}},
              401);
    return httplib::Server::HandlerResponse::Handled;
  });
  server_.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const HttpError& e) {
      send_json(res, {{"error", e.what()}}, e.status());
    } catch (const std::exception& e) {
      log_warning(req.method + " " + req.path + ": " + e.what());
      send_json(res, {{"error", e.what()}}, 500);
    } catch (...) {
      send_json(res, {{"error", "unknown error"}}, 500);
    }
  });
  // Routes that set no body (no such route, a wrong method) still answer JSON.
  server_.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string msg = reason_of(res.status);
    if (res.status == 404) msg = "no route " + req.method + " " + req.path;
    send_json(res, {{"error", msg}}, res.status);
    return httplib::Server::HandlerResponse::Handled;
  }));
  add_job_routes(server_, ctx_);
  add_monitor_routes(server_, ctx_);
  add_web_routes(server_, ctx_);
}

int ApiServer::bind(int port) {
  const std::string host = "127.0.0.1";  // loopback only: the token is the only lock on the door
  if (port == 0) {
    const int p = server_.bind_to_any_port(host);
    SPARTA_CHECK(p > 0, "daemon", "cannot listen on ", host, " (no free port)");
    return p;
  }
  SPARTA_CHECK(server_.bind_to_port(host, port), "daemon", "cannot listen on ", host, ":", port,
               " (is another program using the port? choose another with --port, or 0 for any free one)");
  return port;
}

void ApiServer::run() { server_.listen_after_bind(); }
void ApiServer::stop() { server_.stop(); }

void ApiServer::wait_until_running() {
  for (int i = 0; i < 5000 && !server_.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

}  // namespace sparta::daemon

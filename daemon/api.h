#pragma once
// The daemon's HTTP API on 127.0.0.1 (docs/daemon.md is its reference). Every /api/ route and
// /metrics need the bearer token; the dashboard's static files do not (they hold no data, and the
// page asks for the token before it fetches any). Errors are JSON {"error": "..."} with 400
// (malformed or invalid request), 401 (no or wrong token), 404 (no such job), 409 (the job's state
// does not allow it) or 500.
#include <httplib.h>

#include <atomic>
#include <string>

#include "daemon/job_store.h"
#include "daemon/state_dir.h"
#include "daemon/supervisor.h"

namespace sparta::daemon {

struct ApiContext {
  JobStore& store;
  Supervisor& supervisor;
  const StateDir& dir;
  std::string token;
  std::string chart_js;    // the charting library's source, served at /chart.js
  std::string sparta_bin;  // for `sparta export` children
  std::atomic<bool>& stopping;  // ends event streams at shutdown
};

// The job as the API shows it: the store's fields, its files, and its last logged metrics.
nlohmann::json job_view(const ApiContext& ctx, const Job& job);

// Route groups (api_jobs.cpp, api_monitor.cpp, api_web.cpp).
void add_job_routes(httplib::Server& server, ApiContext& ctx);
void add_monitor_routes(httplib::Server& server, ApiContext& ctx);
void add_web_routes(httplib::Server& server, ApiContext& ctx);

// Helpers the routes share.
int64_t job_id_of(const httplib::Request& req);  // from the route's first group; HttpError 404 when absurd
Job job_or_404(ApiContext& ctx, int64_t id);
void send_json(httplib::Response& res, const nlohmann::json& body, int status = 200);

class ApiServer {
 public:
  explicit ApiServer(ApiContext ctx);
  // Binds 127.0.0.1:port (0: any free port) and returns the port; throws when it cannot.
  int bind(int port);
  void run();  // serves until stop()
  void wait_until_running();  // returns once run() accepts connections (or after 5 s)
  void stop();

 private:
  ApiContext ctx_;
  httplib::Server server_;
};

}  // namespace sparta::daemon

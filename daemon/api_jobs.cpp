// Job routes: submit, list, show, cancel, resume, export, config.
#include <filesystem>
#include <mutex>

#include "core/error.h"
#include "daemon/api.h"
#include "daemon/http_error.h"
#include "daemon/launch.h"
#include "daemon/log.h"
#include "daemon/process.h"
#include "daemon/submission.h"
#include "train/atomic_file.h"

namespace sparta::daemon {
namespace fs = std::filesystem;

namespace {

void submit(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  const SubmitRequest r = parse_submit_request(req.body);
  PreparedJob p;
  try {
    p = prepare_submission(r, ctx.supervisor.gpus().size());
  } catch (const Error& e) {
    throw HttpError(400, e.what());  // the config's own message, as `sparta train` prints it
  }
  // The job's folder and resolved config are written inside the store's transaction: a job is
  // recorded with its config, or not at all.
  auto [job, created] = ctx.store.add(p.job, [&](const Job& j) {
    const std::string yaml = resolved_config_yaml(p.config, j);
    fs::create_directories(ctx.dir.job_dir(j.id));
    train::write_file_atomically(ctx.dir.job_config(j.id), yaml);
    return yaml;
  });
  if (created) {
    append_to_job_log(ctx.dir.job_log(job.id), "submitted from " + job.config_name + " as job " +
                                                   std::to_string(job.id) + " (" + job.name + ")");
    log_info("job " + std::to_string(job.id) + " (" + job.name + ") queued from " + job.config_name);
    ctx.supervisor.wake();
  }
  nlohmann::json v = job_view(ctx, job);
  v["created"] = created;
  send_json(res, v, created ? 201 : 200);
}

void list(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  std::optional<JobState> only;
  if (req.has_param("state")) {
    only = state_from_name(req.get_param_value("state"));
    if (!only) throw HttpError(400, "unknown state '" + req.get_param_value("state") + "'");
  }
  nlohmann::json jobs = nlohmann::json::array();
  int64_t queued = 0;
  for (const Job& j : ctx.store.list()) {
    queued += j.state == JobState::queued;
    if (!only || j.state == *only) jobs.push_back(job_view(ctx, j));
  }
  const Usage u = ctx.supervisor.usage();
  send_json(res, {{"jobs", jobs},
                  {"queue_length", queued},
                  {"cpu_slots", u.cpu_slots},
                  {"cpu_slots_busy", u.cpu_running},
                  {"gpus", u.gpus_total},
                  {"gpus_busy", u.gpus_busy}});
}

void show(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  const Job j = job_or_404(ctx, job_id_of(req));
  nlohmann::json v = job_view(ctx, j);
  nlohmann::json history = nlohmann::json::array();
  for (const JobEvent& e : ctx.store.events(j.id)) history.push_back(event_to_json(e));
  v["history"] = history;
  send_json(res, v);
}

void config(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  const int64_t id = job_id_of(req);
  std::optional<std::string> yaml = ctx.store.config_yaml(id);
  if (!yaml) throw HttpError(404, "no job " + std::to_string(id));
  res.set_content(*yaml, "application/yaml");
}

// `sparta export <run_dir>` as a child process, so that a crash while reading a damaged checkpoint
// costs an error message, not the daemon. One export at a time: two of one job would write the
// same directory.
void export_job(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  static std::mutex export_mutex;
  const Job j = job_or_404(ctx, job_id_of(req));
  const std::string run_dir = ctx.dir.run_dir(j.run_name);
  if (!run_has_checkpoint(run_dir)) {
    throw HttpError(409, "job " + std::to_string(j.id) + " (" + j.name + ") has no checkpoint to export yet (state " +
                             state_name(j.state) + ")");
  }
  std::lock_guard<std::mutex> lock(export_mutex);
  SpawnSpec s;
  s.argv = {ctx.sparta_bin, "export", run_dir};
  s.env = environment_with({{"CUDA_VISIBLE_DEVICES", ""}});
  s.cwd = ctx.dir.job_dir(j.id);
  s.log_path = ctx.dir.job_dir(j.id) + "/export.log";
  std::error_code ec;
  fs::remove(s.log_path, ec);
  const ChildProcess child = spawn(s);
  const int status = wait_for(child.pid);
  if (status != 0) {
    const std::string why = last_error_line(s.log_path);
    throw HttpError(500, "export of job " + std::to_string(j.id) + " failed (" + describe_wait_status(status) + ")" +
                             (why.empty() ? "" : ": " + why));
  }
  log_info("job " + std::to_string(j.id) + " exported to " + run_dir + "/export");
  send_json(res, {{"id", j.id}, {"export_dir", run_dir + "/export"}, {"run_dir", run_dir}});
}

}  // namespace

void add_job_routes(httplib::Server& server, ApiContext& ctx) {
  server.Post("/api/jobs", [&ctx](const httplib::Request& q, httplib::Response& r) { submit(ctx, q, r); });
  server.Get("/api/jobs", [&ctx](const httplib::Request& q, httplib::Response& r) { list(ctx, q, r); });
  server.Get(R"(/api/jobs/(\d+))", [&ctx](const httplib::Request& q, httplib::Response& r) { show(ctx, q, r); });
  server.Get(R"(/api/jobs/(\d+)/config)", [&ctx](const httplib::Request& q, httplib::Response& r) { config(ctx, q, r); });
  server.Post(R"(/api/jobs/(\d+)/cancel)", [&ctx](const httplib::Request& q, httplib::Response& r) {
    send_json(r, job_view(ctx, ctx.supervisor.cancel(job_id_of(q))));
  });
  server.Post(R"(/api/jobs/(\d+)/resume)", [&ctx](const httplib::Request& q, httplib::Response& r) {
    send_json(r, job_view(ctx, ctx.supervisor.resume(job_id_of(q))));
  });
  server.Post(R"(/api/jobs/(\d+)/export)", [&ctx](const httplib::Request& q, httplib::Response& r) { export_job(ctx, q, r); });
}

}  // namespace sparta::daemon

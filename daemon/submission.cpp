#include "daemon/submission.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "daemon/http_error.h"
#include "daemon/state_dir.h"
#include "train/trainer.h"

namespace sparta::daemon {
namespace fs = std::filesystem;
using nlohmann::json;

SubmitRequest parse_submit_request(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    throw HttpError(400, std::string("malformed JSON in the request body: ") + e.what());
  }
  if (!j.is_object()) throw HttpError(400, "the request body must be a JSON object");
  auto str = [&](const char* key, std::string& out) {
    if (!j.contains(key) || j[key].is_null()) return;
    if (!j[key].is_string()) throw HttpError(400, std::string("field '") + key + "' must be a string");
    out = j[key].get<std::string>();
  };
  SubmitRequest r;
  for (const auto& [key, value] : j.items()) {
    static const char* known[] = {"config", "config_name", "overrides", "cwd", "name", "gpus", "submit_key"};
    bool ok = false;
    for (const char* k : known) ok = ok || key == k;
    if (!ok) throw HttpError(400, "unknown field '" + key + "' (known: config, config_name, overrides, cwd, name, gpus, submit_key)");
  }
  if (!j.contains("config")) throw HttpError(400, "field 'config' (the YAML text of the run config) is missing");
  str("config", r.config_yaml);
  str("config_name", r.config_name);
  str("cwd", r.cwd);
  str("name", r.name);
  str("submit_key", r.submit_key);
  if (j.contains("overrides") && !j["overrides"].is_null()) {
    if (!j["overrides"].is_array()) throw HttpError(400, "field 'overrides' must be a list of \"key=value\" strings");
    for (const json& o : j["overrides"]) {
      if (!o.is_string()) throw HttpError(400, "field 'overrides' must be a list of \"key=value\" strings");
      r.overrides.push_back(o.get<std::string>());
    }
  }
  if (j.contains("gpus") && !j["gpus"].is_null()) {
    if (!j["gpus"].is_number_integer() || j["gpus"].get<int64_t>() < 0) {
      throw HttpError(400, "field 'gpus' must be a whole number >= 0");
    }
    r.gpus = j["gpus"].get<int64_t>();
  }
  if (r.submit_key.size() > 128) throw HttpError(400, "field 'submit_key' is longer than 128 characters");
  if (!r.cwd.empty() && !fs::path(r.cwd).is_absolute()) {
    throw HttpError(400, "field 'cwd' must be an absolute directory, got '" + r.cwd + "'");
  }
  return r;
}

PreparedJob prepare_submission(const SubmitRequest& req, size_t daemon_gpus) {
  PreparedJob p;
  // The same reading as `sparta train <config_name> <overrides>`, so the same errors.
  p.config = train::parse_config(req.config_yaml, req.config_name, req.overrides);
  train::RunConfig& c = p.config;
  train::transformer_config(c);
  // data.path relative to the submitter's directory, as `sparta train` run there would read it;
  // refused when missing with `sparta train`'s message, which names the path as written.
  const std::string written = c.data.path;
  if (!c.data.path.empty() && fs::path(c.data.path).is_relative()) {
    if (req.cwd.empty()) {
      throw HttpError(400, "data.path '" + written +
                               "' is relative: submit the directory it is relative to in field 'cwd' "
                               "(`sparta submit` does)");
    }
    c.data.path = (fs::path(req.cwd) / c.data.path).lexically_normal().string();
  }
  SPARTA_CHECK(fs::exists(c.data.path), "data", "data.path '", written, "' does not exist");

  p.job.name = req.name.empty() ? c.name : req.name;
  check_job_name(p.job.name);
  p.job.config_name = req.config_name;
  p.job.submit_key = req.submit_key;
  p.job.total_steps = c.train.steps;
  p.job.gpus = req.gpus.value_or(c.device.is_cuda() ? 1 : 0);
  if (p.job.gpus > 0 && c.device.is_cpu()) {
    throw HttpError(400, "the job asks for " + std::to_string(p.job.gpus) +
                             " GPU(s) but its config's device is cpu (set device: cuda)");
  }
  if (p.job.gpus == 0 && c.device.is_cuda()) {
    throw HttpError(400, "the config's device is " + c.device.str() + " but the job asks for no GPU (gpus: 0)");
  }
  if (size_t(p.job.gpus) > daemon_gpus) {
    throw HttpError(400, "the job needs " + std::to_string(p.job.gpus) + " GPU(s) but this daemon has " +
                             (daemon_gpus == 0 ? std::string("none") : std::to_string(daemon_gpus)) +
                             " (see `gpus` in daemon.yaml)");
  }
  return p;
}

std::string resolved_config_yaml(train::RunConfig c, const Job& job) {
  c.name = job.run_name;
  if (job.gpus > 0) c.device = Device::cuda(0);
  return train::to_yaml(c);
}

}  // namespace sparta::daemon

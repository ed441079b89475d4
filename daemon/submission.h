#pragma once
// A submit request (POST /api/jobs), checked before anything is queued: the JSON's fields, then the
// config exactly as `sparta train` reads it (parse_config with the same file name and overrides, so
// a bad config is refused with the very message `sparta train` prints), the model it describes
// (patterns against the sequence length), the data path, the job name, and the GPUs it needs
// against those the daemon has.
//
// Body: {"config": "<YAML text>", "config_name": "configs/x.yaml", "overrides": ["train.steps=10"],
//        "cwd": "/home/me/project", "name": "optional", "gpus": 1, "submit_key": "optional"}
// `cwd` is the directory relative paths in the config (data.path) are relative to, as they are for
// `sparta train` run there; the job's resolved config holds the absolute path, since the job runs
// elsewhere.
#include <optional>
#include <string>
#include <vector>

#include "daemon/job.h"
#include "daemon/job_store.h"
#include "train/config.h"

namespace sparta::daemon {

struct SubmitRequest {
  std::string config_yaml;
  std::string config_name = "<submitted config>";
  std::vector<std::string> overrides;
  std::string cwd;
  std::string name;
  std::optional<int64_t> gpus;
  std::string submit_key;
};

// Throws HttpError 400 naming the field for malformed JSON or a field of the wrong type or an
// unknown field.
SubmitRequest parse_submit_request(const std::string& body);

struct PreparedJob {
  NewJob job;
  train::RunConfig config;
};

// Throws sparta::Error (the config's own messages) or HttpError 400.
PreparedJob prepare_submission(const SubmitRequest& req, size_t daemon_gpus);

// The config the job runs, as YAML: named after its run directory, and on cuda:0 when it has GPUs
// (it sees only its assigned devices, renumbered from 0 by CUDA_VISIBLE_DEVICES).
std::string resolved_config_yaml(train::RunConfig config, const Job& job);

}  // namespace sparta::daemon

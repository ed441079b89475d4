#include "daemon/daemon_config.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/cuda/runtime.h"
#include "core/error.h"
#include "train/config_reader.h"

namespace sparta::daemon {

using train::config_detail::Origin;
using train::config_detail::Section;

DaemonConfig parse_daemon_config(const std::string& yaml_text, const std::string& source, DaemonConfig c) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    SPARTA_FAIL("daemon", source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": not valid YAML: ", e.msg);
  }
  Origin origin(source);
  Section s(root, "", origin);
  int64_t port = c.port, slots = c.cpu_slots;
  s.read("port", port);
  s.check(port >= 0 && port <= 65535, "port", "must be in [0, 65535], got ", port);
  s.read("cpu_slots", slots);
  s.check(slots >= 1 && slots <= 1024, "cpu_slots", "must be in [1, 1024], got ", slots);
  if (s.has("gpus")) {
    std::vector<std::string> items;
    s.read("gpus", items);
    std::vector<int> gpus;
    for (const std::string& g : items) {
      int v = -1;
      try {
        size_t used = 0;
        v = std::stoi(g, &used);
        if (used != g.size()) v = -1;
      } catch (const std::exception&) {
      }
      s.check(v >= 0, "gpus", "'", g, "' is not a GPU index (a list like [0, 1])");
      gpus.push_back(v);
    }
    c.gpus = gpus;
  }
  s.read("resume_interrupted", c.resume_interrupted);
  s.read("cancel_grace_s", c.cancel_grace_s);
  s.check(c.cancel_grace_s >= 0, "cancel_grace_s", "must be >= 0, got ", c.cancel_grace_s);
  s.read("chart_js", c.chart_js);
  s.finish();
  c.port = int(port);
  c.cpu_slots = int(slots);
  return c;
}

DaemonConfig load_daemon_config(const std::string& path) {
  if (!std::filesystem::exists(path)) return {};
  std::ifstream in(path);
  SPARTA_CHECK(in, "daemon", "cannot read ", path);
  std::stringstream text;
  text << in.rdbuf();
  return parse_daemon_config(text.str(), path);
}

void validate(const DaemonConfig& c) {
  SPARTA_CHECK(c.port >= 0 && c.port <= 65535, "daemon", "--port must be in [0, 65535], got ", c.port);
  SPARTA_CHECK(c.cpu_slots >= 1, "daemon", "--cpu-slots must be >= 1, got ", c.cpu_slots);
  SPARTA_CHECK(c.cancel_grace_s >= 0, "daemon", "--cancel-grace must be >= 0, got ", c.cancel_grace_s);
  if (c.gpus) {
    for (size_t i = 0; i < c.gpus->size(); ++i) {
      SPARTA_CHECK((*c.gpus)[i] >= 0, "daemon", "gpus: ", (*c.gpus)[i], " is not a GPU index");
      for (size_t k = 0; k < i; ++k) {
        SPARTA_CHECK((*c.gpus)[k] != (*c.gpus)[i], "daemon", "gpus: GPU ", (*c.gpus)[i], " is listed twice");
      }
    }
  }
}

std::vector<int> daemon_gpus(const DaemonConfig& c) {
  if (c.gpus) return *c.gpus;
  std::vector<int> all;
  int n = 0;
  try {
    n = cuda::available() ? cuda::device_count() : 0;
  } catch (const std::exception&) {
    n = 0;  // a CPU-only build
  }
  for (int i = 0; i < n; ++i) all.push_back(i);
  return all;
}

}  // namespace sparta::daemon

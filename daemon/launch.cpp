#include "daemon/launch.h"

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "train/atomic_file.h"
#include "train/metrics.h"

namespace sparta::daemon {
namespace fs = std::filesystem;

bool run_has_checkpoint(const std::string& run_dir) {
  std::error_code ec;
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(dir, ec)) return false;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step_", 0) == 0 && e.path().extension() == ".h5") return true;
  }
  return false;
}

std::string visible_devices(const std::vector<int>& gpus) {
  std::vector<std::string> own;
  if (const char* v = std::getenv("CUDA_VISIBLE_DEVICES"); v && *v) {
    std::stringstream ss(v);
    for (std::string item; std::getline(ss, item, ',');) own.push_back(item);
  }
  std::string out;
  for (size_t i = 0; i < gpus.size(); ++i) {
    const int g = gpus[i];
    out += (i ? "," : "") + (g < int(own.size()) ? own[size_t(g)] : std::to_string(g));
  }
  return out;
}

SpawnSpec attempt_spec(const StateDir& dir, const Job& job, const std::string& config_yaml,
                       const std::vector<int>& gpus, const std::string& sparta_bin, std::string* description) {
  const std::string job_dir = dir.job_dir(job.id), config = dir.job_config(job.id);
  const std::string run_dir = dir.run_dir(job.run_name);
  fs::create_directories(job_dir);
  if (!fs::exists(config)) train::write_file_atomically(config, config_yaml);

  SpawnSpec s;
  s.cwd = job_dir;
  s.log_path = dir.job_log(job.id);
  if (job.attempts > 0 && run_has_checkpoint(run_dir)) {
    s.argv = {sparta_bin, "resume", run_dir};
  } else {
    // A fresh start: lines a failed earlier attempt logged would put steps out of order.
    const std::string metrics = run_dir + "/metrics.jsonl";
    if (fs::exists(metrics)) train::truncate_after_step(metrics, 0);
    s.argv = {sparta_bin, "train", config, "--runs", dir.runs()};
  }
  std::vector<std::pair<std::string, std::string>> env = {
      {"SPARTA_JOB_ID", std::to_string(job.id)},
      // A CPU job sees no GPU; a GPU job sees exactly its own.
      {"CUDA_VISIBLE_DEVICES", visible_devices(gpus)},
  };
  // main() would otherwise re-exec itself once to set this; the job can start directly.
  if (!std::getenv("OMP_WAIT_POLICY")) env.emplace_back("OMP_WAIT_POLICY", "PASSIVE");
  s.env = environment_with(env);
  if (description) {
    std::string cmd;
    for (size_t i = 0; i < s.argv.size(); ++i) cmd += (i ? " " : "") + (i == 0 ? std::string("sparta") : s.argv[i]);
    *description = cmd + (gpus.empty() ? "" : " (CUDA_VISIBLE_DEVICES=" + visible_devices(gpus) + ")");
  }
  return s;
}

std::string last_error_line(const std::string& log_path) {
  std::ifstream in(log_path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  const std::streamoff from = std::max<std::streamoff>(0, size - 16384);
  in.seekg(from);
  std::string tail((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::stringstream ss(tail);
  std::string line, last, last_error;
  while (std::getline(ss, line)) {
    if (line.empty() || line.rfind("[sparta daemon]", 0) == 0) continue;
    last = line;
    if (line.find("error") != std::string::npos) last_error = line;
  }
  const std::string& pick = last_error.empty() ? last : last_error;
  return pick.size() > 500 ? pick.substr(0, 500) + "..." : pick;
}

void append_to_job_log(const std::string& log_path, const std::string& line) {
  std::ofstream out(log_path, std::ios::app);
  const std::time_t t = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  out << "[sparta daemon] " << when << " " << line << "\n";
}

}  // namespace sparta::daemon

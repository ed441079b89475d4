#include "train/checkpoint_manager.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/atomic_file.h"

namespace fs = std::filesystem;

namespace sparta::train {

namespace {
constexpr const char* kIndex = "index.json";
constexpr int kIndexVersion = 1;
}  // namespace

CheckpointManager::CheckpointManager(std::string dir, int keep_last, bool keep_best)
    : dir_(std::move(dir)), keep_last_(keep_last), keep_best_(keep_best) {
  SPARTA_CHECK(keep_last >= 1, "CheckpointManager", "keep_last must be at least 1, got ", keep_last);
  std::error_code ec;
  fs::create_directories(dir_, ec);
  SPARTA_CHECK(!ec && fs::is_directory(dir_), "CheckpointManager", "cannot create the checkpoint directory ", dir_,
               ec ? ": " + ec.message() : "");
  read_index();
}

std::string CheckpointManager::file_name(int64_t step) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "step_%08lld.h5", static_cast<long long>(step));
  return buf;
}

std::string CheckpointManager::path_of(const Entry& e) const { return (fs::path(dir_) / e.file).string(); }

void CheckpointManager::read_index() {
  const std::string index = (fs::path(dir_) / kIndex).string();
  std::map<int64_t, Entry> by_step;
  if (fs::exists(index)) {
    std::ifstream in(index);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
      SPARTA_CHECK(j.value("format_version", 0) == kIndexVersion, "CheckpointManager", index,
                   ": unknown format_version ", j.value("format_version", 0));
      for (const auto& c : j.at("checkpoints")) {
        Entry e;
        e.step = c.at("step").get<int64_t>();
        e.file = c.at("file").get<std::string>();
        if (c.contains("val_loss") && !c.at("val_loss").is_null()) e.val_loss = c.at("val_loss").get<double>();
        SPARTA_CHECK(e.file == file_name(e.step), "CheckpointManager", index, ": entry for step ", e.step,
                     " names file '", e.file, "'");
        by_step[e.step] = e;
      }
    } catch (const nlohmann::json::exception& ex) {
      SPARTA_FAIL("CheckpointManager", index, " is not a valid checkpoint index: ", ex.what());
    }
  }
  // Reconcile with the directory: see the header.
  std::set<int64_t> on_disk;
  static const std::regex pattern(R"(step_(\d{8,})\.h5)");
  for (const auto& f : fs::directory_iterator(dir_)) {
    std::smatch m;
    std::string name = f.path().filename().string();
    if (f.is_regular_file() && std::regex_match(name, m, pattern)) {
      int64_t step = std::stoll(m[1].str());
      if (name != file_name(step)) continue;  // step_000000042.h5: not a name we write
      on_disk.insert(step);
      if (!by_step.count(step)) by_step[step] = Entry{step, name, std::nullopt};
    }
  }
  entries_.clear();
  for (auto& [step, e] : by_step) {
    if (on_disk.count(step)) entries_.push_back(e);
  }
}

void CheckpointManager::write_index() const {
  nlohmann::json list = nlohmann::json::array();
  for (const Entry& e : entries_) {
    nlohmann::json c = {{"step", e.step}, {"file", e.file}, {"val_loss", nullptr}};
    if (e.val_loss) c["val_loss"] = *e.val_loss;
    list.push_back(c);
  }
  nlohmann::json j = {{"format_version", kIndexVersion}, {"checkpoints", list}};
  write_file_atomically((fs::path(dir_) / kIndex).string(), j.dump(2) + "\n");
}

const CheckpointManager::Entry* CheckpointManager::best_entry() const {
  const Entry* best = nullptr;
  for (const Entry& e : entries_) {
    if (e.val_loss && (!best || *e.val_loss < *best->val_loss)) best = &e;
  }
  return best;
}

std::string CheckpointManager::save(int64_t step, const CheckpointState& state, std::optional<double> val_loss) {
  SPARTA_CHECK(step >= 0, "CheckpointManager", "step must be non-negative, got ", step);
  if (val_loss && !std::isfinite(*val_loss)) val_loss.reset();
  Entry fresh{step, file_name(step), val_loss};
  const std::string path = path_of(fresh);
  save_checkpoint(path, state);

  entries_.erase(std::remove_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.step == step; }),
                 entries_.end());
  entries_.insert(std::upper_bound(entries_.begin(), entries_.end(), step,
                                   [](int64_t s, const Entry& e) { return s < e.step; }),
                  fresh);

  std::set<int64_t> keep;
  for (size_t i = entries_.size() > size_t(keep_last_) ? entries_.size() - size_t(keep_last_) : 0;
       i < entries_.size(); ++i) {
    keep.insert(entries_[i].step);
  }
  if (keep_best_) {
    if (const Entry* b = best_entry()) keep.insert(b->step);
  }
  std::vector<Entry> dropped;
  std::vector<Entry> kept;
  for (const Entry& e : entries_) (keep.count(e.step) ? kept : dropped).push_back(e);
  entries_ = std::move(kept);
  write_index();
  // A file that cannot be deleted now is adopted again by the next manager and pruned then.
  for (const Entry& e : dropped) {
    std::error_code ec;
    fs::remove(path_of(e), ec);
  }
  return path;
}

std::optional<std::string> CheckpointManager::latest() const {
  if (entries_.empty()) return std::nullopt;
  return path_of(entries_.back());
}

std::optional<std::string> CheckpointManager::best() const {
  const Entry* b = best_entry();
  if (!b) return std::nullopt;
  return path_of(*b);
}

}  // namespace sparta::train

#include "train/metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/atomic_file.h"

namespace sparta::train {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

const char* const kStandardKeys[] = {"step",        "loss",         "lr",       "grad_norm", "tokens_per_s",
                                     "elapsed_s",   "memory_bytes", "val_loss", "val_bpb",   "val_ppl"};

bool is_standard_key(const std::string& key) {
  for (const char* k : kStandardKeys)
    if (key == k) return true;
  return false;
}

// A file's lines, each with whether its newline was written: only the last can lack one, and such a
// line may be torn (its writer stopped mid-append).
struct Line {
  std::string text;
  bool complete;
};

std::vector<Line> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SPARTA_CHECK(in, "metrics", "cannot read '", path, "': ", std::strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  SPARTA_CHECK(!in.bad(), "metrics", "cannot read '", path, "'");
  const std::string content = buf.str();
  std::vector<Line> lines;
  size_t start = 0;
  while (start < content.size()) {
    size_t end = content.find('\n', start);
    if (end == std::string::npos) {
      lines.push_back({content.substr(start), false});
      break;
    }
    lines.push_back({content.substr(start, end - start), true});
    start = end + 1;
  }
  return lines;
}

bool is_blank(const std::string& s) { return s.find_first_not_of(" \t\r") == std::string::npos; }

std::string where(const std::string& path, size_t index) { return path + ":" + std::to_string(index + 1); }

double number_at(const json& j, const std::string& key, const std::string& at) {
  const json& v = j.at(key);
  if (v.is_null()) return NAN;  // how a non-finite value was written
  SPARTA_CHECK(v.is_number(), "metrics", at, ": key '", key, "' is ", v.dump(), ", expected a number");
  return v.get<double>();
}

int64_t integer_at(const json& j, const std::string& key, const std::string& at) {
  const json& v = j.at(key);
  SPARTA_CHECK(v.is_number_integer(), "metrics", at, ": key '", key, "' is ", v.dump(), ", expected an integer");
  SPARTA_CHECK(!v.is_number_unsigned() || v.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()),
               "metrics", at, ": key '", key, "' is ", v.dump(), ", out of int64 range");
  return v.get<int64_t>();
}

json parse_object(const std::string& line, const std::string& at) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  SPARTA_CHECK(!j.is_discarded(), "metrics", at, ": not valid JSON: '", line.substr(0, 80), "'");
  SPARTA_CHECK(j.is_object(), "metrics", at, ": expected a JSON object, got '", line.substr(0, 80), "'");
  SPARTA_CHECK(j.contains("step"), "metrics", at, ": missing key 'step'");
  return j;
}

struct Rewrite {
  int64_t dropped = 0;
  std::optional<int64_t> last_step;
};

Rewrite rewrite_after_step(const std::string& path, int64_t step) {
  Rewrite r;
  if (!std::filesystem::exists(path)) return r;
  std::vector<Line> lines = read_lines(path);
  std::string kept;
  bool changed = false;
  for (size_t i = 0; i < lines.size(); ++i) {
    const Line& line = lines[i];
    if (is_blank(line.text)) {
      if (line.complete) kept += line.text + "\n";
      else changed = true;
      continue;
    }
    int64_t line_step;
    if (line.complete) {
      line_step = integer_at(parse_object(line.text, where(path, i)), "step", where(path, i));
    } else {
      // A last line without its newline is kept only if it is whole: a JSON object ends with its
      // closing brace, so no torn prefix of one parses.
      json j = json::parse(line.text, nullptr, false);
      changed = true;
      if (j.is_discarded() || !j.is_object() || !j.contains("step") || !j["step"].is_number_integer()) {
        ++r.dropped;
        continue;
      }
      line_step = j["step"].get<int64_t>();
    }
    if (line_step > step) {
      ++r.dropped;
      continue;
    }
    kept += line.text + "\n";
    r.last_step = line_step;
  }
  if (r.dropped > 0 || changed) write_file_atomically(path, kept);
  return r;
}

}  // namespace

std::string metrics_line(const MetricsRecord& record) {
  ordered_json j;
  j["step"] = record.step;
  j["loss"] = record.loss;
  j["lr"] = record.lr;
  j["grad_norm"] = record.grad_norm;
  j["tokens_per_s"] = record.tokens_per_s;
  j["elapsed_s"] = record.elapsed_s;
  j["memory_bytes"] = record.memory_bytes;
  if (record.val_loss) j["val_loss"] = *record.val_loss;
  if (record.val_bpb) j["val_bpb"] = *record.val_bpb;
  if (record.val_ppl) j["val_ppl"] = *record.val_ppl;
  for (const auto& [key, value] : record.extra) {
    SPARTA_CHECK(!is_standard_key(key), "metrics", "extra key '", key, "' repeats a standard key");
    j[key] = value;
  }
  return j.dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace);
}

MetricsRecord parse_metrics_line(const std::string& line, const std::string& at) {
  json j = parse_object(line, at);
  for (const char* key : {"loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s", "memory_bytes"})
    SPARTA_CHECK(j.contains(key), "metrics", at, ": missing key '", key, "'");
  MetricsRecord r;
  r.step = integer_at(j, "step", at);
  r.loss = number_at(j, "loss", at);
  r.lr = number_at(j, "lr", at);
  r.grad_norm = number_at(j, "grad_norm", at);
  r.tokens_per_s = number_at(j, "tokens_per_s", at);
  r.elapsed_s = number_at(j, "elapsed_s", at);
  r.memory_bytes = integer_at(j, "memory_bytes", at);
  if (j.contains("val_loss")) r.val_loss = number_at(j, "val_loss", at);
  if (j.contains("val_bpb")) r.val_bpb = number_at(j, "val_bpb", at);
  if (j.contains("val_ppl")) r.val_ppl = number_at(j, "val_ppl", at);
  for (const auto& [key, value] : j.items()) {
    if (!is_standard_key(key)) r.extra[key] = number_at(j, key, at);
  }
  return r;
}

MetricsLog::MetricsLog(std::string path, std::optional<int64_t> resume_step) : path_(std::move(path)) {
  last_step_ = rewrite_after_step(path_, resume_step.value_or(std::numeric_limits<int64_t>::max())).last_step;
  // O_APPEND: each line lands at the end even if something else (a second writer by mistake) wrote.
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  SPARTA_CHECK(fd >= 0, "metrics", "cannot open '", path_, "' for appending: ", std::strerror(errno));
  file_.reset(::fdopen(fd, "a"));
  if (!file_) {
    int err = errno;
    ::close(fd);
    SPARTA_FAIL("metrics", "cannot open '", path_, "': ", std::strerror(err));
  }
}

void MetricsLog::append(const MetricsRecord& record) {
  SPARTA_CHECK(file_, "metrics", "append to a closed metrics log");
  SPARTA_CHECK(!last_step_ || record.step >= *last_step_, "metrics", "step ", record.step, " after step ",
               *last_step_, " in '", path_, "': steps must not go backwards (resume with the checkpoint's step?)");
  const std::string line = metrics_line(record) + "\n";
  // One fwrite then a flush: a reader sees the line whole or torn at the end, never interleaved.
  bool ok = std::fwrite(line.data(), 1, line.size(), file_.get()) == line.size();
  ok = std::fflush(file_.get()) == 0 && ok;
  SPARTA_CHECK(ok, "metrics", "cannot write '", path_, "': ", std::strerror(errno));
  last_step_ = record.step;
}

int64_t truncate_after_step(const std::string& path, int64_t step) { return rewrite_after_step(path, step).dropped; }

std::vector<MetricsRecord> read_metrics(const std::string& path, int64_t since_step) {
  SPARTA_CHECK(std::filesystem::exists(path), "metrics", "no metrics file '", path, "'");
  std::vector<Line> lines = read_lines(path);
  std::vector<MetricsRecord> records;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (is_blank(lines[i].text)) continue;
    if (!lines[i].complete) {
      json j = json::parse(lines[i].text, nullptr, false);
      if (j.is_discarded()) break;  // torn: the writer has not finished it
    }
    MetricsRecord r = parse_metrics_line(lines[i].text, where(path, i));
    if (r.step > since_step) records.push_back(std::move(r));
  }
  return records;
}

}  // namespace sparta::train

#pragma once
// metrics.jsonl: one JSON object per logged step, appended and flushed line by line, e.g.
//   {"step":120,"loss":2.3412,"lr":0.00029,"grad_norm":0.81,"tokens_per_s":10240.0,"elapsed_s":61.5,
//    "memory_bytes":1234567890,"val_loss":2.41,"attn_density":0.125}
// Earlier lines are never rewritten while a run writes; only a resume rewrites the file (atomically:
// temporary file, fsync, rename) to drop the lines its checkpoint does not cover. Steps never go
// backwards within the file. Non-finite numbers are written as null (JSON has no NaN) and read as NaN.
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sparta::train {

struct MetricsRecord {
  int64_t step = 0;
  double loss = 0;
  double lr = 0;
  double grad_norm = 0;
  double tokens_per_s = 0;
  double elapsed_s = 0;
  int64_t memory_bytes = 0;
  std::optional<double> val_loss;
  std::optional<double> val_bpb;
  std::optional<double> val_ppl;
  std::map<std::string, double> extra;  // any further numbers; keys must not repeat the ones above
};

class MetricsLog {
 public:
  // Opens `path` (created if missing) for appending after its last complete line; a torn last line
  // left by a crash is dropped. With `resume_step`, lines of steps after it are dropped as well, so
  // the resumed run logs those steps once.
  explicit MetricsLog(std::string path, std::optional<int64_t> resume_step = std::nullopt);

  // Appends one line and flushes it. Throws if record.step is below the last logged step or an extra
  // key repeats a standard one; nothing is written then.
  void append(const MetricsRecord& record);

  const std::string& path() const { return path_; }
  // The step of the last line in the file, or nullopt while it has none.
  std::optional<int64_t> last_step() const { return last_step_; }

 private:
  struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::string path_;
  std::unique_ptr<std::FILE, FileCloser> file_;
  std::optional<int64_t> last_step_;
};

// Drops the lines whose step is greater than `step`, and a torn last line, by writing the kept lines
// to a temporary file and renaming it over `path` (a crash leaves the old file or the new one, never
// half of one). Does nothing when there is nothing to drop, or no file. Returns the lines dropped.
// Throws naming the file and line when a complete line is not a JSON object with an integer step.
int64_t truncate_after_step(const std::string& path, int64_t step);

// The records of the lines whose step is greater than `since_step` (all by default), in file order.
// A torn last line (a writer mid-append, or a crash) is skipped; any other bad line throws naming the
// file, line and key.
std::vector<MetricsRecord> read_metrics(const std::string& path, int64_t since_step = std::numeric_limits<int64_t>::min());

// The JSON line for a record (no newline), and the record of a line; `where` names it in errors.
std::string metrics_line(const MetricsRecord& record);
MetricsRecord parse_metrics_line(const std::string& line, const std::string& where);

}  // namespace sparta::train

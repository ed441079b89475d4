#include "daemon/metrics_reader.h"

#include <sys/stat.h>

#include <fstream>

namespace sparta::daemon {

std::optional<train::MetricsRecord> last_metrics(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return std::nullopt;
  const std::streamoff size = in.tellg();
  // A line is a few hundred bytes: the first window nearly always holds the last complete one.
  for (std::streamoff window = 4096; window < (std::streamoff(1) << 26); window *= 8) {
    const std::streamoff from = std::max<std::streamoff>(0, size - window);
    in.clear();
    in.seekg(from);
    std::string tail(size_t(size - from), '\0');
    in.read(tail.data(), std::streamsize(tail.size()));
    // The last complete line ends at the last newline (a torn line may follow it).
    const size_t end = tail.rfind('\n');
    if (end == std::string::npos) {
      if (from == 0) return std::nullopt;
      continue;
    }
    const size_t before = end == 0 ? std::string::npos : tail.rfind('\n', end - 1);
    if (before == std::string::npos && from != 0) continue;  // the line may start before the window
    const size_t begin = before == std::string::npos ? 0 : before + 1;
    try {
      return train::parse_metrics_line(tail.substr(begin, end - begin), path);
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

MetricsFollower::MetricsFollower(std::string path, int64_t since_step)
    : path_(std::move(path)), last_step_(since_step) {}

std::vector<std::pair<int64_t, std::string>> MetricsFollower::poll() {
  std::vector<std::pair<int64_t, std::string>> out;
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return out;
  if (st.st_ino != inode_ || st.st_size < offset_) {
    inode_ = st.st_ino;  // a new or rewritten file: read it again from the start, by step
    offset_ = 0;
  }
  if (st.st_size == offset_) return out;
  std::ifstream in(path_, std::ios::binary);
  if (!in) return out;
  in.seekg(offset_);
  std::string chunk(size_t(st.st_size - offset_), '\0');
  in.read(chunk.data(), std::streamsize(chunk.size()));
  chunk.resize(size_t(in.gcount()));
  size_t pos = 0;
  for (;;) {
    const size_t nl = chunk.find('\n', pos);
    if (nl == std::string::npos) break;  // a line being written: next time
    const std::string line = chunk.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) continue;
    try {
      const train::MetricsRecord r = train::parse_metrics_line(line, path_);
      if (r.step > last_step_) {
        last_step_ = r.step;
        out.emplace_back(r.step, line);
      }
    } catch (const std::exception&) {
      // Not a metrics line (never written by the trainer): skip it rather than stall the stream.
    }
  }
  offset_ += off_t(pos);
  return out;
}

}  // namespace sparta::daemon

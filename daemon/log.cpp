#include "daemon/log.h"

#include <cstdio>
#include <mutex>

namespace sparta::daemon {
namespace {
std::mutex& log_mutex() {
  static std::mutex mu;
  return mu;
}
void emit(const char* level, const std::string& line) {
  std::lock_guard<std::mutex> lock(log_mutex());
  std::fprintf(stderr, "sparta daemon: %s%s\n", level, line.c_str());
  std::fflush(stderr);
}
}  // namespace

void log_info(const std::string& line) { emit("", line); }
void log_warning(const std::string& line) { emit("warning: ", line); }

}  // namespace sparta::daemon

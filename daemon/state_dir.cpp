#include "daemon/state_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/atomic_file.h"

namespace sparta::daemon {
namespace fs = std::filesystem;

std::string default_state_dir() {
  if (const char* s = std::getenv("SPARTA_STATE_DIR"); s && *s) return s;
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x) return std::string(x) + "/sparta";
  const char* home = std::getenv("HOME");
  SPARTA_CHECK(home && *home, "daemon", "no state directory: set SPARTA_STATE_DIR or HOME, or pass --state DIR");
  return std::string(home) + "/.local/state/sparta";
}

StateDir::StateDir(std::string root) : root_(fs::absolute(root).lexically_normal().string()) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

void StateDir::create() const {
  for (const std::string& d : {root_, file("jobs"), runs()}) {
    std::error_code ec;
    fs::create_directories(d, ec);
    SPARTA_CHECK(!ec, "daemon", "cannot create state directory ", d, ": ", ec.message());
  }
  SPARTA_CHECK(::chmod(root_.c_str(), 0700) == 0, "daemon", "cannot set the mode of ", root_, ": ",
               std::strerror(errno));
}

bool valid_job_name(const std::string& s) {
  if (s.empty() || s.size() > 64 || s == "." || s == "..") return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void check_job_name(const std::string& s) {
  if (valid_job_name(s)) return;
  std::string why = "use 1 to 64 letters, digits, '.', '_' and '-'";
  if (s.find('/') != std::string::npos || s == "." || s == "..") {
    why = "a job name is one directory name inside the state directory; paths (with '/' or '..') are not allowed";
  }
  SPARTA_FAIL("daemon", "job name '", s, "' is not allowed: ", why);
}

StateLock::StateLock(const StateDir& dir) {
  fd_ = ::open(dir.lock().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  SPARTA_CHECK(fd_ >= 0, "daemon", "cannot open ", dir.lock(), ": ", std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    std::string who;
    try {
      who = " (pid " + std::to_string(read_address(dir).pid) + ")";
    } catch (const std::exception&) {
    }
    SPARTA_CHECK(err != EWOULDBLOCK, "daemon", "another sparta daemon", who, " is using the state directory ",
                 dir.root(), "; stop it first, or give this one another --state");
    SPARTA_FAIL("daemon", "cannot lock ", dir.lock(), ": ", std::strerror(err));
  }
}

StateLock::~StateLock() {
  if (fd_ >= 0) ::close(fd_);
}

void write_address(const StateDir& dir, const DaemonAddress& a) {
  nlohmann::json j{{"address", a.host}, {"port", a.port}, {"pid", a.pid}};
  train::write_file_atomically(dir.address(), j.dump() + "\n");
}

DaemonAddress read_address(const StateDir& dir) {
  std::ifstream in(dir.address());
  SPARTA_CHECK(in, "daemon", "no daemon is running for state directory ", dir.root(), " (no ", dir.address(),
               "): start one with `sparta daemon`, or point to its directory with --state or SPARTA_STATE_DIR");
  std::stringstream text;
  text << in.rdbuf();
  try {
    const nlohmann::json j = nlohmann::json::parse(text.str());
    DaemonAddress a;
    a.host = j.at("address").get<std::string>();
    a.port = j.at("port").get<int>();
    a.pid = j.value("pid", int64_t(0));
    return a;
  } catch (const nlohmann::json::exception& e) {
    SPARTA_FAIL("daemon", dir.address(), " is not a daemon address file: ", e.what());
  }
}

}  // namespace sparta::daemon

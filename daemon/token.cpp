#include "daemon/token.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace sparta::daemon {
std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    const ssize_t n = getrandom(raw.data() + got, bytes - got, 0);
    SPARTA_CHECK(n > 0 || errno == EINTR, "daemon", "getrandom failed: ", std::strerror(errno));
    if (n > 0) got += size_t(n);
  }
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : raw) {
    hex += digits[c >> 4];
    hex += digits[c & 15];
  }
  return hex;
}

namespace {

void write_token(const std::string& path, const std::string& token) {
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  // Created 0600 from the start (O_EXCL, explicit mode): the token is never readable by others,
  // not even between the write and a chmod.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  SPARTA_CHECK(fd >= 0, "daemon", "cannot create token file ", tmp, ": ", std::strerror(errno));
  const std::string line = token + "\n";
  const bool ok = ::fchmod(fd, 0600) == 0 && ::write(fd, line.data(), line.size()) == ssize_t(line.size()) &&
                  ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    SPARTA_FAIL("daemon", "cannot write token file ", path, ": ", std::strerror(ok ? errno : err));
  }
}

}  // namespace

std::string read_token(const std::string& path) {
  std::ifstream in(path);
  SPARTA_CHECK(in, "daemon", "cannot read the API token ", path, ": ", std::strerror(errno),
               " (is the daemon running as another user?)");
  std::string token;
  std::getline(in, token);
  SPARTA_CHECK(token.size() >= 32, "daemon", "token file ", path, " holds no token");
  return token;
}

std::string load_or_create_token(const std::string& path, std::string* warning) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if ((st.st_mode & 077) == 0) {
      try {
        return read_token(path);
      } catch (const Error&) {
        // An empty or torn file: make a new token below.
      }
    } else if (warning) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%03o", unsigned(st.st_mode & 0777));
      *warning = "token file " + path + " had mode " + mode +
                 " (readable by other users); it was replaced by a new token with mode 600";
    }
  }
  const std::string token = random_hex(32);
  write_token(path, token);
  return token;
}

bool tokens_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace sparta::daemon

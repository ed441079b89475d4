#include "train/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace sparta::train {

namespace {

void fsync_path(const std::string& path, int flags, const char* what) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  SPARTA_CHECK(fd >= 0, "write", "cannot open ", what, " ", path, " to sync it: ", std::strerror(errno));
  int r = ::fsync(fd);
  int err = errno;
  ::close(fd);
  SPARTA_CHECK(r == 0, "write", "cannot fsync ", what, " ", path, ": ", std::strerror(err));
}

}  // namespace

std::string temp_path_for(const std::string& path) { return path + ".tmp-" + std::to_string(::getpid()); }

void replace_file_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& write) {
  const std::string tmp = temp_path_for(path);
  try {
    write(tmp);
    fsync_path(tmp, O_RDONLY, "file");
    SPARTA_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "write", "cannot rename ", tmp, " to ", path, ": ",
                 std::strerror(errno));
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  fsync_path(dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY, "directory");
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  replace_file_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    SPARTA_CHECK(out, "write", "cannot create ", tmp, ": ", std::strerror(errno));
    out.write(bytes.data(), std::streamsize(bytes.size()));
    out.close();
    SPARTA_CHECK(out, "write", "cannot write ", tmp, " (disk full?)");
  });
}

}  // namespace sparta::train

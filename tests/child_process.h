#pragma once
// Child processes for the tests that run the sparta program or a second rank: the program's path,
// a free loopback port, a forked program with its output redirected, its exit status, and its
// files (logs) read back.
#include <boost/test/unit_test.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace sparta::test {

// The sparta program (ctest sets SPARTA_BIN), as an absolute path: children run in other directories.
inline std::string sparta_bin() {
  const char* b = std::getenv("SPARTA_BIN");
  BOOST_TEST_REQUIRE(b != nullptr, "SPARTA_BIN is not set (ctest sets it to the sparta program)");
  return std::filesystem::absolute(b).string();
}

// A loopback TCP port nothing listens on now (the kernel's pick, released again at once).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t n = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Forks a child that runs `setup` (chdir, freopen, setenv; false ends the child with status 126)
// and then execs args[0] with `args` (status 127 if that fails). Returns the child's pid.
inline pid_t spawn(std::vector<std::string> args, const std::function<bool()>& setup) {
  std::fflush(stdout);  // or the child's freopen writes the test's buffered output a second time
  std::fflush(stderr);
  const pid_t pid = ::fork();
  BOOST_TEST_REQUIRE(pid >= 0, "cannot fork " << args[0]);
  if (pid > 0) return pid;
  if (!setup()) _exit(126);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(argv[0], argv.data());
  _exit(127);
}

// Waits for the child; its exit status, or 128 + the signal that ended it.
inline int exit_status(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The file's bytes; empty while it does not exist (a log a child has not opened yet).
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace sparta::test

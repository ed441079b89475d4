#pragma once
// A scratch directory for one test: fresh (mkdtemp, so parallel tests and repeated runs never
// share one), under the system's temporary directory (TMPDIR), and removed with everything in it
// when the test ends, unless SPARTA_KEEP_TEST_DIRS is set (to look at what a failing test left).
#include <boost/test/unit_test.hpp>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace sparta::test {

struct TempDir {
  std::filesystem::path path;  // absolute

  explicit TempDir(const std::string& tag = "test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / ("sparta-" + tag + "-XXXXXX")).string();
    BOOST_TEST_REQUIRE(::mkdtemp(tmpl.data()) != nullptr, "cannot create a directory like " << tmpl);
    path = tmpl;
  }
  ~TempDir() {
    if (std::getenv("SPARTA_KEEP_TEST_DIRS")) return;
    std::error_code ec;  // a destructor must not throw; a leftover directory is harmless
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string operator/(const std::string& name) const { return (path / name).string(); }

  // Writes `text` to <path>/<name> and returns that file's path.
  std::filesystem::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return path / name;
  }
};

}  // namespace sparta::test

#pragma once
// Errors name the op in brackets ("[matmul] ..."), then the shapes and the offending argument.
#include <sstream>
#include <stdexcept>
#include <string>

namespace sparta {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace sparta

#define SPARTA_FAIL(op, ...) \
  throw ::sparta::Error(::sparta::detail::concat("[", op, "] ", __VA_ARGS__))

#define SPARTA_CHECK(cond, op, ...) \
  do {                              \
    if (!(cond)) SPARTA_FAIL(op, __VA_ARGS__); \
  } while (0)

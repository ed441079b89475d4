#include "core/determinism.h"

#include <atomic>
#include <cstdlib>

namespace sparta {
namespace {

std::atomic<bool>& flag() {
  static std::atomic<bool> on = [] {
    const char* v = std::getenv("SPARTA_DETERMINISTIC");
    return v != nullptr && v[0] == '1';
  }();
  return on;
}

}  // namespace

bool deterministic_algorithms() { return flag().load(std::memory_order_relaxed); }
void set_deterministic_algorithms(bool on) { flag().store(on, std::memory_order_relaxed); }

}  // namespace sparta

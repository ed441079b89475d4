#include "core/random.h"

namespace sparta {

PhiloxKey Generator::take(uint64_t blocks) {
  std::lock_guard<std::mutex> lock(mu_);
  PhiloxKey k{seed_, offset_};
  offset_ += blocks;
  return k;
}

void Generator::set_state(uint64_t seed, uint64_t offset) {
  std::lock_guard<std::mutex> lock(mu_);
  seed_ = seed;
  offset_ = offset;
}

Generator& default_generator() {
  static Generator g;
  return g;
}

void manual_seed(uint64_t seed) { default_generator().set_state(seed, 0); }

}  // namespace sparta

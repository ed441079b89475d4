#pragma once
// Philox 4x32-10 (Salmon et al. 2011): a counter-based generator, so that the CPU and CUDA draw
// the same numbers for the same (seed, offset), and any draw can be replayed from its key.
#include <array>
#include <cstdint>
#include <mutex>

namespace sparta {

struct PhiloxKey {
  uint64_t seed = 0;
  uint64_t offset = 0;  // in 128-bit blocks
};

// One block of 4 random words for (key, counter). Usable on the host and in CUDA code.
#if defined(__CUDACC__)
#define SPARTA_HD __host__ __device__
#else
#define SPARTA_HD
#endif

struct Philox4 {
  uint32_t v[4];
};

SPARTA_HD inline Philox4 philox4x32(uint64_t seed, uint64_t counter_lo, uint64_t counter_hi) {
  uint32_t c0 = uint32_t(counter_lo), c1 = uint32_t(counter_lo >> 32);
  uint32_t c2 = uint32_t(counter_hi), c3 = uint32_t(counter_hi >> 32);
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint64_t p0 = uint64_t(0xD2511F53u) * c0;
    uint64_t p1 = uint64_t(0xCD9E8D57u) * c2;
    uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = uint32_t(p1);
    uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = uint32_t(p0);
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// A 32-bit word to a float in [0, 1) with 24 random bits (never 1.0).
SPARTA_HD inline float uint_to_unit(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }

// A stream of draws: each draw of n values takes a key and advances the offset past them.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5EED) : seed_(seed) {}
  // Reserves `blocks` 128-bit blocks and returns the key of the first.
  PhiloxKey take(uint64_t blocks);
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset);

 private:
  std::mutex mu_;
  uint64_t seed_;
  uint64_t offset_ = 0;
};

Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace sparta

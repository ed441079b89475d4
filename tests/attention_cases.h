#pragma once
// The attention pattern catalogues that a CPU test and its CUDA parity twin both run, kept in one
// place so that a family added for one backend is tested on the other. Lists that differ on
// purpose (the flash kernel's fast-path and segmented cases) stay in their tests.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "nn/attention/patterns.h"

namespace sparta::test {

struct PatternCase {
  std::string name;
  nn::PatternPtr pattern;
};

// strided / fixed periods of about sqrt(n): several blocks in each of their segments.
inline int64_t pattern_period(int64_t n) { return std::max<int64_t>(2, int64_t(std::sqrt(double(n)))); }

// Full-sequence sparse attention (test_sparse_attention against masked dense attention,
// test_cuda_attention against the CPU kernel): every family, causal and bidirectional, segments,
// permutations and gathered keys, several heads with per-head layouts.
inline std::vector<PatternCase> attention_cases(int64_t n) {
  using namespace nn;
  const int64_t l = pattern_period(n);
  return {
      {"dense causal", dense_causal()},
      {"local causal", local(9)},
      {"local bidirectional", local(7, false)},
      {"strided", strided(l)},                            // two segments, the second permuted
      {"fixed", fixed(l, std::max<int64_t>(1, l / 4))},  // two segments, the second on gathered keys
      {"bigbird", bigbird(1, 1, 1, 7)},
      {"bigbird causal", bigbird(1, 1, 2, 3, true)},
      {"longformer", longformer(6, 2, {0, n / 2}, false)},
      {"longformer causal", longformer(4, 3, {1}, true)},
      {"union", union_of({local(5), strided(l)})},
      // Head h takes pattern h % 3: with two heads the third is never drawn.
      {"per head", per_head({local(6), fixed(l, 2), dense_causal()})},
  };
}

// Decode against cached keys (test_attention_decode against the masked f64 reference and the full
// forward, test_cuda_attention_decode against the CPU kernel).
inline std::vector<PatternCase> decode_cases(int64_t n) {
  using namespace nn;
  const int64_t l = pattern_period(n);
  return {
      {"dense causal", dense_causal()},
      {"local", local(20)},
      {"strided", strided(l)},                            // two segments, the second permuted
      {"fixed", fixed(l, std::max<int64_t>(1, l / 4))},  // two segments, the second on gathered keys
      {"bigbird causal", bigbird(1, 1, 2, 3, true)},
      {"longformer causal", longformer(6, 3, {1, n / 3}, true)},
      {"longformer bidirectional", longformer(6, 2, {0, n / 2}, false)},
      {"union", union_of({local(9), strided(l)})},
      {"per head", per_head({local(6), fixed(l, 2), dense_causal()})},
  };
}

}  // namespace sparta::test

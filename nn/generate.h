#pragma once
// Sampling from a SparseTransformer, with or without a KV cache. The cache is pattern-aware: each
// layer keeps only the keys its pattern can still attend (Pattern::retains: a local layer its
// window, a fixed layer its current block and the summary cells), and each new query reads only
// the cached keys its pattern allows. On a GPU model each layer's cache stays on the device,
// indexed by position, and new queries go through the decode kernel (sparse_attention_decode),
// which reads only the keys the layout selects; top-k layers keep the host cache.
#include <cstdint>
#include <vector>

#include "nn/transformer.h"

namespace sparta::nn {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy
  int64_t top_k = 0;         // 0: off
  double top_p = 1.0;        // nucleus mass; 1: off
  uint64_t seed = 0;
  int64_t max_tokens = 128;
};

struct GenerationStats {
  int64_t peak_cached_keys = 0;  // over layers and steps: the largest per-layer cache
};

// Returns the new tokens (not the prompt). Throws if prompt + max_tokens exceeds max_seq_len.
std::vector<int64_t> generate(const SparseTransformer& model, const std::vector<int64_t>& prompt,
                              const SamplingOptions& options, bool use_cache = true, GenerationStats* stats = nullptr);

// Draws a token from logits (vocab) with temperature, top-k and top-p; `u` uniform in [0, 1).
int64_t sample_token(const std::vector<float>& logits, const SamplingOptions& options, double u);

}  // namespace sparta::nn

#pragma once
// Multi-head self-attention whose score pattern is a sparse Pattern: x (B, T, d) -> (B, T, d)
// through a fused qkv projection, block-sparse attention per head, and an output projection.
// Parameter names (qkv.weight, qkv.bias, proj.weight, proj.bias) follow GPT-2's layout in PyTorch.
#include <map>
#include <mutex>

#include "nn/attention/patterns.h"
#include "nn/linear.h"

namespace sparta::nn {

struct SparseAttentionOptions {
  int64_t d_model = 0;
  int n_heads = 1;
  PatternPtr pattern;
  int64_t block = 64;  // attention block (clamped to the sequence length)
  bool rotary = false;  // rotary position embeddings on q and k
};

// Per-head projections of a chunk of positions: (B, H, T, Dh) each.
struct QKV {
  Tensor q, k, v;
};

class SparseAttention : public Module {
 public:
  explicit SparseAttention(const SparseAttentionOptions& options, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) const;
  // The pieces of forward, for decoding with a KV cache: projections of positions offset.. (with
  // rotary applied at those positions), and the output projection of heads (B, H, T, Dh).
  QKV project(const Tensor& x, int64_t offset) const;
  Tensor output(const Tensor& heads) const;
  // The layout for sequence length t (built once per length, then cached).
  std::shared_ptr<const attn::BlockLayout> layout(int64_t t) const;
  const SparseAttentionOptions& options() const { return options_; }

 private:
  SparseAttentionOptions options_;
  std::shared_ptr<Linear> qkv_, proj_;
  mutable std::mutex mu_;
  mutable std::map<int64_t, std::shared_ptr<const attn::BlockLayout>> layouts_;
};

}  // namespace sparta::nn

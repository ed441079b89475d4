#pragma once
// The Sparse Transformer language model (Child et al. 2019) in GPT-2's pre-LN form:
//   h = embed(tokens) [+ positions];  per block: h += attn(ln1(h)); h += mlp(ln2(h));
//   logits = ln_f(h) @ embed^T (tied) or lm_head(ln_f(h)).
// Each layer's attention pattern comes from a list that cycles over the layers, so
// {local, strided} alternates as in Child et al.
#include <vector>

#include "nn/attention/sparse_attention.h"
#include "nn/layers.h"
#include "nn/positions.h"

namespace sparta::nn {

struct TransformerConfig {
  int64_t vocab_size = 256;
  int64_t d_model = 256;
  int n_layers = 4;
  int n_heads = 4;
  int64_t d_ff = 0;  // 0: 4 * d_model
  int64_t max_seq_len = 256;
  double dropout = 0;
  PositionKind positions = PositionKind::learned;
  bool tie_embeddings = true;
  std::vector<PatternPtr> attention;  // cycles over the layers
  int64_t block = 64;
  // Activation checkpointing (nn/checkpoint.h): 0 none, 1 every block, n every n-th block.
  int64_t checkpoint_every = 0;
};

class SparseTransformerBlock : public Module {
 public:
  SparseTransformerBlock(const TransformerConfig& c, PatternPtr pattern, Generator* gen);
  Tensor forward(const Tensor& x) const;
  const SparseAttention& attention() const { return *attn_; }
  // Pieces for decoding with a KV cache.
  Tensor ln1(const Tensor& x) const { return ln1_->forward(x); }
  Tensor mlp_residual(const Tensor& x) const;
  Tensor dropout(const Tensor& x) const { return drop_->forward(x); }

 private:
  std::shared_ptr<LayerNorm> ln1_, ln2_;
  std::shared_ptr<SparseAttention> attn_;
  std::shared_ptr<MLP> mlp_;
  std::shared_ptr<Dropout> drop_;
};

class SparseTransformer : public Module {
 public:
  // gen: the generator for initialisation and dropout masks (kept by pointer).
  SparseTransformer(const TransformerConfig& config, Generator* gen);
  // tokens (B, T) integer -> logits (B, T, vocab).
  Tensor forward(const Tensor& tokens) const;
  // Mean cross-entropy of next-token prediction (targets (B, T)).
  Tensor loss(const Tensor& tokens, const Tensor& targets) const;
  const TransformerConfig& config() const { return config_; }

  // Pieces for decoding with a KV cache (nn/generate.h).
  Tensor embed(const Tensor& tokens, int64_t offset) const;
  Tensor head(const Tensor& h) const;
  const std::vector<std::shared_ptr<SparseTransformerBlock>>& blocks() const { return blocks_; }

 private:
  TransformerConfig config_;
  std::shared_ptr<Embedding> embed_, pos_embed_;
  Tensor sinusoids_;
  Generator* gen_;  // dropout draws (checkpointed blocks rewind it to recompute)
  std::vector<std::shared_ptr<SparseTransformerBlock>> blocks_;
  std::shared_ptr<LayerNorm> ln_f_;
  std::shared_ptr<Linear> lm_head_;
  std::shared_ptr<Dropout> drop_;
};

}  // namespace sparta::nn

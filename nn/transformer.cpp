#include "nn/transformer.h"

#include "core/ops.h"
#include "nn/checkpoint.h"

namespace sparta::nn {

SparseTransformerBlock::SparseTransformerBlock(const TransformerConfig& c, PatternPtr pattern, Generator* gen) {
  ln1_ = register_module("ln1", std::make_shared<LayerNorm>(c.d_model));
  SparseAttentionOptions o;
  o.d_model = c.d_model;
  o.n_heads = c.n_heads;
  o.pattern = std::move(pattern);
  o.block = c.block;
  o.rotary = c.positions == PositionKind::rotary;
  attn_ = register_module("attn", std::make_shared<SparseAttention>(o, gen));
  ln2_ = register_module("ln2", std::make_shared<LayerNorm>(c.d_model));
  mlp_ = register_module("mlp", std::make_shared<MLP>(c.d_model, c.d_ff > 0 ? c.d_ff : 4 * c.d_model, c.dropout, gen));
  drop_ = register_module("drop", std::make_shared<Dropout>(c.dropout, gen));
}

Tensor SparseTransformerBlock::mlp_residual(const Tensor& x) const { return x + mlp_->forward(ln2_->forward(x)); }

Tensor SparseTransformerBlock::forward(const Tensor& x) const {
  Tensor h = x + drop_->forward(attn_->forward(ln1_->forward(x)));
  return mlp_residual(h);
}

SparseTransformer::SparseTransformer(const TransformerConfig& c, Generator* gen)
    : config_(c), gen_(gen ? gen : &default_generator()) {
  SPARTA_CHECK(!c.attention.empty(), "SparseTransformer", "no attention pattern");
  SPARTA_CHECK(c.n_layers >= 1 && c.vocab_size >= 1 && c.max_seq_len >= 1, "SparseTransformer",
               "layers, vocabulary and sequence length must be positive");
  for (const PatternPtr& p : c.attention) {
    SPARTA_CHECK(p != nullptr, "SparseTransformer", "null attention pattern");
    p->validate(c.max_seq_len, std::min(c.block, c.max_seq_len));
  }
  embed_ = register_module("embed", std::make_shared<Embedding>(c.vocab_size, c.d_model, gen));
  if (c.positions == PositionKind::learned) {
    pos_embed_ = register_module("pos_embed", std::make_shared<Embedding>(c.max_seq_len, c.d_model, gen));
  } else if (c.positions == PositionKind::sinusoidal) {
    sinusoids_ = sinusoidal_table(c.max_seq_len, c.d_model);
  }
  drop_ = register_module("drop", std::make_shared<Dropout>(c.dropout, gen));
  for (int i = 0; i < c.n_layers; ++i) {
    auto block = std::make_shared<SparseTransformerBlock>(c, c.attention[size_t(i) % c.attention.size()], gen);
    blocks_.push_back(register_module("blocks." + std::to_string(i), block));
  }
  ln_f_ = register_module("ln_f", std::make_shared<LayerNorm>(c.d_model));
  if (!c.tie_embeddings) lm_head_ = register_module("lm_head", std::make_shared<Linear>(c.d_model, c.vocab_size, false, gen));
}

Tensor SparseTransformer::embed(const Tensor& tokens, int64_t offset) const {
  SPARTA_CHECK(tokens.dim() == 2, "SparseTransformer", "tokens must be (batch, seq), got ", shape_str(tokens.shape()));
  const int64_t T = tokens.shape(1);
  SPARTA_CHECK(offset + T <= config_.max_seq_len, "SparseTransformer", "positions up to ", offset + T,
               " exceed the model's max_seq_len ", config_.max_seq_len);
  // Token ids come from the data loader on the host; they follow the weights to their device.
  Tensor h = embed_->forward(to_device(tokens, embed_->weight().device()));
  if (pos_embed_) h = h + slice(pos_embed_->weight(), 0, offset, offset + T);
  if (sinusoids_.defined()) h = h + to_device(slice(sinusoids_, 0, offset, offset + T), h.device());
  return drop_->forward(h);
}

Tensor SparseTransformer::head(const Tensor& h) const {
  Tensor n = ln_f_->forward(h);
  return lm_head_ ? lm_head_->forward(n) : matmul(n, transpose(embed_->weight(), 0, 1));
}

Tensor SparseTransformer::forward(const Tensor& tokens) const {
  Tensor h = embed(tokens, 0);
  const int64_t every = config_.checkpoint_every;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const auto& b = blocks_[i];
    if (every > 0 && i % size_t(every) == 0 && is_training()) {
      h = checkpoint([b](const Tensor& x) { return b->forward(x); }, h, gen_);
    } else {
      h = b->forward(h);
    }
  }
  return head(h);
}

Tensor SparseTransformer::loss(const Tensor& tokens, const Tensor& targets) const {
  Tensor logits = forward(tokens);
  return cross_entropy(logits, to_device(targets, logits.device()));
}

}  // namespace sparta::nn

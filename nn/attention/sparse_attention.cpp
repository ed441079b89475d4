#include "nn/attention/sparse_attention.h"

#include "core/ops.h"

namespace sparta::nn {

SparseAttention::SparseAttention(const SparseAttentionOptions& o, Generator* gen) : options_(o) {
  SPARTA_CHECK(o.pattern != nullptr, "SparseAttention", "no attention pattern");
  SPARTA_CHECK(o.n_heads >= 1 && o.d_model >= 1 && o.d_model % o.n_heads == 0, "SparseAttention", "d_model ",
               o.d_model, " must be a positive multiple of n_heads ", o.n_heads);
  SPARTA_CHECK(o.block >= 1, "SparseAttention", "block must be positive, got ", o.block);
  qkv_ = register_module("qkv", std::make_shared<Linear>(o.d_model, 3 * o.d_model, true, gen));
  proj_ = register_module("proj", std::make_shared<Linear>(o.d_model, o.d_model, true, gen));
}

std::shared_ptr<const attn::BlockLayout> SparseAttention::layout(int64_t t) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = layouts_.find(t);
  if (it != layouts_.end()) return it->second;
  auto L = options_.pattern->layout(t, options_.block, options_.n_heads);
  layouts_.emplace(t, L);
  return L;
}

Tensor SparseAttention::forward(const Tensor& x) const {
  SPARTA_CHECK(x.dim() == 3 && x.shape(2) == options_.d_model, "SparseAttention", "input must be (batch, seq, ",
               options_.d_model, "), got ", shape_str(x.shape()));
  const int64_t B = x.shape(0), T = x.shape(1), H = options_.n_heads, Dh = options_.d_model / H;
  // (B, T, 3, H, Dh) -> (3, B, H, T, Dh)
  Tensor qkv = permute(reshape(qkv_->forward(x), {B, T, 3, H, Dh}), {2, 0, 3, 1, 4});
  Tensor q = contiguous(squeeze(slice(qkv, 0, 0, 1), 0));
  Tensor k = contiguous(squeeze(slice(qkv, 0, 1, 2), 0));
  Tensor v = contiguous(squeeze(slice(qkv, 0, 2, 3), 0));
  Tensor o = sparse_attention(q, k, v, layout(T));
  return proj_->forward(reshape(permute(o, {0, 2, 1, 3}), {B, T, options_.d_model}));
}

}  // namespace sparta::nn

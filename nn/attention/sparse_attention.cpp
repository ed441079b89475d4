#include "nn/attention/sparse_attention.h"

#include "core/ops.h"
#include "nn/positions.h"

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

QKV SparseAttention::project(const Tensor& x, int64_t offset) const {
  SPARTA_CHECK(x.dim() == 3 && x.shape(2) == options_.d_model, "SparseAttention", "input must be (batch, seq, ",
               options_.d_model, "), got ", shape_str(x.shape()));
  const int64_t B = x.shape(0), T = x.shape(1), H = options_.n_heads, Dh = options_.d_model / H;
  // (B, T, 3, H, Dh) -> (3, B, H, T, Dh)
  Tensor qkv = permute(reshape(qkv_->forward(x), {B, T, 3, H, Dh}), {2, 0, 3, 1, 4});
  QKV r{contiguous(squeeze(slice(qkv, 0, 0, 1), 0)), contiguous(squeeze(slice(qkv, 0, 1, 2), 0)),
        contiguous(squeeze(slice(qkv, 0, 2, 3), 0))};
  if (options_.rotary) {
    RotaryTables tables = rotary_tables(offset, T, Dh);
    tables = {to_device(tables.cos, x.device()), to_device(tables.sin, x.device())};
    r.q = contiguous(apply_rotary(r.q, tables));
    r.k = contiguous(apply_rotary(r.k, tables));
  }
  return r;
}

Tensor SparseAttention::output(const Tensor& heads) const {
  const int64_t B = heads.shape(0), T = heads.shape(2);
  return proj_->forward(reshape(permute(heads, {0, 2, 1, 3}), {B, T, options_.d_model}));
}

Tensor SparseAttention::forward(const Tensor& x) const {
  QKV p = project(x, 0);
  return output(sparse_attention(p.q, p.k, p.v, layout(x.shape(1))));
}

}  // namespace sparta::nn

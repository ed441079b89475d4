#include "core/ops/attention/attention_decode.h"

#include <cmath>

#include "core/ops.h"

namespace sparta {

Tensor sparse_attention_decode(const Tensor& q_in, const Tensor& k, const Tensor& v, int64_t t0,
                               const std::shared_ptr<const attn::BlockLayout>& layout, double scale) {
  const char* op = "sparse_attention_decode";
  SPARTA_CHECK(layout != nullptr, op, "no layout");
  SPARTA_CHECK(layout->top_k == 0, op, "top-k layouts (top_k = ", layout->top_k, ") have no decode kernel");
  SPARTA_CHECK(q_in.dim() == 4, op, "q must be (batch, heads, new positions, head_dim), got ", shape_str(q_in.shape()));
  SPARTA_CHECK(k.dim() == 4 && v.dim() == 4 && k.shape() == v.shape(), op,
               "k and v caches must be (batch, heads, capacity, head_dim) of one shape, got ", shape_str(k.shape()),
               " and ", shape_str(v.shape()));
  const int64_t B = q_in.shape(0), H = q_in.shape(1), Tq = q_in.shape(2), D = q_in.shape(3);
  SPARTA_CHECK(k.shape(0) == B && k.shape(1) == H && k.shape(3) == D, op, "cache ", shape_str(k.shape()),
               " does not match q ", shape_str(q_in.shape()), " in batch, heads or head_dim");
  SPARTA_CHECK(k.dtype() == q_in.dtype() && v.dtype() == q_in.dtype(), op, "q, k and v dtypes differ: ",
               dtype_name(q_in.dtype()), ", ", dtype_name(k.dtype()), ", ", dtype_name(v.dtype()));
  SPARTA_CHECK(k.device() == q_in.device() && v.device() == q_in.device(), op, "q is on ", q_in.device().str(),
               " but the caches are on ", k.device().str(), " and ", v.device().str());
  SPARTA_CHECK(t0 >= 0 && Tq >= 1 && t0 + Tq <= layout->seq_len, op, "positions ", t0, " .. ", t0 + Tq - 1,
               " are outside the layout's sequence [0, ", layout->seq_len, ")");
  SPARTA_CHECK(t0 + Tq <= k.shape(2), op, "the cache holds ", k.shape(2), " positions; position ", t0 + Tq - 1,
               " is past it");
  SPARTA_CHECK(layout->n_layouts == 1 || layout->n_layouts == H, op, "the layout has ", layout->n_layouts,
               " per-head patterns but q has ", H, " heads");
  SPARTA_CHECK(D >= 1 && D <= 256, op, "head dimension ", D, " is outside [1, 256]");
  SPARTA_CHECK(k.strides()[3] == 1 && v.strides()[3] == 1, op,
               "the caches' head dimension must be contiguous (strides ", shape_str(k.strides()), " and ",
               shape_str(v.strides()), ")");
  if (scale == 0) scale = 1 / std::sqrt(double(D));
  const Tensor q = contiguous(q_in.detach());
  Tensor out = Tensor::empty(q.shape(), q.dtype(), q.device());
  if (q.numel() == 0) return out;
  if (q.device().is_cuda()) {
#ifdef SPARTA_CUDA
    cuda::sparse_attention_decode(layout, scale, t0, q, k.detach(), v.detach(), out);
    return out;
#else
    SPARTA_FAIL(op, "this build has no CUDA backend");
#endif
  }
  SPARTA_CHECK(q.dtype() == DType::f64 || q.dtype() == DType::f32 || q.dtype() == DType::bf16, op,
               "the CPU kernel takes f64, f32 and bf16, got ", dtype_name(q.dtype()));
  cpu::sparse_attention_decode(*layout, scale, t0, q, k.detach(), v.detach(), out);
  return out;
}

}  // namespace sparta

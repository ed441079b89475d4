#include "core/ops/attention/attention.h"

#include <cmath>

#include "core/autocast.h"
#include "core/ops.h"

namespace sparta {
Tensors SparseAttention::eval_cpu(const Tensors& in) {
  const Tensor q = contiguous(in[0].detach()), k = contiguous(in[1].detach()), v = contiguous(in[2].detach());
  const Shape rows(q.shape().begin(), q.shape().end() - 1);
  Tensor o = Tensor::empty(q.shape(), q.dtype());
  Tensor lse = Tensor::empty(rows, accumulation_dtype(q.dtype()));
  Tensor threshold = layout_->top_k > 0 ? Tensor::empty(rows, lse.dtype()) : Tensor();
  cpu::sparse_attention_forward(*layout_, scale_, q, k, v, o, lse, threshold);
  if (threshold.defined()) return {o, lse, threshold};
  return {o, lse};
}

Tensors SparseAttention::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
                             const Tensors& outputs) {
  Tensors in = {primals[0], primals[1], primals[2], outputs[0], outputs[1], cot[0]};
  for (size_t i = 2; i < outputs.size(); ++i) in.push_back(outputs[i]);  // threshold, selection
  Tensors g = run(std::make_shared<SparseAttentionBackward>(layout_, scale_), in);
  Tensors picked;
  for (int a : argnums) picked.push_back(g[size_t(a)]);
  return picked;
}

Tensors SparseAttentionBackward::eval_cpu(const Tensors& in) {
  Tensors c;
  for (const Tensor& t : in) c.push_back(contiguous(t.detach()));
  Tensor dq = Tensor::empty(c[0].shape(), c[0].dtype()), dk = Tensor::empty(c[1].shape(), c[1].dtype()),
         dv = Tensor::empty(c[2].shape(), c[2].dtype());
  const Tensor threshold = c.size() > 6 ? c[6] : Tensor();
  cpu::sparse_attention_backward(*layout_, scale_, c[0], c[1], c[2], c[3], c[4], threshold, cast(c[5], c[0].dtype()),
                                 dq, dk, dv);
  return {dq, dk, dv};
}

Tensor sparse_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                        const std::shared_ptr<const attn::BlockLayout>& layout, double scale) {
  const char* op = "sparse_attention";
  const Tensor q = autocast_low(q_in), k = autocast_low(k_in), v = autocast_low(v_in);
  SPARTA_CHECK(layout != nullptr, op, "no layout");
  SPARTA_CHECK(q.dim() == 4, op, "q must be (batch, heads, seq, head_dim), got ", shape_str(q.shape()));
  SPARTA_CHECK(k.shape() == q.shape() && v.shape() == q.shape(), op, "q, k and v shapes differ: ",
               shape_str(q.shape()), ", ", shape_str(k.shape()), ", ", shape_str(v.shape()));
  SPARTA_CHECK(k.dtype() == q.dtype() && v.dtype() == q.dtype(), op, "q, k and v dtypes differ: ",
               dtype_name(q.dtype()), ", ", dtype_name(k.dtype()), ", ", dtype_name(v.dtype()));
  SPARTA_CHECK(q.dtype() == DType::f32 || q.dtype() == DType::bf16 || q.dtype() == DType::f64 ||
                   (q.dtype() == DType::f16 && q.device().is_cuda()),
               op, "supports f32, bf16 and f64 (and f16 on CUDA), got ", dtype_name(q.dtype()), " on ",
               q.device().str());
  SPARTA_CHECK(q.shape(2) == layout->seq_len, op, "sequence length ", q.shape(2), " of q ", shape_str(q.shape()),
               " differs from the layout's ", layout->seq_len);
  SPARTA_CHECK(layout->n_layouts == 1 || layout->n_layouts == q.shape(1), op, "the layout has ", layout->n_layouts,
               " per-head patterns but q has ", q.shape(1), " heads");
  SPARTA_CHECK(q.shape(3) >= 1 && q.shape(3) <= 256, op, "head dimension ", q.shape(3), " is outside [1, 256]");
  if (scale == 0) scale = 1 / std::sqrt(double(q.shape(3)));
  return run(std::make_shared<SparseAttention>(layout, scale), {q, k, v})[0];
}

}  // namespace sparta

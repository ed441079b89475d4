#include "core/ops/norm/norm.h"

#include "core/autocast.h"
#include "core/ops.h"

namespace sparta {
Tensors LayerNorm::eval_cpu(const Tensors& in) { return eval_with(in, cpu::layer_norm); }

Tensors LayerNorm::eval_with(const Tensors& in, Kernel kernel) {
  const Tensor x = contiguous(in[0].detach());
  const Tensor w = in[1].defined() ? contiguous(in[1].detach()) : Tensor();
  const Tensor b = in[2].defined() ? contiguous(in[2].detach()) : Tensor();
  const int64_t rows = x.shape(0);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mean = Tensor::empty({rows}, accumulation_dtype(x.dtype()), x.device());
  Tensor rstd = Tensor::empty({rows}, accumulation_dtype(x.dtype()), x.device());
  kernel(x, w, b, eps_, y, mean, rstd);
  return {y, mean, rstd};
}

Tensors LayerNorm::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
                       const Tensors& outputs) {
  Tensors g = run(std::make_shared<LayerNormBackward>(), {primals[0], primals[1], outputs[1], outputs[2], cot[0]});
  Tensors picked;
  for (int a : argnums) picked.push_back(g[size_t(a)]);
  return picked;
}

Tensors LayerNormBackward::eval_cpu(const Tensors& in) { return eval_with(in, cpu::layer_norm_backward); }

Tensors LayerNormBackward::eval_with(const Tensors& in, Kernel kernel) {
  const Tensor x = contiguous(in[0].detach());
  const Tensor w = in[1].defined() ? contiguous(in[1].detach()) : Tensor();
  const Tensor dy = contiguous(cast(in[4].detach(), x.dtype()));
  const int64_t cols = x.shape(1);
  const DType acc = accumulation_dtype(x.dtype());
  Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor dw = Tensor::empty({cols}, acc, x.device()), db = Tensor::empty({cols}, acc, x.device());
  kernel(x, w, in[2].detach(), in[3].detach(), dy, dx, dw, db);
  const DType wt = in[1].defined() ? in[1].dtype() : x.dtype();
  return {dx, cast(dw, wt), cast(db, wt)};
}

Tensor layer_norm(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, double eps) {
  const char* op = "layer_norm";
  const Tensor x = autocast_full(x_in), weight = autocast_full(weight_in), bias = autocast_full(bias_in);
  SPARTA_CHECK(is_floating(x.dtype()), op, "needs a floating tensor, got ", dtype_name(x.dtype()));
  SPARTA_CHECK(x.dim() >= 1 && x.shape(-1) >= 1, op, "needs a non-empty last axis, got ", shape_str(x.shape()));
  SPARTA_CHECK(eps >= 0, op, "eps must be non-negative, got ", eps);
  const int64_t c = x.shape(-1);
  for (const auto& [t, what] : {std::pair{weight, "weight"}, std::pair{bias, "bias"}}) {
    if (!t.defined()) continue;
    SPARTA_CHECK(t.shape() == Shape{c}, op, what, " of shape ", shape_str(t.shape()), " does not match x of shape ",
                 shape_str(x.shape()), " (expected (", c, ",))");
    SPARTA_CHECK(t.dtype() == x.dtype(), op, what, " has dtype ", dtype_name(t.dtype()), ", x has ",
                 dtype_name(x.dtype()));
  }
  Tensor y = run(std::make_shared<LayerNorm>(eps), {reshape(x, {-1, c}), weight, bias})[0];
  return reshape(y, x.shape());
}

}  // namespace sparta

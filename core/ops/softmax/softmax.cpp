#include "core/ops/softmax/softmax.h"

#include "core/autocast.h"
#include "core/dispatch.h"
#include "core/ops.h"

namespace sparta {
namespace {

// Moves `axis` last and flattens the rest: (R, C) contiguous, and the permutation to undo it.
Tensor rows_of(const Tensor& x, int axis, std::vector<int>& perm) {
  perm.clear();
  for (int d = 0; d < x.dim(); ++d)
    if (d != axis) perm.push_back(d);
  perm.push_back(axis);
  Tensor t = (x.dim() == 0 || axis == x.dim() - 1) ? x : permute(x, perm);
  return reshape(contiguous(t), {-1, x.dim() == 0 ? 1 : x.shape(axis)});
}

}  // namespace

Tensors Softmax::eval_cpu(const Tensors& in) { return eval_rows(in, cpu::softmax_rows); }

Tensors Softmax::eval_rows(const Tensors& in, void (*kernel)(const Tensor& x, const Tensor& out, bool log)) {
  const Tensor x = in[0].detach();
  if (x.numel() == 0) return {Tensor::empty(x.shape(), x.dtype(), x.device())};
  std::vector<int> perm;
  Tensor rows = rows_of(x, axis_, perm).detach();
  Tensor out = Tensor::empty(rows.shape(), x.dtype(), x.device());
  kernel(rows, out, log_);
  if (axis_ == x.dim() - 1 || x.dim() == 0) return {reshape(out, x.shape()).detach()};
  Shape permuted;
  for (int d : perm) permuted.push_back(x.shape(d));
  std::vector<int> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inverse[size_t(perm[i])] = int(i);
  return {contiguous(permute(reshape(out, permuted), inverse)).detach()};
}

Tensors Softmax::vjp(const Tensors&, const Tensors& cot, const std::vector<int>&, const Tensors& outputs) {
  const Tensor& y = outputs[0];
  const Tensor& g = cot[0];
  if (y.dim() == 0) return {zeros_like(g)};  // a softmax over one element is constant
  if (log_) return {g - exp(y) * sum(g, {axis_}, true)};
  return {y * (g - sum(g * y, {axis_}, true))};
}

Tensor softmax(const Tensor& x_in, int axis) {
  const Tensor x = autocast_full(x_in);
  SPARTA_CHECK(is_floating(x.dtype()), "softmax", "needs a floating tensor, got ", dtype_name(x.dtype()));
  const int a = x.dim() == 0 ? 0 : normalize_axis(axis, x.dim(), "softmax");
  return run1(std::make_shared<Softmax>(a, false), {x});
}

Tensor log_softmax(const Tensor& x_in, int axis) {
  const Tensor x = autocast_full(x_in);
  SPARTA_CHECK(is_floating(x.dtype()), "log_softmax", "needs a floating tensor, got ", dtype_name(x.dtype()));
  const int a = x.dim() == 0 ? 0 : normalize_axis(axis, x.dim(), "log_softmax");
  return run1(std::make_shared<Softmax>(a, true), {x});
}

Tensors CrossEntropy::eval_cpu(const Tensors& in) {
  const Tensor logits = contiguous(in[0].detach()), targets = contiguous(in[1].detach());
  auto [total, count] = cpu::cross_entropy_rows(logits, targets, ignore_index_);
  return {scalar(count > 0 ? total / double(count) : 0.0, accumulation_dtype(logits.dtype()))};
}

Tensors CrossEntropy::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>&, const Tensors&) {
  return {run1(std::make_shared<CrossEntropyBackward>(ignore_index_), {primals[0], primals[1], cot[0]})};
}

Tensors CrossEntropyBackward::eval_cpu(const Tensors& in) {
  const Tensor logits = contiguous(in[0].detach()), targets = contiguous(in[1].detach());
  int64_t count = 0;
  for (int64_t t : cast(targets, DType::i64).detach().to_vector<int64_t>()) count += t != ignore_index_;
  Tensor d = Tensor::empty(logits.shape(), logits.dtype());
  const double g = in[2].item<double>();
  cpu::cross_entropy_backward_rows(logits, targets, ignore_index_, count > 0 ? g / double(count) : 0.0, d);
  return {d};
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  const char* op = "cross_entropy";
  // Under autocast, bf16/f16 logits are not cast to f32 first: the kernels reduce rows in f32
  // anyway (the same numbers), and an f32 copy of a vocabulary-wide logits tensor, kept for
  // backward, is the largest single allocation of a language model's step.
  SPARTA_CHECK(is_floating(logits.dtype()), op, "logits must be floating, got ", dtype_name(logits.dtype()));
  SPARTA_CHECK(targets.dtype() == DType::i64 || targets.dtype() == DType::i32, op,
               "targets must be i32 or i64, got ", dtype_name(targets.dtype()));
  SPARTA_CHECK(logits.dim() >= 1, op, "logits need a class axis, got shape ", shape_str(logits.shape()));
  Shape lead(logits.shape().begin(), logits.shape().end() - 1);
  SPARTA_CHECK(targets.shape() == lead, op, "targets of shape ", shape_str(targets.shape()),
               " do not match logits of shape ", shape_str(logits.shape()), " (expected ", shape_str(lead), ")");
  const int64_t classes = logits.shape(-1);
  SPARTA_CHECK(classes >= 1, op, "logits have no classes: ", shape_str(logits.shape()));
  // Targets are validated here, before any kernel runs, so the error names the first bad value.
  for (int64_t t : cast(targets, DType::i64).to_vector<int64_t>()) {
    SPARTA_CHECK(t == ignore_index || (t >= 0 && t < classes), op, "target ", t, " is outside [0, ", classes,
                 ") and is not ignore_index ", ignore_index);
  }
  Tensor l2 = reshape(logits, {-1, classes});
  Tensor t2 = reshape(targets, {-1});
  return run1(std::make_shared<CrossEntropy>(ignore_index), {l2, t2});
}

}  // namespace sparta

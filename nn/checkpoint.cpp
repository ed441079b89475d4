#include "nn/checkpoint.h"

#include <optional>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "core/autocast.h"
#include "core/primitive.h"

namespace sparta::nn {
namespace {

class Recompute : public Primitive {
 public:
  Recompute(std::function<Tensor(const Tensor&)> fn, Generator* gen) : fn_(std::move(fn)), gen_(gen) {}
  const char* name() const override { return "checkpoint"; }
  Tensors eval_cpu(const Tensors& in) override { return forward(in); }
  Tensors eval_cuda(const Tensors& in) override { return forward(in); }

  // Runs the piece again with recording on, from the same generator position and precision, and
  // backpropagates the cotangent through it: its parameters' gradients accumulate as usual, the
  // input's comes back.
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>&, const Tensors&) override {
    const uint64_t seed = gen_->seed(), offset = gen_->offset();
    gen_->set_state(seed_, offset_);
    Tensor x = autograd::requires_grad(primals[0].detach());
    Tensor y;
    {
      autograd::EnableGradGuard record;
      AutocastGuard autocast(autocast_);
      y = fn_(x);
    }
    gen_->set_state(seed, offset);
    autograd::backward({y}, {cot[0]});
    return {autograd::grad(x)};
  }

 private:
  Tensors forward(const Tensors& in) {
    seed_ = gen_->seed();
    offset_ = gen_->offset();
    autocast_ = autocast_dtype();
    autograd::NoGradGuard no_record;
    return {fn_(in[0].detach()).detach()};
  }

  std::function<Tensor(const Tensor&)> fn_;
  Generator* gen_;
  uint64_t seed_ = 0, offset_ = 0;
  std::optional<DType> autocast_;
};

}  // namespace

Tensor checkpoint(std::function<Tensor(const Tensor&)> fn, const Tensor& x, Generator* gen) {
  // Without recording, or with an input that carries no gradient (the piece's parameters would then
  // get none through the recomputed node), there is nothing to save.
  if (!autograd::grad_enabled() || !autograd::requires_grad_of(x)) return fn(x);
  return run1(std::make_shared<Recompute>(std::move(fn), gen ? gen : &default_generator()), {x});
}

}  // namespace sparta::nn

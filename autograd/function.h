#pragma once
// User-defined differentiable functions, forward and backward side by side:
//
//   struct Cube : autograd::Function<Cube> {
//     static constexpr const char* name = "cube";
//     static Tensors forward(FunctionCtx& ctx, const Tensors& in) {
//       ctx.save_for_backward({in[0]});
//       return {mul(in[0], mul(in[0], in[0]))};
//     }
//     static Tensors backward(FunctionCtx& ctx, const Tensors& grad_out) {
//       const Tensor& x = ctx.saved()[0];
//       return {mul(grad_out[0], mul(square(x), 3.0))};
//     }
//   };
//   Tensor y = Cube::apply({x})[0];
//
// forward runs with recording off (its inner ops are not on the tape); backward returns one
// gradient per input (undefined for "none") and is itself written with ops, on any device.
#include <memory>
#include <string>
#include <unordered_map>

#include "autograd/grad_mode.h"
#include "core/primitive.h"

namespace sparta::autograd {

class FunctionCtx {
 public:
  void save_for_backward(Tensors tensors) { saved_ = std::move(tensors); }
  const Tensors& saved() const { return saved_; }
  // Non-tensor state (sizes, flags, scale factors) for backward.
  std::unordered_map<std::string, double> values;

 private:
  Tensors saved_;
};

namespace detail {
using ForwardFn = Tensors (*)(FunctionCtx&, const Tensors&);
using BackwardFn = Tensors (*)(FunctionCtx&, const Tensors&);

class FunctionPrimitive : public Primitive {
 public:
  FunctionPrimitive(const char* name, ForwardFn f, BackwardFn b) : name_(name), forward_(f), backward_(b) {}
  const char* name() const override { return name_; }
  Tensors eval_cpu(const Tensors& in) override { return call_forward(in); }
  Tensors eval_cuda(const Tensors& in) override { return call_forward(in); }
  Tensors vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
              const Tensors& outputs) override;

 private:
  Tensors call_forward(const Tensors& in) {
    NoGradGuard no_grad;
    return forward_(ctx_, in);
  }
  const char* name_;
  ForwardFn forward_;
  BackwardFn backward_;
  FunctionCtx ctx_;
};
}  // namespace detail

template <typename Derived>
struct Function {
  static Tensors apply(const Tensors& inputs) {
    return run(std::make_shared<detail::FunctionPrimitive>(Derived::name, &Derived::forward, &Derived::backward),
               inputs);
  }
};

}  // namespace sparta::autograd

// The engine: accumulation, non-scalar roots, NoGradGuard, grad-ready hooks, custom Functions,
// and gradcheck itself (it must catch a wrong gradient, not only pass right ones).
#include "autograd/function.h"
#include "tests/support.h"

using namespace sparta;
using namespace sparta::test;

namespace {

struct Cube : autograd::Function<Cube> {
  static constexpr const char* name = "cube";
  static Tensors forward(autograd::FunctionCtx& ctx, const Tensors& in) {
    ctx.save_for_backward({in[0]});
    return {mul(in[0], mul(in[0], in[0]))};
  }
  static Tensors backward(autograd::FunctionCtx& ctx, const Tensors& g) {
    return {mul(g[0], (square(ctx.saved()[0]) * 3.0))};
  }
};

// Deliberately wrong backward (2x instead of 3x^2) so that gradcheck must fail.
struct WrongCube : autograd::Function<WrongCube> {
  static constexpr const char* name = "wrong_cube";
  static Tensors forward(autograd::FunctionCtx& ctx, const Tensors& in) {
    ctx.save_for_backward({in[0]});
    return {mul(in[0], mul(in[0], in[0]))};
  }
  static Tensors backward(autograd::FunctionCtx& ctx, const Tensors& g) { return {mul(g[0], (ctx.saved()[0] * 2.0))}; }
};

}  // namespace

BOOST_AUTO_TEST_CASE(accumulates_over_shared_uses) {
  Tensor x = leaf({3, 5});
  Tensor y = add(mul(x, x), (x * 3.0));  // dy/dx = 2x + 3
  autograd::backward(sum(y));
  check_close(autograd::grad(x), ((x.detach() * 2.0) + 3.0), 1e-12, 1e-12, "d(x^2+3x)/dx");
  // A second backward adds to the first.
  autograd::backward(sum((x * 2.0)));
  check_close(autograd::grad(x), ((x.detach() * 2.0) + 5.0), 1e-12, 1e-12, "accumulated");
  autograd::zero_grad(x);
  BOOST_CHECK(!autograd::grad(x).defined());
}

BOOST_AUTO_TEST_CASE(non_scalar_root_with_explicit_gradient) {
  Tensor x = leaf({4, 3});
  Tensor y = (x * 2.0);
  Tensor g = random({4, 3}, DType::f64);
  autograd::backward(y, g);
  check_close(autograd::grad(x), (g * 2.0), 1e-12, 0, "explicit gradient");
  Tensor z = leaf({4, 3});
  check_error([&] { autograd::backward((z * 2.0)); }, {"[backward]", "not a scalar", "(4, 3)"});
  check_error([&] { autograd::backward((z * 2.0), random({3, 4}, DType::f64)); }, {"[backward]", "(3, 4)"});
}

BOOST_AUTO_TEST_CASE(no_grad_guard_stops_recording) {
  Tensor x = leaf({2, 2});
  Tensor y;
  {
    autograd::NoGradGuard guard;
    y = mul(x, x);
  }
  BOOST_CHECK(!autograd::requires_grad_of(y));
  BOOST_CHECK(autograd::requires_grad_of(mul(x, x)));
}

BOOST_AUTO_TEST_CASE(grad_ready_hooks_fire_once_with_the_full_gradient) {
  Tensor a = leaf({3});
  Tensor b = leaf({3});
  int fired_a = 0, fired_b = 0;
  Tensor seen_a;
  autograd::register_grad_ready_hook(a, [&](Tensor& g) {
    ++fired_a;
    seen_a = clone(g);
  });
  autograd::register_grad_ready_hook(b, [&](Tensor&) { ++fired_b; });
  Tensor loss = sum(add(mul(a, b), mul(a, a)));  // a used twice: the hook waits for both
  bool callback = false;
  autograd::queue_post_backward_callback([&] { callback = true; });
  autograd::backward(loss);
  BOOST_CHECK_EQUAL(fired_a, 1);
  BOOST_CHECK_EQUAL(fired_b, 1);
  BOOST_CHECK(callback);
  check_close(seen_a, add(b.detach(), (a.detach() * 2.0)), 1e-12, 0, "hooked gradient of a");
}

BOOST_AUTO_TEST_CASE(custom_function_forward_and_backward) {
  Tensor x = leaf({7});
  Tensor y = Cube::apply({x})[0];
  check_close(y.detach(), mul(x.detach(), mul(x.detach(), x.detach())), 1e-12, 0, "cube forward");
  check_grad("cube", [](const Tensors& in) { return Cube::apply({in[0]})[0]; }, {leaf({2, 3})});
  auto wrong = autograd::gradcheck([](const Tensors& in) { return WrongCube::apply({in[0]})[0]; },
                                   {leaf({5}, 0.5, 1.0)});
  BOOST_CHECK_MESSAGE(!wrong.ok, "gradcheck passed a wrong gradient");
  BOOST_CHECK(wrong.message.find("analytical") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(requires_grad_only_on_float_leaves) {
  Tensor i = random_int(0, 5, {3});
  check_error([&] { autograd::requires_grad(i); }, {"[requires_grad]", "i64"});
  Tensor x = leaf({2});
  Tensor y = (x * 2.0);
  check_error([&] { autograd::requires_grad(y); }, {"[requires_grad]", "leaf"});
}

// End to end: a small MLP trained with the autograd engine and plain gradient descent learns XOR
// and a smooth regression to near-zero loss.
#include "tests/support.h"

using namespace sparta;
using namespace sparta::test;

namespace {

Tensor param(const Shape& shape, double scale) {
  return autograd::requires_grad(random(shape, DType::f32, -scale, scale));
}

void sgd_step(const Tensors& params, double lr) {
  autograd::NoGradGuard no_grad;
  for (const Tensor& p : params) {
    Tensor w = p;
    add_(w, autograd::grad(p), -lr);
    autograd::zero_grad(p);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(mlp_learns_xor) {
  Tensor x = from_vector({0, 0, 0, 1, 1, 0, 1, 1}, {4, 2});
  Tensor y = from_vector({0, 1, 1, 0}, {4, 1});
  Tensor w1 = param({2, 16}, 1.0), b1 = param({16}, 0.1), w2 = param({16, 1}, 0.5), b2 = param({1}, 0.1);
  double loss_value = 1;
  for (int step = 0; step < 3000 && loss_value > 1e-4; ++step) {
    Tensor p = sigmoid(matmul(tanh(matmul(x, w1) + b1), w2) + b2);
    Tensor loss = mean(square(p - y));
    autograd::backward(loss);
    sgd_step({w1, b1, w2, b2}, 2.0);
    loss_value = loss.item<double>();
  }
  BOOST_CHECK_LT(loss_value, 1e-3);
  autograd::NoGradGuard no_grad;
  std::vector<double> p = sigmoid(matmul(tanh(matmul(x, w1) + b1), w2) + b2).to_vector<double>();
  BOOST_CHECK_LT(p[0], 0.1);
  BOOST_CHECK_GT(p[1], 0.9);
  BOOST_CHECK_GT(p[2], 0.9);
  BOOST_CHECK_LT(p[3], 0.1);
}

BOOST_AUTO_TEST_CASE(mlp_fits_a_smooth_regression) {
  Tensor x = random({256, 1}, DType::f32, -1, 1);
  Tensor y = sin(x * 2.0);
  Tensor w1 = param({1, 32}, 1.0), b1 = param({32}, 1.0), w2 = param({32, 1}, 0.2), b2 = param({1}, 0.1);
  double first = 0, last = 0;
  for (int step = 0; step < 10000; ++step) {
    Tensor loss = mean(square(matmul(tanh(matmul(x, w1) + b1), w2) + b2 - y));
    autograd::backward(loss);
    sgd_step({w1, b1, w2, b2}, 0.05);
    last = loss.item<double>();
    if (step == 0) first = last;
  }
  BOOST_TEST_MESSAGE("regression loss " << first << " -> " << last);
  BOOST_CHECK_LT(last, 2e-3);
  BOOST_CHECK_LT(last, first / 100);
}

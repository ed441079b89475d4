// Modules: parameter names and state dicts, Linear against its formula, and the SparseAttention
// layer against dense masked attention composed by hand, its gradients and its causality.
#include <cmath>

#include "nn/attention/sparse_attention.h"
#include "tests/support.h"

using namespace sparta;
using namespace sparta::nn;
using namespace sparta::test;

BOOST_AUTO_TEST_CASE(names_and_state_dicts) {
  SparseAttention attn({16, 4, fixed(8, 2), 8});
  std::vector<std::string> names;
  for (auto& [name, t] : attn.named_parameters()) names.push_back(name);
  BOOST_CHECK((names == std::vector<std::string>{"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}));
  BOOST_CHECK_EQUAL(attn.parameter_count(), 16 * 48 + 48 + 16 * 16 + 16);
  for (const Tensor& p : attn.parameters()) BOOST_CHECK(autograd::requires_grad_of(p));

  SparseAttention other({16, 4, fixed(8, 2), 8});
  other.load_state_dict(attn.state_dict());
  Tensor x = random({2, 8, 16});
  check_exact(other.forward(x), attn.forward(x), "same weights, same output");
  auto state = attn.state_dict();
  state.erase("proj.bias");
  check_error([&] { other.load_state_dict(state); }, {"[load_state_dict]", "missing", "proj.bias"});
  state = attn.state_dict();
  state["qkv.weight"] = random({3, 3});
  check_error([&] { other.load_state_dict(state); }, {"[load_state_dict]", "qkv.weight", "(48, 16)", "(3, 3)"});
  state = attn.state_dict();
  state["extra"] = random({1});
  check_error([&] { other.load_state_dict(state); }, {"[load_state_dict]", "unexpected", "extra"});
}

BOOST_AUTO_TEST_CASE(linear_matches_its_formula) {
  Linear lin(5, 3);
  Tensor x = random({4, 5});
  std::vector<double> xv = x.to_vector<double>(), w = lin.weight().to_vector<double>(), b = lin.bias().to_vector<double>();
  std::vector<double> want(12);
  for (int i = 0; i < 4; ++i)
    for (int o = 0; o < 3; ++o) {
      double s = b[size_t(o)];
      for (int k = 0; k < 5; ++k) s += xv[size_t(i * 5 + k)] * w[size_t(o * 5 + k)];
      want[size_t(i * 3 + o)] = s;
    }
  check_close(lin.forward(x), from_vector(want, {4, 3}, DType::f64), 1e-5, 1e-6, "linear");
  for (double v : w) BOOST_CHECK_LE(std::abs(v), 1 / std::sqrt(5.0));
  check_error([&] { lin.forward(random({4, 6})); }, {"[Linear]", "(4, 6)", "5"});
}

BOOST_AUTO_TEST_CASE(sparse_attention_layer_matches_dense_masked_composition) {
  const int64_t B = 2, T = 21, d = 12, H = 3, Dh = 4;
  SparseAttention attn({d, int(H), per_head({local(4), strided(3), fixed(5, 1)}), 8});
  Tensor x = random({B, T, d});
  Tensor y = attn.forward(x);
  // By hand: projections, per-head masked softmax in f64, output projection.
  auto sd = attn.state_dict();
  Tensor x64 = cast(x, DType::f64);
  Tensor qkv = matmul(x64, transpose(cast(sd["qkv.weight"], DType::f64), 0, 1)) + cast(sd["qkv.bias"], DType::f64);
  auto L = attn.layout(T);
  std::vector<double> heads_out(size_t(B * T * d));
  std::vector<double> qv = qkv.to_vector<double>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> s(size_t(T), -INFINITY);
        double mx = -INFINITY;
        for (int64_t u = 0; u < T; ++u) {
          if (!L->allows(L->layout_of(int(h)), t, u)) continue;
          double dot = 0;
          for (int64_t e = 0; e < Dh; ++e)
            dot += qv[size_t((b * T + t) * 3 * d + 0 * d + h * Dh + e)] * qv[size_t((b * T + u) * 3 * d + d + h * Dh + e)];
          s[size_t(u)] = dot / std::sqrt(double(Dh));
          mx = std::max(mx, s[size_t(u)]);
        }
        double z = 0;
        for (double& e : s) z += e == -INFINITY ? 0 : std::exp(e - mx);
        for (int64_t e = 0; e < Dh; ++e) {
          double acc = 0;
          for (int64_t u = 0; u < T; ++u)
            if (s[size_t(u)] != -INFINITY)
              acc += std::exp(s[size_t(u)] - mx) / z * qv[size_t((b * T + u) * 3 * d + 2 * d + h * Dh + e)];
          heads_out[size_t((b * T + t) * d + h * Dh + e)] = acc;
        }
      }
  Tensor want = matmul(from_vector(heads_out, {B, T, d}, DType::f64), transpose(cast(sd["proj.weight"], DType::f64), 0, 1)) +
                cast(sd["proj.bias"], DType::f64);
  check_close(y, want, 1e-4, 1e-5, "layer output");
}

BOOST_AUTO_TEST_CASE(gradients_reach_every_parameter_and_causality_holds) {
  SparseAttention attn({8, 2, strided(3), 4});
  Tensor x = autograd::requires_grad(random({1, 13, 8}));
  autograd::backward(sum(square(attn.forward(x))));
  for (auto& [name, p] : attn.named_parameters()) {
    Tensor g = autograd::grad(p);
    BOOST_REQUIRE_MESSAGE(g.defined(), name << " has no gradient");
    BOOST_CHECK_MESSAGE(max(abs(g)).item<double>() > 0, name << " gradient is zero");
  }
  // Changing a later position leaves earlier outputs untouched.
  Tensor x1 = random({1, 13, 8});
  Tensor x2 = clone(x1);
  Tensor tail = slice(x2, 1, 9, 13);
  fill_(tail, 0.5);
  autograd::NoGradGuard no_grad;
  check_exact(slice(attn.forward(x2), 1, 0, 9), slice(attn.forward(x1), 1, 0, 9), "positions before the change");
  check_error([&] { attn.forward(random({1, 13, 7})); }, {"[SparseAttention]", "(1, 13, 7)"});
  check_error([] { SparseAttention({10, 3, local(4), 8}); }, {"[SparseAttention]", "10", "3"});
}

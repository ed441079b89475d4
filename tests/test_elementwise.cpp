// Elementwise ops against std:: maths in double, over dtypes, broadcasting and strided views,
// and their gradients through gradcheck.
#include <cmath>
#include <functional>
#include <limits>

#include "tests/support.h"

using namespace sparta;
using namespace sparta::test;

namespace {

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  double lo, hi;  // input domain
};

double gelu_ref(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh_ref(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

const std::vector<UnaryCase>& unary_cases() {
  static const std::vector<UnaryCase> cases = {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double x) { return -x; }, -3, 3},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double x) { return std::exp(x); }, -3, 3},
      {"log", [](const Tensor& x) { return log(x); }, [](double x) { return std::log(x); }, 0.1, 5},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); }, 0.1, 5},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, [](double x) { return 1 / std::sqrt(x); }, 0.1, 5},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double x) { return std::abs(x); }, -3, 3},
      {"sin", [](const Tensor& x) { return sin(x); }, [](double x) { return std::sin(x); }, -3, 3},
      {"cos", [](const Tensor& x) { return cos(x); }, [](double x) { return std::cos(x); }, -3, 3},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double x) { return std::tanh(x); }, -3, 3},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, [](double x) { return 1 / (1 + std::exp(-x)); }, -5, 5},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double x) { return x > 0 ? x : 0; }, -3, 3},
      {"square", [](const Tensor& x) { return square(x); }, [](double x) { return x * x; }, -3, 3},
      {"reciprocal", [](const Tensor& x) { return reciprocal(x); }, [](double x) { return 1 / x; }, 0.2, 3},
      {"gelu", [](const Tensor& x) { return gelu(x); }, gelu_ref, -4, 4},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, GeluApprox::tanh); }, gelu_tanh_ref, -4, 4},
      {"pow2.5", [](const Tensor& x) { return pow(x, 2.5); }, [](double x) { return std::pow(x, 2.5); }, 0.1, 3},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.25); },
       [](double x) { return std::min(0.25, std::max(-0.5, x)); }, -1, 1},
  };
  return cases;
}

// Relative tolerance of one rounding in each dtype (the op computes in float or double).
double tol(DType dt) {
  switch (dt) {
    case DType::f64: return 1e-12;
    case DType::f32: return 2e-6;
    case DType::bf16: return 8e-3;
    default: return 1e-3;
  }
}

Tensor apply_ref(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> v = x.to_vector<double>();
  for (double& e : v) e = f(e);
  return from_vector(v, x.shape(), DType::f64);
}

}  // namespace

BOOST_AUTO_TEST_CASE(unary_ops_match_std_maths) {
  for (const UnaryCase& c : unary_cases()) {
    for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
      for (bool strided : {false, true}) {
        Tensor x = random({3, 7, 5}, dt, c.lo, c.hi);
        if (strided) x = noncontiguous(x);
        Tensor y = c.op(x);
        BOOST_CHECK(y.dtype() == dt);
        check_close(y, apply_ref(x, c.ref), tol(dt), tol(dt), std::string(c.name) + " " + dtype_name(dt));
      }
    }
    // Large enough to go through the parallel path.
    Tensor big = random({70001}, DType::f32, c.lo, c.hi);
    check_close(c.op(big), apply_ref(big, c.ref), tol(DType::f32), tol(DType::f32), std::string(c.name) + " large");
  }
}

// f32 exp over its whole range (it has a vectorised kernel of its own): accurate to the smallest
// normal float, and values below it (subnormal results) flush to 0 rather than come out wrong.
BOOST_AUTO_TEST_CASE(exp_f32_across_the_float_range) {
  const double smallest = std::numeric_limits<float>::min();
  Tensor x = concat({random({20000}, DType::f32, -104, 88), random({20000}, DType::f32, -88, -86.5),
                  from_vector(std::vector<double>{-INFINITY, -87.336544, -87.33654, -87.0, 0.0, 88.0}, {6},
                              DType::f32)},
                    0);
  std::vector<double> in = x.to_vector<double>(), got = exp(x).to_vector<double>();
  int wrong = 0, first = -1;
  for (size_t i = 0; i < in.size(); ++i) {
    const double want = std::exp(in[i]);
    const bool ok = want >= smallest ? std::abs(got[i] - want) <= 2e-7 * want : got[i] >= 0 && got[i] <= smallest;
    if (!ok && wrong++ == 0) first = int(i);
  }
  BOOST_CHECK_MESSAGE(wrong == 0, wrong << " f32 exp values wrong, first exp(" << in[size_t(std::max(first, 0))]
                                        << ") = " << got[size_t(std::max(first, 0))]);
}

BOOST_AUTO_TEST_CASE(unary_gradients) {
  for (const UnaryCase& c : unary_cases()) {
    // Keep away from kinks (abs, relu, clamp at their corners) where differences are one-sided.
    Tensor x = random({2, 3, 5}, DType::f64, c.lo, c.hi);
    Tensor kink_free = add(x, mul(sign(x), full_like(x, 0.05)));
    if (std::string(c.name) == "clamp") kink_free = random({2, 3, 5}, DType::f64, -0.45, 0.2);
    check_grad(c.name, [&](const Tensors& in) { return c.op(in[0]); }, {autograd::requires_grad(kink_free)});
  }
  check_grad("gelu_grad", [](const Tensors& in) { return gelu_grad(in[0]); }, {leaf({7}, -3, 3)});
  check_grad("gelu_tanh_grad", [](const Tensors& in) { return gelu_grad(in[0], GeluApprox::tanh); }, {leaf({7}, -3, 3)});
}

BOOST_AUTO_TEST_CASE(binary_ops_broadcast) {
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&)> op;
    std::function<double(double, double)> ref;
  };
  std::vector<Case> cases = {
      {"add", [](const Tensor& a, const Tensor& b) { return a + b; }, [](double a, double b) { return a + b; }},
      {"sub", [](const Tensor& a, const Tensor& b) { return a - b; }, [](double a, double b) { return a - b; }},
      {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }, [](double a, double b) { return a * b; }},
      {"div", [](const Tensor& a, const Tensor& b) { return a / b; }, [](double a, double b) { return a / b; }},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(abs(a) + 0.1, b); },
       [](double a, double b) { return std::pow(std::abs(a) + 0.1, b); }},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
       [](double a, double b) { return std::max(a, b); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
       [](double a, double b) { return std::min(a, b); }},
  };
  // (shape a, shape b): equal, trailing broadcast, both sides broadcast, scalar, rank mismatch.
  std::vector<std::pair<Shape, Shape>> shapes = {
      {{4, 5}, {4, 5}}, {{3, 4, 5}, {5}}, {{3, 1, 5}, {1, 4, 1}}, {{2, 3}, {}}, {{7}, {3, 1}}, {{1}, {2, 9}}};
  for (const Case& c : cases) {
    for (auto& [sa, sb] : shapes) {
      for (DType dt : {DType::f64, DType::f32, DType::bf16}) {
        Tensor a = random(sa, dt, -2, 2), b = random(sb, dt, 0.5, 2);
        if (!sa.empty()) a = noncontiguous(a);
        Tensor y = c.op(a, b);
        Shape out = broadcast_shapes(sa, sb, "test");
        BOOST_REQUIRE(y.shape() == out);
        std::vector<double> ea = expand(cast(a, DType::f64), out).to_vector<double>();
        std::vector<double> eb = expand(cast(b, DType::f64), out).to_vector<double>();
        std::vector<double> want(ea.size());
        for (size_t i = 0; i < ea.size(); ++i) want[i] = c.ref(ea[i], eb[i]);
        // pow's error grows with the exponent and the base's rounding.
        double t = std::string(c.name) == "pow" ? 4 * tol(dt) : tol(dt);
        check_close(y, from_vector(want, out, DType::f64), t, t,
                    std::string(c.name) + " " + shape_str(sa) + " " + shape_str(sb) + " " + dtype_name(dt));
      }
      Tensor a = leaf(sa, -2, 2), b = leaf(sb, 0.5, 2);
      check_grad(std::string(c.name) + " grad " + shape_str(sa) + " " + shape_str(sb),
                 [&](const Tensors& in) { return c.op(in[0], in[1]); }, {a, b});
    }
  }
}

BOOST_AUTO_TEST_CASE(type_promotion_and_scalars) {
  Tensor i = random_int(-5, 5, {6}, DType::i32);
  Tensor f = random({6}, DType::f32);
  BOOST_CHECK(add(i, f).dtype() == DType::f32);
  BOOST_CHECK(add(i, random_int(0, 3, {6}, DType::i64)).dtype() == DType::i64);
  BOOST_CHECK(add(random({6}, DType::bf16), f).dtype() == DType::f32);
  check_close(f * 3.0, apply_ref(f, [](double x) { return double(float(x * 3)); }), 1e-7, 0, "tensor * scalar");
  check_close(1.0 - f, apply_ref(f, [](double x) { return 1 - x; }), 1e-7, 1e-7, "scalar - tensor");
  check_close(2.0 / (abs(f) + 1.0), apply_ref(f, [](double x) { return 2 / (std::abs(x) + 1); }), 1e-6, 0,
              "scalar / tensor");
  check_error([] { add(random({2, 3}), random({4})); }, {"[add]", "(2, 3)", "(4,)"});
  check_error([] { exp(random_int(0, 3, {2})); }, {"[exp]", "i64"});
}

BOOST_AUTO_TEST_CASE(comparisons_where_and_masked_fill) {
  Tensor a = cast(random_int(-3, 3, {5, 6}), DType::f32), b = cast(random_int(-3, 3, {6}), DType::f32);
  std::vector<double> ea = a.to_vector<double>(), eb = expand(b, {5, 6}).to_vector<double>();
  struct Cmp {
    Tensor (*op)(const Tensor&, const Tensor&);
    std::function<bool(double, double)> ref;
    const char* name;
  };
  std::vector<Cmp> cmps = {{eq, std::equal_to<double>(), "eq"}, {ne, std::not_equal_to<double>(), "ne"},
                           {lt, std::less<double>(), "lt"},      {le, std::less_equal<double>(), "le"},
                           {gt, std::greater<double>(), "gt"},   {ge, std::greater_equal<double>(), "ge"}};
  for (const Cmp& c : cmps) {
    Tensor r = c.op(a, b);
    BOOST_CHECK(r.dtype() == DType::boolean);
    std::vector<double> want(ea.size());
    for (size_t i = 0; i < ea.size(); ++i) want[i] = c.ref(ea[i], eb[i]);
    check_exact(r, from_vector(want, {5, 6}, DType::f64), c.name);
  }
  BOOST_CHECK(!autograd::requires_grad_of(lt(leaf({3}), leaf({3}))));
  check_exact(logical_not(gt(a, b)), le(a, b), "logical_not");

  Tensor cond = gt(random({4, 1}), random({5}));
  Tensor x = random({4, 5}, DType::f64), y = random({5}, DType::f64);
  std::vector<double> ec = expand(cond, {4, 5}).to_vector<double>(), ex = x.to_vector<double>(),
                      ey = expand(y, {4, 5}).to_vector<double>(), want(20);
  for (size_t i = 0; i < 20; ++i) want[i] = ec[i] ? ex[i] : ey[i];
  check_exact(where(cond, x, y), from_vector(want, {4, 5}, DType::f64), "where");
  check_grad("where", [&](const Tensors& in) { return where(cond, in[0], in[1]); }, {leaf({4, 5}), leaf({5})});

  Tensor m = masked_fill(x, cond, -1e9);
  std::vector<double> em = m.to_vector<double>();
  for (size_t i = 0; i < 20; ++i) BOOST_CHECK_EQUAL(em[i], ec[i] ? -1e9 : ex[i]);
  check_grad("masked_fill", [&](const Tensors& in) { return masked_fill(in[0], cond, 3.0); }, {leaf({4, 5})});
  check_error([&] { where(x, x, y); }, {"[where]", "bool"});
}

BOOST_AUTO_TEST_CASE(in_place_updates) {
  Tensor d = random({3, 4}, DType::f32);
  std::vector<double> v = d.to_vector<double>();
  Tensor s = random({4}, DType::f32);
  std::vector<double> sv = s.to_vector<double>();
  add_(d, s, 0.5);
  std::vector<double> r = d.to_vector<double>();
  for (size_t i = 0; i < r.size(); ++i) BOOST_CHECK_CLOSE(r[i], double(float(v[i] + 0.5f * float(sv[i % 4]))), 1e-4);
  mul_(d, 2);
  BOOST_CHECK_CLOSE(d.to_vector<double>()[5], 2 * r[5], 1e-5);
  Tensor t = transpose(random({4, 3}), 0, 1);
  copy_(t, d);  // copy into a strided destination
  check_exact(t, d, "copy_ into a transposed view");
}

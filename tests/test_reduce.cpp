// Reductions over every subset of axes against double-precision loops, their gradients, and
// bitwise determinism across thread counts.
#include <tbb/global_control.h>

#include <cmath>
#include <functional>
#include <limits>

#include "tests/support.h"

using namespace sparta;
using namespace sparta::test;

namespace {

// Groups the values of x by their position outside `axes` and folds each group with f.
Tensor reference(const Tensor& x, const std::vector<int>& axes, bool keepdim,
                 const std::function<double(const std::vector<double>&)>& f) {
  Shape shape = x.shape();
  std::vector<double> v = cast(x, DType::f64).to_vector<double>();
  std::vector<bool> reduced(shape.size(), axes.empty());
  for (int a : axes) reduced[size_t(a < 0 ? a + x.dim() : a)] = true;
  Shape out_shape, keep_shape;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (!reduced[d]) out_shape.push_back(shape[d]);
    keep_shape.push_back(reduced[d] ? 1 : shape[d]);
  }
  std::vector<std::vector<double>> groups(size_t(numel_of(out_shape)));
  for (int64_t i = 0; i < int64_t(v.size()); ++i) {
    int64_t rest = i, out = 0, mul = 1;
    for (int d = int(shape.size()) - 1; d >= 0; --d) {
      int64_t c = rest % shape[d];
      rest /= shape[d];
      if (!reduced[size_t(d)]) {
        out += c * mul;
        mul *= shape[d];
      }
    }
    groups[size_t(out)].push_back(v[size_t(i)]);
  }
  std::vector<double> r;
  for (auto& g : groups) r.push_back(f(g));
  return from_vector(r, keepdim ? keep_shape : out_shape, DType::f64);
}

double sum_of(const std::vector<double>& g) {
  double s = 0;
  for (double e : g) s += e;
  return s;
}
double mean_of(const std::vector<double>& g) { return sum_of(g) / double(g.size()); }
double max_of(const std::vector<double>& g) { return *std::max_element(g.begin(), g.end()); }
double min_of(const std::vector<double>& g) { return *std::min_element(g.begin(), g.end()); }
double var_of(const std::vector<double>& g) {
  double m = mean_of(g), s = 0;
  for (double e : g) s += (e - m) * (e - m);
  return s / double(g.size() - 1);
}

const std::vector<std::vector<int>> kAxisSets = {{}, {0}, {1}, {2}, {-1}, {0, 2}, {1, 2}, {0, 1}, {2, 0, 1}};

}  // namespace

BOOST_AUTO_TEST_CASE(reductions_over_any_axes) {
  for (DType dt : {DType::f64, DType::f32, DType::bf16}) {
    for (bool strided : {false, true}) {
      Tensor x = random({5, 7, 3}, dt, -2, 2);
      if (strided) x = noncontiguous(x, true);
      for (const auto& axes : kAxisSets) {
        for (bool keep : {false, true}) {
          std::string what = std::string(dtype_name(dt)) + (strided ? " strided" : "") + " axes " +
                             std::to_string(axes.size()) + (keep ? " keepdim" : "");
          double t = dt == DType::bf16 ? 1e-2 : dt == DType::f32 ? 1e-5 : 1e-12;
          check_close(sum(x, axes, keep), reference(x, axes, keep, sum_of), t, t, "sum " + what);
          check_close(mean(x, axes, keep), reference(x, axes, keep, mean_of), t, t, "mean " + what);
          check_exact(max(x, axes, keep), reference(x, axes, keep, max_of), "max " + what);
          check_exact(min(x, axes, keep), reference(x, axes, keep, min_of), "min " + what);
          check_close(var(x, axes, keep), reference(x, axes, keep, var_of), 4 * t, t, "var " + what);
        }
      }
    }
  }
  // Integer sums are exact and widen to i64.
  Tensor i = random_int(-100, 100, {6, 9}, DType::i32);
  Tensor s = sum(i, {1});
  BOOST_CHECK(s.dtype() == DType::i64);
  check_exact(s, reference(i, {1}, false, sum_of), "integer sum");
}

BOOST_AUTO_TEST_CASE(large_sums_are_accurate_and_thread_count_independent) {
  Tensor x = random({3, 400003}, DType::f32, 0, 1);
  Tensor a = sum(x, {1});
  check_close(a, reference(x, {1}, false, sum_of), 1e-6, 0, "long rows");
  Tensor b;
  {
    tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
    b = sum(x, {1});
  }
  check_exact(a, b, "same bits on one thread");
  Tensor cols = random({100001, 5}, DType::f32, 0, 1);
  check_close(sum(cols, {0}), reference(cols, {0}, false, sum_of), 1e-6, 0, "long columns");
}

BOOST_AUTO_TEST_CASE(var_correction_argmax_logsumexp) {
  Tensor x = random({4, 9}, DType::f64);
  check_close(var(x, {1}, false, 0), reference(x, {1}, false, [](const std::vector<double>& g) {
                return var_of(g) * double(g.size() - 1) / double(g.size());
              }), 1e-12, 1e-14, "population variance");
  Tensor am = argmax(x, 1);
  BOOST_CHECK(am.dtype() == DType::i64);
  std::vector<double> v = x.to_vector<double>(), idx = am.to_vector<double>();
  for (int r = 0; r < 4; ++r) {
    int best = 0;
    for (int c = 1; c < 9; ++c) best = v[size_t(r * 9 + c)] > v[size_t(r * 9 + best)] ? c : best;
    BOOST_CHECK_EQUAL(idx[size_t(r)], best);
  }
  BOOST_CHECK((argmax(x, 0, true).shape() == Shape{1, 9}));
  // Ties go to the first index, as in PyTorch and NumPy.
  BOOST_CHECK_EQUAL(argmax(from_vector({1, 3, 3, 2}, {4}), 0).item<int64_t>(), 1);

  Tensor big = random({3, 11}, DType::f32, 500, 1000);  // exp overflows without the max shift
  check_close(logsumexp(big, 1), reference(big, {1}, false, [](const std::vector<double>& g) {
                double m = max_of(g), s = 0;
                for (double e : g) s += std::exp(e - m);
                return m + std::log(s);
              }), 1e-6, 0, "logsumexp");
}

BOOST_AUTO_TEST_CASE(reduction_gradients) {
  for (const auto& axes : kAxisSets) {
    for (bool keep : {false, true}) {
      std::string what = "axes " + std::to_string(axes.size()) + (keep ? " keepdim" : "");
      check_grad("sum " + what, [&](const Tensors& in) { return sum(in[0], axes, keep); }, {leaf({3, 4, 2})});
      check_grad("mean " + what, [&](const Tensors& in) { return mean(in[0], axes, keep); }, {leaf({3, 4, 2})});
      check_grad("max " + what, [&](const Tensors& in) { return max(in[0], axes, keep); }, {leaf({3, 4, 2})});
      check_grad("min " + what, [&](const Tensors& in) { return min(in[0], axes, keep); }, {leaf({3, 4, 2})});
      check_grad("var " + what, [&](const Tensors& in) { return var(in[0], axes, keep); }, {leaf({3, 4, 2})});
    }
  }
  check_grad("logsumexp", [](const Tensors& in) { return logsumexp(in[0], 0); }, {leaf({5, 3})});
  check_grad("sum of a strided view", [](const Tensors& in) { return sum(transpose(in[0], 0, 1), {1}); },
             {leaf({4, 3})});
  check_error([] { sum(random({2, 3}), {0, 0}); }, {"[sum]", "repeated"});
  check_error([] { mean(random({2, 3}), {3}); }, {"axis", "3"});
  check_error([] { var(random({1, 3}), {0}); }, {"[var]"});
}

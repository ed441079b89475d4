#pragma once
// Helpers shared by the tests: fresh random inputs (seeded per run, printed, and overridable with
// SPARTA_TEST_SEED so a failure can be replayed), a small word corpus for training tests,
// non-contiguous copies of a tensor, and an elementwise closeness check that reports the worst
// element.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "core/ops.h"

namespace sparta::test {

inline uint64_t run_seed() {
  static const uint64_t seed = [] {
    if (const char* env = std::getenv("SPARTA_TEST_SEED")) return uint64_t(std::strtoull(env, nullptr, 10));
    uint64_t s = std::random_device{}();
    BOOST_TEST_MESSAGE("SPARTA_TEST_SEED=" << s);
    std::fprintf(stderr, "random inputs from SPARTA_TEST_SEED=%llu\n", static_cast<unsigned long long>(s));
    return s;
  }();
  return seed;
}

inline Generator& gen() {
  static Generator g(run_seed());
  return g;
}

// Uniform in [lo, hi), converted to dtype.
inline Tensor random(const Shape& shape, DType dtype = DType::f32, double lo = -1, double hi = 1) {
  return cast(uniform(shape, lo, hi, DType::f64, &gen()), dtype);
}
inline Tensor random_normal(const Shape& shape, DType dtype = DType::f32) {
  return cast(randn(shape, DType::f64, &gen()), dtype);
}
inline Tensor random_int(int64_t lo, int64_t hi, const Shape& shape, DType dtype = DType::i64) {
  return randint(lo, hi, shape, dtype, &gen());
}

// <dir>/corpus.txt: n_words words of a ten-word vocabulary drawn with Generator(seed), text a tiny
// model learns in a few steps; returns the file's path.
inline std::string write_word_corpus(const std::filesystem::path& dir, int64_t n_words, uint64_t seed) {
  const char* words[] = {"the ", "cat ", "sat ", "on ", "a ", "mat ", "and ", "then ", "it ", "slept. "};
  Generator g(seed);
  std::string text;
  for (int64_t w : randint(0, 10, {n_words}, DType::i64, &g).to_vector<int64_t>()) text += words[w];
  const std::string path = (dir / "corpus.txt").string();
  std::ofstream(path) << text;
  return path;
}

// The same values as x in a tensor whose last axis has stride 2 (so every kernel's strided path
// is exercised), or that is a transposed view when x has two or more axes.
inline Tensor noncontiguous(const Tensor& x, bool transposed = false) {
  if (transposed && x.dim() >= 2) {
    return contiguous(transpose(x, -1, -2)).transpose(-1, -2);
  }
  Shape wide = x.shape();
  if (wide.empty()) return x;
  wide.back() *= 2;
  Tensor big = full(wide, 12345.0, x.dtype());
  Tensor view = slice(big, -1, 0, wide.back(), 2);
  copy_(view, x);
  BOOST_REQUIRE(!view.is_contiguous() || x.numel() <= 1);
  return view;
}

// Passes when |got - want| <= atol + rtol * |want| elementwise (NaNs must agree).
inline void check_close(const Tensor& got, const Tensor& want, double rtol, double atol, const std::string& what) {
  BOOST_REQUIRE_MESSAGE(got.shape() == want.shape(), what << ": shape " << shape_str(got.shape()) << " vs expected "
                                                          << shape_str(want.shape()));
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double worst = -1;
  size_t at = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(w[i]) && std::isnan(g[i])) continue;
    double excess = std::abs(g[i] - w[i]) - (atol + rtol * std::abs(w[i]));
    if (std::isnan(excess)) excess = INFINITY;
    if (excess > worst) {
      worst = excess;
      at = i;
    }
  }
  BOOST_CHECK_MESSAGE(worst <= 0, what << ": element " << at << " is " << (g.empty() ? 0 : g[at]) << ", expected "
                                       << (w.empty() ? 0 : w[at]) << " (rtol " << rtol << ", atol " << atol
                                       << ", shape " << shape_str(got.shape()) << ")");
}

inline void check_exact(const Tensor& got, const Tensor& want, const std::string& what) {
  check_close(got, want, 0, 0, what);
}

// Runs gradcheck and reports its first mismatch.
inline void check_grad(const std::string& what, const std::function<Tensor(const Tensors&)>& fn,
                       const Tensors& inputs, autograd::GradcheckOptions opt = {}) {
  auto r = autograd::gradcheck(fn, inputs, opt);
  BOOST_CHECK_MESSAGE(r.ok, what << ": " << r.message);
}

// f64 leaf requiring grad, with fresh random values.
inline Tensor leaf(const Shape& shape, double lo = -1, double hi = 1) {
  return autograd::requires_grad(random(shape, DType::f64, lo, hi));
}

// Asserts that fn throws sparta::Error whose message contains every fragment.
template <typename Fn>
void check_error(Fn fn, std::initializer_list<const char*> fragments) {
  try {
    fn();
    BOOST_ERROR("expected an error containing '" << *fragments.begin() << "'");
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const char* f : fragments) {
      BOOST_CHECK_MESSAGE(msg.find(f) != std::string::npos, "error '" << msg << "' lacks '" << f << "'");
    }
  }
}

}  // namespace sparta::test

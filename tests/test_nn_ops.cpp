// softmax, log_softmax, layer_norm, embedding, cross_entropy and dropout against double loops,
// with gradchecks, stability at large magnitudes and the errors.
#include <tbb/global_control.h>

#include <cmath>

#include "tests/support.h"

using namespace sparta;
using namespace sparta::test;

namespace {

// Applies f to every row of x along `axis` (values in double), returns the result in f64.
Tensor along_axis(const Tensor& x, int axis, const std::function<std::vector<double>(const std::vector<double>&)>& f) {
  const int a = axis < 0 ? axis + x.dim() : axis;
  Tensor moved = contiguous(transpose(cast(x, DType::f64), a, -1));
  const int64_t n = moved.shape(-1), rows = moved.numel() / n;
  std::vector<double> v = moved.to_vector<double>(), out(v.size());
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> row(v.begin() + r * n, v.begin() + (r + 1) * n);
    std::vector<double> res = f(row);
    std::copy(res.begin(), res.end(), out.begin() + r * n);
  }
  return contiguous(transpose(from_vector(out, moved.shape(), DType::f64), a, -1));
}

std::vector<double> softmax_ref(const std::vector<double>& r, bool log) {
  double m = *std::max_element(r.begin(), r.end()), s = 0;
  for (double v : r) s += std::exp(v - m);
  std::vector<double> out;
  for (double v : r) out.push_back(log ? v - m - std::log(s) : std::exp(v - m) / s);
  return out;
}

double tol(DType dt) { return dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 2e-6 : 1e-2; }

}  // namespace

BOOST_AUTO_TEST_CASE(softmax_and_log_softmax) {
  for (DType dt : {DType::f64, DType::f32, DType::bf16}) {
    for (int axis : {0, 1, -1}) {
      for (bool strided : {false, true}) {
        Tensor x = random({3, 7, 5}, dt, -4, 4);
        if (strided) x = noncontiguous(x);
        std::string what = std::string(dtype_name(dt)) + " axis " + std::to_string(axis) + (strided ? " strided" : "");
        check_close(softmax(x, axis), along_axis(x, axis, [](auto& r) { return softmax_ref(r, false); }), tol(dt),
                    tol(dt), "softmax " + what);
        check_close(log_softmax(x, axis), along_axis(x, axis, [](auto& r) { return softmax_ref(r, true); }),
                    tol(dt), tol(dt) * 4, "log_softmax " + what);
      }
    }
  }
  // Large logits: no overflow, the small ones not lost.
  Tensor big = from_vector({1000, 999, -1000, 0}, {1, 4});
  check_close(softmax(big), along_axis(big, -1, [](auto& r) { return softmax_ref(r, false); }), 1e-6, 1e-30,
              "softmax of large logits");
  check_close(log_softmax(big), along_axis(big, -1, [](auto& r) { return softmax_ref(r, true); }), 1e-6, 1e-4,
              "log_softmax of large logits");
  for (int axis : {0, 1, 2}) {
    check_grad("softmax axis " + std::to_string(axis), [&](const Tensors& in) { return softmax(in[0], axis); },
               {leaf({3, 4, 5})});
    check_grad("log_softmax axis " + std::to_string(axis), [&](const Tensors& in) { return log_softmax(in[0], axis); },
               {leaf({3, 4, 5})});
  }
  check_error([] { softmax(random({2, 3}), 2); }, {"axis", "2"});
  check_error([] { softmax(random_int(0, 3, {3})); }, {"[softmax]", "i64"});
}

BOOST_AUTO_TEST_CASE(layer_norm_forward_and_backward) {
  for (DType dt : {DType::f64, DType::f32, DType::bf16}) {
    for (bool affine : {false, true}) {
      Tensor x = noncontiguous(random({4, 3, 37}, dt, -3, 5));
      Tensor w = affine ? random({37}, dt) : Tensor(), b = affine ? random({37}, dt) : Tensor();
      std::vector<double> wv = affine ? w.to_vector<double>() : std::vector<double>(37, 1.0);
      std::vector<double> bv = affine ? b.to_vector<double>() : std::vector<double>(37, 0.0);
      Tensor want = along_axis(x, -1, [&](const std::vector<double>& r) {
        double m = 0, v = 0;
        for (double e : r) m += e;
        m /= double(r.size());
        for (double e : r) v += (e - m) * (e - m);
        v /= double(r.size());
        std::vector<double> out;
        for (size_t c = 0; c < r.size(); ++c) out.push_back((r[c] - m) / std::sqrt(v + 1e-5) * wv[c] + bv[c]);
        return out;
      });
      check_close(layer_norm(x, w, b), want, tol(dt) * 4, tol(dt) * 4,
                  std::string("layer_norm ") + dtype_name(dt) + (affine ? " affine" : ""));
    }
  }
  check_grad("layer_norm x, weight, bias",
             [](const Tensors& in) { return layer_norm(in[0], in[1], in[2]); }, {leaf({5, 7}), leaf({7}), leaf({7})});
  check_grad("layer_norm without affine", [](const Tensors& in) { return layer_norm(in[0], Tensor(), Tensor()); },
             {leaf({2, 3, 6})});
  // Weight and bias gradients are reduced in a fixed order.
  Tensor x = random({3000, 16}), w = random({16});
  Tensor gw1, gw2;
  for (Tensor* out : {&gw1, &gw2}) {
    std::unique_ptr<tbb::global_control> one;
    if (out == &gw2) one = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, 1);
    Tensor wl = autograd::requires_grad(clone(w));
    autograd::backward(sum(square(layer_norm(x, wl, Tensor()))));
    *out = autograd::grad(wl);
  }
  check_exact(gw1, gw2, "weight gradient on one thread and many");
  check_error([] { layer_norm(random({2, 5}), random({4}), Tensor()); }, {"[layer_norm]", "weight", "(4,)", "(2, 5)"});
  check_error([] { layer_norm(random({2, 5}), Tensor(), random({5}, DType::f64)); }, {"[layer_norm]", "bias", "f64"});
}

BOOST_AUTO_TEST_CASE(embedding_lookup) {
  Tensor w = random({11, 6}, DType::f32);
  Tensor idx = random_int(0, 11, {3, 4});
  Tensor e = embedding(w, idx);
  BOOST_REQUIRE((e.shape() == Shape{3, 4, 6}));
  std::vector<double> wv = w.to_vector<double>(), iv = idx.to_vector<double>(), ev = e.to_vector<double>();
  for (size_t t = 0; t < iv.size(); ++t)
    for (size_t d = 0; d < 6; ++d) BOOST_CHECK_EQUAL(ev[t * 6 + d], wv[size_t(iv[t]) * 6 + d]);
  Tensor repeated = from_vector_i64({1, 3, 1, 1, 0}, {5});
  check_grad("embedding weight", [&](const Tensors& in) { return embedding(in[0], repeated); }, {leaf({4, 3})});
  check_error([&] { embedding(w, from_vector_i64({2, 11}, {2})); }, {"[embedding]", "11", "[0, 11)"});
  check_error([&] { embedding(w, from_vector_i64({-1}, {1})); }, {"[embedding]", "-1"});
  check_error([&] { embedding(w, random({2})); }, {"[embedding]", "f32"});
}

BOOST_AUTO_TEST_CASE(cross_entropy_with_ignore_index) {
  for (DType dt : {DType::f64, DType::f32, DType::bf16}) {
    Tensor logits = random({4, 5, 13}, dt, -3, 3);
    Tensor targets = random_int(0, 13, {4, 5});
    std::vector<int64_t> tv = targets.to_vector<int64_t>();
    tv[3] = -100;
    tv[7] = -100;
    targets = from_vector_i64(tv, {4, 5});
    Tensor lsm = along_axis(logits, -1, [](auto& r) { return softmax_ref(r, true); });
    std::vector<double> lv = lsm.to_vector<double>();
    double total = 0;
    int count = 0;
    for (size_t r = 0; r < tv.size(); ++r) {
      if (tv[r] == -100) continue;
      total -= lv[r * 13 + size_t(tv[r])];
      ++count;
    }
    BOOST_CHECK_CLOSE(cross_entropy(logits, targets).item<double>(), total / count, dt == DType::f64 ? 1e-10 : 1e-3);
  }
  // Stable for huge logits.
  Tensor huge = from_vector({1000, -1000, 0, 2000, 2000, 0}, {2, 3});
  BOOST_CHECK_CLOSE(cross_entropy(huge, from_vector_i64({0, 1}, {2})).item<double>(), std::log(2.0) / 2, 1e-3);
  Tensor t = from_vector_i64({2, -100, 0, 4, -100, 1}, {2, 3});
  check_grad("cross_entropy", [&](const Tensors& in) { return cross_entropy(in[0], t); }, {leaf({2, 3, 5})});
  Tensor all_ignored = from_vector_i64({-100, -100}, {2});
  BOOST_CHECK_EQUAL(cross_entropy(random({2, 3}), all_ignored).item<double>(), 0.0);
  check_error([] { cross_entropy(random({2, 3}), from_vector_i64({0, 3}, {2})); }, {"[cross_entropy]", "3", "[0, 3)"});
  check_error([] { cross_entropy(random({2, 3}), from_vector_i64({0, 1, 2}, {3})); },
              {"[cross_entropy]", "(3,)", "(2, 3)"});
  check_error([] { cross_entropy(random({2, 3}), random({2})); }, {"[cross_entropy]", "f32"});
}

BOOST_AUTO_TEST_CASE(dropout_mask_is_random_scaled_and_replayable) {
  const double p = 0.3;
  Tensor x = random({100000}, DType::f32, 1, 2);  // never zero, so a zero output means dropped
  Generator g(5);
  Tensor y = dropout(x, p, &g);
  std::vector<double> xv = x.to_vector<double>(), yv = y.to_vector<double>();
  int64_t kept = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    if (yv[i] == 0) continue;
    ++kept;
    BOOST_CHECK_CLOSE(yv[i], double(float(float(xv[i]) * float(1 / (1 - p)))), 1e-4);
  }
  // Binomial(1e5, 0.7): standard deviation ~145; 6 of them.
  BOOST_CHECK_SMALL(double(kept) - 70000.0, 870.0);
  Generator same(5);
  check_exact(dropout(x, p, &same), y, "same generator state, same mask");
  check_grad("dropout", [&](const Tensors& in) {
    Generator fixed(9);
    return dropout(in[0], 0.4, &fixed);
  }, {leaf({40})});
  BOOST_CHECK_GT(max(abs(dropout(x, p, &g) - y)).item<double>(), 0.5);  // the stream moved on
  // The gradient reuses the forward's mask: zero exactly where the output is.
  Tensor xl = autograd::requires_grad(clone(x));
  Tensor yl = dropout(xl, p, &g);
  autograd::backward(sum(yl));
  std::vector<double> gv = autograd::grad(xl).to_vector<double>(), ylv = yl.to_vector<double>();
  for (size_t i = 0; i < gv.size(); ++i) BOOST_CHECK_EQUAL(gv[i] == 0, ylv[i] == 0);
  BOOST_CHECK(dropout(x, 0).is_same(x));
  check_error([&] { dropout(x, 1.0); }, {"[dropout]", "1"});
  check_error([&] { dropout(x, -0.1); }, {"[dropout]", "-0.1"});
}

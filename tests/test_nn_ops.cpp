// softmax, log_softmax, layer_norm, embedding, cross_entropy and dropout against double loops,
// with gradchecks, stability at large magnitudes and the errors.
#include <tbb/global_control.h>

#include <cmath>
#include <limits>

#include "core/ops/dropout/dropout.h"
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
  BOOST_CHECK_EQUAL(softmax(scalar(3.0)).item<double>(), 1.0);
  BOOST_CHECK_EQUAL(log_softmax(scalar(3.0)).item<double>(), 0.0);
  check_grad("softmax of a 0-d tensor", [](const Tensors& in) { return softmax(in[0]); }, {leaf({})});
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

// ---- edge cases and the properties the kernels promise beyond the values ------------------------

namespace {

// The gradient of sum(f(x) * r) with respect to x, for a fixed random cotangent r.
Tensor grad_of(const std::function<Tensor(const Tensor&)>& f, const Tensor& x, const Tensor& r) {
  Tensor xl = autograd::requires_grad(clone(x));
  autograd::backward(sum(f(xl) * r));
  return autograd::grad(xl);
}

Tensor on_one_thread(const std::function<Tensor()>& f) {
  tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
  return f();
}

// Dropout's keep bit written out from the Philox definition: element i reads lane i % 4 of block
// (offset + i / 4) and keeps when its unit float is at least p.
bool dropout_keep_reference(PhiloxKey key, uint64_t i, float p) {
  const uint32_t word = philox4x32(key.seed, key.offset + i / 4, 0).v[i % 4];
  return double(word >> 8) / 16777216.0 >= double(p);
}

}  // namespace

BOOST_AUTO_TEST_CASE(softmax_edges_half_types_and_stability) {
  // A size-1 axis gives ones (zeros for log_softmax), on a 1-element tensor too.
  check_exact(softmax(random({3, 1, 5}), 1), ones({3, 1, 5}), "softmax over a size-1 axis");
  check_exact(log_softmax(random({1})), zeros({1}), "log_softmax of one element");
  // Wide rows (several tasks' worth) and f16 against the double reference.
  for (DType dt : {DType::f16, DType::f32}) {
    Tensor x = random({5, 1031}, dt, -8, 8);
    check_close(softmax(x), along_axis(x, -1, [](auto& r) { return softmax_ref(r, false); }), tol(dt), 1e-7,
                std::string("softmax wide ") + dtype_name(dt));
    check_close(log_softmax(x, 0), along_axis(x, 0, [](auto& r) { return softmax_ref(r, true); }), tol(dt),
                tol(dt) * 4, std::string("log_softmax axis 0 ") + dtype_name(dt));
  }
  // +-1000 along every axis of a strided 3-D tensor, in f32: max-shifting keeps every value finite
  // and the tiny probabilities exact down to the smallest normal float (subnormal ones may flush).
  Tensor big = noncontiguous(random({3, 4, 6}, DType::f32, -1000, 1000));
  for (int axis : {0, 1, 2}) {
    Tensor sm = softmax(big, axis), lsm = log_softmax(big, axis);
    check_close(sm, along_axis(big, axis, [](auto& r) { return softmax_ref(r, false); }), 1e-5,
                std::numeric_limits<float>::min(),
                "softmax of +-1000 axis " + std::to_string(axis));
    check_close(lsm, along_axis(big, axis, [](auto& r) { return softmax_ref(r, true); }), 1e-6, 1e-3,
                "log_softmax of +-1000 axis " + std::to_string(axis));
    BOOST_CHECK(std::isfinite(sum(lsm).item<double>()));
  }
  // The vjp on a strided input (the axis of a transposed view).
  check_grad("softmax of a transposed view",
             [](const Tensors& in) { return softmax(transpose(in[0], 0, 2), 1); }, {leaf({4, 3, 5})});
  check_grad("log_softmax axis -1 of a slice",
             [](const Tensors& in) { return log_softmax(slice(in[0], 1, 0, 7, 2), -1); }, {leaf({3, 7})});
  // The f32 gradient agrees with the f64 one (the vjp formulas run in the input's type).
  Tensor x = random({6, 9}, DType::f64), r = random({6, 9}, DType::f64);
  for (bool log : {false, true}) {
    auto f = [log](const Tensor& t) { return log ? log_softmax(t, 0) : softmax(t, 0); };
    check_close(grad_of(f, cast(x, DType::f32), cast(r, DType::f32)), grad_of(f, x, r), 1e-5, 1e-6,
                log ? "log_softmax f32 gradient" : "softmax f32 gradient");
  }
  check_error([] { softmax(random({2, 3, 4}), -4); }, {"axis", "-4"});
  check_error([] { log_softmax(random_int(0, 3, {3})); }, {"[log_softmax]", "i64"});
}

BOOST_AUTO_TEST_CASE(layer_norm_partial_affine_stability_and_determinism) {
  // Weight only and bias only, forward against the double loop and through gradcheck.
  Tensor x = random({5, 11}, DType::f32, -2, 2), w = random({11}), b = random({11});
  std::vector<double> wv = w.to_vector<double>(), bv = b.to_vector<double>();
  for (int which : {0, 1}) {
    Tensor want = along_axis(x, -1, [&](const std::vector<double>& row) {
      double m = 0, v = 0;
      for (double e : row) m += e;
      m /= double(row.size());
      for (double e : row) v += (e - m) * (e - m);
      v /= double(row.size());
      std::vector<double> out;
      for (size_t c = 0; c < row.size(); ++c) {
        double h = (row[c] - m) / std::sqrt(v + 1e-3);
        out.push_back(which == 0 ? h * wv[c] : h + bv[c]);
      }
      return out;
    });
    check_close(layer_norm(x, which == 0 ? w : Tensor(), which == 1 ? b : Tensor(), 1e-3), want, 1e-5, 1e-5,
                which == 0 ? "layer_norm weight only" : "layer_norm bias only");
  }
  check_grad("layer_norm weight only", [](const Tensors& in) { return layer_norm(in[0], in[1], Tensor()); },
             {leaf({3, 5}), leaf({5})});
  check_grad("layer_norm bias only", [](const Tensors& in) { return layer_norm(in[0], Tensor(), in[1]); },
             {leaf({3, 5}), leaf({5})});
  check_grad("layer_norm of a transposed x",
             [](const Tensors& in) { return layer_norm(transpose(in[0], 0, 1), in[1], in[2]); },
             {leaf({6, 4}), leaf({6}), leaf({6})});
  // One column: the centred value is 0, so y is the bias.
  Tensor b1 = random({1});
  check_close(layer_norm(random({4, 1}), random({1}), b1), expand(b1, {4, 1}), 0, 0, "layer_norm of one column");
  // Rows far from zero: the two-pass variance keeps f32 accurate where E[x^2] - E[x]^2 would not
  // (at 1e4 that cancels 1e8-sized terms with ulp 8 against a variance of 1/3). What is left is the
  // float sum of the mean, a few 1e-3 of a standard deviation.
  Tensor off = cast(random({3, 64}, DType::f64, -1, 1) + 1e4, DType::f32);
  Tensor want = along_axis(off, -1, [](const std::vector<double>& row) {
    double m = 0, v = 0;
    for (double e : row) m += e;
    m /= double(row.size());
    for (double e : row) v += (e - m) * (e - m);
    v /= double(row.size());
    std::vector<double> out;
    for (double e : row) out.push_back((e - m) / std::sqrt(v + 1e-5));
    return out;
  });
  check_close(layer_norm(off, Tensor(), Tensor()), want, 0, 1e-2, "layer_norm of rows near 1e4");
  // bf16 gradients follow the f64 ones.
  Tensor xd = random({7, 33}, DType::f64), wd = random({33}, DType::f64), r = random({7, 33}, DType::f64);
  auto ln_x = [&](const Tensor& t) { return layer_norm(t, cast(wd, t.dtype()), Tensor()); };
  check_close(grad_of(ln_x, cast(xd, DType::bf16), cast(r, DType::bf16)), grad_of(ln_x, xd, r), 5e-2, 5e-2,
              "layer_norm bf16 dx");
  // dweight and dbias: the same bits on one thread as on many (fixed chunks, summed in order).
  Tensor xs = random({2500, 24}), ws = random({24}), bs = random({24}), rs = random({2500, 24});
  auto grads = [&] {
    Tensor wl = autograd::requires_grad(clone(ws)), bl = autograd::requires_grad(clone(bs));
    autograd::backward(sum(layer_norm(xs, wl, bl) * rs));
    return concat({autograd::grad(wl), autograd::grad(bl)});
  };
  Tensor many = grads();
  check_exact(on_one_thread(grads), many, "layer_norm dweight, dbias on one thread and many");
  check_error([] { layer_norm(random_int(0, 3, {2, 3}), Tensor(), Tensor()); }, {"[layer_norm]", "i64"});
  check_error([] { layer_norm(random({2, 5}), Tensor(), random({5, 1})); }, {"[layer_norm]", "bias", "(5, 1)"});
}

BOOST_AUTO_TEST_CASE(embedding_dtypes_views_and_weight_gradient) {
  // i32 indices, a 0-d index, a strided weight, bf16 and f64: rows copied exactly.
  for (DType dt : {DType::f64, DType::bf16}) {
    Tensor w = noncontiguous(random({9, 5}, dt));
    Tensor idx = random_int(0, 9, {2, 3, 2}, DType::i32);
    Tensor e = embedding(w, idx);
    BOOST_REQUIRE((e.shape() == Shape{2, 3, 2, 5}));
    std::vector<double> wv = w.to_vector<double>(), iv = idx.to_vector<double>(), ev = e.to_vector<double>();
    for (size_t t = 0; t < iv.size(); ++t)
      for (size_t d = 0; d < 5; ++d) BOOST_CHECK_EQUAL(ev[t * 5 + d], wv[size_t(iv[t]) * 5 + d]);
    Tensor one = embedding(w, from_vector_i64({4}, {}));
    BOOST_REQUIRE((one.shape() == Shape{5}));
    check_exact(one, slice(w, 0, 4, 5).reshape({5}), "embedding of a 0-d index");
  }
  // The weight gradient scatters the cotangent rows onto their indices, repeated indices adding up
  // and unused rows zero; the same bits on one thread as on many.
  Tensor w = random({7, 130}), idx = random_int(0, 5, {40, 3}), r = random({40, 3, 130});
  std::vector<double> iv = idx.to_vector<double>(), rv = r.to_vector<double>(), want(7 * 130, 0.0);
  for (size_t t = 0; t < iv.size(); ++t)
    for (size_t d = 0; d < 130; ++d) want[size_t(iv[t]) * 130 + d] += rv[t * 130 + d];
  auto gw = [&] { return grad_of([&](const Tensor& t) { return embedding(t, idx); }, w, r); };
  Tensor many = gw();
  check_close(many, from_vector(want, {7, 130}, DType::f64), 1e-5, 1e-5, "embedding weight gradient");
  check_exact(on_one_thread(gw), many, "embedding weight gradient on one thread and many");
  check_error([] { embedding(random({6}), from_vector_i64({0}, {1})); }, {"[embedding]", "(6,)"});
  check_error([] { embedding(random({6, 2}), from_vector_i64({0, 1, 6}, {3}, DType::i32)); },
              {"[embedding]", "6", "[0, 6)", "(6, 2)"});
}

BOOST_AUTO_TEST_CASE(cross_entropy_gradient_values_and_shapes) {
  // dlogits = (softmax - onehot) * g / count against a double loop, for g = 3, strided logits,
  // i32 targets and an ignore_index inside [0, C).
  for (DType dt : {DType::f64, DType::f32, DType::bf16}) {
    const int64_t rows = 6, classes = 9, ignore = 2;
    Tensor logits = noncontiguous(random({2, 3, classes}, dt, -5, 5));
    std::vector<int64_t> tv = random_int(0, classes, {rows}).to_vector<int64_t>();
    tv[1] = ignore;
    tv[4] = ignore;
    tv[5] = tv[5] == ignore ? 0 : tv[5];
    Tensor targets = cast(from_vector_i64(tv, {2, 3}), DType::i32);
    std::vector<double> sm = along_axis(logits, -1, [](auto& r) { return softmax_ref(r, false); }).to_vector<double>();
    std::vector<double> want(size_t(rows * classes), 0.0);
    double loss = 0;
    int count = 0;
    for (int64_t i = 0; i < rows; ++i) count += tv[size_t(i)] != ignore;
    for (int64_t i = 0; i < rows; ++i) {
      if (tv[size_t(i)] == ignore) continue;
      loss -= std::log(sm[size_t(i * classes + tv[size_t(i)])]) / count;
      for (int64_t c = 0; c < classes; ++c)
        want[size_t(i * classes + c)] = 3.0 * (sm[size_t(i * classes + c)] - (c == tv[size_t(i)])) / count;
    }
    const double t = dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 1e-5 : 2e-2;
    BOOST_CHECK_CLOSE(cross_entropy(logits, targets, ignore).item<double>(), loss, t * 100);
    Tensor lg = autograd::requires_grad(clone(logits));
    autograd::backward(cross_entropy(lg, targets, ignore) * 3.0);
    check_close(autograd::grad(lg), from_vector(want, {2, 3, classes}, DType::f64), t, t,
                std::string("cross_entropy dlogits ") + dtype_name(dt));
  }
  // Logits of +-1000 in f32: finite loss and gradient, the loser's probability exactly 0.
  Tensor huge = autograd::requires_grad(from_vector({1000, -1000, 3, -1000, 1000, 0}, {2, 3}));
  Tensor l = cross_entropy(huge, from_vector_i64({1, 1}, {2}));
  BOOST_CHECK_CLOSE(l.item<double>(), 1000.0, 1e-4);  // (2000 + 0) / 2
  autograd::backward(l);
  check_close(autograd::grad(huge), from_vector({0.5, -0.5, 0, 0, 0, 0}, {2, 3}), 0, 1e-6,
              "cross_entropy gradient at +-1000");
  // One sample: logits (C,), target 0-d.
  Tensor one = random({4}, DType::f64);
  std::vector<double> ls = along_axis(one, 0, [](auto& r) { return softmax_ref(r, true); }).to_vector<double>();
  BOOST_CHECK_CLOSE(cross_entropy(one, from_vector_i64({3}, {})).item<double>(), -ls[3], 1e-10);
  check_grad("cross_entropy of a transposed view",
             [](const Tensors& in) { return cross_entropy(transpose(in[0], 0, 1), from_vector_i64({0, 4, 1}, {3}), 4); },
             {leaf({5, 3})});
  // All targets ignored: loss 0 (not PyTorch's NaN) and a zero gradient.
  Tensor lz = autograd::requires_grad(random({3, 4}));
  Tensor loss0 = cross_entropy(lz, from_vector_i64({-100, -100, -100}, {3}));
  BOOST_CHECK_EQUAL(loss0.item<double>(), 0.0);
  autograd::backward(loss0);
  check_exact(autograd::grad(lz), zeros({3, 4}), "cross_entropy gradient with every target ignored");
  check_error([] { cross_entropy(random({2, 3}), from_vector_i64({-1, 0}, {2})); },
              {"[cross_entropy]", "-1", "[0, 3)"});
  check_error([] { cross_entropy(random({2, 4, 3}), random_int(0, 3, {4, 2})); },
              {"[cross_entropy]", "(4, 2)", "(2, 4, 3)"});
}

BOOST_AUTO_TEST_CASE(dropout_replay_thread_count_and_gradient_values) {
  const double p = 0.25;
  Tensor x = random({4097}, DType::f32, 1, 2);
  // The mask is the header's dropout_keep(key, i, p) with the key the generator handed out.
  Generator g(77);
  Tensor y = dropout(x, p, &g);
  BOOST_CHECK_EQUAL(g.offset(), uint64_t((4097 + 3) / 4));
  std::vector<double> yv = y.to_vector<double>();
  for (size_t i = 0; i < yv.size(); ++i) {
    BOOST_CHECK_EQUAL(yv[i] != 0, dropout_keep_reference(PhiloxKey{77, 0}, i, float(p)));
    BOOST_CHECK_EQUAL(dropout_keep(PhiloxKey{77, 0}, i, float(p)), dropout_keep_reference(PhiloxKey{77, 0}, i, float(p)));
  }
  // The same on one thread, for a strided input, and as a 2-D tensor with the same values.
  Generator g1(77), g2(77), g3(77);
  check_exact(on_one_thread([&] { return dropout(x, p, &g1); }), y, "dropout on one thread");
  Tensor xs = noncontiguous(x);
  check_exact(dropout(xs, p, &g2), y, "dropout of a strided input");
  check_exact(dropout(reshape(x, {17, 241}), p, &g3).reshape({4097}), y, "dropout of a 2-D input");
  // Another seed, another mask.
  Generator other(78);
  BOOST_CHECK_GT(sum(ne(dropout(x, p, &other), y)).item<double>(), 500.0);
  // The gradient is y / x: the forward's mask and scale, with a random cotangent as well.
  for (DType dt : {DType::f64, DType::bf16}) {
    Tensor xd = cast(x, dt), r = random({4097}, dt);
    Generator ga(3), gb(3);
    Tensor yd = dropout(xd, p, &ga);
    Tensor gx = grad_of([&](const Tensor& t) { return dropout(t, p, &gb); }, xd, r);
    check_close(gx, yd / xd * r, dt == DType::f64 ? 1e-14 : 1e-2, 0, std::string("dropout gradient ") + dtype_name(dt));
    // Kept values are x * 1/(1-p) rounded once from the accumulation type.
    std::vector<double> kept = yd.to_vector<double>(), xv = xd.to_vector<double>();
    for (size_t i = 0; i < kept.size(); i += 7) {
      if (kept[i] == 0) continue;
      const double product = dt == DType::f64 ? xv[i] * (1 / (1 - p)) : double(float(xv[i]) * float(1 / (1 - p)));
      BOOST_CHECK_EQUAL(kept[i], cast(from_vector({product}, {1}, DType::f64), dt).item<double>());
    }
  }
}

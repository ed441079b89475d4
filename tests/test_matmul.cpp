// matmul against a double-precision triple loop: odd shapes, vectors, broadcast batches,
// transposed operands, every float dtype; gradients by gradcheck; errors.
#include <cmath>

#include "tests/support.h"

using namespace sparta;
using namespace sparta::test;

namespace {

// Reference for rank >= 2 operands already broadcast by the caller's shapes.
Tensor reference(const Tensor& a, const Tensor& b) {
  Tensor a2 = a.dim() == 1 ? unsqueeze(a, 0) : a, b2 = b.dim() == 1 ? unsqueeze(b, 1) : b;
  Shape ba(a2.shape().begin(), a2.shape().end() - 2), bb(b2.shape().begin(), b2.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "reference");
  const int64_t m = a2.shape(-2), k = a2.shape(-1), n = b2.shape(-1);
  Shape sa = batch, sb = batch, sc = batch;
  sa.insert(sa.end(), {m, k});
  sb.insert(sb.end(), {k, n});
  sc.insert(sc.end(), {m, n});
  std::vector<double> va = expand(cast(a2, DType::f64), sa).to_vector<double>();
  std::vector<double> vb = expand(cast(b2, DType::f64), sb).to_vector<double>();
  const int64_t nb = numel_of(batch);
  std::vector<double> vc(size_t(nb * m * n), 0.0);
  for (int64_t t = 0; t < nb; ++t)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += va[size_t(t * m * k + i * k + p)] * vb[size_t(t * k * n + p * n + j)];
        vc[size_t(t * m * n + i * n + j)] = s;
      }
  Tensor c = from_vector(vc, sc, DType::f64);
  if (a.dim() == 1) c = squeeze(c, -2);
  if (b.dim() == 1) c = squeeze(c, -1);
  return c;
}

double tol(DType dt, int64_t k) {
  switch (dt) {
    case DType::f64: return 1e-12;
    case DType::f32: return 1e-6 * std::sqrt(double(k)) + 1e-6;
    default: return 1e-2;  // the result is rounded to 8 (bf16) or 11 (f16) bits
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(matches_reference_on_odd_and_broadcast_shapes) {
  std::vector<std::pair<Shape, Shape>> cases = {
      {{7, 13}, {13, 5}}, {{1, 1}, {1, 1}},       {{13}, {13, 4}},         {{6, 13}, {13}},
      {{9}, {9}},         {{3, 7, 13}, {13, 5}},  {{2, 1, 3, 4}, {5, 4, 6}}, {{4, 3}, {2, 3, 9}},
      {{65, 130}, {130, 33}}, {{2, 3, 0}, {0, 4}}};
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
    for (auto& [sa, sb] : cases) {
      Tensor a = random(sa, dt), b = random(sb, dt);
      std::string what = std::string("matmul ") + dtype_name(dt) + " " + shape_str(sa) + " @ " + shape_str(sb);
      Tensor c = matmul(a, b);
      BOOST_CHECK(c.dtype() == dt);
      // The reference uses the same (rounded) inputs, so only accumulation and output rounding differ.
      double t = tol(dt, sa.back());
      check_close(c, reference(a, b), t, t, what);
    }
  }
}

BOOST_AUTO_TEST_CASE(strided_and_transposed_operands) {
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    Tensor a = random({9, 11}, dt), b = random({11, 6}, dt);
    double t = tol(dt, 11);
    check_close(matmul(noncontiguous(a, true), b), reference(a, b), t, t, "transposed a");
    check_close(matmul(a, noncontiguous(b, true)), reference(a, b), t, t, "transposed b");
    check_close(matmul(noncontiguous(a), noncontiguous(b)), reference(a, b), t, t, "stride-2 columns");
    Tensor batched = random({4, 11, 9}, dt);
    Tensor bt = transpose(batched, 1, 2);  // (4, 9, 11) with transposed matrices
    check_close(matmul(bt, b), reference(bt, b), t, t, "batched transposed");
    Tensor sliced = slice(random({8, 9, 11}, dt), 0, 1, 8, 2);  // every other batch
    check_close(matmul(sliced, b), reference(sliced, b), t, t, "strided batch");
  }
}

BOOST_AUTO_TEST_CASE(gradients) {
  check_grad("2-d", [](const Tensors& in) { return matmul(in[0], in[1]); }, {leaf({3, 5}), leaf({5, 4})});
  check_grad("batched broadcast", [](const Tensors& in) { return matmul(in[0], in[1]); },
             {leaf({2, 1, 3, 4}), leaf({3, 4, 2})});
  check_grad("vector @ matrix", [](const Tensors& in) { return matmul(in[0], in[1]); }, {leaf({4}), leaf({4, 3})});
  check_grad("matrix @ vector", [](const Tensors& in) { return matmul(in[0], in[1]); }, {leaf({3, 4}), leaf({4})});
  check_grad("dot", [](const Tensors& in) { return matmul(in[0], in[1]); }, {leaf({5}), leaf({5})});
  check_grad("transposed", [](const Tensors& in) { return matmul(transpose(in[0], 0, 1), in[1]); },
             {leaf({4, 3}), leaf({4, 2})});
}

BOOST_AUTO_TEST_CASE(errors_name_the_shapes) {
  check_error([] { matmul(random({2, 3}), random({4, 5})); }, {"[matmul]", "(2, 3)", "(4, 5)", "inner"});
  check_error([] { matmul(random({2, 3, 4}), random({3, 4, 5})); }, {"[matmul]", "(2, 3, 4)", "(3, 4, 5)", "batch"});
  check_error([] { matmul(random({2, 3}), random({3, 4}, DType::f64)); }, {"[matmul]", "f32", "f64"});
  check_error([] { matmul(random_int(0, 3, {2, 2}), random_int(0, 3, {2, 2})); }, {"[matmul]", "i64"});
  check_error([] { matmul(scalar(1.0), random({3})); }, {"[matmul]", "()"});
}

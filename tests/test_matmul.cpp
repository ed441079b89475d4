// matmul against a double-precision triple loop: odd shapes, vectors, broadcast batches,
// transposed, sliced and expanded operands, every float dtype; gradients by gradcheck; the
// primitive cache under concurrent use; errors.
#include <cmath>
#include <thread>

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
    // Rows padded to a wider buffer (the leading dimension is not the row length).
    Tensor padded = slice(random({9, 20}, dt), 1, 2, 13);
    check_close(matmul(padded, b), reference(padded, b), t, t, "padded rows");
    // Stride 0 inside a matrix: oneDNN's fast kernels cannot read it, so it is made dense.
    Tensor col = expand(random({9, 1}, dt), {9, 11});
    check_close(matmul(col, b), reference(col, b), t, t, "expanded column");
    Tensor row = expand(random({1, 6}, dt), {11, 6});
    check_close(matmul(a, row), reference(a, row), t, t, "expanded row");
    // A batch expanded by the caller (stride 0) is a broadcast batch.
    Tensor eb = expand(random({1, 11, 6}, dt), {3, 11, 6});
    Tensor a3 = random({3, 9, 11}, dt);
    check_close(matmul(a3, eb), reference(a3, eb), t, t, "expanded batch");
    // A single row with a stride between its elements.
    Tensor strided_row = noncontiguous(random({1, 11}, dt));
    check_close(matmul(strided_row, b), reference(strided_row, b), t, t, "strided single row");
    Tensor strided_vec = slice(random({22}, dt), 0, 0, 22, 2);
    check_close(matmul(a, strided_vec), reference(a, strided_vec), t, t, "strided vector");
  }
}

BOOST_AUTO_TEST_CASE(broadcast_batches_of_every_rank) {
  // Broadcast dims go to oneDNN as size-1 dims of each operand's own descriptor; batches it cannot
  // take that way are expanded and made dense, which must give the same values.
  std::vector<std::pair<Shape, Shape>> cases = {{{2, 1, 3, 4, 5}, {1, 4, 3, 5, 6}},
                                                {{2, 3, 4, 5}, {5, 6}},
                                                {{5}, {2, 3, 5, 4}},
                                                {{2, 1, 1, 3, 5}, {4, 1, 5, 2}},
                                                {{1, 1, 3, 5}, {1, 5, 2}},
                                                {{3, 1, 2, 1, 1, 2, 3}, {2, 1, 2, 2, 3, 1}},
                                                // 11 batch dims that cannot merge: past oneDNN's
                                                // 12 dims, so the dense fallback runs.
                                                {{2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 3, 4},
                                                 {1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 4, 2}}};
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    for (auto& [sa, sb] : cases) {
      Tensor a = random(sa, dt), b = random(sb, dt);
      double t = tol(dt, sa.back());
      check_close(matmul(a, b), reference(a, b), t, t,
                  std::string(dtype_name(dt)) + " " + shape_str(sa) + " @ " + shape_str(sb));
      // The same with a permuted (non-mergeable) batch and transposed matrices.
      if (a.dim() >= 4) {
        Tensor ap = contiguous(transpose(transpose(a, 0, 1), -1, -2)).transpose(-1, -2).transpose(0, 1);
        check_close(matmul(ap, b), reference(a, b), t, t, "permuted " + shape_str(sa) + " @ " + shape_str(sb));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(many_shapes_from_many_threads) {
  // More distinct shapes than the primitive cache holds, from several threads at once; each
  // thread checks its own results against references computed beforehand.
  constexpr int kThreads = 4, kShapes = 40;
  std::vector<Tensor> as, bs, want;
  for (int i = 0; i < kThreads * kShapes; ++i) {
    const int64_t m = 1 + i % 7, k = 1 + (i * 5) % 11, n = 1 + i % 13;
    as.push_back(random({m, k}));
    bs.push_back(random({k, n}));
    want.push_back(reference(as.back(), bs.back()));
  }
  std::vector<double> worst(size_t(kThreads), 0.0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 2; ++rep) {
        for (int j = t; j < kThreads * kShapes; j += kThreads) {
          std::vector<double> got = matmul(as[size_t(j)], bs[size_t(j)]).to_vector<double>();
          std::vector<double> w = want[size_t(j)].to_vector<double>();
          for (size_t e = 0; e < got.size(); ++e) worst[size_t(t)] = std::max(worst[size_t(t)], std::abs(got[e] - w[e]));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) BOOST_CHECK_MESSAGE(worst[size_t(t)] < 1e-5, "thread " << t << " error " << worst[size_t(t)]);
}

BOOST_AUTO_TEST_CASE(gradients) {
  check_grad("2-d", [](const Tensors& in) { return matmul(in[0], in[1]); }, {leaf({3, 5}), leaf({5, 4})});
  check_grad("batched broadcast", [](const Tensors& in) { return matmul(in[0], in[1]); },
             {leaf({2, 1, 3, 4}), leaf({3, 4, 2})});
  check_grad("vector @ matrix", [](const Tensors& in) { return matmul(in[0], in[1]); }, {leaf({4}), leaf({4, 3})});
  check_grad("matrix @ vector", [](const Tensors& in) { return matmul(in[0], in[1]); }, {leaf({3, 4}), leaf({4})});
  check_grad("dot", [](const Tensors& in) { return matmul(in[0], in[1]); }, {leaf({5}), leaf({5})});
  check_grad("batched @ shared matrix", [](const Tensors& in) { return matmul(in[0], in[1]); },
             {leaf({2, 3, 4}), leaf({4, 2})});
  check_grad("vector @ batched", [](const Tensors& in) { return matmul(in[0], in[1]); }, {leaf({3}), leaf({2, 3, 2})});
  check_grad("transposed", [](const Tensors& in) { return matmul(transpose(in[0], 0, 1), in[1]); },
             {leaf({4, 3}), leaf({4, 2})});
}

BOOST_AUTO_TEST_CASE(errors_name_the_shapes) {
  check_error([] { matmul(random({2, 3}), random({4, 5})); }, {"[matmul]", "(2, 3)", "(4, 5)", "inner"});
  check_error([] { matmul(random({2, 3, 4}), random({3, 4, 5})); }, {"[matmul]", "(2, 3, 4)", "(3, 4, 5)", "batch"});
  check_error([] { matmul(random({2, 3}), random({3, 4}, DType::f64)); }, {"[matmul]", "f32", "f64"});
  check_error([] { matmul(random_int(0, 3, {2, 2}), random_int(0, 3, {2, 2})); }, {"[matmul]", "i64", "(2, 2)"});
  check_error([] { matmul(scalar(1.0), random({3})); }, {"[matmul]", "()", "(3,)"});
  check_error([] { matmul(random({3}), random({4})); }, {"[matmul]", "(3,)", "(4,)", "inner"});
}

BOOST_AUTO_TEST_CASE(both_operands_expanded_over_the_batch) {
  // Stride-0 batch dims in both operands: (1, 7, 13) and (1, 13, 5) viewed as batches of 4.
  Tensor a = random({1, 7, 13}), b = random({1, 13, 5});
  Tensor got = matmul(expand(a, {4, 7, 13}), expand(b, {4, 13, 5}));
  Tensor one = matmul(a, b);
  for (int64_t i = 0; i < 4; ++i) check_close(got.slice(0, i, i + 1), one, 1e-6, 1e-6, "batch entry");
}

// matmul on CUDA (cuBLASLt) against the CPU backend on the same inputs: every float dtype, odd
// sizes, vectors, transposed and sliced views (read in place: checked through the device's
// memory counters), batched, broadcast and expanded batches, misaligned views, a large GPT-2
// sized product, and gradients through autograd.
//
// The f32 tolerances assume SPARTA_ALLOW_TF32 is unset (plain FP32 on the GPU).
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "tests/cuda/parity.h"

using namespace sparta;
using namespace sparta::test;

namespace {

Tensor dev(const Tensor& x) { return to_device(x, Device::cuda()); }

// A device tensor holding x's values whose last two axes are a transposed view (unit stride on rows).
Tensor dev_transposed(const Tensor& x) { return dev(contiguous(transpose(x, -1, -2))).transpose(-1, -2); }

bool tf32() {
  const char* v = std::getenv("SPARTA_ALLOW_TF32");
  return v != nullptr && v[0] == '1';
}

// Both backends round the same inputs; only the order of accumulation (and the final rounding
// of half results) differs.
double tol(DType dt, int64_t k) {
  switch (dt) {
    case DType::f64: return 1e-11;
    case DType::f32: return tf32() ? 5e-3 : 2e-6 * std::sqrt(double(k) + 1) + 1e-6;
    default: return 1.5e-2;
  }
}

std::string name(const char* what, DType dt, const Shape& a, const Shape& b) {
  return std::string(what) + " " + dtype_name(dt) + " " + shape_str(a) + " @ " + shape_str(b);
}

// matmul of device operands against matmul of the same values on the CPU.
void check_against_cpu(const Tensor& da, const Tensor& db, const Tensor& ca, const Tensor& cb,
                       const std::string& what) {
  Tensor got = matmul(da, db);
  BOOST_REQUIRE(got.device() == Device::cuda());
  BOOST_CHECK(got.dtype() == ca.dtype());
  Tensor want = matmul(ca, cb);
  const double t = tol(ca.dtype(), ca.shape(-1));
  check_close(host(got), want, t, t, what);
}

void check_shapes(const Shape& sa, const Shape& sb, DType dt, const char* what = "matmul") {
  Tensor a = random(sa, dt), b = random(sb, dt);
  check_against_cpu(dev(a), dev(b), a, b, name(what, dt, sa, sb));
}

const DType kFloats[] = {DType::f64, DType::f32, DType::bf16, DType::f16};

}  // namespace

BOOST_AUTO_TEST_CASE(odd_sizes_every_dtype, SPARTA_NEEDS_GPU) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{17, 33}, {33, 65}}, {{1, 1}, {1, 1}},     {{7, 13}, {13, 5}}, {{65, 130}, {130, 33}},
      {{1, 129}, {129, 1}}, {{257, 3}, {3, 255}}, {{3, 1}, {1, 4}},   {{2, 3, 0}, {0, 4}},
      {{0, 5}, {5, 3}},     {{4, 5}, {5, 0}}};
  for (DType dt : kFloats) {
    for (const auto& [sa, sb] : cases) check_shapes(sa, sb, dt);
  }
}

BOOST_AUTO_TEST_CASE(vector_operands, SPARTA_NEEDS_GPU) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{13}, {13, 4}}, {{6, 13}, {13}}, {{9}, {9}}, {{3, 7, 13}, {13}}, {{13}, {2, 13, 5}}, {{1}, {1, 7}}};
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    for (const auto& [sa, sb] : cases) check_shapes(sa, sb, dt, "vector");
  }
}

BOOST_AUTO_TEST_CASE(transposed_and_strided_views, SPARTA_NEEDS_GPU) {
  for (DType dt : kFloats) {
    Tensor a = random({17, 33}, dt), b = random({33, 65}, dt);
    check_against_cpu(dev_transposed(a), dev(b), a, b, name("transposed a", dt, a.shape(), b.shape()));
    check_against_cpu(dev(a), dev_transposed(b), a, b, name("transposed b", dt, a.shape(), b.shape()));
    check_against_cpu(dev_transposed(a), dev_transposed(b), a, b, name("both transposed", dt, a.shape(), b.shape()));
    // Stride-2 columns: no unit stride inside the matrix, so the kernel makes them dense.
    Tensor wa = random({17, 66}, dt), wb = random({33, 130}, dt);
    check_against_cpu(slice(dev(wa), -1, 0, 66, 2), slice(dev(wb), -1, 0, 130, 2), slice(wa, -1, 0, 66, 2),
                      slice(wb, -1, 0, 130, 2), name("stride-2 columns", dt, a.shape(), b.shape()));
    // Rows of a wider matrix: leading dimension larger than the row.
    check_against_cpu(slice(dev(wa), -1, 3, 36), dev(b), slice(wa, -1, 3, 36), b,
                      name("row-sliced a", dt, a.shape(), b.shape()));
    // Misaligned start (offset of one row of 33 elements, or one element): cuBLASLt must be told.
    Tensor big = random({18, 33}, dt);
    check_against_cpu(slice(dev(big), 0, 1, 18), dev(b), slice(big, 0, 1, 18), b,
                      name("offset by a row", dt, a.shape(), b.shape()));
    Tensor flat = random({1 + 17 * 33}, dt);
    Tensor dflat = slice(dev(flat), 0, 1, 1 + 17 * 33).reshape({17, 33});
    check_against_cpu(dflat, dev(b), slice(flat, 0, 1, 1 + 17 * 33).reshape({17, 33}), b,
                      name("offset by an element", dt, a.shape(), b.shape()));
    // q @ k^T as attention does it: batched, b a transposed view of a (B, H, N, D) tensor.
    Tensor q = random({2, 3, 17, 8}, dt), k = random({2, 3, 19, 8}, dt);
    check_against_cpu(dev(q), transpose(dev(k), -1, -2), q, transpose(k, -1, -2),
                      name("q @ k^T", dt, q.shape(), {2, 3, 8, 19}));
  }
}

BOOST_AUTO_TEST_CASE(batched_and_broadcast_batches, SPARTA_NEEDS_GPU) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 7, 13}, {13, 5}},      // shared weight: folded into one (21 x 13) product
      {{6, 1, 13}, {13, 5}},      // one row per batch entry
      {{4, 3}, {2, 3, 9}},        // a broadcast over b's batch (batch stride 0)
      {{4, 7, 13}, {4, 13, 5}},   // plain strided batch
      {{2, 1, 3, 4}, {5, 4, 6}},  // two unmergeable batch dims: made dense
      {{5, 1, 7, 3}, {1, 3, 3, 9}},
      {{2, 3, 17, 33}, {2, 3, 33, 65}},  // two batch dims that merge into one
      {{1, 7, 13}, {3, 13, 5}}};
  for (DType dt : kFloats) {
    for (const auto& [sa, sb] : cases) check_shapes(sa, sb, dt, "batched");
    // Expanded views (stride 0 in a batch dim) and a sliced batch (every other entry).
    Tensor a1 = random({1, 7, 13}, dt), b = random({4, 13, 5}, dt);
    check_against_cpu(expand(dev(a1), {4, 7, 13}), dev(b), expand(a1, {4, 7, 13}), b,
                      name("expanded a", dt, {4, 7, 13}, b.shape()));
    Tensor b1 = random({1, 13, 5}, dt), a = random({4, 7, 13}, dt);
    check_against_cpu(dev(a), expand(dev(b1), {4, 13, 5}), a, expand(b1, {4, 13, 5}),
                      name("expanded b", dt, a.shape(), {4, 13, 5}));
    check_against_cpu(expand(dev(a1), {4, 7, 13}), expand(dev(b1), {4, 13, 5}), expand(a1, {4, 7, 13}),
                      expand(b1, {4, 13, 5}), name("both expanded", dt, {4, 7, 13}, {4, 13, 5}));
    Tensor s = random({8, 7, 13}, dt);
    check_against_cpu(slice(dev(s), 0, 1, 8, 2), dev(b), slice(s, 0, 1, 8, 2), b,
                      name("sliced batch", dt, {4, 7, 13}, b.shape()));
    // Batched transposed matrices.
    Tensor bt = random({4, 5, 13}, dt);
    check_against_cpu(dev(a), transpose(dev(bt), 1, 2), a, transpose(bt, 1, 2),
                      name("batched transposed b", dt, a.shape(), {4, 13, 5}));
    Tensor at = random({4, 13, 7}, dt);
    check_against_cpu(transpose(dev(at), 1, 2), dev(b1), transpose(at, 1, 2), b1,
                      name("batched transposed a, shared b", dt, {4, 7, 13}, b1.shape()));
  }
}

// Views that cuBLASLt reads in place allocate nothing but the result.
BOOST_AUTO_TEST_CASE(views_are_not_copied, SPARTA_NEEDS_GPU) {
  Tensor a = dev_transposed(random({512, 256})), b = dev(random({256, 128}));
  Tensor w = dev(random({8, 64, 256})), shared = dev(random({256, 96}));
  Tensor bb = expand(dev(random({1, 256, 96})), {8, 256, 96});
  auto check = [](const Tensor& x, const Tensor& y, const char* what) {
    matmul(x, y);  // the plan and the handle's workspace exist from here on
    cuda::synchronize(0);
    reset_peak_memory(Device::cuda());
    const int64_t before = memory_stats(Device::cuda()).current_bytes;
    Tensor c = matmul(x, y);
    BOOST_CHECK_MESSAGE(memory_stats(Device::cuda()).peak_bytes - before <= int64_t(c.nbytes()),
                        what << ": allocated " << memory_stats(Device::cuda()).peak_bytes - before
                             << " bytes for a result of " << c.nbytes());
  };
  check(a, b, "transposed a");
  check(dev(random({128, 256})), dev_transposed(random({256, 64})), "transposed b");
  check(w, shared, "shared weight");
  check(w, bb, "expanded batch");
  check(transpose(w, 1, 2).contiguous().transpose(1, 2), shared, "batched transposed a");
}

BOOST_AUTO_TEST_CASE(large_gpt2_shape, SPARTA_NEEDS_GPU) {
  for (DType dt : {DType::f32, DType::bf16}) {
    Tensor a = random({1024, 768}, dt), b = random({768, 3072}, dt);
    check_against_cpu(dev(a), dev(b), a, b, name("large", dt, a.shape(), b.shape()));
    // The backward shapes of a linear layer: g @ W^T and x^T @ g.
    Tensor g = random({1024, 3072}, dt);
    check_against_cpu(dev(g), transpose(dev(b), 0, 1), g, transpose(b, 0, 1),
                      name("large dX", dt, g.shape(), {3072, 768}));
    check_against_cpu(transpose(dev(a), 0, 1), dev(g), transpose(a, 0, 1), g,
                      name("large dW", dt, {768, 1024}, g.shape()));
  }
}

BOOST_AUTO_TEST_CASE(repeated_calls_reuse_the_plan, SPARTA_NEEDS_GPU) {
  // Same shapes, fresh buffers (different addresses): the cached plan must still be right.
  for (int i = 0; i < 3; ++i) check_shapes({3, 33, 17}, {17, 9}, DType::f32, "repeat");
}

namespace {

// The same computation on both backends; compares the output and the gradients of a and b.
void check_grads(const Shape& sa, const Shape& sb, DType dt) {
  const std::string what = name("grad", dt, sa, sb);
  Tensor a0 = random(sa, dt), b0 = random(sb, dt);
  Tensor ca = autograd::requires_grad(clone(a0)), cb = autograd::requires_grad(clone(b0));
  Tensor ga = autograd::requires_grad(dev(a0)), gb = autograd::requires_grad(dev(b0));
  Tensor cc = matmul(ca, cb), gc = matmul(ga, gb);
  Tensor seed = random(cc.shape(), dt);
  autograd::backward(cc, seed);
  autograd::backward(gc, dev(seed));
  int64_t k = 1;  // the longest sum any of the three products takes
  for (int64_t d : sa) k = std::max(k, d);
  for (int64_t d : sb) k = std::max(k, d);
  const double t = tol(dt, k);
  check_close(host(gc), cc, t, t, what + " (value)");
  BOOST_REQUIRE(autograd::grad(ga).defined() && autograd::grad(gb).defined());
  BOOST_CHECK(autograd::grad(ga).device() == Device::cuda());
  check_close(host(autograd::grad(ga)), autograd::grad(ca), t, t, what + " (da)");
  check_close(host(autograd::grad(gb)), autograd::grad(cb), t, t, what + " (db)");
}

}  // namespace

BOOST_AUTO_TEST_CASE(gradients_match_cpu, SPARTA_NEEDS_GPU) {
  for (DType dt : {DType::f32, DType::f64}) {
    check_grads({5, 7}, {7, 3}, dt);
    check_grads({17, 33}, {33, 65}, dt);
    check_grads({3, 5, 7}, {3, 7, 4}, dt);
    check_grads({7}, {7, 4}, dt);
    check_grads({5, 7}, {7}, dt);
  }
  check_grads({17, 33}, {33, 65}, DType::bf16);
}

// A broadcast operand's gradient sums over the batch (sum_to): needs the CUDA reduction kernels.
BOOST_AUTO_TEST_CASE(gradients_of_broadcast_batches, SPARTA_NEEDS_GPU) {
  for (DType dt : {DType::f32, DType::f64}) {
    check_grads({3, 5, 7}, {7, 4}, dt);
    check_grads({5, 7}, {2, 7, 4}, dt);
    check_grads({2, 1, 5, 7}, {3, 7, 4}, dt);
  }
}

BOOST_AUTO_TEST_CASE(device_mismatch_is_a_clear_error, SPARTA_NEEDS_GPU) {
  check_error([] { matmul(random({3, 4}), dev(random({4, 5}))); }, {"[matmul]", "different devices"});
}

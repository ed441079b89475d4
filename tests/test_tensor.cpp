// Tensors: creation, dtypes and casts, views sharing storage, contiguity, the Philox generator,
// and the errors for impossible requests.
#include <cmath>
#include <cstring>

#include "tests/support.h"

using namespace sparta;
using namespace sparta::test;

BOOST_AUTO_TEST_CASE(creation_values_and_dtypes) {
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8}) {
    Tensor t = full({3, 5}, 7, dt);
    BOOST_CHECK(t.dtype() == dt);
    BOOST_CHECK_EQUAL(t.numel(), 15);
    for (double v : t.to_vector<double>()) BOOST_CHECK_EQUAL(v, 7.0);
  }
  BOOST_CHECK_EQUAL(zeros({2}).to_vector<double>()[1], 0.0);
  BOOST_CHECK_EQUAL(ones({2}, DType::boolean).to_vector<double>()[0], 1.0);
  BOOST_CHECK_EQUAL(scalar(2.5).item<double>(), 2.5);
  BOOST_CHECK_EQUAL(scalar(2.5).dim(), 0);
  std::vector<double> r = arange(2, 11, 3).to_vector<double>();
  BOOST_CHECK((r == std::vector<double>{2, 5, 8}));
  BOOST_CHECK_EQUAL(arange(0, 1, 0.25, DType::f32).numel(), 4);
  BOOST_CHECK_EQUAL(arange(5, 0, -1).to_vector<double>()[4], 1.0);

  float buf[6] = {1, 2, 3, 4, 5, 6};
  Tensor b = from_blob(buf, {2, 3}, DType::f32);
  buf[4] = 50;  // no copy: the tensor sees the caller's memory
  BOOST_CHECK_EQUAL(b.to_vector<double>()[4], 50.0);
  check_error([] { from_vector({1, 2, 3}, {2, 2}); }, {"[from_vector]", "(2, 2)"});
}

BOOST_AUTO_TEST_CASE(casts_round_to_nearest_even) {
  Tensor x = random({1000}, DType::f64, -100, 100);
  std::vector<double> v = x.to_vector<double>();
  std::vector<double> f32 = cast(x, DType::f32).to_vector<double>();
  std::vector<double> b16 = cast(x, DType::bf16).to_vector<double>();
  std::vector<double> h16 = cast(x, DType::f16).to_vector<double>();
  std::vector<double> i32 = cast(x, DType::i32).to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) {
    BOOST_CHECK_EQUAL(f32[i], double(float(v[i])));
    // bf16 has 8 significant bits, f16 11: the rounding error is at most half an ulp.
    BOOST_CHECK_LE(std::abs(b16[i] - v[i]), std::ldexp(std::abs(v[i]), -8) + 1e-30);
    BOOST_CHECK_LE(std::abs(h16[i] - v[i]), std::ldexp(std::abs(v[i]), -11) + std::ldexp(1.0, -25));
    BOOST_CHECK_EQUAL(i32[i], std::trunc(v[i]));  // C++ conversion truncates toward zero
  }
  // Exact ties: 1 + 2^-8 lies halfway between two bf16 values and rounds to the even one (1.0).
  BOOST_CHECK_EQUAL(cast(scalar(1.0 + std::ldexp(1.0, -8), DType::f64), DType::bf16).item<double>(), 1.0);
  BOOST_CHECK_EQUAL(cast(scalar(1.0 + 3 * std::ldexp(1.0, -8), DType::f64), DType::bf16).item<double>(),
                    1.0 + std::ldexp(1.0, -6));
  BOOST_CHECK(std::isnan(cast(scalar(NAN), DType::bf16).item<double>()));
  BOOST_CHECK(std::isinf(cast(scalar(1e6), DType::f16).item<double>()));  // beyond f16's range
  BOOST_CHECK_EQUAL(cast(scalar(-3.0), DType::boolean).item<double>(), 1.0);
}

BOOST_AUTO_TEST_CASE(views_share_storage) {
  Tensor x = random({4, 6}, DType::f32);
  std::vector<double> v = x.to_vector<double>();
  Tensor t = transpose(x, 0, 1);
  BOOST_CHECK(t.storage() == x.storage());
  BOOST_CHECK(!t.is_contiguous());
  BOOST_CHECK((t.shape() == Shape{6, 4}));
  BOOST_CHECK_EQUAL(t.to_vector<double>()[1 * 4 + 2], v[2 * 6 + 1]);

  Tensor s = slice(x, 1, 1, 6, 2);  // columns 1, 3, 5
  BOOST_CHECK((s.shape() == Shape{4, 3}));
  BOOST_CHECK_EQUAL(s.to_vector<double>()[3 * 3 + 2], v[3 * 6 + 5]);
  fill_(s, 9);  // writes through to x
  BOOST_CHECK_EQUAL(x.to_vector<double>()[0 * 6 + 3], 9.0);
  BOOST_CHECK_EQUAL(x.to_vector<double>()[0 * 6 + 2], v[2]);

  Tensor r = reshape(x, {2, -1, 3});
  BOOST_CHECK((r.shape() == Shape{2, 4, 3}));
  BOOST_CHECK(r.storage() == x.storage());
  Tensor p = permute(r, {2, 0, 1});
  BOOST_CHECK((p.shape() == Shape{3, 2, 4}));
  Tensor c = contiguous(p);
  BOOST_CHECK(c.is_contiguous());
  BOOST_CHECK(c.storage() != x.storage());
  check_exact(c, p, "contiguous copy keeps values");
  BOOST_CHECK(contiguous(x).storage() == x.storage());  // already contiguous: no copy

  Tensor u = unsqueeze(x, 1);
  BOOST_CHECK((u.shape() == Shape{4, 1, 6}));
  BOOST_CHECK((squeeze(u, 1).shape() == Shape{4, 6}));
  Tensor e = expand(unsqueeze(random({5}), 0), {3, 5});
  BOOST_CHECK_EQUAL(e.strides()[0], 0);
  BOOST_CHECK((flatten(random({2, 3, 4}), 1).shape() == Shape{2, 12}));

  // A transposed tensor cannot be viewed flat; reshape copies instead.
  check_error([&] { view(t, {24}); }, {"[view]", "(6, 4)"});
  Tensor flat = reshape(t, {24});
  BOOST_CHECK(flat.storage() != x.storage());
  check_exact(reshape(flat, {6, 4}), t, "reshape of a transposed tensor");
}

BOOST_AUTO_TEST_CASE(view_errors_name_the_shapes) {
  Tensor x = random({2, 3});
  check_error([&] { reshape(x, {4, 2}); }, {"[reshape]", "(4, 2)", "6"});
  check_error([&] { reshape(x, {-1, -1}); }, {"only one dimension can be -1"});
  check_error([&] { permute(x, {0, 0}); }, {"[permute]", "repeated"});
  check_error([&] { permute(x, {0}); }, {"[permute]", "(2, 3)"});
  check_error([&] { squeeze(x, 0); }, {"[squeeze]", "(2, 3)"});
  check_error([&] { expand(x, {2, 4}); }, {"[expand]", "(2, 3)", "(2, 4)"});
  check_error([&] { transpose(x, 0, 5); }, {"axis", "5"});
  check_error([&] { slice(x, 1, 0, 3, 0); }, {"[slice]", "step"});
  check_error([&] { x.item<float>(); }, {"item"});
  check_error([&] { x.data<double>(); }, {"[data]", "f32", "f64"});
}

BOOST_AUTO_TEST_CASE(slices_clamp_like_python) {
  Tensor x = arange(0, 10, 1, DType::f32);
  BOOST_CHECK((slice(x, 0, -3, 10).to_vector<double>() == std::vector<double>{7, 8, 9}));
  BOOST_CHECK((slice(x, 0, 8, 100).to_vector<double>() == std::vector<double>{8, 9}));
  BOOST_CHECK_EQUAL(slice(x, 0, 6, 4).numel(), 0);
}

BOOST_AUTO_TEST_CASE(philox_is_deterministic_and_well_distributed) {
  Generator a(42), b(42), c(43);
  Tensor ua = rand({100000}, DType::f32, &a);
  Tensor ub = rand({100000}, DType::f32, &b);
  Tensor uc = rand({100000}, DType::f32, &c);
  check_exact(ua, ub, "same seed, same draws");
  BOOST_CHECK_GT(max(abs(ua - uc)).item<double>(), 0.5);
  // The next draw continues the stream instead of repeating it.
  Tensor next = rand({100000}, DType::f32, &a);
  BOOST_CHECK_GT(max(abs(ua - next)).item<double>(), 0.5);
  BOOST_CHECK_GE(min(ua).item<double>(), 0.0);
  BOOST_CHECK_LT(max(ua).item<double>(), 1.0);
  // Mean 1/2 and variance 1/12 within ~6 standard errors.
  BOOST_CHECK_SMALL(mean(ua).item<double>() - 0.5, 6 * std::sqrt(1.0 / 12 / 1e5));
  BOOST_CHECK_SMALL(var(ua).item<double>() - 1.0 / 12, 0.002);
  Tensor n = randn({200000}, DType::f64, &a);
  BOOST_CHECK_SMALL(mean(n).item<double>(), 6 / std::sqrt(2e5));
  BOOST_CHECK_SMALL(var(n).item<double>() - 1, 0.02);
  Tensor i = randint(-3, 4, {10000}, DType::i64, &a);
  BOOST_CHECK_EQUAL(min(i).item<double>(), -3.0);
  BOOST_CHECK_EQUAL(max(i).item<double>(), 3.0);
  // The generator's state can be saved and restored (checkpoints need it).
  Generator d(7);
  rand({10}, DType::f32, &d);
  uint64_t off = d.offset();
  Tensor first = rand({33}, DType::f32, &d);
  d.set_state(7, off);
  check_exact(rand({33}, DType::f32, &d), first, "replayed from a saved offset");
}

BOOST_AUTO_TEST_CASE(memory_is_accounted) {
  reset_peak_memory(Device::cpu());
  MemoryStats before = memory_stats(Device::cpu());
  {
    Tensor big = empty({1 << 20}, DType::f32);
    MemoryStats during = memory_stats(Device::cpu());
    BOOST_CHECK_GE(during.current_bytes - before.current_bytes, int64_t(4 << 20));
    BOOST_CHECK_GE(during.peak_bytes, during.current_bytes);
  }
  BOOST_CHECK_EQUAL(memory_stats(Device::cpu()).current_bytes, before.current_bytes);
}

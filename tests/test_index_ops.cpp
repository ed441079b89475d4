// Joining and indexing ops (concat, stack, split, chunk, index_select, index_add, gather,
// scatter_add) against double-precision loops over multi-indices, their gradients in f64, views
// that share storage, determinism across thread counts, and the errors.
#include <tbb/global_control.h>

#include "tests/support.h"

using namespace sparta;
using namespace sparta::test;

namespace {

using Coord = std::vector<int64_t>;

Coord unravel(int64_t i, const Shape& s) {
  Coord c(s.size());
  for (int d = int(s.size()) - 1; d >= 0; --d) {
    c[size_t(d)] = i % s[size_t(d)];
    i /= s[size_t(d)];
  }
  return c;
}

int64_t ravel(const Coord& c, const Shape& s) {
  int64_t i = 0;
  for (size_t d = 0; d < s.size(); ++d) i = i * s[d] + c[d];
  return i;
}

int pos_axis(int axis, int rank) { return axis < 0 ? axis + rank : axis; }

Tensor as_f64(const std::vector<double>& v, const Shape& s) { return from_vector(v, s, DType::f64); }

Tensor ref_concat(const Tensors& xs, int axis) {
  int a = pos_axis(axis, xs[0].dim());
  Shape shape = xs[0].shape();
  shape[size_t(a)] = 0;
  std::vector<std::vector<double>> vals;
  for (const Tensor& x : xs) {
    shape[size_t(a)] += x.shape()[size_t(a)];
    vals.push_back(x.to_vector<double>());
  }
  std::vector<double> out(size_t(numel_of(shape)));
  for (int64_t i = 0; i < int64_t(out.size()); ++i) {
    Coord c = unravel(i, shape);
    size_t j = 0;
    while (c[size_t(a)] >= xs[j].shape()[size_t(a)]) c[size_t(a)] -= xs[j++].shape()[size_t(a)];
    out[size_t(i)] = vals[j][size_t(ravel(c, xs[j].shape()))];
  }
  return as_f64(out, shape);
}

Tensor ref_index_select(const Tensor& x, int axis, const Tensor& index) {
  int a = pos_axis(axis, x.dim());
  std::vector<double> xv = x.to_vector<double>();
  std::vector<int64_t> iv = index.to_vector<int64_t>();
  Shape shape = x.shape();
  shape[size_t(a)] = int64_t(iv.size());
  std::vector<double> out(size_t(numel_of(shape)));
  for (int64_t i = 0; i < int64_t(out.size()); ++i) {
    Coord c = unravel(i, shape);
    c[size_t(a)] = iv[size_t(c[size_t(a)])];
    out[size_t(i)] = xv[size_t(ravel(c, x.shape()))];
  }
  return as_f64(out, shape);
}

Tensor ref_gather(const Tensor& x, int axis, const Tensor& index) {
  int a = pos_axis(axis, x.dim());
  std::vector<double> xv = x.to_vector<double>();
  std::vector<int64_t> iv = index.to_vector<int64_t>();
  std::vector<double> out(iv.size());
  for (int64_t i = 0; i < int64_t(out.size()); ++i) {
    Coord c = unravel(i, index.shape());
    c[size_t(a)] = iv[size_t(i)];
    out[size_t(i)] = xv[size_t(ravel(c, x.shape()))];
  }
  return as_f64(out, index.shape());
}

Tensor ref_index_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src) {
  int a = pos_axis(axis, x.dim());
  std::vector<double> out = x.to_vector<double>(), sv = src.to_vector<double>();
  std::vector<int64_t> iv = index.to_vector<int64_t>();
  for (int64_t i = 0; i < src.numel(); ++i) {
    Coord c = unravel(i, src.shape());
    c[size_t(a)] = iv[size_t(c[size_t(a)])];
    out[size_t(ravel(c, x.shape()))] += sv[size_t(i)];
  }
  return as_f64(out, x.shape());
}

// Only src's index-shaped leading block takes part (torch semantics).
Tensor ref_scatter_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src) {
  int a = pos_axis(axis, x.dim());
  std::vector<double> out = x.to_vector<double>(), sv = src.to_vector<double>();
  std::vector<int64_t> iv = index.to_vector<int64_t>();
  for (int64_t i = 0; i < index.numel(); ++i) {
    Coord c = unravel(i, index.shape());
    double v = sv[size_t(ravel(c, src.shape()))];
    c[size_t(a)] = iv[size_t(i)];
    out[size_t(ravel(c, x.shape()))] += v;
  }
  return as_f64(out, x.shape());
}

Tensor random_of(const Shape& s, DType t) {
  if (t == DType::boolean) return cast(random_int(0, 2, s), DType::boolean);
  if (is_integral(t)) return random_int(-1000, 1000, s, t);
  return random(s, t);
}

// Tolerances for the adds: the reference starts from the same rounded inputs, so only the
// accumulation and the final rounding differ.
double add_tol(DType t) {
  switch (t) {
    case DType::f64: return 1e-12;
    case DType::f32: return 1e-5;
    case DType::f16: return 4e-3;
    default: return 2e-2;
  }
}

const DType kAllTypes[] = {DType::f64, DType::f32, DType::bf16, DType::f16,
                           DType::i32, DType::i64, DType::u8,   DType::boolean};
const DType kFloatTypes[] = {DType::f64, DType::f32, DType::bf16, DType::f16};

// An index tensor of `shape` with values in [0, n): repeats are likely with long indices.
Tensor index_of(int64_t n, const Shape& shape, DType t = DType::i64) { return random_int(0, n, shape, t); }

}  // namespace

// ---- concat / stack -------------------------------------------------------------------------
BOOST_AUTO_TEST_CASE(concat_matches_reference_for_every_dtype_and_axis) {
  for (DType t : kAllTypes) {
    for (int axis : {0, 1, 2, -1, -2, -3}) {
      int a = pos_axis(axis, 3);
      Shape base = {3, 7, 5};
      Tensors xs;
      int64_t lens[] = {2, 1, 0, 3};
      for (int j = 0; j < 4; ++j) {
        Shape s = base;
        s[size_t(a)] = lens[j];
        xs.push_back(random_of(s, t));
      }
      xs[1] = noncontiguous(xs[1]);
      xs[3] = noncontiguous(xs[3], true);
      std::string what = std::string("concat ") + dtype_name(t) + " axis " + std::to_string(axis);
      Tensor got = concat(xs, axis);
      BOOST_CHECK(got.dtype() == t);
      BOOST_CHECK(got.is_contiguous());
      check_exact(got, ref_concat(xs, axis), what);
    }
  }
}

BOOST_AUTO_TEST_CASE(concat_of_large_tensors_takes_the_parallel_paths) {
  // Few long rows, one single row (the copy splits inside each piece), and many short rows.
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 50001}, {3, 30007}}, {{1, 200003}, {1, 70001}}, {{20011, 3}, {20011, 5}}};
  for (const auto& [sa, sb] : cases) {
    Tensor a = random(sa), b = random(sb), c = noncontiguous(random(sb));
    check_exact(concat({a, b, c}, 1), ref_concat({a, b, c}, 1), "large concat " + shape_str(sa));
  }
  Tensor rows = random({40001, 3}, DType::bf16);
  check_exact(concat({rows, rows}, 0), ref_concat({rows, rows}, 0), "concat along axis 0");
}

BOOST_AUTO_TEST_CASE(concat_of_one_tensor_copies_it) {
  Tensor x = random({4, 3});
  Tensor y = concat({x}, 1);
  check_exact(y, x, "concat of one");
  fill_(y, 7.0);
  BOOST_CHECK(x.to_vector<double>()[0] != 7.0);
}

BOOST_AUTO_TEST_CASE(stack_inserts_a_new_axis) {
  for (DType t : {DType::f32, DType::i64, DType::boolean}) {
    Tensors xs = {random_of({3, 5, 2}, t), noncontiguous(random_of({3, 5, 2}, t)), random_of({3, 5, 2}, t)};
    for (int axis : {0, 1, 2, 3, -1, -4}) {
      int a = pos_axis(axis, 4);
      Tensor got = stack(xs, axis);
      Shape want_shape = {3, 5, 2};
      want_shape.insert(want_shape.begin() + a, 3);
      BOOST_REQUIRE(got.shape() == want_shape);
      std::vector<std::vector<double>> vals;
      for (const Tensor& x : xs) vals.push_back(x.to_vector<double>());
      std::vector<double> ref(size_t(got.numel()));
      for (int64_t i = 0; i < got.numel(); ++i) {
        Coord c = unravel(i, want_shape);
        int64_t j = c[size_t(a)];
        c.erase(c.begin() + a);
        ref[size_t(i)] = vals[size_t(j)][size_t(ravel(c, {3, 5, 2}))];
      }
      check_exact(got, as_f64(ref, want_shape), std::string("stack ") + dtype_name(t) + " axis " + std::to_string(axis));
    }
  }
}

// ---- split / chunk --------------------------------------------------------------------------
BOOST_AUTO_TEST_CASE(split_gives_views_that_match_slices) {
  Tensor x = random({4, 11, 3});
  for (int axis : {1, -2}) {
    std::vector<Tensor> parts = split(x, {3, 0, 6, 2}, axis);
    BOOST_REQUIRE_EQUAL(parts.size(), 4u);
    int64_t start = 0;
    std::vector<double> xv = x.to_vector<double>();
    for (const Tensor& p : parts) {
      BOOST_CHECK(p.storage() == x.storage());
      BOOST_REQUIRE(p.dim() == 3 && p.shape()[0] == 4 && p.shape()[2] == 3);
      std::vector<double> ref;
      for (int64_t i = 0; i < p.numel(); ++i) {
        Coord c = unravel(i, p.shape());
        c[1] += start;
        ref.push_back(xv[size_t(ravel(c, x.shape()))]);
      }
      check_exact(p, as_f64(ref, p.shape()), "split part at " + std::to_string(start));
      start += p.shape()[1];
    }
    BOOST_CHECK_EQUAL(start, 11);
  }
}

BOOST_AUTO_TEST_CASE(writing_through_a_split_changes_the_original) {
  Tensor x = random({5, 6}, DType::f64);
  std::vector<Tensor> parts = split(x, {2, 4}, 1);
  fill_(parts[1], 3.5);
  std::vector<double> v = x.to_vector<double>();
  for (int64_t r = 0; r < 5; ++r) {
    for (int64_t c = 0; c < 6; ++c) {
      if (c >= 2) BOOST_CHECK_EQUAL(v[size_t(r * 6 + c)], 3.5);
      else BOOST_CHECK(v[size_t(r * 6 + c)] != 3.5);
    }
  }
  std::vector<Tensor> rows = chunk(x, 2, 0);
  fill_(rows[1], -1.0);  // rows 3 and 4
  BOOST_CHECK_EQUAL(x.to_vector<double>()[size_t(4 * 6 + 0)], -1.0);
  BOOST_CHECK_EQUAL(x.to_vector<double>()[size_t(2 * 6 + 0)], rows[0].to_vector<double>()[size_t(2 * 6)]);
}

BOOST_AUTO_TEST_CASE(chunk_sizes_follow_torch) {
  auto sizes = [](int64_t n, int chunks) {
    std::vector<int64_t> s;
    for (const Tensor& p : chunk(arange(0, double(n)).reshape({1, n}), chunks, -1)) s.push_back(p.shape()[1]);
    return s;
  };
  BOOST_CHECK((sizes(10, 3) == std::vector<int64_t>{4, 4, 2}));
  BOOST_CHECK((sizes(5, 4) == std::vector<int64_t>{2, 2, 1}));
  BOOST_CHECK((sizes(6, 3) == std::vector<int64_t>{2, 2, 2}));
  BOOST_CHECK((sizes(6, 4) == std::vector<int64_t>{2, 2, 2}));  // fewer chunks than asked
  BOOST_CHECK((sizes(2, 5) == std::vector<int64_t>{1, 1}));
  BOOST_CHECK((sizes(0, 3) == std::vector<int64_t>{0, 0, 0}));
  // The values: chunk k starts at k * ceil(n / chunks).
  std::vector<Tensor> parts = chunk(arange(0, 10), 3);
  check_exact(parts[2], from_vector({8, 9}, {2}, DType::f64), "last chunk");
  check_exact(parts[1], from_vector({4, 5, 6, 7}, {4}, DType::f64), "middle chunk");
}

// ---- index_select ---------------------------------------------------------------------------
BOOST_AUTO_TEST_CASE(index_select_matches_reference) {
  for (DType t : kAllTypes) {
    for (int axis : {0, 1, 2, -1, -3}) {
      Shape s = {4, 7, 5};
      int a = pos_axis(axis, 3);
      Tensor x = random_of(s, t);
      Tensor idx = index_of(s[size_t(a)], {9}, t == DType::i32 ? DType::i32 : DType::i64);  // 9 > size: repeats
      std::string what = std::string("index_select ") + dtype_name(t) + " axis " + std::to_string(axis);
      check_exact(index_select(x, axis, idx), ref_index_select(x, axis, idx), what);
      Tensor xs = noncontiguous(x), xt = noncontiguous(x, true);
      check_exact(index_select(xs, axis, idx), ref_index_select(xs, axis, idx), what + " strided x");
      check_exact(index_select(xt, axis, idx), ref_index_select(xt, axis, idx), what + " transposed x");
      Tensor sidx = noncontiguous(idx);
      check_exact(index_select(x, axis, sidx), ref_index_select(x, axis, sidx), what + " strided index");
    }
  }
  Tensor x = random({3, 4});
  Tensor none = index_select(x, 1, from_vector_i64({}, {0}));
  BOOST_CHECK((none.shape() == Shape{3, 0}));
}

BOOST_AUTO_TEST_CASE(index_select_of_large_tensors) {
  Tensor x = random({3001, 17});
  Tensor idx = index_of(3001, {5003});
  check_exact(index_select(x, 0, idx), ref_index_select(x, 0, idx), "many rows");
  Tensor w = random({2003, 51}, DType::f16);
  Tensor cols = index_of(51, {40}, DType::i32);
  check_exact(index_select(w, 1, cols), ref_index_select(w, 1, cols), "columns");
  Tensor wt = noncontiguous(w, true);
  check_exact(index_select(wt, 1, cols), ref_index_select(wt, 1, cols), "columns of a transposed tensor");
}

// ---- gather ---------------------------------------------------------------------------------
BOOST_AUTO_TEST_CASE(gather_matches_reference) {
  for (DType t : {DType::f64, DType::f32, DType::bf16, DType::i64, DType::boolean}) {
    for (int axis : {0, 1, 2, -1, -2}) {
      int a = pos_axis(axis, 3);
      Shape xs = {4, 6, 5};
      Shape is = {3, 5, 2};
      is[size_t(a)] = 8;  // longer than x along the axis is allowed
      Tensor x = random_of(xs, t);
      Tensor idx = index_of(xs[size_t(a)], is, a == 1 ? DType::i32 : DType::i64);
      std::string what = std::string("gather ") + dtype_name(t) + " axis " + std::to_string(axis);
      check_exact(gather(x, axis, idx), ref_gather(x, axis, idx), what);
      Tensor xn = noncontiguous(x), xt = noncontiguous(x, true);
      check_exact(gather(xn, axis, idx), ref_gather(xn, axis, idx), what + " strided x");
      check_exact(gather(xt, axis, idx), ref_gather(xt, axis, idx), what + " transposed x");
      Tensor it = noncontiguous(idx, true);
      check_exact(gather(x, axis, it), ref_gather(x, axis, it), what + " transposed index");
    }
  }
  Tensor x = random({1003, 257});
  Tensor idx = index_of(257, {1001, 129});
  check_exact(gather(x, 1, idx), ref_gather(x, 1, idx), "large gather");
}

// ---- index_add / scatter_add ----------------------------------------------------------------
BOOST_AUTO_TEST_CASE(index_add_accumulates_repeated_indices) {
  for (DType t : kFloatTypes) {
    for (int axis : {0, 1, 2, -1, -2}) {
      int a = pos_axis(axis, 3);
      Shape xs = {5, 7, 3};
      Tensor x = random(xs, t);
      Tensor idx = index_of(xs[size_t(a)], {11}, t == DType::f32 ? DType::i32 : DType::i64);
      Shape ss = xs;
      ss[size_t(a)] = 11;
      Tensor src = random(ss, t);
      std::string what = std::string("index_add ") + dtype_name(t) + " axis " + std::to_string(axis);
      double tol = add_tol(t);
      Tensor got = index_add(x, axis, idx, src);
      BOOST_CHECK(got.dtype() == t);
      check_close(got, ref_index_add(x, axis, idx, src), tol, tol, what);
      Tensor xn = noncontiguous(x, true), sn = noncontiguous(src);
      check_close(index_add(xn, axis, idx, sn), ref_index_add(xn, axis, idx, sn), tol, tol, what + " strided");
      check_close(index_add(x, axis, noncontiguous(idx), noncontiguous(src, true)),
                  ref_index_add(x, axis, idx, src), tol, tol, what + " strided index, transposed src");
    }
  }
  // The input is not modified.
  Tensor x = zeros({3, 2});
  index_add(x, 0, from_vector_i64({1, 1}, {2}), ones({2, 2}));
  check_exact(x, zeros({3, 2}), "x untouched");
  check_exact(index_add(x, 0, from_vector_i64({1, 1, 2}, {3}), ones({3, 2})),
              from_vector({0, 0, 2, 2, 1, 1}, {3, 2}, DType::f64), "hand example");
}

BOOST_AUTO_TEST_CASE(scatter_add_accumulates_repeated_indices) {
  for (DType t : kFloatTypes) {
    for (int axis : {0, 1, 2, -1, -3}) {
      int a = pos_axis(axis, 3);
      Shape xs = {4, 6, 5};
      Shape is = {3, 5, 4};
      is[size_t(a)] = 9;
      Tensor x = random(xs, t);
      Tensor idx = index_of(xs[size_t(a)], is, t == DType::f32 ? DType::i32 : DType::i64);
      Tensor src = random(is, t);
      Shape big = is;
      for (auto& e : big) e += 1;
      Tensor larger = random(big, t);  // only its index-shaped corner takes part
      std::string what = std::string("scatter_add ") + dtype_name(t) + " axis " + std::to_string(axis);
      double tol = add_tol(t);
      check_close(scatter_add(x, axis, idx, src), ref_scatter_add(x, axis, idx, src), tol, tol, what);
      check_close(scatter_add(x, axis, idx, larger), ref_scatter_add(x, axis, idx, larger), tol, tol,
                  what + " larger src");
      Tensor xn = noncontiguous(x), sn = noncontiguous(src, true), in = noncontiguous(idx, true);
      check_close(scatter_add(xn, axis, in, sn), ref_scatter_add(xn, axis, in, sn), tol, tol, what + " strided");
    }
  }
  Tensor x = zeros({2, 3}, DType::f64);
  Tensor idx = from_vector_i64({1, 0, 1, 1, 1, 0}, {2, 3});
  check_exact(scatter_add(x, 0, idx, ones({2, 3}, DType::f64)), from_vector({0, 1, 1, 2, 1, 1}, {2, 3}, DType::f64),
              "hand example");
}

BOOST_AUTO_TEST_CASE(adds_are_deterministic_across_thread_counts) {
  // Long indices full of repeats into few rows, with inner extents that split into several blocks.
  Tensor x = random({7, 9001});
  Tensor idx = index_of(7, {301});
  Tensor src = random({301, 9001});
  Tensor sidx = index_of(7, {301, 9001});
  Tensor a = index_add(x, 0, idx, src), b = scatter_add(x, 0, sidx, src);
  check_close(a, ref_index_add(x, 0, idx, src), 1e-5, 1e-5, "large index_add");
  check_close(b, ref_scatter_add(x, 0, sidx, src), 1e-5, 1e-5, "large scatter_add");
  Tensor a1, b1;
  {
    tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
    a1 = index_add(x, 0, idx, src);
    b1 = scatter_add(x, 0, sidx, src);
  }
  check_exact(a, a1, "index_add: same bits on one thread");
  check_exact(b, b1, "scatter_add: same bits on one thread");
  check_exact(a, index_add(x, 0, idx, src), "index_add: same bits twice");
}

// ---- gradients ------------------------------------------------------------------------------
BOOST_AUTO_TEST_CASE(gradients_of_joining_ops) {
  Tensor fixed = random({3, 2, 4}, DType::f64);
  check_grad("concat axis 1",
             [&](const Tensors& in) { return concat({in[0], fixed, transpose(in[1], 0, 2), in[2]}, 1); },
             {leaf({3, 3, 4}), leaf({4, 1, 3}), leaf({3, 2, 4})});
  check_grad("concat axis -1, one input twice", [](const Tensors& in) { return concat({in[0], in[1], in[0]}, -1); },
             {leaf({2, 3}), leaf({2, 1})});
  check_grad("stack axis 1", [](const Tensors& in) { return stack({in[0], in[1], in[0] * in[1]}, 1); },
             {leaf({3, 2}), leaf({3, 2})});
  check_grad("stack axis -1", [](const Tensors& in) { return stack({in[0], in[1]}, -1); },
             {leaf({2, 3}), leaf({2, 3})});
  check_grad("split", [](const Tensors& in) {
    std::vector<Tensor> p = split(in[0], {2, 1, 3}, 1);
    return concat({p[2] * p[2], p[0] * 3.0}, 1);  // the middle part gets a zero gradient
  }, {leaf({3, 6, 2})});
  check_grad("chunk", [](const Tensors& in) {
    std::vector<Tensor> p = chunk(in[0], 3, -1);  // 4, 4, 2
    return mul(p[0], p[1]) + sum(p[2]);
  }, {leaf({2, 10})});
}

BOOST_AUTO_TEST_CASE(gradients_of_indexing_ops) {
  Tensor rep = from_vector_i64({2, 0, 2, 2, 4}, {5});
  check_grad("index_select repeated", [&](const Tensors& in) { return index_select(in[0], 1, rep); },
             {leaf({3, 5, 2})});
  check_grad("index_select of a transposed tensor, axis -1",
             [&](const Tensors& in) { return index_select(transpose(in[0], 0, 1), -1, rep); }, {leaf({5, 4})});
  Tensor gidx = index_of(4, {3, 6, 2});
  check_grad("gather", [&](const Tensors& in) { return gather(in[0], 1, gidx); }, {leaf({3, 4, 2})});
  check_grad("gather axis -1", [&](const Tensors& in) { return gather(in[0], -1, gidx); }, {leaf({4, 7, 4})});
  Tensor aidx = from_vector_i64({1, 3, 1, 1}, {4}, DType::i32);
  check_grad("index_add x and src", [&](const Tensors& in) { return index_add(in[0], 0, aidx, in[1]); },
             {leaf({4, 3}), leaf({4, 3})});
  check_grad("index_add src only, axis -1",
             [&](const Tensors& in) { return index_add(in[0], -1, aidx, in[1] * in[1]); },
             {random({2, 5}, DType::f64), leaf({2, 4})});
  Tensor sidx = index_of(3, {4, 2});
  check_grad("scatter_add x and src", [&](const Tensors& in) { return scatter_add(in[0], 0, sidx, in[1]); },
             {leaf({3, 2}), leaf({4, 2})});
  Tensor wide = index_of(5, {3, 4});
  check_grad("scatter_add with a larger src, axis 1",
             [&](const Tensors& in) { return scatter_add(in[0], 1, wide, in[1]); },
             {leaf({4, 5}), leaf({3, 6})});
}

// ---- errors ---------------------------------------------------------------------------------
BOOST_AUTO_TEST_CASE(errors_name_the_op_shapes_and_values) {
  Tensor x = random({3, 5, 2});
  check_error([] { concat({}, 0); }, {"[concat]", "empty"});
  check_error([&] { concat({x, random({3, 5, 2}, DType::f64)}, 0); }, {"[concat]", "tensor 1", "f64", "f32"});
  check_error([&] { concat({x, x, random({3, 4, 2})}, 0); }, {"[concat]", "tensor 2", "(3, 4, 2)", "(3, 5, 2)"});
  check_error([&] { concat({x, random({3, 5})}, 0); }, {"[concat]", "tensor 1", "(3, 5)", "rank"});
  check_error([&] { concat({x, x}, 3); }, {"[concat]", "axis 3"});
  check_error([&] { concat({scalar(1), scalar(2)}, 0); }, {"[concat]", "0-d"});
  check_error([] { stack({}, 0); }, {"[stack]", "empty"});
  check_error([&] { stack({x, random({3, 5, 1})}, 0); }, {"[stack]", "tensor 1", "(3, 5, 1)", "(3, 5, 2)"});
  check_error([&] { stack({x, x}, 4); }, {"[stack]", "axis 4"});
  check_error([&] { split(x, {2, 2}, 1); }, {"[split]", "[2, 2]", "4", "length 5"});
  check_error([&] { split(x, {6, -1}, 1); }, {"[split]", "negative", "[6, -1]"});
  check_error([&] { chunk(x, 0, 1); }, {"[chunk]", "0"});

  Tensor idx = from_vector_i64({0, 5, 1}, {3});
  check_error([&] { index_select(x, 1, idx); }, {"[index_select]", "index 5", "axis 1", "size 5", "(3, 5, 2)"});
  check_error([&] { index_select(x, -2, from_vector_i64({-1}, {1})); }, {"[index_select]", "index -1", "axis 1"});
  check_error([&] { index_select(x, 0, from_vector({0, 1}, {2})); }, {"[index_select]", "i32 or i64", "f32"});
  check_error([&] { index_select(x, 0, from_vector_i64({0, 1}, {1, 2})); }, {"[index_select]", "1-D", "(1, 2)"});
  check_error([&] { index_select(x, 3, idx); }, {"[index_select]", "axis 3"});

  Tensor gidx = from_vector_i64({0, 3, 1, 0}, {1, 2, 2});
  check_error([&] { gather(x, 0, gidx); }, {"[gather]", "index 3", "axis 0", "size 3"});
  check_error([&] { gather(x, 0, from_vector_i64({0}, {1, 1})); }, {"[gather]", "rank", "(1, 1)", "(3, 5, 2)"});
  check_error([&] { gather(x, 0, zeros({1, 6, 1}, DType::i64)); }, {"[gather]", "(1, 6, 1)", "(3, 5, 2)", "dimension 1"});
  check_error([&] { gather(x, 0, zeros({1, 1, 1}, DType::u8)); }, {"[gather]", "u8"});

  Tensor src = random({3, 3, 2});
  check_error([&] { index_add(x, 1, from_vector_i64({0, 9, 1}, {3}), src); },
              {"[index_add]", "index 9", "axis 1", "size 5"});
  check_error([&] { index_add(x, 1, idx.slice(0, 0, 2), src); }, {"[index_add]", "(3, 3, 2)", "(3, 2, 2)"});
  check_error([&] { index_add(x, 1, from_vector_i64({0, 1, 1}, {3}), cast(src, DType::f64)); },
              {"[index_add]", "f64", "f32"});
  check_error([&] { index_add(cast(x, DType::i32), 1, from_vector_i64({0, 1, 1}, {3}), cast(src, DType::i32)); },
              {"[index_add]", "floating", "i32"});

  Tensor sidx = zeros({2, 5, 2}, DType::i64);
  check_error([&] { scatter_add(x, 0, full({2, 5, 2}, -2, DType::i64), random({2, 5, 2})); },
              {"[scatter_add]", "index -2", "axis 0", "size 3"});
  check_error([&] { scatter_add(x, 0, sidx, random({2, 4, 2})); }, {"[scatter_add]", "(2, 5, 2)", "(2, 4, 2)", "src"});
  check_error([&] { scatter_add(x, 0, zeros({2, 6, 2}, DType::i64), random({2, 6, 2})); },
              {"[scatter_add]", "(2, 6, 2)", "(3, 5, 2)", "dimension 1"});
  check_error([&] { scatter_add(x, 0, sidx, random({2, 5}, DType::f32)); }, {"[scatter_add]", "rank"});
}

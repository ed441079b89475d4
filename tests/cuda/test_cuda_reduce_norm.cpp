// CUDA reductions, argmax, softmax, cross-entropy and layer norm against the CPU backend on fresh
// random inputs: forward values, gradients through autograd, every kernel layout (a thread, eight
// lanes, a warp or a block per run; runs split across blocks; column sums; the copy fallback),
// misaligned and strided inputs, and a bandwidth report for the large reductions.
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>

#include "core/cuda/runtime.h"
#include "tests/cuda/gpu.h"
#include "tests/support.h"

using namespace sparta;
using namespace sparta::test;

namespace {

Tensor gpu(const Tensor& t) { return to_device(t, Device::cuda()); }

double tol(DType dt) {
  switch (dt) {
    case DType::f64: return 1e-10;
    case DType::f32: return 2e-5;
    case DType::f16: return 4e-3;
    default: return 2e-2;  // bf16
  }
}

std::string str(const std::vector<int>& axes) {
  std::string s = "{";
  for (int a : axes) s += std::to_string(a) + ",";
  return s + "}";
}

// x's values in a layout of the given kind on x's own device: 0 dense, 1 last axis of stride 2,
// 2 the last two axes transposed in memory, 3 starting one element past a 16-byte boundary.
Tensor layout(const Tensor& x, int kind) {
  if (kind == 0 || x.dim() == 0) return x;
  if (kind == 2 && x.dim() >= 2) return contiguous(transpose(x, -1, -2)).transpose(-1, -2);
  Shape wide = x.shape();
  Tensor big, view;
  if (kind == 3) {
    big = full({x.numel() + 1}, 12345.0, x.dtype(), x.device());
    view = reshape(slice(big, 0, 1, x.numel() + 1), x.shape());
  } else {
    wide.back() *= 2;
    big = full(wide, 12345.0, x.dtype(), x.device());
    view = slice(big, -1, 0, wide.back(), 2);
  }
  copy_(view, x);
  return view;
}

// Small integers as values: every sum below 2^24 is exact in float, whatever the order.
Tensor small_ints(const Shape& shape, DType dt) { return cast(random_int(0, 3, shape), dt); }

// Runs f on CPU leaves and on CUDA copies of them, compares the outputs, backpropagates the same
// random cotangent through both and compares the gradients.
void check_forward_backward(const std::string& what, const std::function<Tensor(const Tensors&)>& f,
                            const Tensors& inputs, double rtol, double atol, int kind = 0) {
  Tensors c, g;
  for (const Tensor& x : inputs) {
    c.push_back(autograd::requires_grad(layout(clone(x), kind)));
    g.push_back(autograd::requires_grad(layout(gpu(x), kind)));
  }
  Tensor yc = f(c), yg = f(g);
  BOOST_REQUIRE(yg.device() == Device::cuda());
  check_close(yg, yc, rtol, atol, what + " forward");
  Tensor cot = random(yc.shape(), yc.dtype());
  autograd::backward(yc, cot);
  autograd::backward(yg, gpu(cot));
  for (size_t i = 0; i < c.size(); ++i) {
    BOOST_REQUIRE_MESSAGE(autograd::grad(g[i]).defined(), what << ": no gradient for input " << i);
    check_close(autograd::grad(g[i]), autograd::grad(c[i]), rtol, atol, what + " grad " + std::to_string(i));
  }
}

const std::vector<std::vector<int>> kAxisSets = {{}, {0}, {1}, {2}, {-1}, {0, 2}, {1, 2}, {0, 1}, {2, 0, 1}};

}  // namespace

BOOST_AUTO_TEST_CASE(float_reductions_over_any_axes, SPARTA_NEEDS_GPU) {
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
    for (int kind : {0, 1, 2, 3}) {
      Tensor base = random({5, 7, 37}, dt, -2, 2);
      Tensor xc = layout(base, kind), xg = layout(gpu(base), kind);
      for (const auto& axes : kAxisSets) {
        for (bool keep : {false, true}) {
          const std::string what = std::string(dtype_name(dt)) + " layout " + std::to_string(kind) + " axes " +
                                   str(axes) + (keep ? " keepdim" : "");
          const double t = tol(dt);
          Tensor s = sum(xg, axes, keep);
          BOOST_CHECK(s.device() == Device::cuda());
          BOOST_CHECK(s.dtype() == dt);
          check_close(s, sum(xc, axes, keep), t, t * 8, "sum " + what);
          check_close(mean(xg, axes, keep), mean(xc, axes, keep), t, t, "mean " + what);
          check_exact(max(xg, axes, keep), max(xc, axes, keep), "max " + what);
          check_exact(min(xg, axes, keep), min(xc, axes, keep), "min " + what);
          check_close(var(xg, axes, keep), var(xc, axes, keep), 4 * t, 4 * t, "var " + what);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(integer_and_bool_reductions, SPARTA_NEEDS_GPU) {
  for (DType dt : {DType::i32, DType::i64, DType::u8, DType::boolean}) {
    for (int kind : {0, 1, 2, 3}) {
      const int64_t hi = dt == DType::boolean ? 2 : dt == DType::u8 ? 256 : 1000;
      Tensor base = cast(random_int(dt == DType::u8 || dt == DType::boolean ? 0 : -hi, hi, {6, 5, 41}), dt);
      Tensor xc = layout(base, kind), xg = layout(gpu(base), kind);
      for (const auto& axes : kAxisSets) {
        const std::string what = std::string(dtype_name(dt)) + " layout " + std::to_string(kind) + " axes " + str(axes);
        Tensor s = sum(xg, axes);
        BOOST_CHECK(s.dtype() == DType::i64);
        check_exact(s, sum(xc, axes), "sum " + what);
        check_exact(max(xg, axes, true), max(xc, axes, true), "max " + what);
        check_exact(min(xg, axes), min(xc, axes), "min " + what);
      }
    }
  }
  // Wide rows take 16-byte packs of 16 elements.
  Tensor u = cast(random_int(0, 256, {37, 4099}), DType::u8);
  check_exact(max(gpu(u), {1}), max(u, {1}), "u8 max of wide rows");
  check_exact(min(gpu(u), {0}), min(u, {0}), "u8 min of columns");
  Tensor b = cast(random_int(0, 2, {37, 4099}), DType::boolean);
  check_exact(sum(gpu(b), {1}), sum(b, {1}), "bool sum of wide rows");
  check_exact(max(gpu(b), {1}), max(b, {1}), "bool max of wide rows");
}

// Every kernel layout on large inputs of small integers, where any order of summation is exact:
// a missed or doubled element shows as a mismatch.
BOOST_AUTO_TEST_CASE(large_reductions_are_exact_on_small_integers, SPARTA_NEEDS_GPU) {
  struct Case {
    Shape shape;
    std::vector<int> axes;
    const char* path;
  };
  const std::vector<Case> cases = {
      {{(1 << 22) + 3}, {}, "full, split over the grid"},
      {{4099, 4097}, {1}, "misaligned rows, a block each"},
      {{4096, 4096}, {1}, "aligned rows, a block each"},
      {{4099, 4097}, {0}, "columns, unpacked"},
      {{4096, 4096}, {0}, "columns, packed"},
      {{1 << 20, 3}, {0}, "three columns"},
      {{1 << 20, 3}, {1}, "a thread per run"},
      {{3, 1 << 20}, {1}, "few long runs, split"},
      {{3, 1 << 20}, {0}, "columns over three rows"},
      {{1 << 16, 100}, {1}, "eight lanes per run"},
      {{1 << 14, 700}, {1}, "a warp per run"},
      {{20000, 3000}, {1}, "a warp per longer run"},
      {{64, 33, 257}, {0, 2}, "copied to rows"},
      {{64, 33, 257}, {0, 1}, "columns over merged rows"},
  };
  for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
    for (const Case& c : cases) {
      if (dt != DType::f32 && numel_of(c.shape) > (1 << 24)) continue;  // the f32 pass covers the layout
      const std::string what = std::string(dtype_name(dt)) + " " + shape_str(c.shape) + " axes " + str(c.axes) +
                               " (" + c.path + ")";
      Tensor x = small_ints(c.shape, dt);
      Tensor xg = gpu(x);
      check_exact(sum(xg, c.axes), sum(x, c.axes), "sum " + what);
      check_exact(max(xg, c.axes), max(x, c.axes), "max " + what);
      check_exact(min(xg, c.axes), min(x, c.axes), "min " + what);
    }
  }
  // A run starting past a 16-byte boundary, and rows each starting at a different misalignment.
  Tensor flat = small_ints({(1 << 21) + 9}, DType::f32);
  check_exact(sum(slice(gpu(flat), 0, 1, (1 << 21) + 9)), sum(slice(flat, 0, 1, (1 << 21) + 9)), "offset run");
  Tensor m = small_ints({1000, 2051}, DType::bf16);
  check_exact(sum(slice(gpu(m), 1, 3, 2051), {1}), sum(slice(m, 1, 3, 2051), {1}), "offset bf16 rows");
  check_exact(sum(slice(gpu(m), 1, 3, 2051), {0}), sum(slice(m, 1, 3, 2051), {0}), "offset bf16 columns");
  // Integers sum in i64 whatever their count.
  Tensor big = cast(random_int(-1000000, 1000000, {1 << 21}), DType::i32);
  check_exact(sum(gpu(big)), sum(big), "i32 sum over 2M elements");
}

BOOST_AUTO_TEST_CASE(reductions_are_deterministic, SPARTA_NEEDS_GPU) {
  Tensor x = gpu(random({3000, 1031}, DType::f32));
  for (const std::vector<int>& axes : std::vector<std::vector<int>>{{}, {0}, {1}}) {
    Tensor a = sum(x, axes), b = sum(x, axes);
    check_exact(a, b, "rerun of sum over " + str(axes));
  }
  Tensor f = gpu(random({1 << 22}, DType::f32));
  check_exact(sum(f), sum(f), "rerun of a full sum");
  // And it agrees with the CPU's double-combined chunks to float accuracy.
  check_close(sum(f), sum(to_device(f, Device::cpu())), 1e-4, 1e-2, "full sum of 4M floats");
}

BOOST_AUTO_TEST_CASE(empty_and_degenerate_reductions, SPARTA_NEEDS_GPU) {
  Tensor e = gpu(zeros({4, 0, 3}));
  check_exact(sum(e, {1}), zeros({4, 3}), "sum over an empty axis");
  BOOST_CHECK_EQUAL(sum(e, {0}).numel(), 0);
  Tensor s = gpu(scalar(2.5));
  BOOST_CHECK_EQUAL(sum(s).item<double>(), 2.5);
  BOOST_CHECK_EQUAL(max(s).item<double>(), 2.5);
  Tensor x = gpu(random({7, 1, 5}));
  check_exact(sum(x, {1}), sum(to_device(x, Device::cpu()), {1}), "sum over a size-1 axis");
}

BOOST_AUTO_TEST_CASE(argmax_matches_cpu, SPARTA_NEEDS_GPU) {
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8}) {
    for (int kind : {0, 1, 2}) {
      // Few distinct values, so ties are common: the first maximum must win.
      Tensor base = cast(is_floating(dt) ? random_int(-4, 5, {6, 7, 300}) : random_int(0, 9, {6, 7, 300}), dt);
      if (dt == DType::f32) base = random({6, 7, 300}, dt);
      Tensor xc = layout(base, kind), xg = layout(gpu(base), kind);
      for (int axis : {0, 1, 2, -1}) {
        for (bool keep : {false, true}) {
          const std::string what = std::string(dtype_name(dt)) + " layout " + std::to_string(kind) + " axis " +
                                   std::to_string(axis) + (keep ? " keepdim" : "");
          Tensor a = argmax(xg, axis, keep);
          BOOST_CHECK(a.dtype() == DType::i64);
          check_exact(a, argmax(xc, axis, keep), "argmax " + what);
        }
      }
    }
  }
  Tensor wide = cast(random_int(-50, 50, {37, 50304}), DType::bf16);
  check_exact(argmax(gpu(wide), 1), argmax(wide, 1), "argmax over a vocabulary");
  check_exact(argmax(gpu(wide), 0), argmax(wide, 0), "argmax over rows");
  // NaNs: skipped, unless the first element is one (the CPU's in-order scan).
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor n = from_vector({1, nan, 3, 3, 2, nan, 5, 0, 5, 1, nan, nan}, {3, 4}, DType::f32);
  check_exact(argmax(gpu(n), 1), argmax(n, 1), "argmax with NaNs");
}

BOOST_AUTO_TEST_CASE(reduction_gradients, SPARTA_NEEDS_GPU) {
  for (DType dt : {DType::f64, DType::f32}) {
    const double t = tol(dt);
    for (int kind : {0, 2}) {
      Tensor x = random({6, 5, 9}, dt, -2, 2);
      const std::string d = std::string(dtype_name(dt)) + " layout " + std::to_string(kind);
      for (const auto& axes : std::vector<std::vector<int>>{{}, {0}, {2}, {0, 2}}) {
        check_forward_backward("sum " + d + str(axes), [&](const Tensors& in) { return sum(in[0], axes); }, {x}, t, t,
                               kind);
        check_forward_backward("mean " + d + str(axes), [&](const Tensors& in) { return mean(in[0], axes, true); },
                               {x}, t, t, kind);
        check_forward_backward("max " + d + str(axes), [&](const Tensors& in) { return max(in[0], axes); }, {x}, t,
                               t, kind);
        check_forward_backward("min " + d + str(axes), [&](const Tensors& in) { return min(in[0], axes); }, {x}, t,
                               t, kind);
        check_forward_backward("var " + d + str(axes), [&](const Tensors& in) { return var(in[0], axes); }, {x},
                               4 * t, 4 * t, kind);
      }
      for (int axis : {0, 1, 2}) {
        check_forward_backward("logsumexp " + d + " axis " + std::to_string(axis),
                               [&](const Tensors& in) { return logsumexp(in[0], axis); }, {x}, t, t, kind);
      }
    }
  }
  // Ties share the gradient of max equally.
  Tensor tied = from_vector({1, 3, 3, 0, 2, 2, 2, 1}, {2, 4});
  check_forward_backward("max with ties", [](const Tensors& in) { return max(in[0], {1}); }, {tied}, 1e-6, 1e-6);
  // A bias gradient: a large (R, C) summed over R.
  Tensor g = random({4096, 769});
  check_forward_backward("sum over rows of a large gradient", [](const Tensors& in) { return sum(in[0], {0}); }, {g},
                         1e-4, 1e-3);
}

BOOST_AUTO_TEST_CASE(softmax_and_log_softmax, SPARTA_NEEDS_GPU) {
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
    const double t = tol(dt);
    for (int kind : {0, 1, 2, 3}) {
      Tensor x = random({4, 9, 70}, dt, -4, 4);
      for (int axis : {0, 1, 2}) {
        const std::string what = std::string(dtype_name(dt)) + " layout " + std::to_string(kind) + " axis " +
                                 std::to_string(axis);
        Tensor xc = layout(x, kind), xg = layout(gpu(x), kind);
        check_close(softmax(xg, axis), softmax(xc, axis), t, t, "softmax " + what);
        check_close(log_softmax(xg, axis), log_softmax(xc, axis), t, 4 * t, "log_softmax " + what);
      }
    }
    // Row widths for each kernel: eight lanes, a warp, a block; and a vocabulary-wide row.
    for (int64_t c : {1, 5, 64, 100, 2048, 3001, 50304}) {
      Tensor x = random({c > 4096 ? 9 : 33, c}, dt, -6, 6);
      const std::string what = std::string(dtype_name(dt)) + " width " + std::to_string(c);
      check_close(softmax(gpu(x)), softmax(x), t, t, "softmax " + what);
      check_close(log_softmax(gpu(x)), log_softmax(x), t, 4 * t, "log_softmax " + what);
    }
  }
  // Large logits and masked entries (a very negative fill, exp of which is 0).
  Tensor big = random({8, 1000}, DType::f32, -3000, 3000);
  check_close(softmax(gpu(big)), softmax(big), 1e-5, 1e-30, "softmax of large logits");
  check_close(log_softmax(gpu(big)), log_softmax(big), 1e-6, 1e-3, "log_softmax of large logits");
  Tensor masked = masked_fill(random({16, 300}), lt(random({16, 300}), scalar(-0.5)), -1e30);
  check_close(softmax(gpu(masked)), softmax(masked), 2e-5, 2e-5, "softmax with masked entries");
  BOOST_CHECK_EQUAL(softmax(gpu(scalar(3.0))).item<double>(), 1.0);
  for (DType dt : {DType::f64, DType::f32}) {
    const double t = tol(dt);
    for (int axis : {0, 1, 2}) {
      Tensor x = random({5, 6, 33}, dt, -3, 3);
      const std::string what = std::string(dtype_name(dt)) + " axis " + std::to_string(axis);
      check_forward_backward("softmax grad " + what, [&](const Tensors& in) { return softmax(in[0], axis); }, {x}, t,
                             t, 2);
      check_forward_backward("log_softmax grad " + what, [&](const Tensors& in) { return log_softmax(in[0], axis); },
                             {x}, t, t);
    }
  }
}

BOOST_AUTO_TEST_CASE(cross_entropy_with_ignore_index, SPARTA_NEEDS_GPU) {
  struct Case {
    int64_t rows, classes;
  };
  for (DType dt : {DType::f64, DType::f32, DType::bf16}) {
    const double t = tol(dt);
    for (const Case& c : std::vector<Case>{{37, 11}, {64, 300}, {9, 5000}, {24, 50304}}) {
      for (DType it : {DType::i64, DType::i32}) {
        const std::string what = std::string(dtype_name(dt)) + " " + std::to_string(c.rows) + "x" +
                                 std::to_string(c.classes) + " targets " + dtype_name(it);
        Tensor logits = random({c.rows, c.classes}, dt, -5, 5);
        std::vector<int64_t> tv = random_int(0, c.classes, {c.rows}).to_vector<int64_t>();
        for (size_t i = 0; i < tv.size(); i += 3) tv[i] = -100;  // every third row is padding
        Tensor targets = cast(from_vector_i64(tv, {c.rows}), it);
        Tensor lg = gpu(logits), tg = gpu(targets);
        Tensor loss = cross_entropy(lg, tg);
        BOOST_CHECK(loss.device() == Device::cuda());
        BOOST_CHECK_EQUAL(loss.dim(), 0);
        BOOST_CHECK(loss.dtype() == accumulation_dtype(dt));
        check_close(loss, cross_entropy(logits, targets), t, t, "loss " + what);
        // The gradient, scaled by an upstream factor so the division by the count is seen.
        check_forward_backward("cross_entropy " + what,
                               [&](const Tensors& in) {
                                 return cross_entropy(in[0], in[0].device().is_cpu() ? targets : tg) * 3.0;
                               },
                               {logits}, t, t);
      }
    }
  }
  // (B, T, C) logits, a custom ignore_index, non-contiguous logits.
  Tensor logits = random({3, 7, 50}, DType::f32, -3, 3);
  Tensor targets = random_int(0, 50, {3, 7});
  Tensor tg = gpu(targets);
  check_forward_backward("cross_entropy over (B, T, C), ignore 7",
                         [&](const Tensors& in) {
                           return cross_entropy(in[0], in[0].device().is_cpu() ? targets : tg, 7);
                         },
                         {logits}, 2e-5, 2e-5, 2);
  // Every target ignored: loss 0 and gradient 0, as on the CPU.
  Tensor all = full({5}, -100, DType::i64);
  check_forward_backward("cross_entropy with every row ignored",
                         [&](const Tensors& in) {
                           return cross_entropy(in[0], in[0].device().is_cpu() ? all : gpu(all));
                         },
                         {random({5, 9})}, 0, 0);
  BOOST_CHECK_EQUAL(cross_entropy(gpu(random({5, 9})), gpu(all)).item<double>(), 0.0);
}

BOOST_AUTO_TEST_CASE(layer_norm_forward_and_backward, SPARTA_NEEDS_GPU) {
  for (DType dt : {DType::f64, DType::f32, DType::bf16}) {
    const double t = tol(dt) * 4;
    for (int64_t c : {1, 7, 64, 100, 1000, 4096, 5003}) {
      for (int affine : {0, 1, 2, 3}) {  // bit 0: weight, bit 1: bias
        const std::string what = std::string(dtype_name(dt)) + " C " + std::to_string(c) + " affine " +
                                 std::to_string(affine);
        const int64_t rows = c >= 4096 ? 9 : 33;
        Tensors in = {random({rows, c}, dt, -2, 2)};
        if (affine & 1) in.push_back(random({c}, dt, 0.5, 1.5));
        if (affine & 2) in.push_back(random({c}, dt, -1, 1));
        auto f = [affine](const Tensors& v) {
          Tensor w = affine & 1 ? v[1] : Tensor();
          Tensor b = affine & 2 ? v[affine & 1 ? 2 : 1] : Tensor();
          return layer_norm(v[0], w, b);
        };
        // Gradients of one-element rows are all rounding noise; compare them loosely.
        check_forward_backward("layer_norm " + what, f, in, t, c == 1 ? 1e-2 : t, c % 2 ? 2 : 3);
      }
    }
  }
  // (B, T, C) input and many rows: the weight and bias gradients fold many row chunks.
  Tensors in = {random({8, 512, 768}, DType::f32, -2, 2), random({768}), random({768})};
  check_forward_backward("layer_norm over 4096 rows of 768",
                         [](const Tensors& v) { return layer_norm(v[0], v[1], v[2]); }, in, 1e-4, 1e-3);
  // The saved statistics agree too.
  Tensor x = random({50, 300}, DType::f32, -3, 3);
  Tensor yc = layer_norm(x, Tensor(), Tensor(), 1e-3), yg = layer_norm(gpu(x), Tensor(), Tensor(), 1e-3);
  check_close(yg, yc, 2e-5, 2e-5, "layer_norm with eps 1e-3");
}

// Not a pass/fail check: reports each large reduction's read bandwidth beside a copy's, and warns
// below 80% of it (the target on the GPU the lead benchmarks on).
BOOST_AUTO_TEST_CASE(reduction_bandwidth_report, SPARTA_NEEDS_GPU) {
  const int reps = 20;
  auto seconds = [&](const std::function<void()>& fn) {
    fn();
    cuda::synchronize(0);
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) fn();
    cuda::synchronize(0);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  };
  for (DType dt : {DType::f32, DType::bf16}) {
    Tensor x = full({8192, 8192}, 0.5, dt, Device::cuda());  // 256 MiB in f32
    const double bytes = double(x.nbytes());
    const double copy = 2 * bytes / seconds([&] { (void)clone(x); });
    struct Run {
      const char* name;
      std::vector<int> axes;
    };
    for (const Run& r : std::vector<Run>{{"full", {}}, {"rows", {1}}, {"columns", {0}}}) {
      const double gbs = bytes / seconds([&] { (void)sum(x, r.axes); });
      BOOST_TEST_MESSAGE(dtype_name(dt) << " sum " << r.name << ": " << gbs / 1e9 << " GB/s, copy " << copy / 1e9
                                        << " GB/s (" << 100 * gbs / copy << "%)");
      BOOST_WARN_MESSAGE(gbs >= 0.8 * copy, dtype_name(dt) << " sum over " << r.name << " reads at " << 100 * gbs / copy
                                                           << "% of the copy bandwidth");
    }
  }
  Tensor logits = full({8192, 50304}, 0.5, DType::bf16, Device::cuda());
  Tensor targets = gpu(random_int(0, 50304, {8192}));
  const double ce = double(logits.nbytes()) / seconds([&] { (void)cross_entropy(logits, targets); });
  BOOST_TEST_MESSAGE("bf16 cross_entropy (8192, 50304): " << ce / 1e9 << " GB/s of logits read");
  Tensor h = full({16384, 4096}, 0.5, DType::bf16, Device::cuda());
  const double ln = double(h.nbytes()) / seconds([&] { (void)layer_norm(h, Tensor(), Tensor()); });
  BOOST_TEST_MESSAGE("bf16 layer_norm (16384, 4096): " << ln / 1e9 << " GB/s of x read");
}

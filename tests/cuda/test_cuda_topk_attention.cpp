// Top-k attention on CUDA (the simple kernels' selection and thresholded passes; the tensor-core
// path, whose selection is a mask the flash kernels run with) against the CPU kernel: outputs, lse,
// the saved thresholds and dq/dk/dv, f32, bf16 and f64, ragged lengths, head dims 64 and 128, k from 1 to beyond the
// window, rows that see no key; the selection's two ways (scores kept in shared memory, or
// recomputed in every pass) against each other; and gradcheck of the CUDA path in f64.
//
// Which keys survive depends on comparisons between scores, and CPU and GPU sum a dot product in
// different orders: on arbitrary inputs two scores a rounding apart at the k-th place would make
// the backends keep different keys, now and then. Parity inputs are therefore multiples of 1/4 or
// 1/16, whose dot products are exact in f32 in any order: both backends see the same scores to the
// bit, so thresholds must agree exactly, ties (frequent on such a grid) included. The thresholds
// of arbitrary inputs are compared with a tolerance (the k-th largest is continuous in the scores).
#include <cmath>
#include <memory>
#include <tuple>
#include <vector>

#include "core/ops/attention/attention.h"
#include "core/ops/attention/topk.cuh"
#include "nn/attention/patterns.h"
#include "tests/cuda/parity.h"

using namespace sparta;
using namespace sparta::nn;
using namespace sparta::test;

namespace {

using LayoutPtr = std::shared_ptr<const attn::BlockLayout>;

// Values in [-1, 1] on a grid of 1/steps, in dtype (exact in bf16 for steps <= 128).
Tensor grid_random(const Shape& shape, DType dt, int64_t steps) {
  return cast(cast(random_int(-steps, steps + 1, shape), DType::f64) * (1.0 / double(steps)), dt);
}

// A copy of L with another top_k.
LayoutPtr with_top_k(const LayoutPtr& L, int64_t k) {
  auto copy = std::make_shared<attn::BlockLayout>(*L);
  copy->top_k = k;
  return copy;
}

struct Tolerance {
  double rtol, atol;
};
Tolerance tolerance(DType dt) {
  if (dt == DType::f64) return {1e-10, 1e-12};
  if (dt == DType::f32) return {2e-4, 2e-5};
  return {2e-2, 2e-2};
}

struct Result {
  Tensor o, lse, thr, dq, dk, dv;
};

// The primitive's outputs (o, lse, thresholds, and on the tensor-core path the selection), and the
// gradients through autograd, on one device.
Result run_on(Device dev, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& gout, const LayoutPtr& L) {
  auto put = [&](const Tensor& t) { return dev.is_cuda() ? gpu(t) : clone(t); };
  Tensor qs = autograd::requires_grad(put(q)), ks = autograd::requires_grad(put(k)), vs = autograd::requires_grad(put(v));
  Result r;
  {
    autograd::NoGradGuard no_grad;
    const double scale = 1 / std::sqrt(double(q.shape(3)));
    Tensors out = run(std::make_shared<SparseAttention>(L, scale), {qs.detach(), ks.detach(), vs.detach()});
    const bool flash = dev.is_cuda() && std::string(cuda::attention_kernel_for(*L, qs)) == "flash";
    BOOST_REQUIRE_EQUAL(out.size(), flash ? 4u : 3u);
    r.lse = host(out[1]);
    r.thr = host(out[2]);
  }
  Tensor o = sparse_attention(qs, ks, vs, L);
  BOOST_CHECK(o.device() == dev);
  autograd::backward(o, put(gout));
  r.o = host(o);
  r.dq = host(autograd::grad(qs));
  r.dk = host(autograd::grad(ks));
  r.dv = host(autograd::grad(vs));
  return r;
}

// Row values (lse, thresholds) with -inf (a row that sees no key, or keeps all its keys) as a
// finite sentinel, so that two -inf compare equal and a -inf against a number fails.
Tensor sentinel(const Tensor& t) {
  std::vector<double> x = t.to_vector<double>();
  for (double& e : x)
    if (std::isinf(e) && e < 0) e = -1e30;
  return from_vector(x, t.shape(), DType::f64);
}

// exact_thresholds: the inputs are on a grid (see the top), so the thresholds agree to the bit.
void compare(const std::string& what, const Result& got, const Result& want, DType dt, bool exact_thresholds) {
  const Tolerance t = tolerance(dt), tl = dt == DType::f64 ? t : tolerance(DType::f32);
  BOOST_CHECK(got.thr.dtype() == want.thr.dtype() && got.lse.dtype() == want.lse.dtype());
  if (exact_thresholds) {
    check_exact(sentinel(got.thr), sentinel(want.thr), what + ": threshold");
  } else {
    check_close(sentinel(got.thr), sentinel(want.thr), tl.rtol, tl.atol, what + ": threshold");
  }
  check_close(got.o, want.o, t.rtol, t.atol, what + ": o");
  check_close(sentinel(got.lse), sentinel(want.lse), tl.rtol, tl.atol, what + ": lse");
  check_close(got.dq, want.dq, t.rtol, t.atol, what + ": dq");
  check_close(got.dk, want.dk, t.rtol, t.atol, what + ": dk");
  check_close(got.dv, want.dv, t.rtol, t.atol, what + ": dv");
}

// steps > 0: grid inputs (exact thresholds); 0: uniform inputs (f64 only: see the top). The CPU
// runs on the same values in cpu_dt (default dt; f32 for f16, which the CPU kernel does not take).
void check_case(const std::string& name, const LayoutPtr& L, int64_t B, int64_t H, int64_t d, DType dt,
                int64_t steps, DType cpu_dt = DType::u8) {
  const int64_t n = L->seq_len;
  auto input = [&] { return steps > 0 ? grid_random({B, H, n, d}, dt, steps) : random({B, H, n, d}, dt); };
  Tensor q = input(), k = input(), v = input(), gout = random({B, H, n, d}, dt);
  const std::string what = name + " top_k=" + std::to_string(L->top_k) + " n=" + std::to_string(n) + " block=" +
                           std::to_string(L->block_q) + " B=" + std::to_string(B) + " d=" + std::to_string(d) + " " +
                           dtype_name(dt) + (steps > 0 ? " grid 1/" + std::to_string(steps) : " uniform");
  auto on_cpu = [&](const Tensor& t) { return cpu_dt == DType::u8 ? t : cast(t, cpu_dt); };
  Result want = run_on(Device::cpu(), on_cpu(q), on_cpu(k), on_cpu(v), on_cpu(gout), L);
  Result got = run_on(Device::cuda(), q, k, v, gout, L);
  compare(what, got, want, dt, steps > 0);
}

struct TopKCase {
  int64_t k, window, n, block;
};
// k = 1, k < window, k = window, a window over several blocks, ragged lengths, a block of 64.
const TopKCase kCases[] = {{1, 16, 77, 16}, {5, 16, 77, 16}, {16, 16, 77, 16}, {32, 100, 200, 32}, {7, 64, 130, 64}};

}  // namespace

BOOST_AUTO_TEST_CASE(top_k_matches_the_cpu_f32_and_bf16, SPARTA_NEEDS_GPU) {
  for (const TopKCase& c : kCases) {
    auto L = top_k(c.k, c.window)->layout(c.n, c.block, 3);
    for (DType dt : {DType::f32, DType::bf16}) {
      for (int64_t d : {64, 128}) {
        for (int64_t steps : {4, 16}) check_case("topk", L, 2, 3, d, dt, steps);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(top_k_matches_the_cpu_f64_and_odd_head_dims, SPARTA_NEEDS_GPU) {
  for (const TopKCase& c : kCases) check_case("topk", top_k(c.k, c.window)->layout(c.n, c.block, 2), 2, 2, 19,
                                              DType::f64, 0);
  for (int64_t d : {1, 37, 200}) check_case("topk", top_k(3, 20)->layout(50, 16, 1), 1, 2, d, DType::f32, 16);
}

BOOST_AUTO_TEST_CASE(k_beyond_the_window_and_rows_without_keys, SPARTA_NEEDS_GPU) {
  // More than any row has: every threshold is -inf and every allowed key is kept.
  auto wide = with_top_k(top_k(16, 16)->layout(77, 16, 2), 40);
  check_case("k > window", wide, 2, 2, 64, DType::f32, 16);
  // Query block 0 lists no key block: its rows give o = 0, lse = -inf and no gradient.
  auto sparse = with_top_k(explicit_blocks({{1, 0}, {2, 0}, {2, 2}, {3, 1}}, false)->layout(60, 16, 2), 3);
  check_case("rows without keys", sparse, 2, 2, 64, DType::f32, 4);
  check_case("rows without keys", sparse, 1, 2, 64, DType::bf16, 16);
}

BOOST_AUTO_TEST_CASE(k_at_least_the_window_is_the_local_pattern, SPARTA_NEEDS_GPU) {
  Tensor q = gpu(random({2, 3, 90, 64})), k = gpu(random({2, 3, 90, 64})), v = gpu(random({2, 3, 90, 64}));
  Tensor want = host(sparse_attention(q, k, v, local(12)->layout(90, 16, 3)));
  for (int64_t kk : {12, 50}) {
    Tensor got = host(sparse_attention(q, k, v, with_top_k(top_k(12, 12)->layout(90, 16, 3), kk)));
    check_close(got, want, 1e-6, 1e-7, "topk k=" + std::to_string(kk) + " window 12 vs local(12)");
  }
}

BOOST_AUTO_TEST_CASE(a_long_window_on_the_tensor_cores, SPARTA_NEEDS_GPU) {
  // topk:32:512 as the benchmark runs it (blocks of 64), and on blocks of 128, at head dims 64 and
  // 128, bf16 and f16, over two batches (each (batch, head) has its own selection): the selection
  // kernel on tensor cores, then the flash kernels, forward and backward, fused and deterministic.
  struct Case {
    int64_t k, window, n, block, B, H, d;
    DType dt;
  };
  const Case cases[] = {{32, 512, 1100, 64, 2, 3, 64, DType::bf16}, {32, 512, 1100, 128, 1, 2, 64, DType::bf16},
                        {32, 512, 1100, 64, 1, 2, 128, DType::bf16}, {40, 300, 700, 64, 2, 2, 64, DType::f16},
                        {3, 64, 333, 64, 1, 3, 64, DType::bf16}};
  for (const Case& c : cases) {
    auto L = top_k(c.k, c.window)->layout(c.n, c.block, int(c.H));
    Tensor probe = gpu(random({c.B, c.H, c.n, c.d}, c.dt));
    BOOST_REQUIRE_EQUAL(std::string(cuda::attention_kernel_for(*L, probe)), "flash");
    const cuda::AttentionKernelCounts before = cuda::attention_kernel_counts();
    const DType cpu_dt = c.dt == DType::f16 ? DType::f32 : c.dt;
    check_case("topk on tensor cores", L, c.B, c.H, c.d, c.dt, 16, cpu_dt);
    if (c.d == 64 && c.block == 64) {
      DeterministicScope deterministic(true);
      check_case("topk on tensor cores, deterministic backward", L, c.B, c.H, c.d, c.dt, 16, cpu_dt);
    }
    const cuda::AttentionKernelCounts after = cuda::attention_kernel_counts();
    BOOST_CHECK(after.flash_forward > before.flash_forward && after.flash_backward > before.flash_backward);
    BOOST_CHECK(after.simple_forward == before.simple_forward && after.simple_backward == before.simple_backward);
  }
  // A row longer than the selection holds (window 1024: 17 key blocks) runs the simple kernels.
  auto wide = top_k(32, 1024)->layout(1100, 64, 2);
  BOOST_CHECK_EQUAL(std::string(cuda::attention_kernel_for(*wide, gpu(random({1, 2, 1100, 64}, DType::bf16)))),
                    "simple");
  check_case("topk long window", wide, 1, 2, 64, DType::bf16, 16);
  check_case("topk long window", top_k(32, 512)->layout(1100, 64, 2), 1, 2, 128, DType::f32, 16);
}

BOOST_AUTO_TEST_CASE(tensor_core_selection_of_arbitrary_inputs, SPARTA_NEEDS_GPU) {
  // Off the grid the tensor cores' scores differ from the CPU's by roundings, so where two scores
  // nearly tie at the k-th place the two selections may differ. The thresholds still agree to a
  // rounding, and o agrees in every row but those rare ones (one key more or less moves o by
  // about that key's weight, a 32nd).
  auto L = top_k(32, 512)->layout(1100, 64, 3);
  Tensor q = random({1, 3, 1100, 64}, DType::bf16), k = random({1, 3, 1100, 64}, DType::bf16),
         v = random({1, 3, 1100, 64}, DType::bf16);
  autograd::NoGradGuard no_grad;
  auto prim = std::make_shared<SparseAttention>(L, 0.125);
  Tensors got = run(prim, {gpu(q), gpu(k), gpu(v)});
  Tensors want = run(prim, {q, k, v});
  check_close(sentinel(host(got[2])), sentinel(want[2]), 1e-5, 1e-5, "tensor-core thresholds");
  // o agrees except in rows whose selection differs: count those; they must be rare.
  Tensor diff = max(abs(cast(host(got[0]), DType::f64) - cast(want[0], DType::f64)), {-1});
  const std::vector<double> d = diff.to_vector<double>();
  int64_t off = 0;
  for (double x : d) off += x > 3e-2;
  BOOST_CHECK_MESSAGE(off <= int64_t(d.size()) / 100, off << " of " << d.size() << " rows differ from the CPU's");
}

BOOST_AUTO_TEST_CASE(thresholds_of_arbitrary_inputs, SPARTA_NEEDS_GPU) {
  for (DType dt : {DType::f32, DType::bf16}) {
    for (auto [kk, w, n] : {std::tuple{1, 16, 77}, std::tuple{8, 64, 300}, std::tuple{32, 512, 1100}}) {
      auto L = top_k(kk, w)->layout(n, 64, 3);
      Tensor q = random({2, 3, n, 64}, dt), k = random({2, 3, n, 64}, dt), v = random({2, 3, n, 64}, dt);
      autograd::NoGradGuard no_grad;
      auto prim = std::make_shared<SparseAttention>(L, 0.125);
      Tensor want = run(prim, {q, k, v})[2];
      Tensor got = host(run(prim, {gpu(q), gpu(k), gpu(v)})[2]);
      check_close(sentinel(got), sentinel(want), 1e-5, 1e-6, "threshold k=" + std::to_string(kk) + " window " + std::to_string(w) + " " +
                                             dtype_name(dt));
    }
  }
}

BOOST_AUTO_TEST_CASE(kept_and_recomputed_scores_select_the_same, SPARTA_NEEDS_GPU) {
  // Scores kept in shared memory between the radix passes, or recomputed in each (a row longer
  // than the cache): the same thresholds to the bit, on arbitrary inputs.
  for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
    for (int64_t d : {64, 128}) {
      auto L = top_k(32, 512)->layout(700, 64, 2);
      Tensor q = gpu(random({2, 2, 700, d}, dt)), k = gpu(random({2, 2, 700, d}, dt));
      auto dl = cuda::device_layout(L, Device::cuda());
      const Shape rows = {2, 2, 700};
      Tensor kept = Tensor::empty(rows, accumulation_dtype(dt), Device::cuda());
      Tensor again = Tensor::empty(rows, accumulation_dtype(dt), Device::cuda());
      cuda::topk::thresholds(*L, dl->host_segments[0], 0.1, q, k, kept);
      cuda::topk::thresholds(*L, dl->host_segments[0], 0.1, q, k, again, 0);
      const std::string what = std::string("cached vs recomputed, ") + dtype_name(dt) + " d=" + std::to_string(d);
      check_exact(sentinel(host(again)), sentinel(host(kept)), what);
      // And neither is -inf past the first 32 rows (each of those rows has more than 32 keys).
      Tensor tail = slice(host(kept), 2, 32, 700);
      BOOST_CHECK_MESSAGE(std::isfinite(min(cast(tail, DType::f64)).item<double>()), what << ": a -inf threshold");
    }
  }
}

BOOST_AUTO_TEST_CASE(the_backward_uses_the_saved_threshold, SPARTA_NEEDS_GPU) {
  // The backward primitive given another threshold (that of k = 2 for a k = 6 layout) must follow
  // it, as the CPU's does, rather than select again.
  auto L6 = top_k(6, 24)->layout(70, 16, 2), L2 = with_top_k(L6, 2);
  Tensor q = grid_random({2, 2, 70, 64}, DType::f32, 16), k = grid_random({2, 2, 70, 64}, DType::f32, 16),
         v = random({2, 2, 70, 64}), dout = random({2, 2, 70, 64});
  autograd::NoGradGuard no_grad;
  const double scale = 0.125;
  Tensors fwd = run(std::make_shared<SparseAttention>(L6, scale), {q, k, v});
  Tensor thr2 = run(std::make_shared<SparseAttention>(L2, scale), {q, k, v})[2];
  auto bwd = std::make_shared<SparseAttentionBackward>(L6, scale);
  Tensors want = run(bwd, {q, k, v, fwd[0], fwd[1], dout, thr2});
  Tensors got = run(bwd, {gpu(q), gpu(k), gpu(v), gpu(fwd[0]), gpu(fwd[1]), gpu(dout), gpu(thr2)});
  Tensors plain = run(bwd, {q, k, v, fwd[0], fwd[1], dout, fwd[2]});
  const char* names[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; ++i) {
    check_close(host(got[size_t(i)]), want[size_t(i)], 2e-4, 2e-5, std::string("another threshold: ") + names[i]);
  }
  // The test means something: with its own threshold the gradient differs.
  BOOST_CHECK(max(abs(cast(want[0], DType::f64) - cast(plain[0], DType::f64))).item<double>() > 1e-3);
}

BOOST_AUTO_TEST_CASE(the_backward_runs_the_forwards_selection, SPARTA_NEEDS_GPU) {
  // On the tensor cores the forward's selection is an output, and the backward runs it instead of
  // selecting again: given k = 2's selection with k = 6's thresholds, it must give what selecting
  // again from k = 2's thresholds gives, to the bit (deterministic backward), and differ from
  // k = 6's own. A selection of another shape is refused.
  auto L6 = top_k(6, 128)->layout(300, 64, 2), L2 = with_top_k(L6, 2);
  auto bf = [](const Tensor& t) { return gpu(cast(t, DType::bf16)); };
  Tensor q = bf(grid_random({2, 2, 300, 64}, DType::f32, 16)), k = bf(grid_random({2, 2, 300, 64}, DType::f32, 16)),
         v = bf(random({2, 2, 300, 64})), dout = bf(random({2, 2, 300, 64}));
  BOOST_REQUIRE_EQUAL(std::string(cuda::attention_kernel_for(*L6, q)), "flash");
  autograd::NoGradGuard no_grad;
  DeterministicScope deterministic(true);
  const double scale = 0.125;
  Tensors f6 = run(std::make_shared<SparseAttention>(L6, scale), {q, k, v});
  Tensors f2 = run(std::make_shared<SparseAttention>(L2, scale), {q, k, v});
  BOOST_REQUIRE_EQUAL(f6.size(), 4u);
  BOOST_REQUIRE(f6[3].dtype() == DType::i64 && f6[3].numel() == f2[3].numel());
  auto bwd = std::make_shared<SparseAttentionBackward>(L6, scale);
  Tensors own = run(bwd, {q, k, v, f6[0], f6[1], dout, f6[2], f6[3]});
  Tensors given = run(bwd, {q, k, v, f6[0], f6[1], dout, f6[2], f2[3]});
  Tensors again = run(bwd, {q, k, v, f6[0], f6[1], dout, f2[2]});  // no selection: selects from k = 2's thresholds
  const char* names[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; ++i)
    check_exact(host(given[size_t(i)]), host(again[size_t(i)]), std::string("k = 2's selection: ") + names[i]);
  BOOST_CHECK(max(abs(cast(host(own[0]), DType::f64) - cast(host(given[0]), DType::f64))).item<double>() > 1e-3);
  Tensor short_sel = slice(f6[3], 0, 0, f6[3].numel() - 1);
  BOOST_CHECK_THROW(run(bwd, {q, k, v, f6[0], f6[1], dout, f6[2], short_sel}), Error);
}

BOOST_AUTO_TEST_CASE(gradcheck_of_the_cuda_path, SPARTA_NEEDS_GPU) {
  for (auto [kk, w] : {std::pair{3, 6}, std::pair{1, 5}}) {
    auto L = top_k(kk, w)->layout(13, 4, 2);
    check_grad("cuda sparse_attention topk(" + std::to_string(kk) + ", " + std::to_string(w) + ")",
               [&](const Tensors& in) {
                 return to_device(sparse_attention(to_device(in[0], Device::cuda()), to_device(in[1], Device::cuda()),
                                                   to_device(in[2], Device::cuda()), L),
                                  Device::cpu());
               },
               {leaf({1, 2, 13, 5}), leaf({1, 2, 13, 5}), leaf({1, 2, 13, 5})});
  }
}

// The tensor-core attention kernels (core/ops/attention/attention_flash_*.cu) against the CPU kernel
// and against the simple CUDA kernel, on layouts the fast path covers: bf16 and f16, head dims 64
// and 128, blocks of 64 and 128, lengths that are multiples of 64 and ragged ones, every
// single-segment pattern family (dense causal, local aligned to the blocks and not, bidirectional
// local, BigBird with random blocks, Longformer with dilation and global tokens, unions, per-head
// mixes), the patterns of several segments (strided, permuted; fixed, gathered keys), query blocks that see no key and key blocks no query sees. Also: the dispatch (which
// calls take the fast path, that they really ran it, SPARTA_ATTENTION_KERNEL=simple), determinism.
//
// Reference: the CPU kernel in f32 on the same (bf16 or f16) input values. Tolerances, per element
// |got - want| <= rtol |want| + atol max|want| (atol relative to the tensor's largest value, since
// o and the gradients are averages whose scale depends on the pattern):
//   bf16: rtol 2e-2, atol 2e-2
//   f16:  rtol 1e-2, atol 4e-3
//   lse (f32 in both): rtol 1e-4, atol 1e-4.
// The GPU's errors come from rounding: outputs to the input type (2^-9 relative for bf16), P and
// dS to it before their products (as in FlashAttention), and above all delta = rowsum(dO * O)
// taken from the rounded O, which shifts every dS of a row the same way (the CPU reference keeps O
// in f32). A host emulation of the kernels against an exact reference measured at most 0.46 of
// the bf16 tolerance with atol 1e-2 (dq, dense causal, N = 1000), 0.14 of the f16 one.
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>

#include "core/determinism.h"
#include "core/ops/attention/attention.h"
#include "nn/attention/patterns.h"
#include "tests/attention_cases.h"
#include "tests/cuda/parity.h"

using namespace sparta;
using namespace sparta::nn;
using namespace sparta::test;

namespace {

struct Tolerance {
  double rtol, atol;  // atol: a fraction of the reference's largest magnitude
};
Tolerance tolerance(DType dt) { return dt == DType::bf16 ? Tolerance{2e-2, 2e-2} : Tolerance{1e-2, 4e-3}; }

// o, lse, dq, dk, dv on the host (o and the gradients as f32).
struct Result {
  Tensor o, lse, dq, dk, dv;
};

// Forward and backward through the two primitives (the public op refuses f16; the primitives'
// CUDA paths take it). dO = gout.
Result run_primitives(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& gout,
                      const std::shared_ptr<const attn::BlockLayout>& L) {
  autograd::NoGradGuard no_grad;
  const double scale = 1 / std::sqrt(double(q.shape(3)));
  Tensors f = run(std::make_shared<SparseAttention>(L, scale), {q, k, v});
  Tensors b = run(std::make_shared<SparseAttentionBackward>(L, scale), {q, k, v, f[0], f[1], gout});
  auto f32 = [](const Tensor& t) { return cast(host(t), DType::f32); };
  return {f32(f[0]), host(f[1]), f32(b[0]), f32(b[1]), f32(b[2])};
}

// Sets SPARTA_ATTENTION_KERNEL for the guard's lifetime.
struct KernelOverride {
  explicit KernelOverride(const char* value) { setenv("SPARTA_ATTENTION_KERNEL", value, 1); }
  ~KernelOverride() { unsetenv("SPARTA_ATTENTION_KERNEL"); }
};

// Sets SPARTA_FLASH_WGMMA for the guard's lifetime ("0": the mma.sync kernels on Hopper too).
struct WgmmaOverride {
  explicit WgmmaOverride(const char* value) { setenv("SPARTA_FLASH_WGMMA", value, 1); }
  ~WgmmaOverride() { unsetenv("SPARTA_FLASH_WGMMA"); }
};

double max_abs(const Tensor& t) {
  double m = 0;
  for (double x : t.to_vector<double>()) m = std::max(m, std::abs(x));
  return m;
}

void check_scaled(const Tensor& got, const Tensor& want, Tolerance t, const std::string& what) {
  check_close(got, want, t.rtol, t.atol * max_abs(want) + 1e-6, what);
}

// lse, where a row that sees no key is -inf on both sides.
void check_lse(const Tensor& got, const Tensor& want, const std::string& what) {
  BOOST_REQUIRE(got.shape() == want.shape());
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const bool ok = std::isinf(w[i]) ? g[i] == w[i] : std::abs(g[i] - w[i]) <= 1e-4 + 1e-4 * std::abs(w[i]);
    if (!ok && bad++ == 0) first = i;
  }
  BOOST_CHECK_MESSAGE(bad == 0, what << ": " << bad << " lse values differ, the first at " << first << ": "
                                     << (g.empty() ? 0 : g[first]) << ", expected " << (w.empty() ? 0 : w[first]));
}

void compare(const Result& got, const Result& want, DType dt, const std::string& what) {
  const Tolerance t = tolerance(dt);
  check_scaled(got.o, want.o, t, what + ": o");
  check_lse(got.lse, want.lse, what + ": lse");
  check_scaled(got.dq, want.dq, t, what + ": dq");
  check_scaled(got.dk, want.dk, t, what + ": dk");
  check_scaled(got.dv, want.dv, t, what + ": dv");
}

// Single-segment patterns in token order: all on the fast path.
std::vector<PatternCase> fast_cases(int64_t n) {
  return {
      {"dense causal", dense_causal()},
      {"local 128 (block-aligned)", local(128)},
      {"local 100", local(100)},
      {"local 77 bidirectional", local(77, false)},
      {"bigbird", bigbird(1, 1, 2, 7)},  // random blocks: a layout per head
      {"bigbird causal", bigbird(1, 1, 1, 3, true)},
      {"longformer", longformer(24, 3, {0, n / 2, n - 1}, false)},
      {"longformer causal", longformer(40, 1, {5}, true)},
      {"union", union_of({local(50), bigbird(1, 0, 1, 11, true)})},
      {"per head", per_head({local(100), dense_causal(), longformer(16, 3, {1, n - 1}, true)})},
  };
}

// Patterns of several segments: strided (a residue-class segment, permuted) and fixed (a segment of
// gathered summary keys), run on gathered copies and merged (attention_flash_segments.cu). Fixed
// needs at least one block of summary keys (n / l - 1) * c >= block to stay on the fast path.
std::vector<PatternCase> segmented_cases(int64_t block) {
  return {
      {"strided 22", strided(22)},
      {"strided 33", strided(33)},  // classes of unequal length
      {"strided 64", strided(64)},
      {"fixed", fixed(block, block / 4)},
      {"fixed, summary not a block multiple", fixed(block, block / 4 + 3)},
  };
}

// Runs one case on the fast path, the simple CUDA kernel and the CPU (f32), and compares.
void check_case(const PatternCase& c, int64_t B, int64_t H, int64_t n, int64_t block, int64_t d, DType dt) {
  auto L = c.pattern->layout(n, block, int(H));
  // Scores of a few units (q ~ N(0, 4)): softmax rows that are neither flat nor one-hot, so the
  // running max moves between tiles.
  Tensor q = cast(random_normal({B, H, n, d}) * 2.0, dt), k = random_normal({B, H, n, d}, dt),
         v = random_normal({B, H, n, d}, dt), gout = random({B, H, n, d}, dt);
  const std::string what = c.name + " B=" + std::to_string(B) + " H=" + std::to_string(H) + " n=" + std::to_string(n) +
                           " block=" + std::to_string(block) + " d=" + std::to_string(d) + " " + dtype_name(dt);
  const Tensor qg = gpu(q), kg = gpu(k), vg = gpu(v), gg = gpu(gout);
  BOOST_REQUIRE_MESSAGE(std::string(cuda::attention_kernel_for(*L, qg)) == "flash", what << ": not on the fast path");

  const cuda::AttentionKernelCounts before = cuda::attention_kernel_counts();
  Result flash = run_primitives(qg, kg, vg, gg, L);
  const cuda::AttentionKernelCounts after = cuda::attention_kernel_counts();
  BOOST_CHECK_MESSAGE(after.flash_forward == before.flash_forward + 1 && after.flash_backward == before.flash_backward + 1,
                      what << ": the tensor-core kernels did not run");

  Result simple;
  {
    KernelOverride force("simple");
    simple = run_primitives(qg, kg, vg, gg, L);
    BOOST_CHECK(cuda::attention_kernel_counts().simple_forward == after.simple_forward + 1);
  }
  Result cpu = run_primitives(cast(q, DType::f32), cast(k, DType::f32), cast(v, DType::f32), cast(gout, DType::f32), L);
  compare(flash, cpu, dt, what + " (vs CPU)");
  compare(flash, simple, dt, what + " (vs simple CUDA)");
}

}  // namespace

BOOST_AUTO_TEST_CASE(flash_matches_cpu_and_simple_block_64, SPARTA_NEEDS_GPU) {
  for (DType dt : {DType::bf16, DType::f16})
    for (int64_t d : {64, 128})
      for (int64_t n : {256, 1000})  // 1000: a ragged last tile of 40 rows
        for (const PatternCase& c : fast_cases(n)) check_case(c, 2, 3, n, 64, d, dt);
}

BOOST_AUTO_TEST_CASE(flash_matches_cpu_and_simple_long_ragged, SPARTA_NEEDS_GPU) {
  // 4099 = 64 * 64 + 3: a last tile of 3 rows, many tiles per row (the pipeline's steady state).
  for (const PatternCase& c : fast_cases(4099)) check_case(c, 2, 3, 4099, 64, 64, DType::bf16);
  for (const PatternCase& c : fast_cases(4099)) check_case(c, 2, 3, 4099, 64, 128, DType::f16);
  check_case({"dense causal", dense_causal()}, 2, 3, 4099, 64, 128, DType::bf16);
  check_case({"dense causal", dense_causal()}, 2, 3, 4096, 64, 64, DType::f16);
}

// On an sm_90 GPU head dim 64 runs the wgmma kernels; the mma.sync ones (every other GPU, and
// head dim 128) must stay right at head dim 64 too.
BOOST_AUTO_TEST_CASE(flash_mma_sync_kernels_at_head_dim_64, SPARTA_NEEDS_GPU) {
  WgmmaOverride off("0");
  for (DType dt : {DType::bf16, DType::f16})
    for (const PatternCase& c : fast_cases(1000)) check_case(c, 2, 3, 1000, 64, 64, dt);
  for (const PatternCase& c : segmented_cases(64)) check_case(c, 1, 2, 1537, 64, 64, DType::bf16);
}

BOOST_AUTO_TEST_CASE(flash_matches_cpu_and_simple_block_128, SPARTA_NEEDS_GPU) {
  // A 128 block runs as 2 x 2 tiles of 64: mask bits of 128-wide rows, sub-tiles past the end.
  for (int64_t n : {384, 1000, 1090}) {  // 1090: a last block of 66 (two tiles, the second of 2)
    for (const PatternCase& c : fast_cases(n)) {
      check_case(c, 2, 3, n, 128, 64, DType::bf16);
      check_case(c, 2, 3, n, 128, 128, DType::f16);
    }
  }
}

BOOST_AUTO_TEST_CASE(flash_several_segments, SPARTA_NEEDS_GPU) {
  for (DType dt : {DType::bf16, DType::f16})
    for (int64_t d : {64, 128})
      for (int64_t n : {1000, 1537})
        for (const PatternCase& c : segmented_cases(64)) check_case(c, 2, 3, n, 64, d, dt);
  for (const PatternCase& c : segmented_cases(64)) check_case(c, 1, 2, 4099, 64, 64, DType::bf16);
  for (const PatternCase& c : segmented_cases(128)) {
    check_case(c, 2, 3, 1090, 128, 64, DType::bf16);
    check_case(c, 1, 2, 2000, 128, 128, DType::f16);
  }
}

// Strided attention's residue-class segment: on Hopper (wgmma, head dims 64 and 128) the kernels read its
// rows of q, k, v, dO, lse and delta through the permutation and add its gradients into token
// order themselves (forward_in_place, backward_in_place); elsewhere it runs on gathered copies.
// Both ways must agree with the CPU (check_case), on ragged classes too.
BOOST_AUTO_TEST_CASE(flash_strided_reads_its_rows_in_place, SPARTA_NEEDS_GPU) {
  const bool hopper = cuda::compute_capability(0) == 90;
  for (int64_t n : {1000, 4099})
    for (const PatternCase& c : {PatternCase{"strided 33", strided(33)}, PatternCase{"strided 64", strided(64)}}) {
      for (int64_t d : {64, 128}) {
        const int64_t before = cuda::attention_kernel_counts().flash_in_place;
        check_case(c, 2, 3, n, 64, d, DType::bf16);
        BOOST_CHECK_EQUAL(cuda::attention_kernel_counts().flash_in_place - before, hopper ? 2 : 0);
      }
      {
        WgmmaOverride off("0");
        const int64_t before_copies = cuda::attention_kernel_counts().flash_in_place;
        check_case(c, 1, 2, n, 64, 64, DType::f16);
        BOOST_CHECK_EQUAL(cuda::attention_kernel_counts().flash_in_place, before_copies);
      }
      DeterministicScope on(true);  // the deterministic backward takes gathered copies
      const int64_t before_det = cuda::attention_kernel_counts().flash_in_place;
      check_case(c, 1, 2, n, 64, 64, DType::bf16);
      BOOST_CHECK_EQUAL(cuda::attention_kernel_counts().flash_in_place - before_det, hopper ? 1 : 0);
    }
  // The class segment's far band starts 2 l back, so a class's first two tokens see nothing in it.
  // l = 128 over 200 tokens: classes of two and one (the map divides by 2 and 1), and no query
  // sees a key of the segment. l = 200 over 410 tokens: 10 classes of three, then 190 of two, so
  // the class order's first tile sees keys and the six after it see none: their rows of o and lse
  // must still go to their own tokens.
  check_case({"strided 128, no far keys", strided(128)}, 2, 3, 200, 64, 64, DType::bf16);
  check_case({"strided 200, tiles without keys", strided(200)}, 2, 3, 410, 64, 64, DType::bf16);
  check_case({"strided 100, ragged", strided(100)}, 1, 2, 4099, 64, 64, DType::f16);
}

BOOST_AUTO_TEST_CASE(flash_blocks_that_see_nothing, SPARTA_NEEDS_GPU) {
  // Query block 1 lists no key block (its rows: o = 0, lse = -inf, dq = 0); key block 3 is
  // listed by no query block (dk = dv = 0); block 2 sees blocks 0 and 2.
  auto pattern = explicit_blocks({{0, 0}, {2, 0}, {2, 2}, {3, 1}}, true);
  for (DType dt : {DType::bf16, DType::f16}) {
    for (int64_t d : {64, 128}) check_case({"explicit with holes", pattern}, 2, 3, 256, 64, d, dt);
    check_case({"explicit with holes, ragged", pattern}, 1, 2, 250, 64, 64, dt);
  }
}

BOOST_AUTO_TEST_CASE(flash_through_autograd_bf16, SPARTA_NEEDS_GPU) {
  // The public op and its vjp, on inputs laid out (B, N, H, D) as a model's projections give
  // them (made contiguous by the primitive), against the CPU's own bf16 kernel.
  auto L = longformer(32, 2, {0, 500}, false)->layout(1000, 64, 3);
  Tensor q = random_normal({2, 1000, 3, 64}, DType::bf16), k = random_normal({2, 1000, 3, 64}, DType::bf16),
         v = random_normal({2, 1000, 3, 64}, DType::bf16), gout = random({2, 3, 1000, 64}, DType::bf16);
  auto run_on = [&](Device dev) {
    auto put = [&](const Tensor& t) { return autograd::requires_grad(permute(to_device(t, dev), {0, 2, 1, 3})); };
    Tensor qs = put(q), ks = put(k), vs = put(v);
    Tensor o = sparse_attention(qs, ks, vs, L);
    autograd::backward(o, to_device(gout, dev));
    auto f32 = [](const Tensor& t) { return cast(host(t), DType::f32); };
    return Result{f32(o), Tensor(), f32(autograd::grad(qs)), f32(autograd::grad(ks)), f32(autograd::grad(vs))};
  };
  const cuda::AttentionKernelCounts before = cuda::attention_kernel_counts();
  Result got = run_on(Device::cuda());
  const cuda::AttentionKernelCounts after = cuda::attention_kernel_counts();
  BOOST_CHECK_EQUAL(after.flash_forward, before.flash_forward + 1);
  BOOST_CHECK_EQUAL(after.flash_backward, before.flash_backward + 1);
  BOOST_CHECK_EQUAL(after.simple_forward, before.simple_forward);
  Result want = run_on(Device::cpu());
  const Tolerance t = tolerance(DType::bf16);
  check_scaled(got.o, want.o, t, "autograd bf16: o");
  check_scaled(got.dq, want.dq, t, "autograd bf16: dq");
  check_scaled(got.dk, want.dk, t, "autograd bf16: dk");
  check_scaled(got.dv, want.dv, t, "autograd bf16: dv");
}

// Deterministic mode: every output bit-identical from run to run. The default backward adds dQ
// with atomics: o, lse, dk and dv still have one writer (bit-identical) unless a long CSC list is
// split over several CTAs, which add dK and dV with atomics too; what has atomics agrees with
// the deterministic pass to rounding.
BOOST_AUTO_TEST_CASE(flash_is_deterministic, SPARTA_NEEDS_GPU) {
  // bigbird at 1000 tokens: no list longer than a chunk (16 steps), so no split. Dense causal at
  // 2048 tokens: key tile 0 is seen by 32 query tiles, far more than a CTA slot's share of the
  // 6 x 528 steps, so its list splits.
  struct Case {
    std::shared_ptr<const attn::BlockLayout> L;
    int64_t n;
    bool split;
  };
  const Case cases[] = {{bigbird(1, 1, 2, 5)->layout(1000, 64, 3), 1000, false},
                        {dense_causal()->layout(2048, 64, 3), 2048, true}};
  for (const Case& c : cases)
    for (int64_t d : {64, 128}) {
      const std::vector<int64_t> shape = {2, 3, c.n, d};
      Tensor q = gpu(random_normal(shape, DType::bf16)), k = gpu(random_normal(shape, DType::bf16)),
             v = gpu(random_normal(shape, DType::bf16)), g = gpu(random(shape, DType::bf16));
      Result a, b, fast;
      {
        DeterministicScope on(true);
        const int64_t splits = cuda::attention_kernel_counts().flash_backward_split;
        a = run_primitives(q, k, v, g, c.L);
        b = run_primitives(q, k, v, g, c.L);
        BOOST_CHECK_EQUAL(cuda::attention_kernel_counts().flash_backward_split, splits);  // never split
      }
      {
        DeterministicScope off(false);
        const int64_t splits = cuda::attention_kernel_counts().flash_backward_split;
        fast = run_primitives(q, k, v, g, c.L);
        BOOST_CHECK_EQUAL(cuda::attention_kernel_counts().flash_backward_split, splits + (c.split ? 1 : 0));
      }
      check_exact(b.o, a.o, "o twice");
      check_exact(b.lse, a.lse, "lse twice");
      check_exact(b.dq, a.dq, "dq twice");
      check_exact(b.dk, a.dk, "dk twice");
      check_exact(b.dv, a.dv, "dv twice");
      if (c.split) {
        check_scaled(fast.dk, a.dk, tolerance(DType::bf16), "dk, split fused backward against the deterministic pass");
        check_scaled(fast.dv, a.dv, tolerance(DType::bf16), "dv, split fused backward against the deterministic pass");
      } else {
        check_exact(fast.dk, a.dk, "dk, fused backward");
        check_exact(fast.dv, a.dv, "dv, fused backward");
      }
      check_scaled(fast.dq, a.dq, tolerance(DType::bf16), "dq, fused backward against the deterministic pass");
    }
}

BOOST_AUTO_TEST_CASE(flash_dispatch, SPARTA_NEEDS_GPU) {
  auto kernel = [](const std::shared_ptr<const attn::BlockLayout>& L, const Tensor& q) {
    return std::string(cuda::attention_kernel_for(*L, q));
  };
  const Tensor bf = gpu(random({1, 2, 512, 64}, DType::bf16));
  const Tensor bf128 = gpu(random({1, 2, 512, 128}, DType::bf16));
  const Tensor f16 = gpu(random({1, 2, 512, 64}, DType::f16));
  BOOST_CHECK_EQUAL(kernel(dense_causal()->layout(512, 64, 2), bf), "flash");
  BOOST_CHECK_EQUAL(kernel(dense_causal()->layout(512, 128, 2), bf128), "flash");
  BOOST_CHECK_EQUAL(kernel(local(100)->layout(512, 64, 2), f16), "flash");
  BOOST_CHECK_EQUAL(kernel(per_head({local(100), dense_causal()})->layout(512, 64, 2), bf), "flash");
  // Several segments: permuted (strided) and gathered keys (fixed, with a block of summary keys).
  BOOST_CHECK_EQUAL(kernel(strided(22)->layout(512, 64, 2), bf), "flash");
  BOOST_CHECK_EQUAL(kernel(fixed(64, 16)->layout(512, 64, 2), bf), "flash");
  // Not covered: f32, other head dims, other blocks, summary keys fewer than a block, top-k rows
  // longer than its selection holds.
  BOOST_CHECK_EQUAL(kernel(dense_causal()->layout(512, 64, 2), gpu(random({1, 2, 512, 64}))), "simple");
  BOOST_CHECK_EQUAL(kernel(dense_causal()->layout(512, 64, 2), gpu(random({1, 2, 512, 96}, DType::bf16))), "simple");
  BOOST_CHECK_EQUAL(kernel(dense_causal()->layout(512, 32, 2), bf), "simple");
  BOOST_CHECK_EQUAL(kernel(dense_causal()->layout(512, 256, 2), bf), "simple");
  BOOST_CHECK_EQUAL(kernel(fixed(64, 8)->layout(512, 64, 2), bf), "simple");  // 56 summary keys
  BOOST_CHECK_EQUAL(kernel(top_k(8, 64)->layout(512, 64, 2), bf), "flash");
  BOOST_CHECK_EQUAL(kernel(top_k(8, 1024)->layout(1100, 64, 2), gpu(random({1, 2, 1100, 64}, DType::bf16))), "simple");
  // A sequence shorter than a block clamps the block to the sequence: 40 is not a tile size.
  BOOST_CHECK_EQUAL(kernel(dense_causal()->layout(40, 64, 2), gpu(random({1, 2, 40, 64}, DType::bf16))), "simple");
  {
    KernelOverride force("simple");
    BOOST_CHECK_EQUAL(kernel(dense_causal()->layout(512, 64, 2), bf), "simple");
  }
  {
    KernelOverride other("flash");  // any other value leaves the choice to the dispatch
    BOOST_CHECK_EQUAL(kernel(dense_causal()->layout(512, 64, 2), bf), "flash");
  }
  // An input that does not start on a 16-byte boundary (a view one element into its storage)
  // runs the simple kernel, with the same results.
  Tensor flat = gpu(random({1 * 2 * 512 * 64 + 1}, DType::bf16));
  Tensor shifted = reshape(slice(flat, 0, 1, flat.shape(0)), {1, 2, 512, 64});
  if (shifted.is_contiguous() && reinterpret_cast<uintptr_t>(shifted.data_ptr()) % 16 != 0) {
    auto L = local(100)->layout(512, 64, 2);
    BOOST_CHECK_EQUAL(kernel(L, shifted), "simple");
    const cuda::AttentionKernelCounts before = cuda::attention_kernel_counts();
    Tensor o = sparse_attention(shifted, bf, bf, L);
    BOOST_CHECK_EQUAL(cuda::attention_kernel_counts().simple_forward, before.simple_forward + 1);
    Tensor want = sparse_attention(contiguous(clone(shifted)), bf, bf, L);
    check_scaled(cast(host(o), DType::f32), cast(host(want), DType::f32), tolerance(DType::bf16), "shifted q");
  }
}

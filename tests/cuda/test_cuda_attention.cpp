// CUDA block-sparse attention against the CPU kernel: the output, the log-sum-exp and the three
// gradients, for every pattern family (segments, permutations and gathered keys included), ragged
// lengths, an odd head dimension, several heads with per-head layouts, f32, bf16 and f64.
#include <cmath>
#include <memory>

#include "core/ops/attention/attention.h"
#include "nn/attention/patterns.h"
#include "tests/attention_cases.h"
#include "tests/cuda/parity.h"

using namespace sparta;
using namespace sparta::nn;
using namespace sparta::test;

namespace {

struct Tolerance {
  double rtol, atol;
};
Tolerance tolerance(DType dt) {
  if (dt == DType::f64) return {1e-10, 1e-12};
  if (dt == DType::f32) return {2e-4, 2e-5};
  return {2e-2, 2e-2};  // bf16/f16 outputs: one rounding of a slightly different f32 sum
}

// Forward (o and lse through the primitive) and backward (autograd) on one device.
struct Result {
  Tensor o, lse, dq, dk, dv;
};

Result run_on(Device dev, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& gout,
              const std::shared_ptr<const attn::BlockLayout>& L, bool permuted_inputs = false) {
  auto put = [&](const Tensor& t) {
    // Permuted inputs: (B, N, H, D) in memory seen as (B, H, N, D), as a model's projections give.
    if (!permuted_inputs) return dev.is_cuda() ? gpu(t) : clone(t);
    Tensor bnhd = contiguous(permute(t, {0, 2, 1, 3}));
    return permute(dev.is_cuda() ? gpu(bnhd) : bnhd, {0, 2, 1, 3});
  };
  Tensor qs = autograd::requires_grad(put(q)), ks = autograd::requires_grad(put(k)), vs = autograd::requires_grad(put(v));
  Result r;
  {
    autograd::NoGradGuard no_grad;
    const double scale = 1 / std::sqrt(double(q.shape(3)));
    Tensors out = run(std::make_shared<SparseAttention>(L, scale), {qs.detach(), ks.detach(), vs.detach()});
    r.lse = host(out[1]);
  }
  Tensor o = sparse_attention(qs, ks, vs, L);
  BOOST_CHECK(o.device() == dev);
  autograd::backward(o, dev.is_cuda() ? gpu(gout) : gout);
  r.o = host(o);
  r.dq = host(autograd::grad(qs));
  r.dk = host(autograd::grad(ks));
  r.dv = host(autograd::grad(vs));
  return r;
}

void compare(const std::string& what, const Result& got, const Result& want, DType dt) {
  const Tolerance t = tolerance(dt);
  BOOST_CHECK(got.o.dtype() == want.o.dtype() && got.lse.dtype() == want.lse.dtype());
  BOOST_CHECK(got.dq.dtype() == want.dq.dtype() && got.dk.dtype() == want.dk.dtype() && got.dv.dtype() == want.dv.dtype());
  check_close(got.o, want.o, t.rtol, t.atol, what + ": o");
  // lse is kept in f32 (f64 for f64) whatever the input: f32 tolerances but for f64.
  const Tolerance tl = dt == DType::f64 ? t : tolerance(DType::f32);
  check_close(got.lse, want.lse, tl.rtol, tl.atol, what + ": lse");
  check_close(got.dq, want.dq, t.rtol, t.atol, what + ": dq");
  check_close(got.dk, want.dk, t.rtol, t.atol, what + ": dk");
  check_close(got.dv, want.dv, t.rtol, t.atol, what + ": dv");
}

void check_case(const PatternCase& c, int64_t B, int64_t H, int64_t n, int64_t block, int64_t d, DType dt,
                bool permuted_inputs = false) {
  auto L = c.pattern->layout(n, block, int(H));
  Tensor q = random({B, H, n, d}, dt), k = random({B, H, n, d}, dt), v = random({B, H, n, d}, dt);
  Tensor gout = random({B, H, n, d}, dt);
  const std::string what = c.name + " B=" + std::to_string(B) + " H=" + std::to_string(H) + " n=" + std::to_string(n) +
                           " block=" + std::to_string(block) + " d=" + std::to_string(d) + " " + dtype_name(dt) +
                           (permuted_inputs ? " permuted inputs" : "");
  Result want = run_on(Device::cpu(), q, k, v, gout, L);
  Result got = run_on(Device::cuda(), q, k, v, gout, L, permuted_inputs);
  compare(what, got, want, dt);
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_pattern_matches_the_cpu_f32, SPARTA_NEEDS_GPU) {
  for (int64_t n : {77, 64}) {  // 77: a ragged last block
    for (const PatternCase& c : attention_cases(n)) {
      for (int64_t d : {64, 37}) check_case(c, 2, 3, n, 16, d, DType::f32);
    }
  }
}

BOOST_AUTO_TEST_CASE(every_pattern_matches_the_cpu_bf16, SPARTA_NEEDS_GPU) {
  for (const PatternCase& c : attention_cases(77)) {
    for (int64_t d : {64, 37}) check_case(c, 2, 3, 77, 16, d, DType::bf16);
  }
}

BOOST_AUTO_TEST_CASE(f64_and_other_head_dims, SPARTA_NEEDS_GPU) {
  for (const PatternCase& c : attention_cases(45)) check_case(c, 2, 3, 45, 8, 19, DType::f64);
  // Every head-dimension width class of the kernel (1, 2, 4 and 8 slices per lane).
  for (int64_t d : {1, 31, 33, 96, 128, 129, 256}) check_case({"fixed", fixed(8, 2)}, 1, 2, 50, 16, d, DType::f32);
  // Blocks larger than a warp, and a block as long as the sequence.
  check_case({"local block 64", local(70)}, 1, 3, 200, 64, 64, DType::f32);
  check_case({"dense one block", dense_causal()}, 2, 1, 40, 40, 32, DType::f32);
}

BOOST_AUTO_TEST_CASE(strided_inputs_and_a_long_sequence, SPARTA_NEEDS_GPU) {
  check_case({"strided", strided(9)}, 2, 3, 77, 16, 64, DType::f32, true);
  check_case({"bigbird", bigbird(1, 1, 1, 7)}, 2, 3, 77, 16, 37, DType::bf16, true);
  check_case({"local 4099", local(256)}, 1, 2, 4099, 64, 64, DType::f32);
}

BOOST_AUTO_TEST_CASE(f16_through_the_primitive, SPARTA_NEEDS_GPU) {
  // The public op takes f32, bf16 and f64; the CUDA kernel also runs f16: compare with the CPU in
  // f32 on the same (f16) values.
  auto L = fixed(9, 3)->layout(70, 16, 2);
  Tensor q = random({2, 2, 70, 40}, DType::f16), k = random({2, 2, 70, 40}, DType::f16),
         v = random({2, 2, 70, 40}, DType::f16);
  const double scale = 1 / std::sqrt(40.0);
  Tensors got = run(std::make_shared<SparseAttention>(L, scale), {gpu(q), gpu(k), gpu(v)});
  Tensors want = run(std::make_shared<SparseAttention>(L, scale),
                     {cast(q, DType::f32), cast(k, DType::f32), cast(v, DType::f32)});
  BOOST_CHECK(got[0].dtype() == DType::f16 && got[1].dtype() == DType::f32);
  check_close(cast(host(got[0]), DType::f32), want[0], 2e-3, 2e-3, "f16 o");
  check_close(host(got[1]), want[1], 1e-4, 1e-4, "f16 lse");
}

BOOST_AUTO_TEST_CASE(results_are_deterministic_and_layouts_reusable, SPARTA_NEEDS_GPU) {
  auto L = union_of({local(5), strided(8)})->layout(90, 16, 3);
  Tensor q = random({2, 3, 90, 48}), k = random({2, 3, 90, 48}), v = random({2, 3, 90, 48}),
         gout = random({2, 3, 90, 48});
  Result a = run_on(Device::cuda(), q, k, v, gout, L), b = run_on(Device::cuda(), q, k, v, gout, L);
  check_exact(b.o, a.o, "o twice");
  check_exact(b.dq, a.dq, "dq twice");
  check_exact(b.dk, a.dk, "dk twice");
  check_exact(b.dv, a.dv, "dv twice");
  // Many short-lived layouts (the device copies of dead ones are dropped and their addresses
  // reused): each still gives its own pattern's result.
  for (int i = 0; i < 20; ++i) {
    const PatternCase c = i % 2 ? PatternCase{"local", local(3 + i)} : PatternCase{"fixed", fixed(5 + i / 2, 2)};
    check_case(c, 1, 2, 33 + i, 8, 16, DType::f32);
  }
}

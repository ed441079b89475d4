// CUDA decode attention (flash-decoding, attention_decode_cuda.cu) against the CPU kernel on the
// same values: every pattern family, ragged positions, one and three new queries, head dims 64
// and 128 (16-byte loads) and 37 (element loads), f32, bf16, f16 and f64, caches as strided views
// with NaN past the prefix; long caches that split each row across many thread blocks; and
// generation on the GPU (device KV cache + decode kernel) against recomputation.
#include <cmath>

#include "core/ops/attention/attention_decode.h"
#include "nn/attention/patterns.h"
#include "nn/generate.h"
#include "tests/attention_cases.h"
#include "tests/cuda/parity.h"

using namespace sparta;
using namespace sparta::nn;
using namespace sparta::test;

namespace {

// (B, H, capacity, D) on `dev` through a (B, capacity, H, D) buffer, NaN past `filled`.
Tensor cache_view(const Tensor& values, int64_t filled, Device dev) {
  Tensor buf = full({values.shape(0), values.shape(2), values.shape(1), values.shape(3)}, NAN, values.dtype(), dev);
  Tensor view = permute(buf, {0, 2, 1, 3});
  Tensor dst = slice(view, 2, 0, filled);
  copy_(dst, to_device(slice(values, 2, 0, filled), dev));
  return view;
}

double tolerance(DType dt) { return dt == DType::f64 ? 1e-10 : dt == DType::f32 ? 2e-5 : 2e-2; }

// The CPU kernel (f32 for f16, which it does not take) against the GPU's on the same values.
void check_case(const std::string& what, const std::shared_ptr<const attn::BlockLayout>& L, int64_t B, int64_t H,
                int64_t D, int64_t Tq, int64_t t0, DType dt, bool strided_cache = true) {
  const int64_t N = L->seq_len;
  const Tensor k = random_normal({B, H, N, D}, dt), v = random_normal({B, H, N, D}, dt),
               q = random_normal({B, H, Tq, D}, dt);
  const DType cpu_dt = dt == DType::f16 ? DType::f32 : dt;
  const Tensor want = sparse_attention_decode(cast(q, cpu_dt), cache_view(cast(k, cpu_dt), t0 + Tq, Device::cpu()),
                                              cache_view(cast(v, cpu_dt), t0 + Tq, Device::cpu()), t0, L);
  const Tensor kg = strided_cache ? cache_view(k, t0 + Tq, Device::cuda()) : gpu(k);
  const Tensor vg = strided_cache ? cache_view(v, t0 + Tq, Device::cuda()) : gpu(v);
  const Tensor got = sparse_attention_decode(gpu(q), kg, vg, t0, L);
  BOOST_CHECK(got.device() == Device::cuda() && got.dtype() == dt);
  check_close(cast(host(got), cpu_dt), want, tolerance(dt), tolerance(dt),
              what + " D " + std::to_string(D) + " Tq " + std::to_string(Tq) + " t0 " + std::to_string(t0) + " " +
                  dtype_name(dt));
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_pattern_matches_the_cpu, SPARTA_NEEDS_GPU) {
  const int64_t N = 157, block = 16, B = 2, H = 3;
  for (const PatternCase& c : decode_cases(N)) {
    auto L = c.pattern->layout(N, block, int(H));
    for (DType dt : {DType::f32, DType::bf16})
      for (int64_t D : {64, 128})
        for (int64_t Tq : {1, 3})
          for (int64_t t0 : {int64_t(0), int64_t(37), int64_t(100), N - Tq}) check_case(c.name, L, B, H, D, Tq, t0, dt);
  }
}

BOOST_AUTO_TEST_CASE(other_dtypes_and_head_dims, SPARTA_NEEDS_GPU) {
  auto L = union_of({local(9), strided(12)})->layout(157, 16, 2);
  check_case("f16", L, 2, 2, 64, 3, 77, DType::f16);
  check_case("f64", L, 2, 2, 64, 3, 77, DType::f64);
  // Element loads (rows not a whole number of 16 bytes), and every chunk count per thread.
  for (int64_t D : {1, 8, 37, 96, 256}) {
    check_case("f32 element path", L, 1, 2, D, 2, 120, DType::f32);
    check_case("bf16", L, 1, 2, D, 2, 120, DType::bf16);
  }
  check_case("f64 D 256", L, 1, 2, 256, 1, 150, DType::f64);
  check_case("contiguous cache", L, 2, 2, 64, 16, 141, DType::bf16, false);
}

BOOST_AUTO_TEST_CASE(long_caches_split_rows_across_blocks, SPARTA_NEEDS_GPU) {
  const int64_t N = 4099;
  const int64_t l = 64;
  for (const PatternCase& c : std::vector<PatternCase>{{"dense causal", dense_causal()},
                                                       {"local 256", local(256)},
                                                       {"fixed", fixed(l, l / 8)},
                                                       {"strided", strided(l)}}) {
    auto L = c.pattern->layout(N, 64, 2);
    for (DType dt : {DType::f32, DType::bf16}) {
      check_case(c.name + " long", L, 1, 2, 64, 1, N - 1, dt, false);
      check_case(c.name + " long", L, 2, 2, 128, 3, 3001, dt);
    }
    if (c.name == "dense causal") {
      check_case(c.name, L, 1, 2, 64, 1, N - 1, DType::bf16);
      BOOST_CHECK_MESSAGE(cuda::last_decode_splits() > 1, "a 4099-key row ran in " << cuda::last_decode_splits()
                                                                                     << " split(s)");
    }
  }
}

BOOST_AUTO_TEST_CASE(cached_generation_on_the_gpu_matches_recomputation, SPARTA_NEEDS_GPU) {
  for (const std::vector<PatternPtr>& patterns :
       std::vector<std::vector<PatternPtr>>{{dense_causal()}, {fixed(8, 2), strided(4)}, {local(6), longformer(4, 2, {}, true)}}) {
    TransformerConfig c;
    c.vocab_size = 32;
    c.d_model = 32;
    c.n_layers = 2;
    c.n_heads = 2;
    c.max_seq_len = 48;
    c.positions = PositionKind::rotary;
    c.attention = patterns;
    c.block = 8;
    Generator g(4);
    SparseTransformer m(c, &g);
    m.eval();
    m.to(Device::cuda());
    std::vector<int64_t> prompt = random_int(0, 32, {5}).to_vector<int64_t>();
    for (double temperature : {0.0, 0.9}) {
      SamplingOptions o;
      o.temperature = temperature;
      o.top_k = 10;
      o.seed = 11;
      o.max_tokens = 30;
      auto cached = generate(m, prompt, o, true);
      auto recomputed = generate(m, prompt, o, false);
      BOOST_CHECK_MESSAGE(cached == recomputed, patterns[0]->describe() << " temperature " << temperature
                                                                        << ": cached and recomputed tokens differ");
      BOOST_CHECK_EQUAL(cached.size(), 30u);
    }
  }
}

// Decode attention (core/ops/attention/attention_decode.h) against attention under L.allows() in
// f64 over the cached prefix, for every pattern family (segments, permutations and gathered keys),
// ragged positions, one and three new queries, head dims 64 and 128, f64, f32 and bf16, caches as
// strided views whose unfilled rows are NaN (a kernel that reads past the prefix fails); and
// against the full sparse attention forward on the last rows of a sequence.
#include <cmath>

#include "core/ops/attention/attention_decode.h"
#include "nn/attention/patterns.h"
#include "tests/attention_cases.h"
#include "tests/support.h"

using namespace sparta;
using namespace sparta::nn;
using namespace sparta::test;

namespace {

// Rows t0 .. t0 + Tq - 1 of softmax(q k^T scale) v over the keys p < t0 + Tq that L allows, in f64.
Tensor reference(const Tensor& q, const Tensor& k, const Tensor& v, int64_t t0, const attn::BlockLayout& L) {
  const int64_t B = q.shape(0), H = q.shape(1), Tq = q.shape(2), D = q.shape(3), n = t0 + Tq;
  const std::vector<double> qv = cast(q, DType::f64).to_vector<double>();
  const std::vector<double> kv = cast(contiguous(slice(k, 2, 0, n)), DType::f64).to_vector<double>();
  const std::vector<double> vv = cast(contiguous(slice(v, 2, 0, n)), DType::f64).to_vector<double>();
  const double scale = 1 / std::sqrt(double(D));
  std::vector<double> out(size_t(B * H * Tq * D), 0);
  for (int64_t bh = 0; bh < B * H; ++bh)
    for (int64_t tq = 0; tq < Tq; ++tq) {
      const int64_t row = bh * Tq + tq, pos = t0 + tq;
      std::vector<double> s(size_t(n), -INFINITY);
      double mx = -INFINITY;
      for (int64_t p = 0; p < n; ++p) {
        if (!L.allows(L.layout_of(int(bh % H)), pos, p)) continue;
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += qv[size_t(row * D + d)] * kv[size_t((bh * n + p) * D + d)];
        s[size_t(p)] = dot * scale;
        mx = std::max(mx, s[size_t(p)]);
      }
      if (mx == -INFINITY) continue;  // no key: zeros
      double z = 0;
      for (double& x : s) z += (x = std::exp(x - mx));
      for (int64_t p = 0; p < n; ++p)
        for (int64_t d = 0; d < D; ++d) out[size_t(row * D + d)] += s[size_t(p)] / z * vv[size_t((bh * n + p) * D + d)];
    }
  return from_vector(out, q.shape(), DType::f64);
}

// A (B, H, capacity, D) cache seen through a (B, capacity, H, D) buffer (a model's projection
// order: strides, not a copy), holding `values` at positions < filled and NaN after.
Tensor cache_view(const Tensor& values, int64_t filled) {
  Tensor buf = full({values.shape(0), values.shape(2), values.shape(1), values.shape(3)}, NAN, values.dtype());
  Tensor view = permute(buf, {0, 2, 1, 3});
  Tensor dst = slice(view, 2, 0, filled);
  copy_(dst, slice(values, 2, 0, filled));
  return view;
}

double tolerance(DType dt) { return dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 2e-5 : 2e-2; }

}  // namespace

BOOST_AUTO_TEST_CASE(decode_matches_masked_reference) {
  const int64_t N = 157, block = 16, B = 2, H = 3;
  for (const PatternCase& c : decode_cases(N)) {
    auto L = c.pattern->layout(N, block, int(H));
    for (int64_t D : {64, 128})
      for (int64_t Tq : {1, 3})
        // Ragged positions (not multiples of the block), the first few, and the very last rows.
        for (int64_t t0 : {int64_t(0), int64_t(37), int64_t(100), N - Tq})
          for (DType dt : {DType::f64, DType::f32, DType::bf16}) {
            const Tensor k = random_normal({B, H, N, D}, dt), v = random_normal({B, H, N, D}, dt),
                         q = random_normal({B, H, Tq, D}, dt);
            const Tensor want = reference(q, k, v, t0, *L);
            const Tensor got = sparse_attention_decode(q, cache_view(k, t0 + Tq), cache_view(v, t0 + Tq), t0, L);
            BOOST_CHECK(got.dtype() == dt);
            check_close(cast(got, DType::f64), want, tolerance(dt), tolerance(dt),
                        c.name + " D " + std::to_string(D) + " Tq " + std::to_string(Tq) + " t0 " +
                            std::to_string(t0) + " " + dtype_name(dt));
          }
  }
}

BOOST_AUTO_TEST_CASE(decode_matches_full_forward_on_last_rows) {
  const int64_t N = 130, block = 32, B = 1, H = 2, D = 64;
  for (const PatternCase& c : decode_cases(N)) {
    auto L = c.pattern->layout(N, block, int(H));
    for (DType dt : {DType::f64, DType::f32}) {
      const Tensor q = random_normal({B, H, N, D}, dt), k = random_normal({B, H, N, D}, dt),
                   v = random_normal({B, H, N, D}, dt);
      const Tensor full_out = sparse_attention(q, k, v, L);
      for (int64_t Tq : {1, 3}) {
        const int64_t t0 = N - Tq;
        const Tensor got = sparse_attention_decode(contiguous(slice(q, 2, t0, N)), k, v, t0, L);
        check_close(got, contiguous(slice(full_out, 2, t0, N)), tolerance(dt), tolerance(dt),
                    c.name + " last " + std::to_string(Tq) + " rows " + dtype_name(dt));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(decode_errors) {
  auto L = dense_causal()->layout(64, 16);
  const Tensor q = random({1, 2, 1, 8}), k = random({1, 2, 64, 8});
  check_error([&] { sparse_attention_decode(q, slice(k, 2, 0, 40), slice(k, 2, 0, 40), 40, L); },
              {"[sparse_attention_decode]", "cache holds 40"});
  check_error([&] { sparse_attention_decode(q, k, k, 64, L); }, {"[sparse_attention_decode]", "outside"});
  check_error([&] { sparse_attention_decode(q, k, cast(k, DType::f64), 3, L); }, {"dtypes differ"});
  check_error([&] { sparse_attention_decode(q, noncontiguous(k), k, 3, L); }, {"head dimension must be contiguous"});
  check_error([&] { sparse_attention_decode(q, k, k, 3, top_k(2, 8)->layout(64, 16)); }, {"top-k"});
}

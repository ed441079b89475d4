// Block-sparse attention against dense attention under the pattern's boolean mask, in f64, for
// every pattern: outputs and the gradients of q, k and v, ragged lengths, several head dims, f32
// and bf16; plus gradcheck of the kernel itself and the errors.
#include <algorithm>
#include <cmath>
#include <tuple>

#include <tbb/global_control.h>

#include "nn/attention/patterns.h"
#include "tests/attention_cases.h"
#include "tests/support.h"

using namespace sparta;
using namespace sparta::nn;
using namespace sparta::test;

namespace {

// (B, H, N, N) bool: the pattern's mask per head, read through BlockLayout::allows.
Tensor dense_mask(const attn::BlockLayout& L, int64_t B, int64_t H) {
  const int64_t N = L.seq_len;
  std::vector<double> m(size_t(B * H * N * N));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t q = 0; q < N; ++q)
        for (int64_t k = 0; k < N; ++k) m[size_t(((b * H + h) * N + q) * N + k)] = L.allows(L.layout_of(int(h)), q, k);
  return cast(from_vector(m, {B, H, N, N}, DType::f64), DType::boolean);
}

// Top-k: of the allowed scores of each row, keep those >= the k-th largest.
Tensor topk_mask(const Tensor& scores, const Tensor& allowed, int64_t k) {
  const int64_t N = scores.shape(-1), rows = scores.numel() / N;
  std::vector<double> s = scores.to_vector<double>(), a = allowed.to_vector<double>(), out(s.size(), 0);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> vals;
    for (int64_t c = 0; c < N; ++c)
      if (a[size_t(r * N + c)]) vals.push_back(s[size_t(r * N + c)]);
    double thr = -INFINITY;
    if (int64_t(vals.size()) > k) {
      std::sort(vals.begin(), vals.end(), std::greater<double>());
      thr = vals[size_t(k - 1)];
    }
    for (int64_t c = 0; c < N; ++c) out[size_t(r * N + c)] = a[size_t(r * N + c)] && s[size_t(r * N + c)] >= thr;
  }
  return cast(from_vector(out, scores.shape(), DType::f64), DType::boolean);
}

// softmax(q k^T scale, masked) v in f64 through ordinary differentiable ops; rows that see no
// key give 0, as the kernel does.
Tensor reference(const Tensor& q, const Tensor& k, const Tensor& v, const attn::BlockLayout& L) {
  const double scale = 1 / std::sqrt(double(q.shape(3)));
  Tensor s = matmul(q, transpose(k, -1, -2)) * scale;
  Tensor allowed = dense_mask(L, q.shape(0), q.shape(1));
  if (L.top_k > 0) allowed = topk_mask(s.detach(), allowed, L.top_k);
  Tensor masked = masked_fill(s, logical_not(allowed), -1e300);
  Tensor p = exp(masked - max(masked, {-1}, true)) * cast(allowed, DType::f64);
  Tensor denom = maximum(sum(p, {-1}, true), full({1}, 1e-300, DType::f64));
  return matmul(p / denom, v);
}

double relative_error(const Tensor& got, const Tensor& want) {
  Tensor d = cast(got, DType::f64) - cast(want, DType::f64);
  double num = std::sqrt(sum(d * d).item<double>()), den = std::sqrt(sum(square(cast(want, DType::f64))).item<double>());
  return num / std::max(den, 1e-300);
}

// The shared catalogue and two families that only this test runs.
std::vector<PatternCase> cases(int64_t n) {
  std::vector<PatternCase> all = attention_cases(n);
  all.push_back({"explicit", explicit_blocks({{0, 0}, {1, 0}, {1, 1}, {2, 0}, {2, 2}, {3, 1}})});
  all.push_back({"topk", top_k(5, 16)});
  return all;
}

void check_against_reference(const PatternCase& c, int64_t n, int64_t block, int64_t d, DType dt) {
  const int64_t B = 2, H = 2;
  auto L = c.pattern->layout(n, block, int(H));
  Tensor q = random({B, H, n, d}, dt), k = random({B, H, n, d}, dt), v = random({B, H, n, d}, dt);
  Tensor gout = random({B, H, n, d}, dt);
  Tensor q64 = autograd::requires_grad(cast(q, DType::f64)), k64 = autograd::requires_grad(cast(k, DType::f64)),
         v64 = autograd::requires_grad(cast(v, DType::f64));
  Tensor want = reference(q64, k64, v64, *L);
  autograd::backward(want, cast(gout, DType::f64));

  Tensor qs = autograd::requires_grad(clone(q)), ks = autograd::requires_grad(clone(k)),
         vs = autograd::requires_grad(clone(v));
  Tensor got = sparse_attention(qs, ks, vs, L);
  autograd::backward(got, gout);

  const double tol = dt == DType::f32 ? 1e-5 : 2e-2;
  std::string what = c.name + " n=" + std::to_string(n) + " block=" + std::to_string(block) + " d=" +
                     std::to_string(d) + " " + dtype_name(dt);
  BOOST_CHECK_MESSAGE(relative_error(got, want) < tol, what << ": output error " << relative_error(got, want));
  for (auto [name, mine, ref] : {std::tuple{"dq", qs, q64}, std::tuple{"dk", ks, k64}, std::tuple{"dv", vs, v64}}) {
    double err = relative_error(autograd::grad(mine), autograd::grad(ref));
    BOOST_CHECK_MESSAGE(err < tol, what << ": " << name << " error " << err);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_pattern_matches_dense_masked_attention_f32) {
  for (int64_t n : {64, 77}) {  // 77: a ragged last block
    for (const PatternCase& c : cases(n)) {
      for (int64_t d : {32, 64}) check_against_reference(c, n, 16, d, DType::f32);
    }
  }
  check_against_reference({"fixed d=128", fixed(8, 2)}, 45, 16, 128, DType::f32);
  check_against_reference({"dense block 32", dense_causal()}, 100, 32, 48, DType::f32);
}

BOOST_AUTO_TEST_CASE(every_pattern_matches_dense_masked_attention_bf16) {
  for (const PatternCase& c : cases(77)) check_against_reference(c, 77, 16, 64, DType::bf16);
}

BOOST_AUTO_TEST_CASE(gradcheck_of_the_kernel) {
  for (const PatternPtr& p : {fixed(4, 1), longformer(3, 2, {5}, false), top_k(3, 6)}) {
    auto L = p->layout(13, 4, 2);
    check_grad("sparse_attention " + p->describe(),
               [&](const Tensors& in) { return sparse_attention(in[0], in[1], in[2], L); },
               {leaf({1, 2, 13, 5}), leaf({1, 2, 13, 5}), leaf({1, 2, 13, 5})});
  }
}

BOOST_AUTO_TEST_CASE(results_do_not_depend_on_thread_count) {
  auto L = fixed(16, 4)->layout(200, 32);
  Tensor q = random({1, 2, 200, 32}), k = random({1, 2, 200, 32}), v = random({1, 2, 200, 32});
  Tensor a = sparse_attention(q, k, v, L), b;
  {
    tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
    b = sparse_attention(q, k, v, L);
  }
  check_exact(a, b, "one thread vs many");
}

BOOST_AUTO_TEST_CASE(bad_inputs_are_named_errors) {
  auto L = local(8)->layout(32, 8);
  Tensor q = random({1, 2, 32, 16});
  check_error([&] { sparse_attention(q, random({1, 2, 31, 16}), q, L); }, {"[sparse_attention]", "(1, 2, 31, 16)"});
  check_error([&] { sparse_attention(q, q, random({1, 2, 32, 16}, DType::f64), L); }, {"[sparse_attention]", "f64"});
  check_error([&] { sparse_attention(random({2, 32, 16}), random({2, 32, 16}), random({2, 32, 16}), L); },
              {"[sparse_attention]", "(2, 32, 16)"});
  Tensor q40 = random({1, 2, 40, 16});
  check_error([&] { sparse_attention(q40, q40, q40, L); }, {"[sparse_attention]", "40", "32"});
  auto per = per_head({local(4), local(8)})->layout(32, 8, 3);
  check_error([&] { sparse_attention(q, q, q, per); }, {"[sparse_attention]", "3 per-head", "2 heads"});
}

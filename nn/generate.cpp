#include "nn/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/grad_mode.h"
#include "core/ops.h"
#include "core/ops/attention/attention_decode.h"

namespace sparta::nn {
namespace {

// One layer's cache: positions and per-head key/value rows, in insertion (position) order.
struct LayerCache {
  std::vector<int64_t> pos;
  std::vector<std::vector<float>> k, v;  // per head: pos.size() * head_dim
};

// A layer's cache on the model's GPU: k, v (1, H, max_seq_len, Dh) indexed by position, written
// in place, read by the decode kernel (which reads only the keys the layout selects). Copying
// the host cache to the device every step would cost more than the attention.
struct DeviceCache {
  Tensor k, v;
  void put(const QKV& p, int64_t offset) {
    const int64_t T = p.k.shape(2);
    Tensor kd = slice(k, 2, offset, offset + T), vd = slice(v, 2, offset, offset + T);
    copy_(kd, p.k);
    copy_(vd, p.v);
  }
};

std::vector<float> last_logits(const Tensor& logits) {
  const int64_t V = logits.shape(-1), T = logits.shape(1);
  return cast(slice(logits, 1, T - 1, T), DType::f32).to_vector<float>();
  (void)V;
}

// Attention of one new query (per head) over the cached keys its layout allows at position t.
Tensor attend_cached(const SparseAttention& attn, const attn::BlockLayout& L, const LayerCache& cache, const QKV& p,
                     int64_t t) {
  const int64_t H = p.q.shape(1), D = p.q.shape(3);
  const double scale = 1 / std::sqrt(double(D));
  std::vector<float> q = cast(p.q, DType::f32).to_vector<float>(), out(size_t(H * D), 0.f);
  for (int64_t h = 0; h < H; ++h) {
    const int lh = L.layout_of(int(h));
    std::vector<double> s;
    std::vector<size_t> idx;
    for (size_t j = 0; j < cache.pos.size(); ++j) {
      if (!L.allows(lh, t, cache.pos[j])) continue;
      double dot = 0;
      for (int64_t d = 0; d < D; ++d) dot += double(q[size_t(h * D + d)]) * cache.k[size_t(h)][j * size_t(D) + size_t(d)];
      s.push_back(dot * scale);
      idx.push_back(j);
    }
    if (s.empty()) continue;
    if (L.top_k > 0 && int64_t(s.size()) > L.top_k) {
      std::vector<double> sorted = s;
      std::nth_element(sorted.begin(), sorted.begin() + (L.top_k - 1), sorted.end(), std::greater<double>());
      const double thr = sorted[size_t(L.top_k - 1)];
      for (double& e : s) e = e >= thr ? e : -INFINITY;
    }
    const double mx = *std::max_element(s.begin(), s.end());
    double z = 0;
    for (double& e : s) z += (e = std::exp(e - mx));
    for (size_t n = 0; n < s.size(); ++n)
      for (int64_t d = 0; d < D; ++d)
        out[size_t(h * D + d)] += float(s[n] / z * cache.v[size_t(h)][idx[n] * size_t(D) + size_t(d)]);
  }
  (void)attn;
  // On a GPU model (a top-k layer, which has no decode kernel) the result joins the model there.
  return to_device(from_vector(std::vector<double>(out.begin(), out.end()), {1, H, 1, D}), p.q.device());
}

void append(LayerCache& c, const QKV& p, int64_t offset) {
  const int64_t H = p.k.shape(1), T = p.k.shape(2), D = p.k.shape(3);
  std::vector<float> k = cast(p.k, DType::f32).to_vector<float>(), v = cast(p.v, DType::f32).to_vector<float>();
  c.k.resize(size_t(H));
  c.v.resize(size_t(H));
  for (int64_t t = 0; t < T; ++t) c.pos.push_back(offset + t);
  for (int64_t h = 0; h < H; ++h) {
    c.k[size_t(h)].insert(c.k[size_t(h)].end(), k.begin() + h * T * D, k.begin() + (h + 1) * T * D);
    c.v[size_t(h)].insert(c.v[size_t(h)].end(), v.begin() + h * T * D, v.begin() + (h + 1) * T * D);
  }
}

// Drops the keys no query at position >= t can attend.
void evict(LayerCache& c, const Pattern& pattern, int64_t t, int64_t D) {
  size_t w = 0;
  for (size_t j = 0; j < c.pos.size(); ++j) {
    if (!pattern.retains(c.pos[j], t)) continue;
    c.pos[w] = c.pos[j];
    for (size_t h = 0; h < c.k.size(); ++h) {
      std::copy_n(c.k[h].begin() + long(j * size_t(D)), D, c.k[h].begin() + long(w * size_t(D)));
      std::copy_n(c.v[h].begin() + long(j * size_t(D)), D, c.v[h].begin() + long(w * size_t(D)));
    }
    ++w;
  }
  c.pos.resize(w);
  for (size_t h = 0; h < c.k.size(); ++h) {
    c.k[h].resize(w * size_t(D));
    c.v[h].resize(w * size_t(D));
  }
}

}  // namespace

int64_t sample_token(const std::vector<float>& logits, const SamplingOptions& o, double u) {
  const int64_t V = int64_t(logits.size());
  if (o.temperature <= 0) return int64_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<int64_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits[size_t(a)] > logits[size_t(b)]; });
  int64_t keep = o.top_k > 0 ? std::min(o.top_k, V) : V;
  const double mx = logits[size_t(order[0])];
  std::vector<double> p(static_cast<size_t>(keep));
  double z = 0;
  for (int64_t i = 0; i < keep; ++i) z += (p[size_t(i)] = std::exp((logits[size_t(order[size_t(i)])] - mx) / o.temperature));
  if (o.top_p < 1) {
    double mass = 0;
    int64_t n = 0;
    while (n < keep && mass < o.top_p * z) mass += p[size_t(n++)];
    keep = std::max<int64_t>(1, n);
    z = mass;
  }
  double target = u * z, acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += p[size_t(i)];
    if (target < acc) return order[size_t(i)];
  }
  return order[size_t(keep - 1)];
}

std::vector<int64_t> generate(const SparseTransformer& model, const std::vector<int64_t>& prompt,
                              const SamplingOptions& o, bool use_cache, GenerationStats* stats) {
  const TransformerConfig& c = model.config();
  SPARTA_CHECK(!prompt.empty(), "generate", "the prompt is empty");
  SPARTA_CHECK(int64_t(prompt.size()) + o.max_tokens <= c.max_seq_len, "generate", "prompt (", prompt.size(),
               ") + max_tokens (", o.max_tokens, ") exceeds the model's max_seq_len ", c.max_seq_len);
  autograd::NoGradGuard no_grad;
  Generator gen(o.seed);
  std::vector<int64_t> seq = prompt, out;
  auto draw = [&](const std::vector<float>& logits) {
    const double u = rand({1}, DType::f64, &gen).item<double>();
    return sample_token(logits, o, u);
  };
  if (!use_cache) {
    for (int64_t i = 0; i < o.max_tokens; ++i) {
      Tensor tokens = from_vector_i64(seq, {1, int64_t(seq.size())});
      int64_t next = draw(last_logits(model.forward(tokens)));
      seq.push_back(next);
      out.push_back(next);
    }
    return out;
  }
  const auto& blocks = model.blocks();
  std::vector<LayerCache> caches(blocks.size());
  std::vector<DeviceCache> device_caches(blocks.size());
  std::vector<std::shared_ptr<const attn::BlockLayout>> full_layouts;
  for (const auto& b : blocks) full_layouts.push_back(b->attention().layout(c.max_seq_len));
  const int64_t D = c.d_model / c.n_heads;
  // Prefill: the whole prompt through the ordinary sparse kernel, keeping each layer's keys.
  Tensor tokens = from_vector_i64(seq, {1, int64_t(seq.size())});
  Tensor h = model.embed(tokens, 0);
  for (size_t l = 0; l < blocks.size(); ++l) {
    const SparseAttention& attn = blocks[l]->attention();
    QKV p = attn.project(blocks[l]->ln1(h), 0);
    // On a GPU the cache stays there, unless the layer's pattern has no decode kernel (top-k).
    if (p.k.device().is_cuda() && full_layouts[l]->top_k == 0) {
      const Shape shape = {1, p.k.shape(1), c.max_seq_len, D};
      device_caches[l] = {Tensor::empty(shape, p.k.dtype(), p.k.device()), Tensor::empty(shape, p.v.dtype(), p.v.device())};
      device_caches[l].put(p, 0);
    } else {
      append(caches[l], p, 0);
    }
    h = h + attn.output(sparse_attention(p.q, p.k, p.v, attn.layout(h.shape(1))));
    h = blocks[l]->mlp_residual(h);
  }
  int64_t next = draw(last_logits(model.head(h)));
  for (int64_t i = 0; i < o.max_tokens; ++i) {
    out.push_back(next);
    if (i + 1 == o.max_tokens) break;
    const int64_t t = int64_t(seq.size());
    seq.push_back(next);
    Tensor x = model.embed(from_vector_i64({next}, {1, 1}), t);
    for (size_t l = 0; l < blocks.size(); ++l) {
      const SparseAttention& attn = blocks[l]->attention();
      QKV p = attn.project(blocks[l]->ln1(x), t);
      if (device_caches[l].k.defined()) {
        device_caches[l].put(p, t);
        if (stats) stats->peak_cached_keys = std::max(stats->peak_cached_keys, t + 1);  // every position is kept
        x = x + attn.output(sparse_attention_decode(p.q, device_caches[l].k, device_caches[l].v, t, full_layouts[l]));
      } else {
        evict(caches[l], *attn.options().pattern, t, D);
        append(caches[l], p, t);
        if (stats) stats->peak_cached_keys = std::max(stats->peak_cached_keys, int64_t(caches[l].pos.size()));
        x = x + attn.output(attend_cached(attn, *full_layouts[l], caches[l], p, t));
      }
      x = blocks[l]->mlp_residual(x);
    }
    next = draw(last_logits(model.head(x)));
  }
  return out;
}

}  // namespace sparta::nn

// The CPU kernel of decode attention (attention_decode.h): one task per (batch, head, query), which
// gathers the positions its layout row selects, then a two-pass softmax over their scores. Exact
// in the accumulation type, so it serves as the CUDA kernel's reference too.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu/convert.h"
#include "core/ops/attention/attention_decode.h"

namespace sparta::cpu {
namespace {

using attn::BlockLayout;

// Appends the key positions below n_cached that head `head` allows query position `pos`, segment by
// segment: the CSR row of the query's block, each entry's columns through its kind and mask bits.
// Segments hold disjoint pairs, so no position is listed twice.
void selected_keys(const BlockLayout& L, int head, int64_t pos, int64_t n_cached, std::vector<int64_t>& out) {
  for (const BlockLayout* s = &L; s; s = s->next.get()) {
    const int64_t p = s->q_index.empty() ? pos : s->q_index[size_t(pos)];
    if (p < 0) continue;
    const int h = s->layout_of(head);
    const int64_t i = p / s->block_q, r = p % s->block_q;
    const int64_t* rp = s->row_ptr.data() + size_t(h) * size_t(s->n_qblocks + 1);
    for (int64_t e = rp[i]; e < rp[i + 1]; ++e) {
      const int64_t j = s->col_idx[size_t(e)], k0 = j * s->block_k, cols = s->kblock_len(j);
      const uint8_t kind = s->full[size_t(e)];
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t kp = s->kpos(k0 + c);
        if (kp >= n_cached) continue;
        const bool ok = kind == BlockLayout::kFull     ? true
                        : kind == BlockLayout::kCausal ? kp <= pos
                                                       : s->mask_bit(e, r, c, cols);
        if (ok) out.push_back(kp);
      }
    }
  }
}

template <typename T, typename C>
void decode(const BlockLayout& L, C scale, int64_t t0, const Tensor& q, const Tensor& k, const Tensor& v,
            const Tensor& out) {
  const int64_t B = q.shape(0), H = q.shape(1), Tq = q.shape(2), D = q.shape(3);
  const T* qp = q.data<T>();
  const T* kp = k.data<T>();
  const T* vp = v.data<T>();
  T* op = out.data<T>();
  const Shape& ks = k.strides();
  const Shape& vs = v.strides();
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, B * H * Tq, 1), [&](const tbb::blocked_range<int64_t>& range) {
    std::vector<int64_t> keys;
    std::vector<C> qr(static_cast<size_t>(D)), s, acc(static_cast<size_t>(D));
    for (int64_t task = range.begin(); task < range.end(); ++task) {
      const int64_t b = task / (H * Tq), h = task / Tq % H, tq = task % Tq, pos = t0 + tq;
      keys.clear();
      selected_keys(L, int(h), pos, t0 + Tq, keys);
      for (int64_t d = 0; d < D; ++d) qr[size_t(d)] = convert<C>(qp[task * D + d]);
      const T* kb = kp + b * ks[0] + h * ks[1];
      const T* vb = vp + b * vs[0] + h * vs[1];
      s.resize(keys.size());
      C mx = -INFINITY;
      for (size_t n = 0; n < keys.size(); ++n) {
        const T* kr = kb + keys[n] * ks[2];
        C dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += qr[size_t(d)] * convert<C>(kr[d]);
        s[n] = dot * scale;
        mx = std::max(mx, s[n]);
      }
      std::fill(acc.begin(), acc.end(), C(0));
      C z = 0;
      for (size_t n = 0; n < keys.size(); ++n) {
        const C p = std::exp(s[n] - mx);
        z += p;
        const T* vr = vb + keys[n] * vs[2];
        for (int64_t d = 0; d < D; ++d) acc[size_t(d)] += p * convert<C>(vr[d]);
      }
      // A query that sees no key gets zeros, as in the full forward.
      const C inv = z > 0 ? C(1) / z : C(0);
      for (int64_t d = 0; d < D; ++d) op[task * D + d] = convert<T>(acc[size_t(d)] * inv);
    }
  });
}

}  // namespace

void sparse_attention_decode(const BlockLayout& L, double scale, int64_t t0, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& out) {
  switch (q.dtype()) {
    case DType::f64: return decode<double, double>(L, scale, t0, q, k, v, out);
    case DType::f32: return decode<float, float>(L, float(scale), t0, q, k, v, out);
    case DType::bf16: return decode<bf16, float>(L, float(scale), t0, q, k, v, out);
    default: SPARTA_FAIL("sparse_attention_decode", "no CPU kernel for ", dtype_name(q.dtype()));
  }
}

}  // namespace sparta::cpu

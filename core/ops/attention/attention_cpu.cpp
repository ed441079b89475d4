// The CPU kernels of block-sparse attention. Work is split over (batch, head, query block) in the
// forward pass and the dq pass, and over (batch, head, key block) for dk/dv, so every output block
// has one writer: no atomics, and results independent of the thread count.
//
// Blocks are staged in the accumulation type C (float, or double for f64 inputs); K is staged
// transposed so that both block products are axpy loops over a contiguous row, which the compiler
// vectorises without reassociating a reduction.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/convert.h"
#include "core/cpu/fast_exp.h"
#include "core/ops/attention/attention.h"

namespace sparta::cpu {
namespace {

using attn::BlockLayout;

template <typename C>
constexpr C kNegInf = -std::numeric_limits<C>::infinity();

// Shapes and pointers shared by the passes.
struct Dims {
  int64_t B, H, N, D;
};

// Row p of a block is sequence position pos[p0 + p] (pos empty: the identity), so a permuted
// segment gathers its rows here and scatters its results in the same way.
inline int64_t position(const std::vector<int64_t>& pos, int64_t p) { return pos.empty() ? p : pos[size_t(p)]; }

template <typename T, typename C>
void load_rows(const T* base, const std::vector<int64_t>& pos, int64_t p0, int64_t rows, int64_t D, C* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* src = base + position(pos, p0 + r) * D;
    for (int64_t d = 0; d < D; ++d) dst[r * D + d] = convert<C>(src[d]);
  }
}

template <typename T, typename C>
void load_transposed(const T* base, const std::vector<int64_t>& pos, int64_t p0, int64_t rows, int64_t D,
                     C* dst /* D x rows */) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* src = base + position(pos, p0 + r) * D;
    for (int64_t d = 0; d < D; ++d) dst[d * rows + r] = convert<C>(src[d]);
  }
}

// The two block products, register-blocked: a strip of kStrip outputs stays in registers across
// the whole reduction (the plain loop nest re-loaded and re-stored the output row for every term
// of the reduction, and was memory-bound).
constexpr int64_t kStrip = 16;

// Out (rows x D) += P (rows x inner) V (inner x D), one row at a time (the ragged rows).
template <typename C>
void product_add_rows(const C* P, const C* V, int64_t rows, int64_t inner, int64_t D, C* Out) {
  for (int64_t r = 0; r < rows; ++r) {
    const C* p = P + r * inner;
    C* o = Out + r * D;
    int64_t d0 = 0;
    for (; d0 + kStrip <= D; d0 += kStrip) {
      C acc[kStrip];
      for (int64_t j = 0; j < kStrip; ++j) acc[j] = o[d0 + j];
      for (int64_t c = 0; c < inner; ++c) {
        const C pv = p[c];
        const C* v = V + c * D + d0;
        for (int64_t j = 0; j < kStrip; ++j) acc[j] += pv * v[j];
      }
      for (int64_t j = 0; j < kStrip; ++j) o[d0 + j] = acc[j];
    }
    for (int64_t d = d0; d < D; ++d) {
      C acc = o[d];
      for (int64_t c = 0; c < inner; ++c) acc += p[c] * V[c * D + d];
      o[d] = acc;
    }
  }
}

// Out (rows x D) += P (rows x inner) V (inner x D). Four rows at a time share each strip of V
// loaded, with one named accumulator array per row (an array of arrays was not kept in
// registers and ran 4x slower); twice the throughput of one row at a time.
template <typename C>
void product_add(const C* P, const C* V, int64_t rows, int64_t inner, int64_t D, C* Out) {
  const int64_t full_d = D / kStrip * kStrip;
  int64_t r = 0;
  for (; r + 4 <= rows && full_d > 0; r += 4) {
    const C* p0 = P + r * inner;
    const C* p1 = p0 + inner;
    const C* p2 = p1 + inner;
    const C* p3 = p2 + inner;
    C* o0 = Out + r * D;
    C* o1 = o0 + D;
    C* o2 = o1 + D;
    C* o3 = o2 + D;
    for (int64_t d0 = 0; d0 < full_d; d0 += kStrip) {
      C a0[kStrip], a1[kStrip], a2[kStrip], a3[kStrip];
      for (int64_t j = 0; j < kStrip; ++j) {
        a0[j] = o0[d0 + j];
        a1[j] = o1[d0 + j];
        a2[j] = o2[d0 + j];
        a3[j] = o3[d0 + j];
      }
      for (int64_t c = 0; c < inner; ++c) {
        const C* v = V + c * D + d0;
        const C x0 = p0[c], x1 = p1[c], x2 = p2[c], x3 = p3[c];
        for (int64_t j = 0; j < kStrip; ++j) {
          a0[j] += x0 * v[j];
          a1[j] += x1 * v[j];
          a2[j] += x2 * v[j];
          a3[j] += x3 * v[j];
        }
      }
      for (int64_t j = 0; j < kStrip; ++j) {
        o0[d0 + j] = a0[j];
        o1[d0 + j] = a1[j];
        o2[d0 + j] = a2[j];
        o3[d0 + j] = a3[j];
      }
    }
    // Columns past the last whole strip.
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t d = full_d; d < D; ++d) {
        C acc = Out[(r + i) * D + d];
        for (int64_t c = 0; c < inner; ++c) acc += P[(r + i) * inner + c] * V[c * D + d];
        Out[(r + i) * D + d] = acc;
      }
  }
  product_add_rows(P + r * inner, V, rows - r, inner, D, Out + r * D);
}

// S (rows x cols) = A (rows x D) Bt, with Bt staged transposed (D x cols): the same product.
template <typename C>
void product_abt(const C* A, const C* Bt, int64_t rows, int64_t cols, int64_t D, C* S) {
  std::fill(S, S + rows * cols, C(0));
  product_add(A, Bt, rows, D, cols, S);
}

// T (cols x rows) = M (rows x cols) transposed, times a scale.
template <typename C>
void transpose_scaled(const C* M, int64_t rows, int64_t cols, C scale, C* T) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) T[c * rows + r] = M[r * cols + c] * scale;
}

// Everything a pass needs to score one (query block, key block) entry of one head.
template <typename C>
struct Scorer {
  const BlockLayout& L;
  C scale;
  const C* threshold;  // per query row of the block (top-k), or null

  // S (rows x cols) = scale * Q Kt, then the element mask (partial blocks) and the top-k threshold.
  // q0, k0: the blocks' first indices in the segment's (possibly permuted) order.
  void score(const C* Q, const C* Kt, int64_t rows, int64_t cols, int64_t D, int64_t q0, int64_t k0, int64_t entry,
             C* S) const {
    product_abt(Q, Kt, rows, cols, D, S);
    for (int64_t x = 0; x < rows * cols; ++x) S[x] *= scale;
    const uint8_t kind = L.full[size_t(entry)];
    if (kind == BlockLayout::kCausal) {
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t qp = L.qpos(q0 + r);
        for (int64_t c = 0; c < cols; ++c)
          if (L.kpos(k0 + c) > qp) S[r * cols + c] = kNegInf<C>;
      }
    } else if (kind == BlockLayout::kPartial) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          if (!L.mask_bit(entry, r, c, cols)) S[r * cols + c] = kNegInf<C>;
    }
    if (threshold) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          if (S[r * cols + c] < threshold[r]) S[r * cols + c] = kNegInf<C>;
    }
  }
};

// Top-k: the k-th largest allowed score of each row of one query block (-inf when fewer).
template <typename T, typename C>
void topk_thresholds(const Scorer<C>& sc, const T* kbase, int64_t D, int64_t i, int h, const C* Q, int64_t rows,
                     C* out) {
  const BlockLayout& L = sc.L;
  const int64_t* rp = L.row_ptr.data() + size_t(h) * size_t(L.n_qblocks + 1);
  std::vector<std::vector<C>> kept(static_cast<size_t>(rows));
  std::vector<C> Kt, S;
  Scorer<C> plain{L, sc.scale, nullptr};
  for (int64_t e = rp[i]; e < rp[i + 1]; ++e) {
    const int64_t j = L.col_idx[size_t(e)], cols = L.kblock_len(j), k0 = j * L.block_k;
    Kt.resize(size_t(cols * D));
    S.resize(size_t(rows * cols));
    load_transposed(kbase, L.k_pos, k0, cols, D, Kt.data());
    plain.score(Q, Kt.data(), rows, cols, D, i * L.block_q, k0, e, S.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        if (S[size_t(r * cols + c)] != kNegInf<C>) kept[size_t(r)].push_back(S[size_t(r * cols + c)]);
  }
  for (int64_t r = 0; r < rows; ++r) {
    auto& v = kept[size_t(r)];
    if (int64_t(v.size()) <= L.top_k) {
      out[r] = kNegInf<C>;
      continue;
    }
    std::nth_element(v.begin(), v.begin() + (L.top_k - 1), v.end(), std::greater<C>());
    out[r] = v[size_t(L.top_k - 1)];
  }
}

// One segment: o (C, rows by position) and lse by position; rows the segment never reaches keep
// lse = -inf and o = 0.
template <typename T, typename C>
void forward(const BlockLayout& L, C scale, const Dims& dm, const T* q, const T* k, const T* v, C* o, C* lse,
             C* threshold) {
  const int64_t nq = L.n_qblocks, D = dm.D;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, dm.B * dm.H * nq, 1), [&](const tbb::blocked_range<int64_t>& range) {
    std::vector<C> Q, Kt, V, S, acc, m, l, thr;
    for (int64_t task = range.begin(); task < range.end(); ++task) {
      const int64_t bh = task / nq, i = task % nq;
      const int h = L.layout_of(int(bh % dm.H));
      const int64_t rows = L.qblock_len(i), q0 = i * L.block_q;
      const int64_t base = bh * dm.N * D;
      Q.resize(size_t(rows * D));
      acc.assign(size_t(rows * D), 0);
      m.assign(size_t(rows), kNegInf<C>);
      l.assign(size_t(rows), 0);
      load_rows(q + base, L.q_pos, q0, rows, D, Q.data());
      Scorer<C> sc{L, scale, nullptr};
      if (threshold) {
        thr.resize(size_t(rows));
        topk_thresholds<T, C>(sc, k + base, D, i, h, Q.data(), rows, thr.data());
        for (int64_t r = 0; r < rows; ++r) threshold[bh * dm.N + L.qpos(q0 + r)] = thr[size_t(r)];
        sc.threshold = thr.data();
      }
      const int64_t* rp = L.row_ptr.data() + size_t(h) * size_t(nq + 1);
      for (int64_t e = rp[i]; e < rp[i + 1]; ++e) {
        const int64_t j = L.col_idx[size_t(e)], cols = L.kblock_len(j), k0 = j * L.block_k;
        Kt.resize(size_t(cols * D));
        V.resize(size_t(cols * D));
        S.resize(size_t(rows * cols));
        load_transposed(k + base, L.k_pos, k0, cols, D, Kt.data());
        load_rows(v + base, L.k_pos, k0, cols, D, V.data());
        sc.score(Q.data(), Kt.data(), rows, cols, D, q0, k0, e, S.data());
        // The online softmax: rescale what was accumulated when a row's running max grows.
        for (int64_t r = 0; r < rows; ++r) {
          C* s = S.data() + r * cols;
          C mx = kNegInf<C>;
          for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, s[c]);
          if (mx == kNegInf<C>) {
            for (int64_t c = 0; c < cols; ++c) s[c] = 0;  // the row's P, for the block product below
            continue;
          }
          const C m_new = std::max(m[size_t(r)], mx);
          const C alpha = exp_acc(m[size_t(r)] - m_new);
          // Separate loops: the exponentials vectorise only without the sum beside them.
          for (int64_t c = 0; c < cols; ++c) s[c] = exp_acc(s[c] - m_new);
          C sum = 0;
          for (int64_t c = 0; c < cols; ++c) sum += s[c];
          l[size_t(r)] = l[size_t(r)] * alpha + sum;
          m[size_t(r)] = m_new;
          C* a = acc.data() + r * D;
          for (int64_t d = 0; d < D; ++d) a[d] *= alpha;
        }
        product_add(S.data(), V.data(), rows, cols, D, acc.data());
      }
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = bh * dm.N + L.qpos(q0 + r);
        const C inv = l[size_t(r)] > 0 ? C(1) / l[size_t(r)] : C(0);
        C* out = o + row * D;
        for (int64_t d = 0; d < D; ++d) out[d] = acc[size_t(r * D + d)] * inv;
        lse[row] = l[size_t(r)] > 0 ? m[size_t(r)] + std::log(l[size_t(r)]) : kNegInf<C>;
      }
    }
  });
}

// Folds a further segment's (o2, lse2) into (o, lse): the softmax over the union of their keys.
template <typename C>
void merge_segment(C* o, C* lse, const C* o2, const C* lse2, int64_t rows, int64_t D) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 256), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t row = r.begin(); row < r.end(); ++row) {
      const C a = lse[row], b = lse2[row];
      if (b == kNegInf<C>) continue;
      const C mx = std::max(a, b);
      const C wa = a == kNegInf<C> ? C(0) : std::exp(a - mx), wb = std::exp(b - mx), total = wa + wb;
      for (int64_t d = 0; d < D; ++d) o[row * D + d] = (o[row * D + d] * wa + o2[row * D + d] * wb) / total;
      lse[row] = mx + std::log(total);
    }
  });
}

template <typename T, typename C>
void forward_all(const BlockLayout& L, C scale, const Dims& dm, const T* q, const T* k, const T* v, T* o, C* lse,
                 C* threshold) {
  const int64_t rows = dm.B * dm.H * dm.N;
  std::vector<C> acc(static_cast<size_t>(rows * dm.D)), acc2, lse2;
  forward<T, C>(L, scale, dm, q, k, v, acc.data(), lse, threshold);
  for (const BlockLayout* seg = L.next.get(); seg; seg = seg->next.get()) {
    acc2.assign(size_t(rows * dm.D), 0);
    lse2.assign(size_t(rows), kNegInf<C>);
    forward<T, C>(*seg, scale, dm, q, k, v, acc2.data(), lse2.data(), nullptr);
    merge_segment(acc.data(), lse, acc2.data(), lse2.data(), rows, dm.D);
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows * dm.D, 1 << 16), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t x = r.begin(); x < r.end(); ++x) o[x] = convert<T>(acc[size_t(x)]);
  });
}

// P = exp(S - lse) for the rows of a block (0 where masked or where the row sees nothing).
template <typename C>
void probabilities(C* S, const C* lse, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const C row_lse = lse[r];
    C* s = S + r * cols;
    if (row_lse == kNegInf<C>) {
      for (int64_t c = 0; c < cols; ++c) s[c] = 0;
      continue;
    }
    for (int64_t c = 0; c < cols; ++c) s[c] = exp_acc(s[c] - row_lse);
  }
}

// dS = P * (dO V^T - delta), with Vt staged transposed (D x cols).
template <typename C>
void score_gradient(const C* P, const C* dO, const C* Vt, const C* delta, int64_t rows, int64_t cols, int64_t D,
                    C* dS) {
  product_abt(dO, Vt, rows, cols, D, dS);
  for (int64_t r = 0; r < rows; ++r) {
    C* ds = dS + r * cols;
    for (int64_t c = 0; c < cols; ++c) ds[c] = P[r * cols + c] * (ds[c] - delta[r]);
  }
}

// A query block's inputs to the backward pass, gathered by position (a segment may be permuted):
// its rows of q and dO, and their log-sum-exp, delta and top-k threshold.
template <typename C>
struct QueryTile {
  std::vector<C> Q, dO, lse, delta, thr;
  int64_t rows = 0, q0 = 0;

  template <typename T>
  void load(const BlockLayout& L, int64_t i, int64_t bh, int64_t N, int64_t D, const T* q, const T* dout,
            const C* lse_all, const C* delta_all, const C* thr_all) {
    rows = L.qblock_len(i);
    q0 = i * L.block_q;
    Q.resize(size_t(rows * D));
    dO.resize(size_t(rows * D));
    load_rows(q + bh * N * D, L.q_pos, q0, rows, D, Q.data());
    load_rows(dout + bh * N * D, L.q_pos, q0, rows, D, dO.data());
    auto gather = [&](const C* src, std::vector<C>& out) {
      out.resize(size_t(rows));
      for (int64_t r = 0; r < rows; ++r) out[size_t(r)] = src[bh * N + L.qpos(q0 + r)];
    };
    gather(lse_all, lse);
    gather(delta_all, delta);
    if (thr_all) gather(thr_all, thr);
  }

  // Recomputes P (into S) for entry e against a key block staged as Kt and Vt (D x cols), and
  // dS = P * (dO V^T - delta).
  void gradients(const Scorer<C>& sc, const C* Kt, const C* Vt, int64_t cols, int64_t D, int64_t k0, int64_t e,
                 std::vector<C>& S, std::vector<C>& dS) const {
    S.resize(size_t(rows * cols));
    dS.resize(size_t(rows * cols));
    sc.score(Q.data(), Kt, rows, cols, D, q0, k0, e, S.data());
    probabilities(S.data(), lse.data(), rows, cols);
    score_gradient(S.data(), dO.data(), Vt, delta.data(), rows, cols, D, dS.data());
  }
};

// One segment's contribution, added into dq, dk, dv (C, rows by position). o and lse are those of
// the whole attention (every segment), as are delta_r = dO_r . O_r.
template <typename T, typename C>
void backward(const BlockLayout& L, C scale, const Dims& dm, const T* q, const T* k, const T* v, const C* lse,
              const C* threshold, const T* dout, const C* delta, C* dq, C* dk, C* dv) {
  const int64_t nq = L.n_qblocks, nk = L.n_kblocks, D = dm.D, N = dm.N;
  // Rows of a block in position order, for the per-row arrays (lse, delta, threshold).
  // dK and dV, one key block per task, over the query blocks that list it.
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, dm.B * dm.H * nk, 1), [&](const tbb::blocked_range<int64_t>& range) {
    std::vector<C> Kt, Vt, S, dS, dK, dV, Tr;
    QueryTile<C> tile;
    for (int64_t task = range.begin(); task < range.end(); ++task) {
      const int64_t bh = task / nk, j = task % nk;
      const int h = L.layout_of(int(bh % dm.H));
      const int64_t cols = L.kblock_len(j), k0 = j * L.block_k, base = bh * N * D;
      Kt.resize(size_t(cols * D));
      Vt.resize(size_t(cols * D));
      load_transposed(k + base, L.k_pos, k0, cols, D, Kt.data());
      load_transposed(v + base, L.k_pos, k0, cols, D, Vt.data());
      dK.assign(size_t(cols * D), 0);
      dV.assign(size_t(cols * D), 0);
      const int64_t* cp = L.col_ptr.data() + size_t(h) * size_t(nk + 1);
      for (int64_t p = cp[j]; p < cp[j + 1]; ++p) {
        const int64_t i = L.row_idx[size_t(p)], e = L.csc_entry[size_t(p)];
        tile.load(L, i, bh, N, D, q, dout, lse, delta, threshold);
        const int64_t rows = tile.rows;
        Scorer<C> sc{L, scale, threshold ? tile.thr.data() : nullptr};
        tile.gradients(sc, Kt.data(), Vt.data(), cols, D, k0, e, S, dS);
        // dV += P^T dO and dK += scale * dS^T Q.
        Tr.resize(size_t(rows * cols));
        transpose_scaled(S.data(), rows, cols, C(1), Tr.data());
        product_add(Tr.data(), tile.dO.data(), cols, rows, D, dV.data());
        transpose_scaled(dS.data(), rows, cols, scale, Tr.data());
        product_add(Tr.data(), tile.Q.data(), cols, rows, D, dK.data());
      }
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t row = bh * N + L.kpos(k0 + c);
        for (int64_t d = 0; d < D; ++d) {
          dk[row * D + d] += dK[size_t(c * D + d)];
          dv[row * D + d] += dV[size_t(c * D + d)];
        }
      }
    }
  });

  // dQ, one query block per task: dQ += scale * dS K.
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, dm.B * dm.H * nq, 1), [&](const tbb::blocked_range<int64_t>& range) {
    std::vector<C> Kt, Vt, Kr, S, dS, dQ;
    QueryTile<C> tile;
    for (int64_t task = range.begin(); task < range.end(); ++task) {
      const int64_t bh = task / nq, i = task % nq;
      const int h = L.layout_of(int(bh % dm.H));
      const int64_t base = bh * N * D;
      tile.load(L, i, bh, N, D, q, dout, lse, delta, threshold);
      const int64_t rows = tile.rows, q0 = tile.q0;
      dQ.assign(size_t(rows * D), 0);
      Scorer<C> sc{L, scale, threshold ? tile.thr.data() : nullptr};
      const int64_t* rp = L.row_ptr.data() + size_t(h) * size_t(nq + 1);
      for (int64_t e = rp[i]; e < rp[i + 1]; ++e) {
        const int64_t j = L.col_idx[size_t(e)], cols = L.kblock_len(j), k0 = j * L.block_k;
        Kt.resize(size_t(cols * D));
        Vt.resize(size_t(cols * D));
        Kr.resize(size_t(cols * D));
        load_transposed(k + base, L.k_pos, k0, cols, D, Kt.data());
        load_transposed(v + base, L.k_pos, k0, cols, D, Vt.data());
        load_rows(k + base, L.k_pos, k0, cols, D, Kr.data());
        tile.gradients(sc, Kt.data(), Vt.data(), cols, D, k0, e, S, dS);
        for (int64_t x = 0; x < rows * cols; ++x) dS[size_t(x)] *= scale;
        product_add(dS.data(), Kr.data(), rows, cols, D, dQ.data());
      }
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = bh * N + L.qpos(q0 + r);
        for (int64_t d = 0; d < D; ++d) dq[row * D + d] += dQ[size_t(r * D + d)];
      }
    }
  });
}

template <typename T, typename C>
void backward_all(const BlockLayout& L, C scale, const Dims& dm, const T* q, const T* k, const T* v, const T* o,
                  const C* lse, const C* threshold, const T* dout, T* dq, T* dk, T* dv) {
  const int64_t rows = dm.B * dm.H * dm.N, D = dm.D;
  // delta_r = dO_r . O_r, the softmax backward's row term.
  const size_t n_rows = static_cast<size_t>(rows), n_elems = static_cast<size_t>(rows * D);
  std::vector<C> delta(n_rows), gq(n_elems, 0), gk(n_elems, 0), gv(n_elems, 0);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 1024), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t row = r.begin(); row < r.end(); ++row) {
      C s = 0;
      for (int64_t d = 0; d < D; ++d) s += convert<C>(dout[row * D + d]) * convert<C>(o[row * D + d]);
      delta[size_t(row)] = s;
    }
  });
  // Segments run one after the other: within one, every row of dq/dk/dv has a single writer.
  for (const BlockLayout* seg = &L; seg; seg = seg->next.get()) {
    backward<T, C>(*seg, scale, dm, q, k, v, lse, seg == &L ? threshold : nullptr, dout, delta.data(), gq.data(),
                   gk.data(), gv.data());
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows * D, 1 << 16), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t x = r.begin(); x < r.end(); ++x) {
      dq[x] = convert<T>(gq[size_t(x)]);
      dk[x] = convert<T>(gk[size_t(x)]);
      dv[x] = convert<T>(gv[size_t(x)]);
    }
  });
}

Dims dims_of(const Tensor& q) { return {q.shape(0), q.shape(1), q.shape(2), q.shape(3)}; }

template <typename C>
const C* maybe(const Tensor& t) {
  return t.defined() ? t.data<C>() : nullptr;
}

}  // namespace

void sparse_attention_forward(const BlockLayout& L, double scale, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& o, const Tensor& lse, const Tensor& threshold) {
  const Dims dm = dims_of(q);
  switch (q.dtype()) {
    case DType::f64:
      return forward_all<double, double>(L, scale, dm, q.data<double>(), k.data<double>(), v.data<double>(),
                                     o.data<double>(), lse.data<double>(),
                                     threshold.defined() ? threshold.data<double>() : nullptr);
    case DType::f32:
      return forward_all<float, float>(L, float(scale), dm, q.data<float>(), k.data<float>(), v.data<float>(),
                                   o.data<float>(), lse.data<float>(),
                                   threshold.defined() ? threshold.data<float>() : nullptr);
    case DType::bf16:
      return forward_all<bf16, float>(L, float(scale), dm, q.data<bf16>(), k.data<bf16>(), v.data<bf16>(), o.data<bf16>(),
                                  lse.data<float>(), threshold.defined() ? threshold.data<float>() : nullptr);
    default: SPARTA_FAIL("sparse_attention", "no CPU kernel for ", dtype_name(q.dtype()));
  }
}

void sparse_attention_backward(const BlockLayout& L, double scale, const Tensor& q, const Tensor& k, const Tensor& v,
                               const Tensor& o, const Tensor& lse, const Tensor& threshold, const Tensor& dout,
                               const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  const Dims dm = dims_of(q);
  switch (q.dtype()) {
    case DType::f64:
      return backward_all<double, double>(L, scale, dm, q.data<double>(), k.data<double>(), v.data<double>(),
                                      o.data<double>(), lse.data<double>(), maybe<double>(threshold),
                                      dout.data<double>(), dq.data<double>(), dk.data<double>(), dv.data<double>());
    case DType::f32:
      return backward_all<float, float>(L, float(scale), dm, q.data<float>(), k.data<float>(), v.data<float>(),
                                    o.data<float>(), lse.data<float>(), maybe<float>(threshold), dout.data<float>(),
                                    dq.data<float>(), dk.data<float>(), dv.data<float>());
    case DType::bf16:
      return backward_all<bf16, float>(L, float(scale), dm, q.data<bf16>(), k.data<bf16>(), v.data<bf16>(),
                                   o.data<bf16>(), lse.data<float>(), maybe<float>(threshold), dout.data<bf16>(),
                                   dq.data<bf16>(), dk.data<bf16>(), dv.data<bf16>());
    default: SPARTA_FAIL("sparse_attention", "no CPU kernel for ", dtype_name(q.dtype()));
  }
}

}  // namespace sparta::cpu

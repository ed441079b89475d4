#include "core/attention/block_layout.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace sparta::attn {
namespace {

enum class Cover { none, partial, full };

struct Rect {
  int64_t q0, q1, k0, k1;  // half-open position ranges
};

int64_t count_in(const std::vector<int64_t>& sorted, int64_t lo, int64_t hi) {  // in [lo, hi)
  return std::lower_bound(sorted.begin(), sorted.end(), hi) - std::lower_bound(sorted.begin(), sorted.end(), lo);
}

// Whether the term allows none, some or all of the pairs of a block (ignoring causality).
// "partial" is always safe; "none" and "full" must be exact.
Cover cover(const MaskTerm& t, const std::vector<int64_t>& tokens, const Rect& r) {
  switch (t.kind) {
    case TermKind::all: return Cover::full;
    case TermKind::band: {
      int64_t dmin = r.q0 - (r.k1 - 1), dmax = (r.q1 - 1) - r.k0;
      int64_t lo = std::max(dmin, t.lo), hi = std::min(dmax, t.hi);
      if (lo > hi) return Cover::none;
      if (t.dilation == 1) return (t.lo <= dmin && dmax <= t.hi) ? Cover::full : Cover::partial;
      // Some d in [lo, hi] must be a multiple of the dilation.
      int64_t first = lo >= 0 ? (lo + t.dilation - 1) / t.dilation * t.dilation : -((-lo) / t.dilation * t.dilation);
      return first <= hi ? Cover::partial : Cover::none;
    }
    case TermKind::same_block: {
      int64_t qa = r.q0 / t.period, qb = (r.q1 - 1) / t.period, ka = r.k0 / t.period, kb = (r.k1 - 1) / t.period;
      if (qb < ka || kb < qa) return Cover::none;
      return (qa == qb && ka == kb && qa == ka) ? Cover::full : Cover::partial;
    }
    case TermKind::summary: {
      int64_t hits = 0;
      for (int64_t k = r.k0; k < r.k1; ++k) hits += k % t.period >= t.period - t.width;
      return hits == 0 ? Cover::none : hits == r.k1 - r.k0 ? Cover::full : Cover::partial;
    }
    case TermKind::summary_before: {
      MaskTerm plain = t;
      plain.kind = TermKind::summary;
      const Cover c = cover(plain, tokens, r);
      if (c == Cover::none || (r.k0 / t.period) >= (r.q1 - 1) / t.period) return Cover::none;
      return (r.k1 - 1) / t.period < r.q0 / t.period ? c : Cover::partial;
    }
    case TermKind::global: {
      int64_t gq = count_in(tokens, r.q0, r.q1), gk = count_in(tokens, r.k0, r.k1);
      if (gq == r.q1 - r.q0 || gk == r.k1 - r.k0) return Cover::full;
      return (gq == 0 && gk == 0) ? Cover::none : Cover::partial;
    }
  }
  return Cover::partial;
}

// Key blocks that may hold allowed pairs of the term for query block [q0, q1).
// With gathered keys (kpos non-empty) position ranges map to the key blocks of the gathered
// positions inside them.
void candidates(const HeadSpec::Term& term, const std::vector<int64_t>& tokens, int64_t q0, int64_t q1,
                int64_t n, int64_t bk, const std::vector<std::vector<int64_t>>& explicit_rows, int64_t qblock,
                const std::vector<int64_t>& kpos, std::vector<int64_t>& out) {
  const MaskTerm& t = term.mask;
  auto range = [&](int64_t k_lo, int64_t k_hi) {  // inclusive positions
    k_lo = std::max<int64_t>(k_lo, 0);
    k_hi = std::min<int64_t>(k_hi, n - 1);
    if (!kpos.empty() && k_lo <= k_hi) {
      k_lo = std::lower_bound(kpos.begin(), kpos.end(), k_lo) - kpos.begin();
      k_hi = (std::upper_bound(kpos.begin(), kpos.end(), k_hi) - kpos.begin()) - 1;
    }
    for (int64_t j = k_lo / bk; k_lo <= k_hi && j <= k_hi / bk; ++j) out.push_back(j);
  };
  switch (t.kind) {
    case TermKind::all:
      if (term.blocks.empty()) {
        range(0, n - 1);
      } else {
        for (int64_t j : explicit_rows[size_t(qblock)]) out.push_back(j);
      }
      return;
    case TermKind::band: range(q0 - t.hi, q1 - 1 - t.lo); return;
    case TermKind::same_block: range(q0 / t.period * t.period, ((q1 - 1) / t.period + 1) * t.period - 1); return;
    case TermKind::summary:
      for (int64_t s = 0; s < n; s += t.period) range(s + t.period - t.width, s + t.period - 1);
      return;
    case TermKind::summary_before:
      for (int64_t s = 0; s < (q1 - 1) / t.period * t.period; s += t.period) range(s + t.period - t.width, s + t.period - 1);
      return;
    case TermKind::global:
      if (count_in(tokens, q0, q1) > 0) {
        range(0, n - 1);
      } else {
        for (int64_t g : tokens) range(g, g);
      }
      return;
  }
}

void validate(const HeadSpec& spec, int64_t n, int64_t nq, int64_t nk, const std::string& pattern) {
  SPARTA_CHECK(!spec.terms.empty(), pattern, "a head has no attention terms");
  SPARTA_CHECK(spec.terms.size() <= 32, pattern, "a head has ", spec.terms.size(), " terms; at most 32");
  for (const HeadSpec::Term& term : spec.terms) {
    const MaskTerm& t = term.mask;
    switch (t.kind) {
      case TermKind::band:
        SPARTA_CHECK(t.lo <= t.hi, pattern, "window [", t.lo, ", ", t.hi, "] is empty");
        SPARTA_CHECK(t.dilation >= 1, pattern, "dilation must be >= 1, got ", t.dilation);
        break;
      case TermKind::same_block:
      case TermKind::summary:
      case TermKind::summary_before:
        SPARTA_CHECK(t.period >= 1 && t.period <= n, pattern, "block length ", t.period,
                     " must be in [1, sequence length ", n, "]");
        SPARTA_CHECK(t.kind == TermKind::same_block || (t.width >= 1 && t.width <= t.period), pattern,
                     "summary width ", t.width, " must be in [1, block length ", t.period, "]");
        break;
      case TermKind::global:
        SPARTA_CHECK(!term.tokens.empty(), pattern, "global term without tokens");
        for (int64_t g : term.tokens) {
          SPARTA_CHECK(g >= 0 && g < n, pattern, "global token position ", g, " is outside [0, ", n, ")");
        }
        break;
      case TermKind::all:
        for (auto [i, j] : term.blocks) {
          SPARTA_CHECK(i >= 0 && i < nq && j >= 0 && j < nk, pattern, "block (", i, ", ", j, ") is outside the ", nq,
                       " x ", nk, " block grid");
        }
        break;
    }
  }
}

bool any_allowed(const MaskTerm* terms, const std::vector<int64_t>& tokens, uint32_t active, int64_t i, int64_t j,
                 const BlockLayout& L) {
  for (int64_t q = i * L.block_q; q < i * L.block_q + L.qblock_len(i); ++q) {
    for (int64_t k = j * L.block_k; k < j * L.block_k + L.kblock_len(j); ++k) {
      if (mask_allows(terms, tokens.data(), active, true, q, L.kpos(k))) return true;
    }
  }
  return false;
}

// Evaluates the element mask of every partial entry once (see BlockLayout::mask_bits).
void build_masks(BlockLayout& L) {
  L.mask_offset.assign(L.col_idx.size(), -1);
  int64_t bits = 0;
  for (int h = 0; h < L.n_layouts; ++h) {
    const int64_t* rp = L.row_ptr.data() + size_t(h) * size_t(L.n_qblocks + 1);
    for (int64_t i = 0; i < L.n_qblocks; ++i)
      for (int64_t e = rp[i]; e < rp[i + 1]; ++e) {
        if (L.full[size_t(e)] != BlockLayout::kPartial) continue;
        bits = (bits + 63) / 64 * 64;  // a word boundary: the GPU kernels copy whole words of a row
        L.mask_offset[size_t(e)] = bits;
        bits += L.qblock_len(i) * L.kblock_len(L.col_idx[size_t(e)]);
      }
  }
  L.mask_bits.assign(size_t((bits + 63) / 64), 0);
  for (int h = 0; h < L.n_layouts; ++h) {
    const int64_t* rp = L.row_ptr.data() + size_t(h) * size_t(L.n_qblocks + 1);
    const MaskTerm* terms = L.terms.data() + L.term_ptr[size_t(h)];
    for (int64_t i = 0; i < L.n_qblocks; ++i)
      for (int64_t e = rp[i]; e < rp[i + 1]; ++e) {
        if (L.mask_offset[size_t(e)] < 0) continue;
        const int64_t j = L.col_idx[size_t(e)], rows = L.qblock_len(i), cols = L.kblock_len(j);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) {
            if (!mask_allows(terms, L.tokens.data(), L.entry_terms[size_t(e)], L.causal, L.qpos(i * L.block_q + r),
                             L.kpos(j * L.block_k + c)))
              continue;
            const int64_t b = L.mask_offset[size_t(e)] + r * cols + c;
            L.mask_bits[size_t(b >> 6)] |= uint64_t(1) << (b & 63);
          }
      }
  }
}

void build_transposed(BlockLayout& layout) {
  BlockLayout* L = &layout;
  const int64_t nq = L->n_qblocks, nk = L->n_kblocks;
  // CSC by counting sort over key blocks, per layout; entries stay in query-block order.
  L->col_ptr.assign(size_t(L->n_layouts) * size_t(nk + 1), 0);
  L->row_idx.resize(L->col_idx.size());
  L->csc_entry.resize(L->col_idx.size());
  for (int h = 0; h < L->n_layouts; ++h) {
    int64_t* cp = L->col_ptr.data() + size_t(h) * size_t(nk + 1);
    const int64_t* rp = L->row_ptr.data() + size_t(h) * size_t(nq + 1);
    for (int64_t e = rp[0]; e < rp[nq]; ++e) cp[L->col_idx[size_t(e)] + 1]++;
    cp[0] = rp[0];
    for (int64_t j = 0; j < nk; ++j) cp[j + 1] += cp[j];
    std::vector<int64_t> fill(cp, cp + nk);
    for (int64_t i = 0; i < nq; ++i) {
      for (int64_t e = rp[i]; e < rp[i + 1]; ++e) {
        int64_t pos = fill[size_t(L->col_idx[size_t(e)])]++;
        L->row_idx[size_t(pos)] = int32_t(i);
        L->csc_entry[size_t(pos)] = e;
      }
    }
  }
}

}  // namespace

std::shared_ptr<const BlockLayout> BlockLayout::build(int64_t n, int64_t bq, int64_t bk, bool causal,
                                                      const std::vector<HeadSpec>& heads, const std::string& pattern,
                                                      const std::vector<int64_t>& key_positions) {
  SPARTA_CHECK(n >= 1, pattern, "sequence length must be positive, got ", n);
  SPARTA_CHECK(bq >= 1 && bq <= n, pattern, "query block ", bq, " must be in [1, sequence length ", n, "]");
  SPARTA_CHECK(bk >= 1 && bk <= n, pattern, "key block ", bk, " must be in [1, sequence length ", n, "]");
  SPARTA_CHECK(!heads.empty(), pattern, "no head specs");
  auto L = std::make_shared<BlockLayout>();
  L->seq_len = n;
  L->block_q = bq;
  L->block_k = bk;
  L->n_qblocks = (n + bq - 1) / bq;
  L->n_keys = key_positions.empty() ? n : int64_t(key_positions.size());
  L->n_kblocks = (L->n_keys + bk - 1) / bk;
  L->causal = causal;
  L->n_layouts = int(heads.size());
  if (!key_positions.empty()) {
    SPARTA_CHECK(std::is_sorted(key_positions.begin(), key_positions.end()) && key_positions.front() >= 0 &&
                     key_positions.back() < n,
                 pattern, "gathered key positions must be sorted and inside [0, ", n, ")");
    L->k_pos = key_positions;
    L->k_index.assign(size_t(n), -1);
    for (size_t i = 0; i < key_positions.size(); ++i) L->k_index[size_t(key_positions[i])] = int64_t(i);
  }
  const int64_t nq = L->n_qblocks, nk = L->n_kblocks;

  L->term_ptr.push_back(0);
  for (const HeadSpec& spec : heads) {
    validate(spec, n, nq, nk, pattern);
    L->row_ptr.push_back(int64_t(L->col_idx.size()));
    // Per term: its sorted tokens and its explicit blocks by query block.
    std::vector<std::vector<int64_t>> tokens(spec.terms.size());
    std::vector<std::vector<std::vector<int64_t>>> rows(spec.terms.size());
    for (size_t ti = 0; ti < spec.terms.size(); ++ti) {
      const HeadSpec::Term& term = spec.terms[ti];
      MaskTerm t = term.mask;
      // Bands wider than the sequence are clamped so that position arithmetic cannot overflow.
      t.lo = std::max(t.lo, -n);
      t.hi = std::min(t.hi, n);
      tokens[ti] = term.tokens;
      std::sort(tokens[ti].begin(), tokens[ti].end());
      tokens[ti].erase(std::unique(tokens[ti].begin(), tokens[ti].end()), tokens[ti].end());
      t.token_begin = int64_t(L->tokens.size());
      t.n_tokens = int64_t(tokens[ti].size());
      L->tokens.insert(L->tokens.end(), tokens[ti].begin(), tokens[ti].end());
      L->terms.push_back(t);
      if (!term.blocks.empty()) {
        rows[ti].resize(size_t(nq));
        for (auto [i, j] : term.blocks) rows[ti][size_t(i)].push_back(j);
      }
    }
    L->term_ptr.push_back(int64_t(L->terms.size()));
    const MaskTerm* head_terms = L->terms.data() + L->term_ptr[L->term_ptr.size() - 2];

    std::vector<int64_t> cand;
    struct Mark {
      bool full = false, causal_full = false;
      uint32_t terms = 0;
    };
    std::map<int64_t, Mark> row;  // key block -> what the terms say of it
    for (int64_t i = 0; i < nq; ++i) {
      const int64_t q0 = i * bq, q1 = std::min(n, q0 + bq);
      row.clear();
      for (size_t ti = 0; ti < spec.terms.size(); ++ti) {
        cand.clear();
        candidates(spec.terms[ti], tokens[ti], q0, q1, n, bk, rows[ti], i, L->k_pos, cand);
        for (int64_t j : cand) {
          // Gathered keys: the rectangle spans the block's first to last position, a superset of
          // its keys, so "none" and "full" stay exact claims.
          Rect r{q0, q1, L->kpos(j * bk), L->kpos(std::min(L->n_keys, (j + 1) * bk) - 1) + 1};
          if (causal && r.k0 > q1 - 1) continue;
          Cover c = cover(head_terms[ti], tokens[ti], r);
          if (c == Cover::none) continue;
          Mark& e = row[j];
          e.terms |= 1u << ti;
          if (c == Cover::full) (causal && r.k1 - 1 > q0 ? e.causal_full : e.full) = true;
        }
      }
      for (auto& [j, e] : row) {
        // A partial block cut by the diagonal may have lost all of its pairs to causality (a
        // global query row above it, say); check its few elements rather than list it empty.
        if (causal && !e.full && L->kpos(std::min(L->n_keys, (j + 1) * bk) - 1) > q0 &&
            !any_allowed(head_terms, L->tokens, e.terms, i, j, *L)) {
          continue;
        }
        L->col_idx.push_back(int32_t(j));
        L->full.push_back(e.full ? kFull : e.causal_full ? kCausal : kPartial);
        L->entry_terms.push_back(e.terms);
      }
      L->row_ptr.push_back(int64_t(L->col_idx.size()));
    }
  }

  build_transposed(*L);
  build_masks(*L);
  return L;
}

std::shared_ptr<const BlockLayout> BlockLayout::build_residue_classes(int64_t n, int64_t bq, int64_t bk, int64_t l,
                                                                      bool causal, const HeadSpec& head,
                                                                      const std::string& pattern) {
  SPARTA_CHECK(n >= 1, pattern, "sequence length must be positive, got ", n);
  SPARTA_CHECK(l >= 1 && l <= n, pattern, "stride ", l, " must be in [1, sequence length ", n, "]");
  SPARTA_CHECK(bq >= 1 && bq <= n && bk >= 1 && bk <= n, pattern, "blocks ", bq, " x ", bk,
               " must be in [1, sequence length ", n, "]");
  SPARTA_CHECK(!head.terms.empty() && head.terms.size() <= 32, pattern, "a head needs 1 to 32 terms");
  auto L = std::make_shared<BlockLayout>();
  L->seq_len = n;
  L->block_q = bq;
  L->block_k = bk;
  L->n_qblocks = (n + bq - 1) / bq;
  L->n_keys = n;
  L->n_kblocks = (n + bk - 1) / bk;
  L->causal = causal;
  L->term_ptr = {0};
  for (const HeadSpec::Term& term : head.terms) {
    SPARTA_CHECK(term.mask.kind == TermKind::band && term.mask.dilation == l, pattern,
                 "a residue-class segment takes only bands of dilation ", l);
    MaskTerm t = term.mask;
    t.lo = std::max(t.lo, -n);
    t.hi = std::min(t.hi, n);
    L->terms.push_back(t);
  }
  L->term_ptr.push_back(int64_t(L->terms.size()));
  // Class-major order: positions r, r + l, r + 2l, ... for r = 0 .. l-1.
  std::vector<int64_t> start(size_t(l) + 1, 0);
  for (int64_t r = 0; r < l; ++r) start[size_t(r) + 1] = start[size_t(r)] + (n - r + l - 1) / l;
  for (int64_t r = 0; r < l; ++r)
    for (int64_t p = r; p < n; p += l) L->q_pos.push_back(p);
  L->q_index.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) L->q_index[size_t(L->q_pos[size_t(i)])] = i;
  L->k_pos = L->q_pos;
  L->k_index = L->q_index;

  const uint32_t all_terms = L->terms.size() == 32 ? ~0u : (1u << L->terms.size()) - 1;
  L->row_ptr.push_back(0);
  std::vector<int64_t> cand;
  for (int64_t i = 0; i < L->n_qblocks; ++i) {
    // Keys of a query at class index m of class r: the same class, d = (m - m') * l in a band.
    cand.clear();
    for (int64_t p = i * bq; p < i * bq + L->qblock_len(i); ++p) {
      const int64_t pos = L->q_pos[size_t(p)], r = pos % l, m = pos / l, len = start[size_t(r) + 1] - start[size_t(r)];
      for (const MaskTerm& t : L->terms) {
        int64_t lo_m = m - (t.hi >= 0 ? t.hi / l : -((-t.hi + l - 1) / l));
        int64_t hi_m = m - (t.lo >= 0 ? (t.lo + l - 1) / l : -((-t.lo) / l));
        if (causal) hi_m = std::min(hi_m, m);
        lo_m = std::max<int64_t>(lo_m, 0);
        hi_m = std::min(hi_m, len - 1);
        for (int64_t j = (start[size_t(r)] + lo_m) / bk; lo_m <= hi_m && j <= (start[size_t(r)] + hi_m) / bk; ++j) {
          cand.push_back(j);
        }
      }
    }
    std::sort(cand.begin(), cand.end());
    cand.erase(std::unique(cand.begin(), cand.end()), cand.end());
    // Few candidates per row: classify each exactly by its elements.
    for (int64_t j : cand) {
      int64_t hits = 0;
      for (int64_t p = i * bq; p < i * bq + L->qblock_len(i); ++p)
        for (int64_t pk = j * bk; pk < j * bk + L->kblock_len(j); ++pk)
          hits += mask_allows(L->terms.data(), nullptr, all_terms, causal, L->q_pos[size_t(p)], L->k_pos[size_t(pk)]);
      if (hits == 0) continue;
      L->col_idx.push_back(int32_t(j));
      L->full.push_back(hits == L->qblock_len(i) * L->kblock_len(j) ? kFull : kPartial);
      L->entry_terms.push_back(all_terms);
    }
    L->row_ptr.push_back(int64_t(L->col_idx.size()));
  }
  build_transposed(*L);
  build_masks(*L);
  return L;
}

bool BlockLayout::allows(int h, int64_t q, int64_t k) const {
  if (q < 0 || q >= seq_len || k < 0 || k >= seq_len) return false;
  if (next && next->allows(h, q, k)) return true;
  const int64_t pq = q_index.empty() ? q : q_index[size_t(q)], pk = k_index.empty() ? k : k_index[size_t(k)];
  if (pk < 0) return false;  // a key this segment does not gather
  const int64_t* rp = row_ptr.data() + size_t(h) * size_t(n_qblocks + 1);
  const int64_t i = pq / block_q, j = pk / block_k;
  auto first = col_idx.begin() + rp[i], last = col_idx.begin() + rp[i + 1];
  auto it = std::lower_bound(first, last, int32_t(j));
  if (it == last || *it != j) return false;
  const size_t e = size_t(it - col_idx.begin());
  if (full[e] == kFull) return true;
  if (full[e] == kCausal) return k <= q;
  return mask_allows(terms.data() + term_ptr[size_t(h)], tokens.data(), entry_terms[e], causal, q, k);
}

int64_t BlockLayout::allowed_pairs(int h) const {
  const int64_t* rp = row_ptr.data() + size_t(h) * size_t(n_qblocks + 1);
  const MaskTerm* ts = terms.data() + term_ptr[size_t(h)];
  int64_t total = next ? next->allowed_pairs(h) : 0;
  for (int64_t i = 0; i < n_qblocks; ++i) {
    for (int64_t e = rp[i]; e < rp[i + 1]; ++e) {
      const int64_t j = col_idx[size_t(e)];
      if (full[size_t(e)] == kFull) {
        total += qblock_len(i) * kblock_len(j);
        continue;
      }
      for (int64_t p = i * block_q; p < i * block_q + qblock_len(i); ++p) {
        for (int64_t pk = j * block_k; pk < j * block_k + kblock_len(j); ++pk) {
          total += mask_allows(ts, tokens.data(), entry_terms[size_t(e)], causal, qpos(p), kpos(pk));
        }
      }
    }
  }
  return total;
}

int64_t BlockLayout::listed_blocks(int h) const { return entries(h) + (next ? next->listed_blocks(h) : 0); }

std::vector<uint8_t> BlockLayout::dense_mask(int h) const {
  std::vector<uint8_t> m(size_t(seq_len * seq_len), 0);
  for (int64_t q = 0; q < seq_len; ++q)
    for (int64_t k = 0; k < seq_len; ++k) m[size_t(q * seq_len + k)] = allows(h, q, k);
  return m;
}

}  // namespace sparta::attn

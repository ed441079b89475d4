#pragma once
// Note [Attention masks as data]
// Which (query, key) position pairs a sparse attention pattern allows, as a small descriptor that
// the CPU and CUDA kernels both evaluate, instead of code or an N x N bitmap. A head's mask is
//
//   allowed(q, k) = k < N  and  (!causal or k <= q)  and  OR over the head's terms t of t(q, k)
//
// restricted, inside a block, to the terms that listed that block (BlockLayout::entry_terms), so a
// block-level term (explicit, BigBird) never leaks into blocks another term listed.
#include <cstdint>

#include "core/random.h"  // SPARTA_HD

namespace sparta::attn {

enum class TermKind : uint8_t {
  all,         // every pair (inside the blocks the term lists)
  band,        // lo <= q - k <= hi and (q - k) % dilation == 0
  same_block,  // q / period == k / period
  summary,     // k % period >= period - width  (the "summary" cells of fixed attention)
  summary_before,  // summary, and k in an earlier period than q (k / period < q / period)
  global,      // q or k is one of the term's global token positions (sorted)
};

struct MaskTerm {
  TermKind kind = TermKind::all;
  int64_t lo = 0, hi = 0;    // band
  int64_t dilation = 1;      // band, >= 1
  int64_t period = 1;        // same_block, summary
  int64_t width = 0;         // summary
  int64_t token_begin = 0;  // global: sorted positions tokens[token_begin, token_begin + n_tokens)
  int64_t n_tokens = 0;     // of the layout's token array (host or device copy, as the kernel runs)
};

SPARTA_HD inline bool contains_sorted(const int64_t* v, int64_t n, int64_t x) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    int64_t mid = (lo + hi) / 2;
    if (v[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && v[lo] == x;
}

SPARTA_HD inline bool term_allows(const MaskTerm& t, const int64_t* tokens, int64_t q, int64_t k) {
  switch (t.kind) {
    case TermKind::all: return true;
    case TermKind::band: {
      int64_t d = q - k;
      if (d < t.lo || d > t.hi) return false;
      int64_t r = d % t.dilation;
      return r == 0;
    }
    case TermKind::same_block: return q / t.period == k / t.period;
    case TermKind::summary: return k % t.period >= t.period - t.width;
    case TermKind::summary_before: return k % t.period >= t.period - t.width && k / t.period < q / t.period;
    case TermKind::global:
      return contains_sorted(tokens + t.token_begin, t.n_tokens, q) ||
             contains_sorted(tokens + t.token_begin, t.n_tokens, k);
  }
  return false;
}

// terms: the head's terms; active: bit i set when term i listed the block holding (q, k).
SPARTA_HD inline bool mask_allows(const MaskTerm* terms, const int64_t* tokens, uint32_t active, bool causal,
                                  int64_t q, int64_t k) {
  if (causal && k > q) return false;
  for (int i = 0; active != 0; ++i, active >>= 1) {
    if ((active & 1u) && term_allows(terms[i], tokens, q, k)) return true;
  }
  return false;
}

}  // namespace sparta::attn

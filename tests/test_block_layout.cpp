// BlockLayout: the block lists and their full/partial marks must reproduce, pair for pair, the
// pattern's definition evaluated directly (a brute-force N x N reference written independently of
// the layout's arithmetic), for every term kind, unions of terms, ragged blocks and causality.
#include <algorithm>
#include <random>
#include <set>

#include "core/attention/block_layout.h"
#include "core/attention/residue_order.h"
#include "tests/support.h"

using namespace sparta;
using namespace sparta::attn;
using namespace sparta::test;

namespace {

bool direct(const HeadSpec::Term& t, int64_t bq, int64_t bk, int64_t q, int64_t k) {
  const MaskTerm& m = t.mask;
  switch (m.kind) {
    case TermKind::all:
      if (t.blocks.empty()) return true;
      return std::find(t.blocks.begin(), t.blocks.end(), std::make_pair(q / bq, k / bk)) != t.blocks.end();
    case TermKind::band: {
      int64_t d = q - k;
      return d >= m.lo && d <= m.hi && ((d % m.dilation) + m.dilation) % m.dilation == 0;
    }
    case TermKind::same_block: return q / m.period == k / m.period;
    case TermKind::summary: return k % m.period >= m.period - m.width;
    case TermKind::summary_before: return k % m.period >= m.period - m.width && k / m.period < q / m.period;
    case TermKind::global:
      return std::count(t.tokens.begin(), t.tokens.end(), q) > 0 || std::count(t.tokens.begin(), t.tokens.end(), k) > 0;
  }
  return false;
}

HeadSpec::Term term(TermKind kind) {
  HeadSpec::Term t;
  t.mask.kind = kind;
  return t;
}

HeadSpec::Term band(int64_t lo, int64_t hi, int64_t dil = 1) {
  HeadSpec::Term t = term(TermKind::band);
  t.mask.lo = lo;
  t.mask.hi = hi;
  t.mask.dilation = dil;
  return t;
}

void check_layout(const std::string& name, int64_t n, int64_t bq, int64_t bk, bool causal,
                  const std::vector<HeadSpec>& heads) {
  auto L = BlockLayout::build(n, bq, bk, causal, heads, name);
  for (int h = 0; h < L->n_layouts; ++h) {
    const HeadSpec& spec = heads[size_t(h)];
    std::vector<uint8_t> mask = L->dense_mask(h);
    int64_t wrong = 0, allowed = 0, first_q = -1, first_k = -1;
    for (int64_t q = 0; q < n; ++q) {
      for (int64_t k = 0; k < n; ++k) {
        bool want = !(causal && k > q);
        bool any = false;
        for (const auto& t : spec.terms) any = any || direct(t, bq, bk, q, k);
        want = want && any;
        allowed += want;
        if (bool(mask[size_t(q * n + k)]) != want && wrong++ == 0) {
          first_q = q;
          first_k = k;
        }
      }
    }
    BOOST_CHECK_MESSAGE(wrong == 0, name << " head " << h << ": " << wrong << " pairs differ, first (" << first_q
                                         << ", " << first_k << ")");
    BOOST_CHECK_EQUAL(L->allowed_pairs(h), allowed);
    // Full blocks hold only allowed pairs; every listed block holds at least one.
    const int64_t* rp = L->row_ptr.data() + size_t(h) * size_t(L->n_qblocks + 1);
    for (int64_t i = 0; i < L->n_qblocks; ++i) {
      for (int64_t e = rp[i]; e < rp[i + 1]; ++e) {
        int64_t j = L->col_idx[size_t(e)], hits = 0;
        for (int64_t q = i * bq; q < i * bq + L->qblock_len(i); ++q)
          for (int64_t k = j * bk; k < j * bk + L->kblock_len(j); ++k) hits += mask[size_t(q * n + k)];
        BOOST_CHECK_MESSAGE(hits > 0, name << ": empty block (" << i << ", " << j << ") listed");
        if (L->full[size_t(e)] == BlockLayout::kFull) BOOST_CHECK_EQUAL(hits, L->qblock_len(i) * L->kblock_len(j));
        if (L->full[size_t(e)] == BlockLayout::kCausal) {
          int64_t below = 0;
          for (int64_t q = i * bq; q < i * bq + L->qblock_len(i); ++q)
            for (int64_t k = j * bk; k < j * bk + L->kblock_len(j); ++k) below += k <= q;
          BOOST_CHECK_EQUAL(hits, below);
        }
      }
    }
    // The CSC lists the same entries.
    std::set<std::pair<int64_t, int64_t>> csr, csc;
    for (int64_t i = 0; i < L->n_qblocks; ++i)
      for (int64_t e = rp[i]; e < rp[i + 1]; ++e) csr.insert({i, L->col_idx[size_t(e)]});
    const int64_t* cp = L->col_ptr.data() + size_t(h) * size_t(L->n_kblocks + 1);
    for (int64_t j = 0; j < L->n_kblocks; ++j)
      for (int64_t p = cp[j]; p < cp[j + 1]; ++p) {
        csc.insert({L->row_idx[size_t(p)], j});
        BOOST_CHECK_EQUAL(L->col_idx[size_t(L->csc_entry[size_t(p)])], j);
      }
    BOOST_CHECK(csr == csc);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_term_kind_matches_its_definition) {
  for (int64_t n : {1, 37, 64, 100}) {
    for (auto [bq, bk] : std::vector<std::pair<int64_t, int64_t>>{{8, 8}, {16, 8}, {7, 5}}) {
      if (bq > n || bk > n) continue;
      for (bool causal : {false, true}) {
        std::string at = " n=" + std::to_string(n) + " bq=" + std::to_string(bq) + " bk=" + std::to_string(bk) +
                         (causal ? " causal" : "");
        check_layout("dense" + at, n, bq, bk, causal, {HeadSpec{{term(TermKind::all)}}});
        check_layout("local" + at, n, bq, bk, causal, {HeadSpec{{band(-9, 9)}}});
        check_layout("strided" + at, n, bq, bk, causal, {HeadSpec{{band(0, 6), band(0, n, 7)}}});
        HeadSpec::Term same = term(TermKind::same_block), summary = term(TermKind::summary);
        same.mask.period = std::min<int64_t>(n, 12);
        summary.mask.period = std::min<int64_t>(n, 12);
        summary.mask.width = std::min<int64_t>(summary.mask.period, 3);
        check_layout("fixed" + at, n, bq, bk, causal, {HeadSpec{{same, summary}}});
        HeadSpec::Term before = summary;
        before.mask.kind = TermKind::summary_before;
        check_layout("summary_before" + at, n, bq, bk, causal, {HeadSpec{{before}}});
        HeadSpec::Term global = term(TermKind::global);
        global.tokens = {0, n / 2, n - 1, n / 2};
        check_layout("longformer" + at, n, bq, bk, causal, {HeadSpec{{band(-8, 8, 2), global}}});
        HeadSpec::Term explicit_blocks = term(TermKind::all);
        int64_t nq = (n + bq - 1) / bq, nk = (n + bk - 1) / bk;
        for (int64_t i = 0; i < nq; ++i) explicit_blocks.blocks.push_back({i, (i * 7) % nk});
        check_layout("explicit" + at, n, bq, bk, causal, {HeadSpec{{explicit_blocks, band(0, 3)}}});
        // Different patterns for different heads.
        check_layout("per-head" + at, n, bq, bk, causal,
                     {HeadSpec{{band(-4, 4)}}, HeadSpec{{same, summary}}, HeadSpec{{global}}});
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(sparse_patterns_list_few_blocks) {
  // Local attention with a window of one block lists at most two key blocks per query block.
  auto L = BlockLayout::build(4096, 64, 64, true, {HeadSpec{{band(0, 63)}}}, "local");
  BOOST_CHECK_LE(L->entries(0), 2 * L->n_qblocks);
  // Dense causal lists the lower triangle, with full blocks below the diagonal.
  auto D = BlockLayout::build(4096, 64, 64, true, {HeadSpec{{term(TermKind::all)}}}, "dense");
  BOOST_CHECK_EQUAL(D->entries(0), 64 * 65 / 2);
  BOOST_CHECK_EQUAL(std::count(D->full.begin(), D->full.end(), BlockLayout::kCausal), 64);
}

BOOST_AUTO_TEST_CASE(bad_layouts_are_named_errors) {
  check_error([] { BlockLayout::build(0, 8, 8, true, {HeadSpec{{term(TermKind::all)}}}, "dense"); },
              {"[dense]", "sequence length"});
  check_error([] { BlockLayout::build(16, 32, 8, true, {HeadSpec{{term(TermKind::all)}}}, "dense"); },
              {"[dense]", "query block 32"});
  check_error([] { BlockLayout::build(16, 8, 8, true, {HeadSpec{{band(3, 1)}}}, "local"); }, {"[local]", "empty"});
  check_error([] { BlockLayout::build(16, 8, 8, true, {HeadSpec{{band(0, 5, 0)}}}, "strided"); },
              {"[strided]", "dilation"});
  HeadSpec::Term g = term(TermKind::global);
  g.tokens = {20};
  check_error([&] { BlockLayout::build(16, 8, 8, true, {HeadSpec{{g}}}, "longformer"); }, {"[longformer]", "20"});
  HeadSpec::Term s = term(TermKind::summary);
  s.mask.period = 4;
  s.mask.width = 5;
  check_error([&] { BlockLayout::build(16, 8, 8, true, {HeadSpec{{s}}}, "fixed"); }, {"[fixed]", "width 5"});
}

// The residue-class order's closed form (what the CUDA kernels read such a segment through instead
// of its q_pos array): its division by multiply-high against exact division, the order against
// the positions build_residue_classes lists, and the check that recognises such a segment.
BOOST_AUTO_TEST_CASE(residue_order_closed_form) {
  std::vector<uint32_t> divisors = {1, 2, 3, 7, 64, 100, 127, 128, 129, 4095, 65537, (1u << 30) + 3, (1u << 31) - 1};
  std::mt19937_64 rng(run_seed());  // fresh values each run (SPARTA_TEST_SEED repeats one)
  for (int i = 0; i < 200; ++i) divisors.push_back(1 + uint32_t(rng() % ((1u << 31) - 1)));
  for (uint32_t d : divisors) {
    const FastDiv div = FastDiv::of(d);
    std::vector<int64_t> xs = {0, 1, int64_t(d) - 1, int64_t(d), int64_t(d) + 1, (int64_t(1) << 31) - 1};
    for (int i = 0; i < 200; ++i) xs.push_back(int64_t(rng() % (uint64_t(1) << 31)));
    for (int64_t x : xs) {
      if (x < 0 || x >= (int64_t(1) << 31)) continue;
      BOOST_REQUIRE_MESSAGE(div(int(x)) == x / d, x << " / " << d << ": " << div(int(x)));
    }
  }
  // Classes of equal and unequal length, of one token, and a stride of one less than n.
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1000, 33}, {4099, 64}, {410, 200}, {200, 128}, {257, 256},
                                                           {4096, 64}, {97, 1}};
  for (auto [n, l] : shapes) {
    auto L = BlockLayout::build_residue_classes(n, 32, 32, l, true, HeadSpec{{band(2 * l, n, l)}}, "strided");
    const ResidueOrder order = ResidueOrder::of(n, l);
    for (int64_t p = 0; p < n; ++p)
      BOOST_REQUIRE_MESSAGE(order(p) == L->qpos(p), "n=" << n << " l=" << l << " p=" << p);
    BOOST_CHECK_EQUAL(residue_stride(*L), l == 1 ? 1 : l);
  }
  // Not a residue-class order: no permutation, or a permutation of another kind.
  auto plain = BlockLayout::build(64, 32, 32, true, {HeadSpec{{band(0, 8)}}}, "local");
  BOOST_CHECK_EQUAL(residue_stride(*plain), 0);
  BlockLayout swapped = *BlockLayout::build_residue_classes(64, 32, 32, 4, true, HeadSpec{{band(8, 64, 4)}}, "strided");
  std::swap(swapped.q_pos[5], swapped.q_pos[6]);
  swapped.k_pos = swapped.q_pos;
  BOOST_CHECK_EQUAL(residue_stride(swapped), 0);
}

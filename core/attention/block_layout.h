#pragma once
// Note [BlockLayout]
// Every sparse attention pattern compiles to this one structure, which every kernel consumes.
// The sequence is cut into query blocks of block_q positions and key blocks of block_k (the last
// block of each may be ragged). For each head layout and query block, the CSR lists the key blocks
// it visits; each entry is *full* (every pair allowed: the kernel skips the element mask) or
// *partial* (the kernel evaluates attn::mask_allows with the entry's active terms). The CSC lists
// the same entries by key block, for the backward pass over key blocks.
//
// Layouts are built from HeadSpecs (terms, core/attention/mask.h) arithmetically, in time
// proportional to the blocks listed, never from an N x N mask.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/attention/mask.h"

namespace sparta::attn {

// One head's pattern: the union of its terms (at most 32).
struct HeadSpec {
  struct Term {
    MaskTerm mask;                 // token_begin/n_tokens are filled in by the layout
    std::vector<int64_t> tokens;   // global terms: positions (any order, duplicates allowed)
    // Block-level terms (kind all): the (query block, key block) pairs the term lists; empty
    // with kind all means every block.
    std::vector<std::pair<int64_t, int64_t>> blocks;
  };
  std::vector<Term> terms;
};

class BlockLayout {
 public:
  // heads: one spec shared by every head, or one per head. Throws naming the bad value.
  // key_positions (sorted, optional): the segment's keys are only these positions, gathered into
  // consecutive key blocks (fixed attention's summary cells, say).
  static std::shared_ptr<const BlockLayout> build(int64_t seq_len, int64_t block_q, int64_t block_k, bool causal,
                                                  const std::vector<HeadSpec>& heads, const std::string& pattern,
                                                  const std::vector<int64_t>& key_positions = {});

  int64_t seq_len = 0, block_q = 0, block_k = 0, n_qblocks = 0, n_kblocks = 0;
  int64_t n_keys = 0;  // keys in this segment's key order: seq_len, or the gathered positions' count
  bool causal = false;
  int n_layouts = 1;  // 1: shared by every head

  // CSR over (layout, query block): entries row_ptr[h * (n_qblocks + 1) + i] ..
  std::vector<int64_t> row_ptr;
  std::vector<int32_t> col_idx;        // key block of each entry
  // kFull: every pair allowed (no element mask); kCausal: every pair with k <= q allowed (the
  // diagonal's blocks: only causality to apply); kPartial: evaluate the terms.
  enum : uint8_t { kPartial = 0, kFull = 1, kCausal = 2 };
  std::vector<uint8_t> full;
  std::vector<uint32_t> entry_terms;   // bit i: term i of the layout listed this block
  // CSC over (layout, key block): positions col_ptr[h * (n_kblocks + 1) + j] .. into row_idx/csc_entry.
  std::vector<int64_t> col_ptr;
  std::vector<int32_t> row_idx;
  std::vector<int64_t> csc_entry;      // the CSR entry index
  // The element mask of every partial entry, evaluated once when the layout is built: entry e's
  // rows x cols bits (row-major, the block's own lengths) start at bit mask_offset[e] of
  // mask_bits, a multiple of 64; -1 for entries that are not partial. Kernels test bits instead of re-evaluating
  // the terms for every pair of every step; allows() still evaluates the terms (the reference).
  std::vector<int64_t> mask_offset;
  std::vector<uint64_t> mask_bits;
  bool mask_bit(int64_t entry, int64_t r, int64_t c, int64_t cols) const {
    const int64_t i = mask_offset[size_t(entry)] + r * cols + c;
    return (mask_bits[size_t(i >> 6)] >> (i & 63)) & 1u;
  }

  // Terms of layout h: terms[term_ptr[h] .. term_ptr[h + 1]); global positions in tokens.
  std::vector<MaskTerm> terms;
  std::vector<int64_t> term_ptr;
  std::vector<int64_t> tokens;

  // Top-k attention (0: off): per query, only the top_k largest scores among the allowed keys are
  // kept (a data-dependent mask on top of the layout's).
  int64_t top_k = 0;

  // Optional token permutation of this segment's index space (empty: the identity). The block
  // lists are over permuted indices; index p stands for position q_pos[p] (queries) or k_pos[p]
  // (keys), and the element mask is evaluated on positions. Under the residue-class permutation,
  // strided attention ("every l-th token back") is block-dense causal attention inside each class.
  std::vector<int64_t> q_pos, k_pos, q_index, k_index;  // *_index: the inverse maps (-1: absent)
  int64_t qpos(int64_t p) const { return q_pos.empty() ? p : q_pos[size_t(p)]; }
  int64_t kpos(int64_t p) const { return k_pos.empty() ? p : k_pos[size_t(p)]; }

  // Further segments over disjoint sets of pairs (each with its own permutation); the attention is
  // the softmax over the union, merged through the segments' log-sum-exps.
  std::shared_ptr<const BlockLayout> next;

  // A segment in the residue-class order of `stride` for both queries and keys (class 0's
  // positions 0, l, 2l, ... first, then class 1's ...). Every term must be a band whose dilation
  // is the stride, so that a query only meets keys of its own class.
  static std::shared_ptr<const BlockLayout> build_residue_classes(int64_t seq_len, int64_t block_q, int64_t block_k,
                                                                  int64_t stride, bool causal, const HeadSpec& head,
                                                                  const std::string& pattern);

  // Layout used by head `head` of a model with any number of heads.
  int layout_of(int head) const { return n_layouts == 1 ? 0 : head; }
  int64_t entries(int h) const { return row_ptr[size_t(h) * (n_qblocks + 1) + n_qblocks] - row_ptr[size_t(h) * (n_qblocks + 1)]; }
  int64_t qblock_len(int64_t i) const { return std::min(block_q, seq_len - i * block_q); }
  int64_t kblock_len(int64_t j) const { return std::min(block_k, n_keys - j * block_k); }

  // The element predicate over every segment, through the block lists (the reference the kernels
  // must agree with); q and k are positions.
  bool allows(int h, int64_t q, int64_t k) const;
  // Allowed pairs of layout h over every segment, counted over the listed blocks (exact).
  int64_t allowed_pairs(int h) const;
  // Listed blocks of layout h over every segment.
  int64_t listed_blocks(int h) const;
  // Rows x columns of layout h as one byte per pair; for tests and pictures of small N only.
  std::vector<uint8_t> dense_mask(int h) const;
};

}  // namespace sparta::attn

#pragma once
// Sparse attention patterns. Each is a closed-form descriptor (a few integers) that compiles to a
// HeadSpec of mask terms (core/attention/mask.h), and through it to a BlockLayout; none ever
// materialises an N x N mask. Positions are 0-based; q is the query position, k the key position.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/attention/block_layout.h"

namespace sparta::nn {

class Pattern {
 public:
  virtual ~Pattern() = default;
  virtual std::string name() const = 0;
  // A one-line description with the parameters, e.g. "fixed(l=128, c=16, causal)".
  virtual std::string describe() const = 0;
  virtual bool causal() const { return true; }
  // The terms of head `head` of `n_heads` for a sequence of n positions cut into blocks of `block`.
  virtual attn::HeadSpec head_spec(int64_t n, int64_t block, int head, int n_heads) const = 0;
  // True when every head gets the same spec (the layout is then shared).
  virtual bool shared_by_heads() const { return true; }
  // Top-k selection inside the layout (0: none); see TopK.
  virtual int64_t top_k() const { return 0; }

  // Checks the parameters against a model's sequence length and block (a window, stride or block
  // length longer than the sequence, a bitmap of the wrong size...): an error naming the pattern
  // and the value. layout() itself accepts shorter sequences (prompts when decoding), where such
  // parameters saturate.
  virtual void validate(int64_t seq_len, int64_t block) const {}

  // Whether key position k can still be attended by some query at position >= t (decoding keeps
  // only such keys in its cache: a local pattern its window, fixed its block and summary cells).
  virtual bool retains(int64_t k, int64_t t) const { return true; }

  // The pattern's BlockLayout for n positions and blocks of `block` (clamped to n).
  virtual std::shared_ptr<const attn::BlockLayout> layout(int64_t n, int64_t block, int n_heads = 1) const;
};

using PatternPtr = std::shared_ptr<const Pattern>;

// Dense causal: k <= q.
PatternPtr dense_causal();
// Local: causal: q - w < k <= q (the w most recent positions, q included);
// bidirectional: |q - k| < w.
PatternPtr local(int64_t window, bool causal = true);
// Strided (Child et al. 2019, eq. A(1), A(2)): k in [q - l, q] (the previous l tokens) or
// (q - k) mod l == 0 (every l-th token back); causal. Its layout has two segments: the band in
// sequence order, and the pairs 2l, 3l, ... apart in residue-class order, where they are
// block-dense (Child et al.'s implementation), so its cost grows like N·sqrt(N) for l ~ sqrt(N).
PatternPtr strided(int64_t stride);
// Fixed (Child et al. 2019): floor(k / l) == floor(q / l) (the same block of length l) or
// k mod l >= l - c (the last c positions, the "summary", of every block); causal. Its layout has
// two segments: the same-block part in sequence order, and the summary cells of earlier blocks
// gathered into dense key blocks, so no block is visited for a few columns.
PatternPtr fixed(int64_t block_len, int64_t summary);
// BigBird (Zaheer et al. 2020), at block granularity b (the layout's block): the first g blocks
// attend to and are attended by every block; block j is visible from block i when |i - j| <= w;
// and each query block sees r further key blocks drawn from Philox keyed by (seed, head, i).
PatternPtr bigbird(int64_t global_blocks, int64_t window_blocks, int64_t random_blocks, uint64_t seed,
                   bool causal = false);
// Longformer (Beltagy et al. 2020): bidirectional: |q - k| <= (w / 2) * d with (q - k) mod d == 0;
// causal: 0 <= q - k <= (w - 1) * d with (q - k) mod d == 0; plus global positions G, which attend
// to every position and are attended by every position.
PatternPtr longformer(int64_t window, int64_t dilation, std::vector<int64_t> global_tokens, bool causal = false);
// Explicit block pairs (query block, key block), at the layout's block size; causal masks inside.
PatternPtr explicit_blocks(std::vector<std::pair<int64_t, int64_t>> blocks, bool causal = true);
// An explicit bitmap read from a text file: one line per query block, one character per key block,
// '1' or '#' for a listed block, '0' or '.' for an empty one; '#' comments and blank lines skipped.
PatternPtr bitmap_file(const std::string& path, bool causal = true);
// Top-k: for each query, the k largest scores among the keys of a causal window of w positions
// (q - w < k <= q) are kept and softmaxed; the gradient flows through the kept scores only.
PatternPtr top_k(int64_t k, int64_t window);
// The union of several patterns in every head (they must agree on causality).
PatternPtr union_of(std::vector<PatternPtr> parts);
// Head h uses patterns[h % patterns.size()].
PatternPtr per_head(std::vector<PatternPtr> patterns);

// Parses "local:128", "strided:64", "fixed:128:16", "dense", "bigbird:2:1:3:seed", "longformer:512:1:0,1",
// "topk:32:512", "bitmap:path", and "a+b" for unions, "a|b" for per-head; errors name the text.
PatternPtr parse_pattern(const std::string& text);

}  // namespace sparta::nn

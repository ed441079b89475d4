#pragma once
// What a sparse attention pattern costs and what it can see, computed from its BlockLayout (the
// block lists and their element masks, the structure the kernels run), never from a separately
// written mask: pairs allowed, blocks listed, FLOPs against dense causal attention, the memory of
// the layout and of what a kernel keeps, and how many stacked layers it takes until every
// position can reach every position it may see. Also pictures of a head's mask: ASCII, SVG and
// an RGB raster (the `sparta viz` command encodes it as PNG).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/attention/block_layout.h"
#include "nn/attention/patterns.h"

namespace sparta::nn {

// The bare pattern names `viz` accepts, each with parameters derived from the sequence length.
const std::vector<std::string>& default_pattern_names();
// The full spec of a bare name at n positions, e.g. ("fixed", 1024) -> "fixed:32:4":
// l = sqrt(n) rounded to a power of two, local window l, fixed summary c = max(1, l/8),
// bigbird 1 global, 1 window and 2 random blocks (seed 7), longformer window l with global token
// 0, topk k = l/2 in a window of 2l. Throws naming the name when it is not one of them.
std::string default_spec(const std::string& name, int64_t n);
// A spec whose '+'/'|' parts may be bare names, with those replaced by default_spec.
std::string resolve_spec(const std::string& spec, int64_t n);

// The pattern's layout, after checking n >= 1, 1 <= block <= n, heads >= 1 and
// Pattern::validate (errors name the pattern and the value; Pattern::layout alone would clamp the
// block and saturate windows longer than n).
std::shared_ptr<const attn::BlockLayout> checked_layout(const Pattern& p, int64_t n, int64_t block, int heads);

// Whether every position reaches every position it may see (k <= q when causal, all k
// otherwise) through `layers` stacked copies of the layout. A layer moves information from k to
// q when some head allows (q, k); the residual stream keeps what q already had.
struct Reach {
  int layers = 0;                // smallest L <= max_layers with full reach; 0: not within max_layers
  std::vector<double> fraction;  // fraction[L - 1]: reachable pairs / pairs that may be seen, after L layers
};
Reach receptive_field(const attn::BlockLayout& L, int heads, int max_layers);

struct AnalysisOptions {
  int64_t n = 1024;
  int64_t block = 64;
  int heads = 1;
  int64_t head_dim = 64;
  int max_layers = 3;
  int64_t max_reach_n = 8192;  // the receptive field keeps n x n bits (three copies)
};

struct PatternAnalysis {
  std::string description;
  int64_t n = 0, block = 0, heads = 1, head_dim = 0;
  bool causal = true;
  int64_t top_k = 0;
  // Summed over heads.
  int64_t allowed_pairs = 0;
  int64_t kept_pairs = 0;      // top-k keeps min(k, allowed in its row) per query; else = allowed
  int64_t listed_blocks = 0, full_blocks = 0, diagonal_blocks = 0, partial_blocks = 0;
  int64_t block_pairs = 0;     // pairs inside the listed blocks: what a block kernel computes
  int64_t dense_pairs = 0;     // dense causal: heads * n (n + 1) / 2
  int64_t dense_block_pairs = 0;  // dense causal's lower-triangle blocks at the same block size
  // Forward FLOPs: 2d per pair for Q K^T (over the allowed pairs) and 2d per pair for P V (over
  // the kept ones); block FLOPs: 4d per pair of every listed block.
  double flops = 0, block_flops = 0, dense_flops = 0, dense_block_flops = 0;
  int64_t layout_bytes = 0;    // the layout's vectors, every segment
  int64_t kernel_bytes = 0;    // f32 output (n x d) and log-sum-exp (n) per head
  int64_t score_bytes = 0;     // an f32 n x n score matrix per head, which no kernel keeps
  bool reach_computed = false;
  Reach reach;

  double density() const { return double(allowed_pairs) / (double(heads) * double(n) * double(n)); }
  double density_vs_causal() const { return double(allowed_pairs) / double(dense_pairs); }
};

PatternAnalysis analyze(const Pattern& p, const AnalysisOptions& o);
// The per-pattern report of `viz pattern` (several lines) and the table of `viz analyze`.
std::string format_report(const PatternAnalysis& a);
std::string format_table(const std::vector<PatternAnalysis>& rows, bool markdown);

// Pictures of head `head`. Every cell (q, k) is one of:
enum class Cell : uint8_t {
  empty,    // in no listed block
  masked,   // in a listed block, but not allowed (computed, then masked)
  partial,  // allowed, in a block whose element mask is evaluated (partial or diagonal)
  full,     // allowed, in a full block
};
// n x n cells, row = query position; n <= 8192.
std::vector<Cell> cell_map(const attn::BlockLayout& L, int head);
// One character per position for n <= 128 ('#' allowed, '-' listed but masked, '.' empty), else
// one per block x block tile of positions ('#' every pair allowed, by full blocks; '+' some pair
// allowed; '-' pairs computed but none allowed, as in the key blocks a permuted or gathered
// segment draws from all over the sequence; '.' nothing listed). One line per query (block),
// each ending in '\n'.
std::string to_ascii(const attn::BlockLayout& L, int head);
// An SVG of n x n cells scaled to about max_px, one path per cell kind (merged runs), block grid.
std::string to_svg(const attn::BlockLayout& L, int head, const std::string& title, int64_t max_px = 1024);
struct Raster {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes a pixel
};
// The same picture as pixels: cells of max_px / n pixels, or for n > max_px each pixel the mean
// colour of ceil(n / max_px)^2 cells.
Raster to_raster(const attn::BlockLayout& L, int head, int64_t max_px = 1024);
// The colour of a cell kind (RGB) in both pictures.
void cell_colour(Cell c, uint8_t rgb[3]);

}  // namespace sparta::nn

#include "nn/attention/analysis.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include <tbb/parallel_for.h>

#include "core/error.h"

namespace sparta::nn {
namespace {

using attn::BlockLayout;

// Calls fn(kind, q, k, allowed) for every pair of every block listed for `head` over all the
// layout's segments, with q and k as positions. The predicate is the one BlockLayout::allows
// applies, entry by entry, so counts and pictures see exactly what the kernels compute.
template <typename Fn>
void for_each_listed_pair(const BlockLayout& L, int head, Fn&& fn) {
  for (const BlockLayout* s = &L; s != nullptr; s = s->next.get()) {
    const int h = s->layout_of(head);
    const int64_t* rp = s->row_ptr.data() + size_t(h) * size_t(s->n_qblocks + 1);
    const attn::MaskTerm* ts = s->terms.data() + s->term_ptr[size_t(h)];
    for (int64_t i = 0; i < s->n_qblocks; ++i) {
      for (int64_t e = rp[i]; e < rp[i + 1]; ++e) {
        const int64_t j = s->col_idx[size_t(e)];
        const uint8_t kind = s->full[size_t(e)];
        const uint32_t active = s->entry_terms[size_t(e)];
        for (int64_t p = i * s->block_q; p < i * s->block_q + s->qblock_len(i); ++p) {
          const int64_t q = s->qpos(p);
          for (int64_t pk = j * s->block_k; pk < j * s->block_k + s->kblock_len(j); ++pk) {
            const int64_t k = s->kpos(pk);
            const bool ok = kind == BlockLayout::kFull ||
                            (kind == BlockLayout::kCausal ? k <= q
                                                          : attn::mask_allows(ts, s->tokens.data(), active, s->causal, q, k));
            fn(kind, q, k, ok);
          }
        }
      }
    }
  }
}

// Heads whose layouts differ: one when every segment is shared by all heads.
int distinct_heads(const BlockLayout& L, int heads) {
  SPARTA_CHECK(heads >= 1, "viz", "heads must be positive, got ", heads);
  int distinct = 1;
  for (const BlockLayout* s = &L; s != nullptr; s = s->next.get()) {
    SPARTA_CHECK(s->n_layouts == 1 || s->n_layouts == heads, "viz", "the layout was built for ", s->n_layouts,
                 " heads, not ", heads);
    if (s->n_layouts != 1) distinct = heads;
  }
  return distinct;
}

template <typename V>
int64_t bytes_of(const V& v) {
  return int64_t(v.size() * sizeof(typename V::value_type));
}

int64_t layout_bytes(const BlockLayout& L) {
  int64_t total = 0;
  for (const BlockLayout* s = &L; s != nullptr; s = s->next.get()) {
    total += bytes_of(s->row_ptr) + bytes_of(s->col_idx) + bytes_of(s->full) + bytes_of(s->entry_terms) +
             bytes_of(s->col_ptr) + bytes_of(s->row_idx) + bytes_of(s->csc_entry) + bytes_of(s->terms) +
             bytes_of(s->term_ptr) + bytes_of(s->tokens) + bytes_of(s->q_pos) + bytes_of(s->k_pos) +
             bytes_of(s->q_index) + bytes_of(s->k_index);
  }
  return total;
}

std::vector<std::string> split_on(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string percent(double ratio) { return fmt("%.3g%%", 100 * ratio); }

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return (u == 0 ? fmt("%.0f", b) : fmt("%.3g", b)) + " " + units[u];
}

std::string human_flops(double f) {
  const char* units[] = {"", " k", " M", " G", " T", " P"};
  int u = 0;
  while (f >= 1000 && u < 5) {
    f /= 1000;
    ++u;
  }
  return fmt("%.4g", f) + units[u];
}

std::string reach_cell(const PatternAnalysis& a, int max_layers) {
  if (!a.reach_computed) return "n/a";
  std::string s = a.reach.layers > 0 ? std::to_string(a.reach.layers) : "> " + std::to_string(max_layers);
  return a.top_k > 0 ? s + "*" : s;
}

}  // namespace

const std::vector<std::string>& default_pattern_names() {
  static const std::vector<std::string> names = {"dense", "local", "strided", "fixed", "bigbird", "longformer", "topk"};
  return names;
}

std::string default_spec(const std::string& name, int64_t n) {
  const auto& names = default_pattern_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    std::string known;
    for (const std::string& s : names) known += (known.empty() ? "" : ", ") + s;
    SPARTA_FAIL("viz", "unknown pattern '", name, "' (bare names: ", known,
                "; or a full spec such as local:32, fixed:16:2, strided:16+local:8, bigbird:1:1:2:7, bitmap:PATH)");
  }
  SPARTA_CHECK(n >= 1, "viz", name, ": sequence length must be positive, got ", n);
  // sqrt(n) rounded to a power of two (Child et al. pick l ~ sqrt(n) so that both of its terms
  // cost n sqrt(n)).
  const int64_t l = std::min<int64_t>(n, int64_t(1) << std::llround(std::log2(double(n)) / 2));
  const std::string ls = std::to_string(l);
  if (name == "dense") return "dense";
  if (name == "local") return "local:" + ls;
  if (name == "strided") return "strided:" + ls;
  if (name == "fixed") return "fixed:" + ls + ":" + std::to_string(std::max<int64_t>(1, l / 8));
  if (name == "bigbird") return "bigbird:1:1:2:7";
  if (name == "longformer") return "longformer:" + ls + ":1:0";
  return "topk:" + std::to_string(std::max<int64_t>(1, l / 2)) + ":" + std::to_string(std::min(n, 2 * l));
}

std::string resolve_spec(const std::string& spec, int64_t n) {
  std::string out;
  const std::vector<std::string> heads = split_on(spec, '|');
  for (size_t h = 0; h < heads.size(); ++h) {
    if (h > 0) out += '|';
    const std::vector<std::string> parts = split_on(heads[h], '+');
    for (size_t i = 0; i < parts.size(); ++i) {
      if (i > 0) out += '+';
      const std::string& part = parts[i];
      out += part.empty() || part.find(':') != std::string::npos ? part : default_spec(part, n);
    }
  }
  return out;
}

std::shared_ptr<const BlockLayout> checked_layout(const Pattern& p, int64_t n, int64_t block, int heads) {
  SPARTA_CHECK(n >= 1, "viz", p.describe(), ": sequence length must be positive, got ", n);
  SPARTA_CHECK(block >= 1, "viz", p.describe(), ": block must be positive, got ", block);
  SPARTA_CHECK(block <= n, "viz", p.describe(), ": block ", block, " is larger than the sequence length ", n);
  SPARTA_CHECK(heads >= 1, "viz", p.describe(), ": heads must be positive, got ", heads);
  // layout() lets windows and strides saturate on short sequences (decoding prompts); a picture
  // or cost of a pattern that does not fit its n is a mistake to report instead.
  p.validate(n, block);
  return p.layout(n, block, heads);
}

Reach receptive_field(const BlockLayout& L, int heads, int max_layers) {
  SPARTA_CHECK(max_layers >= 1, "viz", "layers must be positive, got ", max_layers);
  const int64_t n = L.seq_len, W = (n + 63) / 64;
  SPARTA_CHECK(n <= 16384, "viz", "the receptive field keeps n x n bits three times; n = ", n, " is above 16384");
  // One layer: q receives from k when some head allows (q, k), and from itself (residual).
  std::vector<uint64_t> one(size_t(n * W), 0);
  auto set = [&](std::vector<uint64_t>& m, int64_t q, int64_t k) { m[size_t(q * W + k / 64)] |= uint64_t(1) << (k % 64); };
  for (int64_t q = 0; q < n; ++q) set(one, q, q);
  for (int h = 0; h < distinct_heads(L, heads); ++h) {
    for_each_listed_pair(L, h, [&](uint8_t, int64_t q, int64_t k, bool ok) {
      if (ok) set(one, q, k);
    });
  }
  const int64_t target = L.causal ? n * (n + 1) / 2 : n * n;
  auto count = [&](const std::vector<uint64_t>& m) {
    int64_t c = 0;
    for (uint64_t w : m) c += __builtin_popcountll(w);
    return c;
  };

  Reach r;
  std::vector<uint64_t> cur = one, next(one.size());
  for (int layer = 1; layer <= max_layers; ++layer) {
    if (layer > 1) {
      // After `layer` layers q holds what its one-layer sources held after layer - 1.
      tbb::parallel_for(int64_t(0), n, [&](int64_t q) {
        uint64_t* out = next.data() + size_t(q * W);
        std::fill(out, out + W, 0);
        const uint64_t* src = one.data() + size_t(q * W);
        for (int64_t w = 0; w < W; ++w) {
          for (uint64_t bits = src[w]; bits != 0; bits &= bits - 1) {
            const int64_t k = w * 64 + __builtin_ctzll(bits);
            const uint64_t* row = cur.data() + size_t(k * W);
            for (int64_t x = 0; x < W; ++x) out[x] |= row[x];
          }
        }
      });
      cur.swap(next);
    }
    const int64_t reached = count(cur);
    r.fraction.push_back(double(reached) / double(target));
    if (reached == target) {
      r.layers = layer;
      break;
    }
  }
  return r;
}

PatternAnalysis analyze(const Pattern& p, const AnalysisOptions& o) {
  SPARTA_CHECK(o.head_dim >= 1, "viz", "head dim must be positive, got ", o.head_dim);
  auto L = checked_layout(p, o.n, o.block, o.heads);
  PatternAnalysis a;
  a.description = p.describe();
  a.n = o.n;
  a.block = o.block;
  a.heads = o.heads;
  a.head_dim = o.head_dim;
  a.causal = L->causal;
  a.top_k = L->top_k;

  const int distinct = distinct_heads(*L, o.heads);
  const int64_t copies = o.heads / distinct;  // heads sharing each walked layout
  std::vector<int64_t> row(size_t(o.n));
  for (int h = 0; h < distinct; ++h) {
    std::fill(row.begin(), row.end(), 0);
    for_each_listed_pair(*L, h, [&](uint8_t, int64_t q, int64_t, bool ok) { row[size_t(q)] += ok; });
    for (int64_t c : row) {
      a.allowed_pairs += copies * c;
      a.kept_pairs += copies * (a.top_k > 0 ? std::min(a.top_k, c) : c);
    }
    for (const BlockLayout* s = L.get(); s != nullptr; s = s->next.get()) {
      const int sh = s->layout_of(h);
      const int64_t* rp = s->row_ptr.data() + size_t(sh) * size_t(s->n_qblocks + 1);
      for (int64_t i = 0; i < s->n_qblocks; ++i) {
        for (int64_t e = rp[i]; e < rp[i + 1]; ++e) {
          const uint8_t kind = s->full[size_t(e)];
          a.listed_blocks += copies;
          (kind == BlockLayout::kFull ? a.full_blocks : kind == BlockLayout::kCausal ? a.diagonal_blocks : a.partial_blocks) +=
              copies;
          a.block_pairs += copies * s->qblock_len(i) * s->kblock_len(s->col_idx[size_t(e)]);
        }
      }
    }
  }
  const int64_t n = o.n, b = o.block, d = o.head_dim;
  a.dense_pairs = o.heads * n * (n + 1) / 2;
  // Dense causal's block kernel visits, for query block i, every key block up to the diagonal.
  for (int64_t q0 = 0; q0 < n; q0 += b) a.dense_block_pairs += o.heads * (std::min(n, q0 + b) - q0) * std::min(n, q0 + b);
  a.flops = 2.0 * double(d) * double(a.allowed_pairs) + 2.0 * double(d) * double(a.kept_pairs);
  a.block_flops = 4.0 * double(d) * double(a.block_pairs);
  a.dense_flops = 4.0 * double(d) * double(a.dense_pairs);
  a.dense_block_flops = 4.0 * double(d) * double(a.dense_block_pairs);
  a.layout_bytes = layout_bytes(*L);
  a.kernel_bytes = o.heads * n * (d + 1) * 4;
  a.score_bytes = o.heads * n * n * 4;
  if (n <= o.max_reach_n) {
    a.reach_computed = true;
    a.reach = receptive_field(*L, o.heads, o.max_layers);
  }
  return a;
}

std::string format_report(const PatternAnalysis& a) {
  std::ostringstream s;
  s << "pattern   " << a.description << "\n";
  s << "sequence  n=" << a.n << ", block " << a.block << ", " << a.heads << (a.heads == 1 ? " head" : " heads")
    << ", head dim " << a.head_dim << "\n";
  s << "pairs     " << a.allowed_pairs << " allowed: density " << percent(a.density()) << " of n^2, "
    << percent(a.density_vs_causal()) << " of dense causal (" << a.dense_pairs << ")\n";
  if (a.top_k > 0)
    s << "top-k     k=" << a.top_k << " of the allowed keys per query: " << a.kept_pairs << " pairs kept\n";
  s << "blocks    " << a.listed_blocks << " listed: " << a.full_blocks << " full, " << a.diagonal_blocks
    << " diagonal, " << a.partial_blocks << " partial; " << a.block_pairs << " pairs inside them\n";
  s << "FLOPs     forward " << human_flops(a.flops) << " = " << percent(a.flops / a.dense_flops)
    << " of dense causal (" << human_flops(a.dense_flops) << "); block kernel " << human_flops(a.block_flops) << " = "
    << percent(a.block_flops / a.dense_block_flops) << " of dense causal's blocks (" << human_flops(a.dense_block_flops)
    << ")\n";
  s << "memory    layout " << human_bytes(double(a.layout_bytes)) << "; a kernel keeps out + log-sum-exp, "
    << human_bytes(double(a.kernel_bytes)) << " in f32 (never the n x n scores, " << human_bytes(double(a.score_bytes))
    << ")\n";
  s << "reach     ";
  if (!a.reach_computed) {
    s << "not computed (n too large for its n x n bitsets)\n";
    return s.str();
  }
  const char* what = a.causal ? "every earlier position" : "every position";
  if (a.reach.layers > 0) {
    s << what << " after " << a.reach.layers << (a.reach.layers == 1 ? " layer" : " layers");
  } else {
    s << "not " << what << " within " << a.reach.fraction.size() << " layers";
  }
  s << " (reached:";
  for (size_t i = 0; i < a.reach.fraction.size(); ++i) s << " L=" << i + 1 << " " << percent(a.reach.fraction[i]);
  s << ")" << (a.top_k > 0 ? "; on the top-k window, an upper bound" : "") << "\n";
  return s.str();
}

std::string format_table(const std::vector<PatternAnalysis>& rows, bool markdown) {
  const std::vector<std::string> head = {"pattern",  "causal",      "density", "vs dense causal", "blocks (full/diag/partial)",
                                         "FLOPs vs dense causal", "block FLOPs vs dense", "layout", "layers to full reach"};
  std::vector<std::vector<std::string>> cells;
  int max_layers = 3;
  for (const PatternAnalysis& a : rows) {
    if (!a.reach.fraction.empty() && a.reach.layers == 0) max_layers = int(a.reach.fraction.size());
  }
  bool any_topk = false;
  for (const PatternAnalysis& a : rows) {
    any_topk = any_topk || a.top_k > 0;
    cells.push_back({markdown ? "`" + a.description + "`" : a.description, a.causal ? "yes" : "no",
                     percent(a.density()), percent(a.density_vs_causal()),
                     std::to_string(a.listed_blocks) + " (" + std::to_string(a.full_blocks) + "/" +
                         std::to_string(a.diagonal_blocks) + "/" + std::to_string(a.partial_blocks) + ")",
                     percent(a.flops / a.dense_flops), percent(a.block_flops / a.dense_block_flops),
                     human_bytes(double(a.layout_bytes)), reach_cell(a, max_layers)});
  }
  std::ostringstream s;
  if (markdown) {
    auto line = [&](const std::vector<std::string>& r) {
      s << "|";
      for (const std::string& c : r) s << " " << c << " |";
      s << "\n";
    };
    line(head);
    s << "|";
    for (size_t i = 0; i < head.size(); ++i) s << (i == 0 ? "---|" : "---:|");
    s << "\n";
    for (const auto& r : cells) line(r);
  } else {
    std::vector<size_t> width(head.size());
    for (size_t i = 0; i < head.size(); ++i) {
      width[i] = head[i].size();
      for (const auto& r : cells) width[i] = std::max(width[i], r[i].size());
    }
    auto line = [&](const std::vector<std::string>& r) {
      std::string out;
      for (size_t i = 0; i < r.size(); ++i) {
        std::string c = r[i];
        c.resize(width[i], ' ');
        out += c + (i + 1 < r.size() ? "  " : "");
      }
      while (!out.empty() && out.back() == ' ') out.pop_back();
      s << out << "\n";
    };
    line(head);
    std::vector<std::string> rule;
    for (size_t w : width) rule.push_back(std::string(w, '-'));
    line(rule);
    for (const auto& r : cells) line(r);
  }
  if (any_topk) {
    s << (markdown ? "\n\\" : "")
      << "* top-k: reach computed on its window; the data-dependent selection can only shrink it.\n";
  }
  return s.str();
}

void cell_colour(Cell c, uint8_t rgb[3]) {
  static const uint8_t table[4][3] = {
      {0xff, 0xff, 0xff},  // empty
      {0xd4, 0xd4, 0xd4},  // masked: light grey
      {0x8e, 0x2c, 0x1c},  // partial: dark rust
      {0x1c, 0x2f, 0x5e},  // full: dark navy
  };
  for (int i = 0; i < 3; ++i) rgb[i] = table[int(c)][i];
}

std::vector<Cell> cell_map(const BlockLayout& L, int head) {
  const int64_t n = L.seq_len;
  SPARTA_CHECK(n <= 8192, "viz", "pictures hold n x n cells; n = ", n, " is above 8192");
  SPARTA_CHECK(head >= 0 && (head < L.n_layouts || L.n_layouts == 1), "viz", "head ", head, " is outside [0, ",
               L.n_layouts, ")");
  std::vector<Cell> m(size_t(n * n), Cell::empty);
  for_each_listed_pair(L, head, [&](uint8_t kind, int64_t q, int64_t k, bool ok) {
    const Cell c = !ok ? Cell::masked : kind == BlockLayout::kFull ? Cell::full : Cell::partial;
    Cell& x = m[size_t(q * n + k)];
    if (c > x) x = c;  // a pair listed by several segments shows its strongest kind
  });
  return m;
}

std::string to_ascii(const BlockLayout& L, int head) {
  const std::vector<Cell> m = cell_map(L, head);
  const int64_t n = L.seq_len;
  std::string s;
  if (n <= 128) {
    for (int64_t q = 0; q < n; ++q) {
      for (int64_t k = 0; k < n; ++k) {
        const Cell c = m[size_t(q * n + k)];
        s += c == Cell::empty ? '.' : c == Cell::masked ? '-' : '#';
      }
      s += '\n';
    }
    return s;
  }
  const int64_t b = L.block_q, nb = (n + b - 1) / b;
  for (int64_t i = 0; i < nb; ++i) {
    for (int64_t j = 0; j < nb; ++j) {
      bool all_full = true, any_allowed = false, any_listed = false;
      for (int64_t q = i * b; q < std::min(n, (i + 1) * b); ++q) {
        for (int64_t k = j * b; k < std::min(n, (j + 1) * b); ++k) {
          const Cell c = m[size_t(q * n + k)];
          all_full = all_full && c == Cell::full;
          any_allowed = any_allowed || c == Cell::full || c == Cell::partial;
          any_listed = any_listed || c != Cell::empty;
        }
      }
      s += all_full ? '#' : any_allowed ? '+' : any_listed ? '-' : '.';
    }
    s += '\n';
  }
  return s;
}

std::string to_svg(const BlockLayout& L, int head, const std::string& title, int64_t max_px) {
  const std::vector<Cell> m = cell_map(L, head);
  const int64_t n = L.seq_len, b = L.block_q;
  const int64_t px = n <= max_px ? n * std::max<int64_t>(1, max_px / n) : max_px;
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << px << "\" height=\"" << px << "\" viewBox=\"0 0 " << n
    << " " << n << "\" shape-rendering=\"crispEdges\">\n<title>";
  for (char c : title) {
    if (c == '&') s << "&amp;";
    else if (c == '<') s << "&lt;";
    else if (c == '>') s << "&gt;";
    else s << c;
  }
  s << "</title>\n<rect width=\"" << n << "\" height=\"" << n << "\" fill=\"#ffffff\"/>\n";
  const char* names[] = {"empty", "masked", "partial", "full"};
  for (Cell kind : {Cell::masked, Cell::partial, Cell::full}) {
    // Runs of equal cells along a row, merged with the same run in the rows below into one
    // rectangle, keep pictures of banded and block patterns small.
    std::map<std::pair<int64_t, int64_t>, int64_t> open;  // (x, width) -> first row
    std::string d;
    auto emit = [&](int64_t x, int64_t w, int64_t y0, int64_t y1) {
      d += "M" + std::to_string(x) + " " + std::to_string(y0) + "h" + std::to_string(w) + "v" + std::to_string(y1 - y0) +
           "h-" + std::to_string(w) + "z";
    };
    for (int64_t y = 0; y <= n; ++y) {
      std::map<std::pair<int64_t, int64_t>, int64_t> still;
      for (int64_t x = 0; y < n && x < n;) {
        if (m[size_t(y * n + x)] != kind) {
          ++x;
          continue;
        }
        int64_t e = x;
        while (e < n && m[size_t(y * n + e)] == kind) ++e;
        auto it = open.find({x, e - x});
        still[{x, e - x}] = it == open.end() ? y : it->second;
        x = e;
      }
      for (const auto& [run, y0] : open)
        if (!still.count(run)) emit(run.first, run.second, y0, y);
      open.swap(still);
    }
    if (d.empty()) continue;
    uint8_t rgb[3];
    cell_colour(kind, rgb);
    char fill[8];
    std::snprintf(fill, sizeof fill, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
    s << "<path class=\"" << names[int(kind)] << "\" fill=\"" << fill << "\" d=\"" << d << "\"/>\n";
  }
  if (b * px / n >= 4 && b < n) {  // block grid, when its tiles are at least 4 px
    std::string d;
    for (int64_t t = b; t < n; t += b) {
      const std::string ts = std::to_string(t), ns = std::to_string(n);
      d += "M" + ts + " 0V" + ns + "M0 " + ts + "H" + ns;
    }
    s << "<path class=\"grid\" fill=\"none\" stroke=\"#5a6e96\" stroke-opacity=\"0.35\" stroke-width=\"1\" "
         "vector-effect=\"non-scaling-stroke\" d=\""
      << d << "\"/>\n";
  }
  s << "</svg>\n";
  return s.str();
}

Raster to_raster(const BlockLayout& L, int head, int64_t max_px) {
  const std::vector<Cell> m = cell_map(L, head);
  const int64_t n = L.seq_len, b = L.block_q;
  // Either s x s pixels a cell (n <= max_px), or c x c cells a pixel, coloured by their mean.
  const int64_t s = n <= max_px ? std::max<int64_t>(1, max_px / n) : 1;
  const int64_t c = n <= max_px ? 1 : (n + max_px - 1) / max_px;
  Raster r;
  r.width = r.height = s > 1 || c == 1 ? n * s : (n + c - 1) / c;
  r.rgb.assign(size_t(r.width * r.height * 3), 0);
  uint8_t colours[4][3];
  for (int i = 0; i < 4; ++i) cell_colour(Cell(i), colours[i]);
  // Block grid lines where tiles are at least 4 px: the pixel holding the first cell of a tile.
  const bool grid = b < n && b * s >= 4 * c;
  std::vector<uint8_t> line(size_t(r.width), 0);
  for (int64_t p = 0; grid && p < r.width; ++p) {
    const int64_t first = (p * c + s - 1) / s, last = std::min(n, ((p + 1) * c + s - 1) / s);  // cells starting here
    const int64_t t = (first + b - 1) / b * b;
    line[size_t(p)] = t > 0 && t < last && (s == 1 || p % s == 0);
  }
  static const double tint[3] = {0x5a, 0x6e, 0x96};
  for (int64_t y = 0; y < r.height; ++y) {
    for (int64_t x = 0; x < r.width; ++x) {
      double sum[3] = {0, 0, 0};
      int64_t cells = 0;
      for (int64_t q = y * c / s; q < std::min(n, (y + 1) * c / s) || q == y * c / s; ++q) {
        for (int64_t k = x * c / s; k < std::min(n, (x + 1) * c / s) || k == x * c / s; ++k) {
          const uint8_t* col = colours[int(m[size_t(q * n + k)])];
          for (int i = 0; i < 3; ++i) sum[i] += col[i];
          ++cells;
        }
      }
      uint8_t* out = r.rgb.data() + size_t((y * r.width + x) * 3);
      const bool on_line = line[size_t(x)] || line[size_t(y)];
      for (int i = 0; i < 3; ++i) {
        double v = sum[i] / double(cells);
        if (on_line) v = 0.7 * v + 0.3 * tint[i];
        out[i] = uint8_t(std::lround(v));
      }
    }
  }
  return r;
}

}  // namespace sparta::nn

#include "nn/attention/patterns.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/random.h"

namespace sparta::nn {
namespace {

using attn::HeadSpec;
using attn::TermKind;

HeadSpec::Term term(TermKind kind) {
  HeadSpec::Term t;
  t.mask.kind = kind;
  return t;
}

HeadSpec::Term band(int64_t lo, int64_t hi, int64_t dilation = 1) {
  HeadSpec::Term t = term(TermKind::band);
  t.mask.lo = lo;
  t.mask.hi = hi;
  t.mask.dilation = dilation;
  return t;
}

std::string flag(bool causal) { return causal ? "causal" : "bidirectional"; }

void check_positive(const char* pattern, const char* what, int64_t v) {
  SPARTA_CHECK(v >= 1, pattern, what, " must be positive, got ", v);
}
void check_fits(const char* pattern, const char* what, int64_t v, int64_t n) {
  SPARTA_CHECK(v <= n, pattern, what, " ", v, " is larger than the sequence length ", n);
}

class DenseCausal : public Pattern {
 public:
  std::string name() const override { return "dense"; }
  std::string describe() const override { return "dense(causal)"; }
  HeadSpec head_spec(int64_t, int64_t, int, int) const override { return HeadSpec{{term(TermKind::all)}}; }
};

class Local : public Pattern {
 public:
  Local(int64_t w, bool causal) : w_(w), causal_(causal) { check_positive("local", "window", w); }
  std::string name() const override { return "local"; }
  bool retains(int64_t k, int64_t t) const override { return !causal_ || k > t - w_; }
  std::string describe() const override { return "local(w=" + std::to_string(w_) + ", " + flag(causal_) + ")"; }
  bool causal() const override { return causal_; }
  void validate(int64_t n, int64_t) const override { check_fits("local", "window", w_, n); }
  HeadSpec head_spec(int64_t, int64_t, int, int) const override {
    return HeadSpec{{causal_ ? band(0, w_ - 1) : band(-(w_ - 1), w_ - 1)}};
  }

 private:
  int64_t w_;
  bool causal_;
};

class Strided : public Pattern {
 public:
  explicit Strided(int64_t l) : l_(l) { check_positive("strided", "stride", l); }
  std::string name() const override { return "strided"; }
  std::string describe() const override { return "strided(l=" + std::to_string(l_) + ", causal)"; }
  void validate(int64_t n, int64_t) const override { check_fits("strided", "stride", l_, n); }
  HeadSpec head_spec(int64_t n, int64_t, int, int) const override {
    return HeadSpec{{band(0, l_), band(0, n, std::min(l_, n))}};
  }
  std::shared_ptr<const attn::BlockLayout> layout(int64_t n, int64_t block, int) const override {
    SPARTA_CHECK(block >= 1, "strided", "block size must be positive, got ", block);
    const int64_t b = std::min(block, n);
    auto near = attn::BlockLayout::build(n, b, b, true, {HeadSpec{{band(0, l_)}}}, "strided");
    if (2 * l_ >= n) return near;  // no pair is 2l or more apart
    auto far = attn::BlockLayout::build_residue_classes(n, b, b, l_, true, HeadSpec{{band(2 * l_, n, l_)}}, "strided");
    auto chained = std::make_shared<attn::BlockLayout>(*near);
    chained->next = far;
    return chained;
  }

 private:
  int64_t l_;
};

class Fixed : public Pattern {
 public:
  Fixed(int64_t l, int64_t c) : l_(l), c_(c) {
    check_positive("fixed", "block length", l);
    check_positive("fixed", "summary width", c);
    SPARTA_CHECK(c <= l, "fixed", "summary width ", c, " is larger than the block length ", l);
  }
  std::string name() const override { return "fixed"; }
  bool retains(int64_t k, int64_t t) const override { return k >= t / l_ * l_ || k % l_ >= l_ - c_; }
  void validate(int64_t n, int64_t) const override { check_fits("fixed", "block length", l_, n); }
  std::shared_ptr<const attn::BlockLayout> layout(int64_t n, int64_t block, int) const override {
    SPARTA_CHECK(block >= 1, "fixed", "block size must be positive, got ", block);
    const int64_t b = std::min(block, n);
    // A block longer than the sequence: one block, causal inside, no summary before it.
    const int64_t l = std::min(l_, n), c = std::min(c_, l);
    HeadSpec::Term same = term(TermKind::same_block), before = term(TermKind::summary_before);
    same.mask.period = l;
    before.mask.period = l;
    before.mask.width = c;
    auto near = attn::BlockLayout::build(n, b, b, true, {HeadSpec{{same}}}, "fixed");
    std::vector<int64_t> cells;  // summary cells of every block but the last (no query follows it)
    for (int64_t s = 0; s + l < n; s += l)
      for (int64_t k = s + l - c; k < s + l; ++k) cells.push_back(k);
    if (cells.empty()) return near;
    auto far = attn::BlockLayout::build(n, b, std::min<int64_t>(b, int64_t(cells.size())), true, {HeadSpec{{before}}},
                                        "fixed", cells);
    auto chained = std::make_shared<attn::BlockLayout>(*near);
    chained->next = far;
    return chained;
  }
  std::string describe() const override {
    return "fixed(l=" + std::to_string(l_) + ", c=" + std::to_string(c_) + ", causal)";
  }
  HeadSpec head_spec(int64_t n, int64_t, int, int) const override {
    const int64_t l = std::min(l_, n), c = std::min(c_, l);
    HeadSpec::Term same = term(TermKind::same_block), summary = term(TermKind::summary);
    same.mask.period = l;
    summary.mask.period = l;
    summary.mask.width = c;
    return HeadSpec{{same, summary}};
  }

 private:
  int64_t l_, c_;
};

class BigBird : public Pattern {
 public:
  BigBird(int64_t g, int64_t w, int64_t r, uint64_t seed, bool causal) : g_(g), w_(w), r_(r), seed_(seed), causal_(causal) {
    SPARTA_CHECK(g >= 0 && w >= 0 && r >= 0, "bigbird", "global, window and random block counts must be >= 0, got ",
                 g, ", ", w, ", ", r);
    SPARTA_CHECK(g + w + r > 0, "bigbird", "needs at least one global, window or random block");
  }
  std::string name() const override { return "bigbird"; }
  std::string describe() const override {
    return "bigbird(g=" + std::to_string(g_) + ", w=" + std::to_string(w_) + ", r=" + std::to_string(r_) +
           ", seed=" + std::to_string(seed_) + ", " + flag(causal_) + ")";
  }
  bool causal() const override { return causal_; }
  bool shared_by_heads() const override { return r_ == 0; }
  void validate(int64_t n, int64_t block) const override {
    check_fits("bigbird", "global blocks", g_, (n + block - 1) / block);
  }
  HeadSpec head_spec(int64_t n, int64_t block, int head, int) const override {
    const int64_t nb = (n + block - 1) / block;
    HeadSpec::Term t = term(TermKind::all);
    for (int64_t i = 0; i < nb; ++i) {
      const int64_t kmax = causal_ ? i : nb - 1;  // key blocks a query block may see
      if (i < g_) {
        for (int64_t j = 0; j <= kmax; ++j) t.blocks.push_back({i, j});
        continue;
      }
      for (int64_t j = 0; j < std::min(g_, kmax + 1); ++j) t.blocks.push_back({i, j});
      for (int64_t j = std::max<int64_t>(0, i - w_); j <= std::min(kmax, i + w_); ++j) t.blocks.push_back({i, j});
      // Random blocks from Philox keyed by (seed, head, query block): every rank and every
      // recomputation draws the same ones without communication.
      for (int64_t d = 0; d < r_ && kmax >= 0; ++d) {
        Philox4 x = philox4x32(seed_, uint64_t(i) * 1024 + uint64_t(d), uint64_t(head));
        t.blocks.push_back({i, int64_t(x.v[0] % uint64_t(kmax + 1))});
      }
    }
    std::sort(t.blocks.begin(), t.blocks.end());
    t.blocks.erase(std::unique(t.blocks.begin(), t.blocks.end()), t.blocks.end());
    return HeadSpec{{t}};
  }

 private:
  int64_t g_, w_, r_;
  uint64_t seed_;
  bool causal_;
};

class Longformer : public Pattern {
 public:
  Longformer(int64_t w, int64_t d, std::vector<int64_t> g, bool causal) : w_(w), d_(d), g_(std::move(g)), causal_(causal) {
    check_positive("longformer", "window", w);
    check_positive("longformer", "dilation", d);
  }
  std::string name() const override { return "longformer"; }
  std::string describe() const override {
    return "longformer(w=" + std::to_string(w_) + ", d=" + std::to_string(d_) + ", " + std::to_string(g_.size()) +
           " global, " + flag(causal_) + ")";
  }
  bool causal() const override { return causal_; }
  void validate(int64_t n, int64_t) const override {
    check_fits("longformer", "window", w_, n);
    for (int64_t p : g_) {
      SPARTA_CHECK(p >= 0 && p < n, "longformer", "global token position ", p, " is outside [0, ", n, ")");
    }
  }
  HeadSpec head_spec(int64_t n, int64_t, int, int) const override {
    HeadSpec spec{{causal_ ? band(0, (w_ - 1) * d_, d_) : band(-(w_ / 2) * d_, (w_ / 2) * d_, d_)}};
    HeadSpec::Term t = term(TermKind::global);
    for (int64_t p : g_) {
      SPARTA_CHECK(p >= 0, "longformer", "global token position ", p, " is negative");
      if (p < n) t.tokens.push_back(p);  // positions past a shorter sequence do not exist yet
    }
    if (!t.tokens.empty()) spec.terms.push_back(t);
    return spec;
  }

 private:
  int64_t w_, d_;
  std::vector<int64_t> g_;
  bool causal_;
};

class Explicit : public Pattern {
 public:
  // grid: the bitmap's side in blocks (0 for a list of pairs), which must equal the layout's.
  Explicit(std::vector<std::pair<int64_t, int64_t>> blocks, bool causal, std::string source, int64_t grid = 0)
      : blocks_(std::move(blocks)), causal_(causal), source_(std::move(source)), grid_(grid) {
    SPARTA_CHECK(!blocks_.empty(), "explicit", "no blocks listed", source_.empty() ? "" : " in " + source_);
  }
  std::string name() const override { return "explicit"; }
  std::string describe() const override {
    return "explicit(" + std::to_string(blocks_.size()) + " blocks" + (source_.empty() ? "" : " from " + source_) +
           ", " + flag(causal_) + ")";
  }
  bool causal() const override { return causal_; }
  HeadSpec head_spec(int64_t n, int64_t block, int, int) const override {
    const int64_t nb = (n + block - 1) / block;
    SPARTA_CHECK(grid_ == 0 || grid_ >= nb, "explicit", "bitmap ", source_, " is ", grid_, " x ", grid_,
                 " blocks but ", n, " positions in blocks of ", block, " make a ", nb, " x ", nb, " grid");
    HeadSpec::Term t = term(TermKind::all);
    for (auto [i, j] : blocks_) {
      if (grid_ > 0 && (i >= nb || j >= nb)) continue;  // a shorter sequence uses the bitmap's top-left corner
      SPARTA_CHECK(i >= 0 && i < nb && j >= 0 && j < nb, "explicit", "block (", i, ", ", j, ")",
                   source_.empty() ? "" : " of " + source_, " is outside the ", nb, " x ", nb, " grid of ", n,
                   " positions in blocks of ", block);
      t.blocks.push_back({i, j});
    }
    return HeadSpec{{t}};
  }
  const std::vector<std::pair<int64_t, int64_t>>& blocks() const { return blocks_; }
  void validate(int64_t n, int64_t block) const override {
    const int64_t nb = (n + block - 1) / block;
    SPARTA_CHECK(grid_ == 0 || grid_ == nb, "explicit", "bitmap ", source_, " is ", grid_, " x ", grid_,
                 " blocks but ", n, " positions in blocks of ", block, " make a ", nb, " x ", nb, " grid");
    head_spec(n, block, 0, 1);  // pairs outside the grid
  }

 private:
  std::vector<std::pair<int64_t, int64_t>> blocks_;
  bool causal_;
  std::string source_;
  int64_t grid_;
};

class TopK : public Pattern {
 public:
  TopK(int64_t k, int64_t w) : k_(k), w_(w) {
    check_positive("topk", "k", k);
    check_positive("topk", "attention_window", w);
    SPARTA_CHECK(k <= w, "topk", "k ", k, " is larger than the attention window ", w);
  }
  std::string name() const override { return "topk"; }
  bool retains(int64_t k, int64_t t) const override { return k > t - w_; }
  std::string describe() const override {
    return "topk(k=" + std::to_string(k_) + ", window=" + std::to_string(w_) + ", causal)";
  }
  int64_t top_k() const override { return k_; }
  void validate(int64_t n, int64_t) const override { check_fits("topk", "attention_window", w_, n); }
  HeadSpec head_spec(int64_t, int64_t, int, int) const override {
    return HeadSpec{{band(0, w_ - 1)}};
  }

 private:
  int64_t k_, w_;
};

class Union : public Pattern {
 public:
  explicit Union(std::vector<PatternPtr> parts) : parts_(std::move(parts)) {
    SPARTA_CHECK(!parts_.empty(), "union", "no patterns to combine");
    for (const PatternPtr& p : parts_) {
      SPARTA_CHECK(p->causal() == parts_[0]->causal(), "union", p->describe(), " and ", parts_[0]->describe(),
                   " disagree on causality");
      SPARTA_CHECK(p->top_k() == 0, "union", "top-k cannot be combined with other patterns");
    }
  }
  std::string name() const override { return "union"; }
  void validate(int64_t n, int64_t block) const override {
    for (const PatternPtr& p : parts_) p->validate(n, block);
  }
  bool retains(int64_t k, int64_t t) const override {
    return std::any_of(parts_.begin(), parts_.end(), [&](const PatternPtr& p) { return p->retains(k, t); });
  }
  std::string describe() const override {
    std::string s;
    for (const PatternPtr& p : parts_) s += (s.empty() ? "" : " + ") + p->describe();
    return s;
  }
  bool causal() const override { return parts_[0]->causal(); }
  bool shared_by_heads() const override {
    return std::all_of(parts_.begin(), parts_.end(), [](const PatternPtr& p) { return p->shared_by_heads(); });
  }
  HeadSpec head_spec(int64_t n, int64_t block, int head, int n_heads) const override {
    HeadSpec spec;
    for (const PatternPtr& p : parts_) {
      HeadSpec s = p->head_spec(n, block, head, n_heads);
      spec.terms.insert(spec.terms.end(), s.terms.begin(), s.terms.end());
    }
    return spec;
  }

 private:
  std::vector<PatternPtr> parts_;
};

class PerHead : public Pattern {
 public:
  explicit PerHead(std::vector<PatternPtr> ps) : ps_(std::move(ps)) {
    SPARTA_CHECK(!ps_.empty(), "per_head", "no patterns");
    for (const PatternPtr& p : ps_) {
      SPARTA_CHECK(p->causal() == ps_[0]->causal(), "per_head", p->describe(), " and ", ps_[0]->describe(),
                   " disagree on causality");
      SPARTA_CHECK(p->top_k() == 0, "per_head", "top-k cannot be mixed with other patterns");
    }
  }
  std::string name() const override { return "per_head"; }
  void validate(int64_t n, int64_t block) const override {
    for (const PatternPtr& p : ps_) p->validate(n, block);
  }
  bool retains(int64_t k, int64_t t) const override {
    return std::any_of(ps_.begin(), ps_.end(), [&](const PatternPtr& p) { return p->retains(k, t); });
  }
  std::string describe() const override {
    std::string s;
    for (const PatternPtr& p : ps_) s += (s.empty() ? "" : " | ") + p->describe();
    return s;
  }
  bool causal() const override { return ps_[0]->causal(); }
  bool shared_by_heads() const override { return ps_.size() == 1 && ps_[0]->shared_by_heads(); }
  HeadSpec head_spec(int64_t n, int64_t block, int head, int n_heads) const override {
    return ps_[size_t(head) % ps_.size()]->head_spec(n, block, head, n_heads);
  }

 private:
  std::vector<PatternPtr> ps_;
};

int64_t parse_int(const std::string& field, const std::string& whole) {
  try {
    size_t used = 0;
    long long v = std::stoll(field, &used);
    if (used == field.size()) return v;
  } catch (const std::exception&) {
  }
  SPARTA_FAIL("pattern", "'", field, "' in '", whole, "' is not an integer");
}

std::vector<std::string> split_on(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

}  // namespace

std::shared_ptr<const attn::BlockLayout> Pattern::layout(int64_t n, int64_t block, int n_heads) const {
  SPARTA_CHECK(block >= 1, name(), "block size must be positive, got ", block);
  const int64_t b = std::min(block, n);
  std::vector<attn::HeadSpec> specs;
  const int distinct = shared_by_heads() ? 1 : n_heads;
  for (int h = 0; h < distinct; ++h) specs.push_back(head_spec(n, b, h, n_heads));
  auto L = attn::BlockLayout::build(n, b, b, causal(), specs, name());
  if (top_k() == 0) return L;
  auto copy = std::make_shared<attn::BlockLayout>(*L);
  copy->top_k = top_k();
  return copy;
}

PatternPtr dense_causal() { return std::make_shared<DenseCausal>(); }
PatternPtr local(int64_t w, bool causal) { return std::make_shared<Local>(w, causal); }
PatternPtr strided(int64_t l) { return std::make_shared<Strided>(l); }
PatternPtr fixed(int64_t l, int64_t c) { return std::make_shared<Fixed>(l, c); }
PatternPtr bigbird(int64_t g, int64_t w, int64_t r, uint64_t seed, bool causal) {
  return std::make_shared<BigBird>(g, w, r, seed, causal);
}
PatternPtr longformer(int64_t w, int64_t d, std::vector<int64_t> g, bool causal) {
  return std::make_shared<Longformer>(w, d, std::move(g), causal);
}
PatternPtr explicit_blocks(std::vector<std::pair<int64_t, int64_t>> blocks, bool causal) {
  return std::make_shared<Explicit>(std::move(blocks), causal, "");
}
PatternPtr top_k(int64_t k, int64_t w) { return std::make_shared<TopK>(k, w); }
PatternPtr union_of(std::vector<PatternPtr> parts) { return std::make_shared<Union>(std::move(parts)); }
PatternPtr per_head(std::vector<PatternPtr> ps) { return std::make_shared<PerHead>(std::move(ps)); }

PatternPtr bitmap_file(const std::string& path, bool causal) {
  std::ifstream in(path);
  SPARTA_CHECK(in.good(), "bitmap", "cannot open '", path, "'");
  std::vector<std::pair<int64_t, int64_t>> blocks;
  std::string line;
  int64_t row = 0, width = -1, line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    // A row may be drawn with '#'; a line starting with '#' that holds anything else is a comment.
    if (line.empty() || (line[0] == '#' && line.find_first_not_of("#.01\r") != std::string::npos)) continue;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty()) continue;
    if (width < 0) width = int64_t(line.size());
    SPARTA_CHECK(int64_t(line.size()) == width, "bitmap", path, ":", line_no, ": row has ", line.size(),
                 " columns, the first row has ", width);
    for (int64_t j = 0; j < width; ++j) {
      char c = line[size_t(j)];
      SPARTA_CHECK(c == '0' || c == '1' || c == '.' || c == '#', "bitmap", path, ":", line_no, ": unexpected '", c,
                   "' (use 1/# for a block, 0/. for none)");
      if (c == '1' || c == '#') blocks.push_back({row, j});
    }
    ++row;
  }
  SPARTA_CHECK(row > 0, "bitmap", "'", path, "' holds no rows");
  SPARTA_CHECK(row == width, "bitmap", "'", path, "' is ", row, " x ", width, "; a block bitmap must be square");
  return std::make_shared<Explicit>(std::move(blocks), causal, path, row);
}

PatternPtr parse_pattern(const std::string& text) {
  if (text.find('|') != std::string::npos) {
    std::vector<PatternPtr> ps;
    for (const std::string& part : split_on(text, '|')) ps.push_back(parse_pattern(part));
    return per_head(std::move(ps));
  }
  if (text.find('+') != std::string::npos) {
    std::vector<PatternPtr> ps;
    for (const std::string& part : split_on(text, '+')) ps.push_back(parse_pattern(part));
    return union_of(std::move(ps));
  }
  std::vector<std::string> f = split_on(text, ':');
  const std::string kind = f.empty() ? "" : f[0];
  auto need = [&](size_t lo, size_t hi, const char* usage) {
    SPARTA_CHECK(f.size() >= lo && f.size() <= hi, "pattern", "'", text, "': expected ", usage);
  };
  auto num = [&](size_t i) { return parse_int(f[i], text); };
  if (kind == "dense") {
    need(1, 1, "dense");
    return dense_causal();
  }
  if (kind == "local") {
    need(2, 3, "local:WINDOW[:bidirectional]");
    return local(num(1), f.size() == 2 || f[2] != "bidirectional");
  }
  if (kind == "strided") {
    need(2, 2, "strided:STRIDE");
    return strided(num(1));
  }
  if (kind == "fixed") {
    need(3, 3, "fixed:BLOCK_LEN:SUMMARY");
    return fixed(num(1), num(2));
  }
  if (kind == "bigbird") {
    need(5, 6, "bigbird:GLOBAL:WINDOW:RANDOM:SEED[:causal]");
    return bigbird(num(1), num(2), num(3), uint64_t(num(4)), f.size() == 6 && f[5] == "causal");
  }
  if (kind == "longformer") {
    need(3, 5, "longformer:WINDOW:DILATION[:G1,G2,...][:causal]");
    std::vector<int64_t> g;
    if (f.size() >= 4 && !f[3].empty() && f[3] != "causal") {
      for (const std::string& p : split_on(f[3], ',')) g.push_back(parse_int(p, text));
    }
    return longformer(num(1), num(2), g, f.back() == "causal");
  }
  if (kind == "topk") {
    need(3, 3, "topk:K:WINDOW");
    return top_k(num(1), num(2));
  }
  if (kind == "bitmap") {
    need(2, 2, "bitmap:PATH");
    return bitmap_file(f[1]);
  }
  SPARTA_FAIL("pattern", "unknown pattern '", text,
              "' (known: dense, local, strided, fixed, bigbird, longformer, topk, bitmap; '+' unions, '|' per head)");
}

}  // namespace sparta::nn

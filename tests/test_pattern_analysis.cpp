// Pattern analysis: pair and block counts against closed forms and counts written here
// independently of the layouts; receptive fields against what is true of each pattern (Child et
// al.'s two-layer claim for strided and fixed, L (w - 1) positions back for local) and against a
// brute-force path search; and the pictures (ASCII, SVG, and the PNG the `sparta` binary writes,
// read back with libpng) cell for cell.
#include <dlfcn.h>
#include <png.h>
#include <unistd.h>

#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "nn/attention/analysis.h"
#include "tests/support.h"

using namespace sparta;
using namespace sparta::nn;
using namespace sparta::test;

namespace {

PatternAnalysis run(const PatternPtr& p, int64_t n, int64_t block, int max_layers = 3, int heads = 1) {
  AnalysisOptions o;
  o.n = n;
  o.block = block;
  o.heads = heads;
  o.head_dim = 64;
  o.max_layers = max_layers;
  return analyze(*p, o);
}

// Pairs a causal local window of w allows: min(w, q + 1) per query.
int64_t local_causal_pairs(int64_t n, int64_t w) {
  return n >= w ? w * (w + 1) / 2 + (n - w) * w : n * (n + 1) / 2;
}
// |q - k| < w: the n diagonal pairs plus (n - d) pairs at each distance 1 <= d < w, both sides.
int64_t local_bidirectional_pairs(int64_t n, int64_t w) {
  const int64_t m = std::min(w, n);
  return n * (2 * m - 1) - m * (m - 1);
}
// Strided: n - d pairs at each distance d <= l, or d a multiple of l.
int64_t strided_pairs(int64_t n, int64_t l) {
  int64_t total = 0;
  for (int64_t d = 0; d < n; ++d) total += (d <= l || d % l == 0) ? n - d : 0;
  return total;
}
// Fixed: k <= q in the same block of l, plus c summary cells of each earlier block.
int64_t fixed_pairs(int64_t n, int64_t l, int64_t c) {
  int64_t total = 0;
  for (int64_t s = 0; s < n; s += l) {
    const int64_t len = std::min(l, n - s), earlier = s / l;
    total += len * (len + 1) / 2 + len * earlier * c;
  }
  return total;
}

std::string sparta_binary() {
  if (const char* env = std::getenv("SPARTA_BIN")) return env;
  char buf[4096];
  const ssize_t len = readlink("/proc/self/exe", buf, sizeof buf - 1);
  BOOST_REQUIRE(len > 0);
  std::string exe(buf, size_t(len));
  std::string build = exe.substr(0, exe.rfind('/'));  // .../tests
  build = build.substr(0, build.rfind('/'));
  const std::string bin = build + "/apps/sparta";
  BOOST_REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0,
                        bin << " is missing: build the sparta target (or set SPARTA_BIN) before this test");
  return bin;
}

struct Result {
  int status = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string temp_path(const std::string& name) {
  return "/tmp/sparta_test_viz_" + std::to_string(getpid()) + "_" + name;
}

Result run_sparta(const std::string& args) {
  const std::string out = temp_path("stdout"), err = temp_path("stderr");
  const int rc = std::system((sparta_binary() + " " + args + " >" + out + " 2>" + err).c_str());
  Result r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  std::remove(out.c_str());
  std::remove(err.c_str());
  return r;
}

// libpng is loaded at run time: the test targets link only sparta_nn and Boost.
struct LibPng {
  void* lib = dlopen("libpng16.so.16", RTLD_NOW);
  template <typename F>
  F get(const char* name) {
    BOOST_REQUIRE_MESSAGE(lib != nullptr, "cannot load libpng16.so.16");
    void* p = dlsym(lib, name);
    BOOST_REQUIRE_MESSAGE(p != nullptr, "libpng lacks " << name);
    return reinterpret_cast<F>(p);
  }
};

struct Image {
  int64_t width = 0, height = 0;
  int colour_type = -1, bit_depth = -1;
  std::vector<uint8_t> rgb;
};

struct PngApi {
  decltype(&png_create_read_struct) create;
  decltype(&png_create_info_struct) create_info;
  decltype(&png_set_longjmp_fn) set_longjmp;
  decltype(&png_init_io) init_io;
  decltype(&png_read_png) read;
  decltype(&png_get_image_width) width;
  decltype(&png_get_image_height) height;
  decltype(&png_get_color_type) colour_type;
  decltype(&png_get_bit_depth) bit_depth;
  decltype(&png_get_rows) rows;
  decltype(&png_destroy_read_struct) destroy;
};

// libpng reports errors by longjmp into this frame, which holds no objects with destructors.
bool decode(const PngApi& api, FILE* f, Image* img) {
  png_structp png = api.create(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = api.create_info(png);
  if (setjmp(*api.set_longjmp(png, longjmp, sizeof(jmp_buf)))) {
    api.destroy(&png, &info, nullptr);
    return false;
  }
  api.init_io(png, f);
  api.read(png, info, PNG_TRANSFORM_IDENTITY, nullptr);
  img->width = api.width(png, info);
  img->height = api.height(png, info);
  img->colour_type = api.colour_type(png, info);
  img->bit_depth = api.bit_depth(png, info);
  if (img->colour_type == PNG_COLOR_TYPE_RGB && img->bit_depth == 8) {
    png_bytepp rows = api.rows(png, info);
    img->rgb.resize(size_t(img->width * img->height * 3));
    for (int64_t y = 0; y < img->height; ++y)
      std::copy(rows[y], rows[y] + img->width * 3, img->rgb.begin() + y * img->width * 3);
  }
  api.destroy(&png, &info, nullptr);
  return true;
}

Image read_png(const std::string& path) {
  LibPng lib;
  PngApi api{lib.get<decltype(&png_create_read_struct)>("png_create_read_struct"),
             lib.get<decltype(&png_create_info_struct)>("png_create_info_struct"),
             lib.get<decltype(&png_set_longjmp_fn)>("png_set_longjmp_fn"),
             lib.get<decltype(&png_init_io)>("png_init_io"),
             lib.get<decltype(&png_read_png)>("png_read_png"),
             lib.get<decltype(&png_get_image_width)>("png_get_image_width"),
             lib.get<decltype(&png_get_image_height)>("png_get_image_height"),
             lib.get<decltype(&png_get_color_type)>("png_get_color_type"),
             lib.get<decltype(&png_get_bit_depth)>("png_get_bit_depth"),
             lib.get<decltype(&png_get_rows)>("png_get_rows"),
             lib.get<decltype(&png_destroy_read_struct)>("png_destroy_read_struct")};
  FILE* f = std::fopen(path.c_str(), "rb");
  BOOST_REQUIRE_MESSAGE(f != nullptr, "cannot open " << path);
  Image img;
  const bool ok = decode(api, f, &img);
  std::fclose(f);
  BOOST_REQUIRE_MESSAGE(ok, "libpng cannot decode " << path);
  return img;
}

// The cells an SVG's paths cover, by class, from their "Mx yhWvHh-Wz" rectangles; each cell
// must be covered once. (Parsed by hand: std::regex recurses per character and overflows the
// stack on long paths.)
std::vector<Cell> cells_from_svg(const std::string& svg, int64_t n) {
  std::vector<Cell> m(size_t(n * n), Cell::empty);
  const std::pair<const char*, Cell> kinds[] = {{"masked", Cell::masked}, {"partial", Cell::partial}, {"full", Cell::full}};
  for (auto [name, cell] : kinds) {
    const std::string open = std::string("<path class=\"") + name + "\" fill=\"#";
    const size_t at = svg.find(open);
    if (at == std::string::npos) continue;
    BOOST_CHECK_EQUAL(svg.find(open, at + 1), std::string::npos);  // one path per kind
    const size_t d0 = svg.find("d=\"", at) + 3, d1 = svg.find('"', d0);
    std::istringstream d(svg.substr(d0, d1 - d0));
    char M, h, v, h2, minus, z;
    int64_t x, y, w, hh, w2;
    while (d >> M >> x >> y >> h >> w >> v >> hh >> h2 >> minus >> w2 >> z) {
      BOOST_REQUIRE(M == 'M' && h == 'h' && v == 'v' && h2 == 'h' && minus == '-' && z == 'z' && w2 == w);
      BOOST_REQUIRE(x >= 0 && y >= 0 && w >= 1 && hh >= 1 && x + w <= n && y + hh <= n);
      for (int64_t q = y; q < y + hh; ++q)
        for (int64_t k = x; k < x + w; ++k) {
          BOOST_REQUIRE_MESSAGE(m[size_t(q * n + k)] == Cell::empty, "cell (" << q << ", " << k << ") drawn twice");
          m[size_t(q * n + k)] = cell;
        }
    }
    BOOST_CHECK(d.eof());  // the path holds nothing but rectangles
  }
  return m;
}

}  // namespace

BOOST_AUTO_TEST_CASE(dense_causal_density_is_exact) {
  for (int64_t n : {1, 7, 64, 100, 1024}) {
    for (int64_t b : {1, 8, 64}) {
      if (b > n || (b == 1 && n > 100)) continue;
      PatternAnalysis a = run(dense_causal(), n, b);
      BOOST_CHECK_EQUAL(a.allowed_pairs, n * (n + 1) / 2);
      BOOST_CHECK_EQUAL(a.density(), double(n * (n + 1) / 2) / double(n * n));
      BOOST_CHECK_EQUAL(a.density_vs_causal(), 1.0);
      const int64_t nb = (n + b - 1) / b;
      BOOST_CHECK_EQUAL(a.listed_blocks, nb * (nb + 1) / 2);
      BOOST_CHECK_EQUAL(a.diagonal_blocks, b == 1 ? 0 : nb);  // a 1 x 1 diagonal block is full
      BOOST_CHECK_EQUAL(a.full_blocks + a.diagonal_blocks + a.partial_blocks, a.listed_blocks);
      BOOST_CHECK_EQUAL(a.block_pairs, a.dense_block_pairs);
      BOOST_CHECK_EQUAL(a.flops, 4.0 * 64 * double(n * (n + 1) / 2));
      BOOST_CHECK_EQUAL(a.reach.layers, 1);
    }
  }
  // Heads multiply every count; memory is per head.
  PatternAnalysis a = run(dense_causal(), 100, 10, 3, 4);
  BOOST_CHECK_EQUAL(a.allowed_pairs, 4 * 5050);
  BOOST_CHECK_EQUAL(a.listed_blocks, 4 * 55);
  BOOST_CHECK_EQUAL(a.kernel_bytes, 4 * 100 * 65 * 4);
  BOOST_CHECK_EQUAL(a.score_bytes, 4 * 100 * 100 * 4);
}

BOOST_AUTO_TEST_CASE(local_density_matches_its_closed_form) {
  for (int64_t n : {50, 64, 257, 1024}) {
    for (int64_t w : {1, 3, 16, 40}) {
      for (int64_t b : {8, 16}) {
        PatternAnalysis c = run(local(w), n, b);
        BOOST_CHECK_EQUAL(c.allowed_pairs, local_causal_pairs(n, w));
        BOOST_CHECK_EQUAL(c.density(), double(local_causal_pairs(n, w)) / double(n * n));
        BOOST_CHECK_EQUAL(c.kept_pairs, c.allowed_pairs);
        BOOST_CHECK_EQUAL(c.flops, 4.0 * 64 * double(local_causal_pairs(n, w)));
        PatternAnalysis bi = run(local(w, false), n, b);
        BOOST_CHECK_EQUAL(bi.allowed_pairs, local_bidirectional_pairs(n, w));
      }
    }
  }
  // A window of one block, n a multiple of b: the diagonal block and the one before it per row.
  PatternAnalysis a = run(local(64), 4096, 64);
  BOOST_CHECK_EQUAL(a.listed_blocks, 2 * 64 - 1);
  BOOST_CHECK_EQUAL(a.block_pairs, (2 * 64 - 1) * 64 * 64);
  BOOST_CHECK_EQUAL(a.block_flops, 4.0 * 64 * (2 * 64 - 1) * 64 * 64);
  // Top-k keeps min(k, window row) per query out of its causal window.
  PatternAnalysis t = run(top_k(5, 12), 100, 10);
  BOOST_CHECK_EQUAL(t.allowed_pairs, local_causal_pairs(100, 12));
  int64_t kept = 0;
  for (int64_t q = 0; q < 100; ++q) kept += std::min<int64_t>(5, std::min<int64_t>(12, q + 1));
  BOOST_CHECK_EQUAL(t.kept_pairs, kept);
}

BOOST_AUTO_TEST_CASE(strided_and_fixed_cost_shrinks_like_one_over_sqrt_n) {
  double strided_ratio[2], fixed_ratio[2], fixed_c8_ratio[2];
  int idx = 0;
  for (int64_t n : {1024, 4096}) {
    const int64_t l = int64_t(std::lround(std::sqrt(double(n))));  // 32, 64
    PatternAnalysis s = run(strided(l), n, 64, 1);
    BOOST_CHECK_EQUAL(s.allowed_pairs, strided_pairs(n, l));
    BOOST_CHECK_EQUAL(s.allowed_pairs, strided(l)->layout(n, 64)->allowed_pairs(0));
    BOOST_CHECK_EQUAL(s.flops, 4.0 * 64 * double(strided_pairs(n, l)));
    PatternAnalysis f = run(fixed(l, l / 8), n, 64, 1);
    BOOST_CHECK_EQUAL(f.allowed_pairs, fixed_pairs(n, l, l / 8));
    PatternAnalysis f8 = run(fixed(l, 8), n, 64, 1);
    BOOST_CHECK_EQUAL(f8.allowed_pairs, fixed_pairs(n, l, 8));
    strided_ratio[idx] = s.flops / s.dense_flops;
    fixed_ratio[idx] = f.flops / f.dense_flops;
    fixed_c8_ratio[idx] = f8.flops / f8.dense_flops;
    // Strided: n (l + n / (2l)) pairs of n^2 / 2, about 3 / sqrt(n).
    BOOST_CHECK_GT(strided_ratio[idx] * std::sqrt(double(n)), 2.5);
    BOOST_CHECK_LT(strided_ratio[idx] * std::sqrt(double(n)), 3.5);
    BOOST_CHECK_GE(s.block_pairs, s.allowed_pairs);
    ++idx;
  }
  // n = 4096, l = b = 64: the band lists each diagonal block and the one before (127), and each
  // residue class of 64 positions is one block of the permuted segment, listed once (64).
  PatternAnalysis s = run(strided(64), 4096, 64, 1);
  BOOST_CHECK_EQUAL(s.listed_blocks, 127 + 64);
  BOOST_CHECK_EQUAL(s.block_pairs, (127 + 64) * 64 * 64);
  BOOST_CHECK_EQUAL(s.block_flops / s.dense_block_flops, 191.0 / (64 * 65 / 2));
  // Quadrupling n with l = sqrt(n) halves strided's share, and fixed's with a constant summary;
  // with c = l / 8 the summary columns alone are about c / l of dense, whatever n.
  BOOST_CHECK_CLOSE(strided_ratio[1] / strided_ratio[0], 0.5, 8.0);
  BOOST_CHECK_CLOSE(fixed_c8_ratio[1] / fixed_c8_ratio[0], 0.5, 3.0);
  BOOST_CHECK_GT(fixed_ratio[1] / fixed_ratio[0], 0.85);
  BOOST_CHECK_GT(fixed_ratio[1], 1.0 / 8);
}

BOOST_AUTO_TEST_CASE(strided_and_fixed_reach_everything_in_two_layers) {
  for (int64_t n : {256, 1000, 1024}) {
    const int64_t r = int64_t(std::lround(std::sqrt(double(n))));
    // Strided: q -> p in its band [q - l, q] with p = k (mod l) -> k, for every l between 2 and n - 2.
    for (int64_t l : {r, int64_t(3), n / 3}) {
      PatternAnalysis a = run(strided(l), n, 16);
      BOOST_CHECK_MESSAGE(a.reach.layers == 2, "strided l=" << l << " n=" << n << ": " << a.reach.layers);
      BOOST_CHECK_LT(a.reach.fraction[0], 1.0);
    }
    // Fixed: q -> the last cell of k's block (a summary cell, c >= 1, which sees its whole
    // block) -> k. The summary being the *last* c cells is what makes this true.
    for (int64_t c : {int64_t(1), int64_t(2), r / 2}) {
      PatternAnalysis a = run(fixed(r, c), n, 16);
      BOOST_CHECK_MESSAGE(a.reach.layers == 2, "fixed l=" << r << " c=" << c << " n=" << n << ": " << a.reach.layers);
      BOOST_CHECK_LT(a.reach.fraction[0], 1.0);
    }
    // c = l: every earlier block is summary, which is dense causal.
    BOOST_CHECK_EQUAL(run(fixed(r, r), n, 16).reach.layers, 1);
  }
  BOOST_CHECK_EQUAL(run(strided(1), 100, 10).reach.layers, 1);
  // Longformer: every position reaches global token 0 in one layer, which sees everything.
  BOOST_CHECK_EQUAL(run(longformer(8, 1, {0}, false), 300, 20).reach.layers, 2);
  BOOST_CHECK_EQUAL(run(longformer(8, 1, {}, false), 300, 20).reach.layers, 0);
}

BOOST_AUTO_TEST_CASE(local_reaches_w_minus_one_further_per_layer) {
  // After L layers a causal window of w reaches k in [q - L (w - 1), q]: ceil((n - 1) / (w - 1)) layers.
  for (auto [n, w] : std::vector<std::pair<int64_t, int64_t>>{{64, 8}, {100, 12}, {1024, 32}}) {
    const int64_t need = (n - 1 + w - 2) / (w - 1);
    const int max_layers = int(std::min<int64_t>(need, 12));
    PatternAnalysis a = run(local(w), n, 8, max_layers);
    BOOST_CHECK_EQUAL(a.reach.layers, need <= 12 ? int(need) : 0);
    BOOST_REQUIRE_EQUAL(a.reach.fraction.size(), size_t(max_layers));
    for (int L = 1; L <= max_layers; ++L) {
      int64_t reached = 0;
      for (int64_t q = 0; q < n; ++q) reached += std::min(q + 1, L * (w - 1) + 1);
      BOOST_CHECK_EQUAL(a.reach.fraction[size_t(L - 1)], double(reached) / double(n * (n + 1) / 2));
    }
  }
  PatternAnalysis far = run(local(32), 4096, 64);  // w << n: nowhere near in 3 layers
  BOOST_CHECK_EQUAL(far.reach.layers, 0);
  BOOST_CHECK_LT(far.reach.fraction[2], 0.05);
}

BOOST_AUTO_TEST_CASE(receptive_field_matches_a_path_search) {
  // Random block lists (no structure to exploit), several heads, and a bidirectional pattern.
  const int64_t n = 48, b = 4, nb = n / b;
  std::mt19937_64 rng(run_seed());
  std::vector<std::pair<int64_t, int64_t>> blocks;
  for (int64_t i = 0; i < nb; ++i)
    for (int64_t j = 0; j <= i; ++j)
      if ((i * 7 + j * 13 + int64_t(rng() % 5)) % 5 == 0) blocks.push_back({i, j});
  blocks.push_back({0, 0});
  std::vector<PatternPtr> cases = {explicit_blocks(blocks), per_head({local(3), fixed(12, 1)}),
                                   longformer(4, 2, {20}, false), bigbird(0, 1, 1, 3, false)};
  for (const PatternPtr& p : cases) {
    const int heads = 2;
    auto L = p->layout(n, b, heads);
    std::vector<uint8_t> one(size_t(n * n), 0);
    for (int64_t q = 0; q < n; ++q) {
      one[size_t(q * n + q)] = 1;
      for (int h = 0; h < heads; ++h)
        for (int64_t k = 0; k < n; ++k) one[size_t(q * n + k)] |= L->allows(L->layout_of(h), q, k);
    }
    Reach r = receptive_field(*L, heads, 4);
    std::vector<uint8_t> cur = one;
    const int64_t target = p->causal() ? n * (n + 1) / 2 : n * n;
    for (size_t layer = 0; layer < r.fraction.size(); ++layer) {
      if (layer > 0) {
        std::vector<uint8_t> next(size_t(n * n), 0);
        for (int64_t q = 0; q < n; ++q)
          for (int64_t m = 0; m < n; ++m)
            if (one[size_t(q * n + m)])
              for (int64_t k = 0; k < n; ++k) next[size_t(q * n + k)] |= cur[size_t(m * n + k)];
        cur = next;
      }
      int64_t reached = 0;
      for (uint8_t v : cur) reached += v;
      BOOST_CHECK_EQUAL(r.fraction[layer], double(reached) / double(target));
      if (reached == target) BOOST_CHECK_EQUAL(r.layers, int(layer + 1));
    }
  }
}

BOOST_AUTO_TEST_CASE(ascii_pictures_are_exact) {
  // local:2 causal at n = 4 in blocks of 2: blocks (0,0), (1,0), (1,1) are listed (partial).
  BOOST_CHECK_EQUAL(to_ascii(*local(2)->layout(4, 2), 0), "#-..\n##..\n-##-\n--##\n");
  BOOST_CHECK_EQUAL(to_ascii(*local(2)->layout(4, 1), 0), "#...\n##..\n.##.\n..##\n");
  // One character per block above 128 positions.
  BOOST_CHECK_EQUAL(to_ascii(*dense_causal()->layout(256, 64), 0), "+...\n#+..\n##+.\n###+\n");
  BOOST_CHECK_EQUAL(to_ascii(*local(64)->layout(256, 64), 0), "+...\n++..\n.++.\n..++\n");
  // Fixed gathers the summary cells of earlier blocks into key blocks of 16 cells (those of 8
  // source blocks), so query block 1 computes pairs with the summaries of blocks 2..7 as well,
  // all masked (they lie after it): '-'.
  const std::string fixed_rows = to_ascii(*fixed(16, 2)->layout(256, 16), 0);
  BOOST_CHECK_EQUAL(fixed_rows.substr(0, 34), "+...............\n++------........\n");
  // The same through the command line, after its report.
  Result r = run_sparta("viz pattern --pattern local:2 --seq 4 --block 2 --ascii");
  BOOST_CHECK_EQUAL(r.status, 0);
  BOOST_CHECK_MESSAGE(r.out.find(":\n#-..\n##..\n-##-\n--##\n") != std::string::npos, r.out);
  BOOST_CHECK_MESSAGE(r.out.find("local(w=2, causal)") != std::string::npos, r.out);
}

BOOST_AUTO_TEST_CASE(cell_maps_agree_with_the_layout) {
  for (const std::string spec : {"fixed:16:2", "strided:12", "bigbird:1:1:2:7", "longformer:9:2:0,50", "topk:4:20"}) {
    PatternPtr p = parse_pattern(spec);
    auto L = p->layout(100, 10, 2);
    for (int h = 0; h < 2; ++h) {
      const std::vector<Cell> m = cell_map(*L, L->layout_of(h));
      int64_t allowed = 0, wrong = 0;
      for (int64_t q = 0; q < 100; ++q)
        for (int64_t k = 0; k < 100; ++k) {
          const bool dark = m[size_t(q * 100 + k)] == Cell::full || m[size_t(q * 100 + k)] == Cell::partial;
          allowed += dark;
          wrong += dark != L->allows(L->layout_of(h), q, k);
        }
      BOOST_CHECK_MESSAGE(wrong == 0, spec << " head " << h << ": " << wrong << " cells differ from allows()");
      BOOST_CHECK_EQUAL(allowed, L->allowed_pairs(L->layout_of(h)));
    }
  }
}

BOOST_AUTO_TEST_CASE(svg_pictures_hold_exactly_the_cells) {
  for (const std::string spec : {"dense", "local:16", "strided:16", "fixed:16:2", "bigbird:1:1:2:7", "longformer:16:1:0",
                                 "strided:16+local:8"}) {
    PatternPtr p = parse_pattern(spec);
    for (int64_t n : {64, 256}) {
      auto L = p->layout(n, 16);
      const std::string svg = to_svg(*L, 0, spec + " <&>");
      BOOST_CHECK_EQUAL(svg.rfind("<svg", 0), 0u);
      BOOST_CHECK(svg.size() > 7 && svg.compare(svg.size() - 7, 7, "</svg>\n") == 0);
      BOOST_CHECK_MESSAGE(svg.find("<title>" + spec + " &lt;&amp;&gt;</title>") != std::string::npos, svg.substr(0, 300));
      BOOST_CHECK_MESSAGE(svg.size() < 100 * 1024, spec << " n=" << n << ": " << svg.size() << " bytes");
      BOOST_CHECK_EQUAL(svg.find("width=\"1024\" height=\"1024\" viewBox=\"0 0 " + std::to_string(n)), svg.find("width="));
      const std::vector<Cell> drawn = cells_from_svg(svg, n), want = cell_map(*L, 0);
      int64_t dark = 0, wrong = 0;
      for (size_t i = 0; i < drawn.size(); ++i) {
        dark += drawn[i] == Cell::full || drawn[i] == Cell::partial;
        wrong += drawn[i] != want[i];
      }
      BOOST_CHECK_MESSAGE(wrong == 0, spec << " n=" << n << ": " << wrong << " cells differ");
      BOOST_CHECK_EQUAL(dark, L->allowed_pairs(0));
    }
  }
  // Written by the command: the same picture.
  const std::string path = temp_path("fixed.svg");
  Result r = run_sparta("viz pattern --pattern fixed:16:2 --seq 128 --block 16 --out " + path);
  BOOST_CHECK_EQUAL(r.status, 0);
  const std::string svg = slurp(path);
  BOOST_CHECK_EQUAL(svg.rfind("<svg", 0), 0u);
  auto L = fixed(16, 2)->layout(128, 16);
  const std::vector<Cell> drawn = cells_from_svg(svg, 128);
  BOOST_CHECK(drawn == cell_map(*L, 0));
  std::remove(path.c_str());
}

BOOST_AUTO_TEST_CASE(png_pictures_have_the_right_pixels) {
  // n <= 1024: max_px / n pixels a cell; n > 1024: the mean of 2 x 2 cells a pixel.
  for (auto [spec, n, side] : std::vector<std::tuple<std::string, int64_t, int64_t>>{
           {"fixed:8:2", 64, 1024}, {"local:10", 100, 1000}, {"strided:45", 2048, 1024}}) {
    const std::string path = temp_path("pic.png");
    Result r = run_sparta("viz pattern --pattern " + spec + " --seq " + std::to_string(n) + " --block 16 --out " + path);
    BOOST_REQUIRE_MESSAGE(r.status == 0, r.err);
    Image img = read_png(path);
    std::remove(path.c_str());
    BOOST_CHECK_EQUAL(img.width, side);
    BOOST_CHECK_EQUAL(img.height, side);
    BOOST_CHECK_EQUAL(img.colour_type, PNG_COLOR_TYPE_RGB);
    BOOST_CHECK_EQUAL(img.bit_depth, 8);
    auto L = parse_pattern(spec)->layout(n, 16);
    const Raster want = to_raster(*L, 0);
    BOOST_CHECK(img.rgb == want.rgb);
    if (n > 1024) continue;
    // A cell's centre pixel (never on a grid line) has its kind's colour.
    const std::vector<Cell> cells = cell_map(*L, 0);
    const int64_t s = side / n;
    int64_t wrong = 0;
    for (int64_t q = 0; q < n; ++q)
      for (int64_t k = 0; k < n; ++k) {
        uint8_t rgb[3];
        cell_colour(cells[size_t(q * n + k)], rgb);
        const uint8_t* px = img.rgb.data() + size_t(((q * s + s / 2) * side + k * s + s / 2) * 3);
        wrong += px[0] != rgb[0] || px[1] != rgb[1] || px[2] != rgb[2];
      }
    BOOST_CHECK_MESSAGE(wrong == 0, spec << ": " << wrong << " cells drawn in the wrong colour");
  }
}

BOOST_AUTO_TEST_CASE(bare_names_take_defaults_from_n) {
  BOOST_CHECK_EQUAL(default_spec("fixed", 1024), "fixed:32:4");
  BOOST_CHECK_EQUAL(default_spec("strided", 4096), "strided:64");
  BOOST_CHECK_EQUAL(default_spec("local", 256), "local:16");
  BOOST_CHECK_EQUAL(default_spec("longformer", 1024), "longformer:32:1:0");
  BOOST_CHECK_EQUAL(default_spec("topk", 1024), "topk:16:64");
  BOOST_CHECK_EQUAL(default_spec("fixed", 64), "fixed:8:1");
  BOOST_CHECK_EQUAL(resolve_spec("strided+local:8|dense", 256), "strided:16+local:8|dense");
  for (const std::string& name : default_pattern_names()) {
    for (int64_t n : {1, 5, 64, 1000}) {
      PatternPtr p = parse_pattern(default_spec(name, n));
      auto L = checked_layout(*p, n, std::min<int64_t>(n, 16), 1);
      BOOST_CHECK_EQUAL(L->seq_len, n);
    }
  }
  Result r = run_sparta("viz analyze --seq 256 --block 16 --markdown");
  BOOST_CHECK_EQUAL(r.status, 0);
  int rows = 0;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) rows += line.rfind("| `", 0) == 0;
  BOOST_CHECK_EQUAL(rows, int(default_pattern_names().size()));
  BOOST_CHECK_MESSAGE(r.out.find("| `fixed(l=16, c=2, causal)` | yes |") != std::string::npos, r.out);
}

BOOST_AUTO_TEST_CASE(errors_name_the_pattern_and_the_value) {
  check_error([] { default_spec("nosuch", 64); }, {"[viz]", "unknown pattern 'nosuch'"});
  check_error([] { resolve_spec("local+nosuch", 64); }, {"[viz]", "'nosuch'"});
  check_error([] { parse_pattern("nosuch:3"); }, {"[pattern]", "'nosuch:3'"});
  check_error([] { default_spec("fixed", 0); }, {"[viz]", "fixed", "got 0"});
  check_error([] { checked_layout(*local(4), 0, 1, 1); }, {"[viz]", "local(w=4, causal)", "got 0"});
  check_error([] { checked_layout(*fixed(8, 2), 64, 128, 1); },
              {"[viz]", "fixed(l=8, c=2, causal)", "block 128 is larger than the sequence length 64"});
  check_error([] { checked_layout(*local(4), 64, 0, 1); }, {"[viz]", "block must be positive, got 0"});
  check_error([] { checked_layout(*local(100), 64, 8, 1); }, {"[local]", "window 100", "64"});

  Result unknown = run_sparta("viz pattern --pattern nosuch --seq 64");
  BOOST_CHECK_EQUAL(unknown.status, 1);
  BOOST_CHECK_MESSAGE(unknown.err.find("unknown pattern 'nosuch'") != std::string::npos, unknown.err);
  Result zero = run_sparta("viz pattern --pattern fixed:8:2 --seq 0");
  BOOST_CHECK_EQUAL(zero.status, 1);
  BOOST_CHECK_MESSAGE(zero.err.find("sequence length must be positive, got 0") != std::string::npos, zero.err);
  Result big = run_sparta("viz pattern --pattern local --seq 64 --block 128");
  BOOST_CHECK_EQUAL(big.status, 1);
  BOOST_CHECK_MESSAGE(big.err.find("local(w=8, causal): block 128 is larger than the sequence length 64") !=
                          std::string::npos,
                      big.err);
  Result ext = run_sparta("viz pattern --pattern local --seq 64 --out picture.jpg");
  BOOST_CHECK_EQUAL(ext.status, 1);
  BOOST_CHECK_MESSAGE(ext.err.find("picture.jpg") != std::string::npos, ext.err);
  Result head = run_sparta("viz pattern --pattern local --seq 64 --heads 2 --head 2");
  BOOST_CHECK_EQUAL(head.status, 1);
  BOOST_CHECK_MESSAGE(head.err.find("head 2 is outside [0, 2)") != std::string::npos, head.err);
}

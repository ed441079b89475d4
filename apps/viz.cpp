// `sparta viz pattern`: what one sparse attention pattern costs and sees, as a report, an ASCII
// mask, and an SVG or PNG picture. `sparta viz analyze`: the same numbers for every pattern with
// its default parameters, as a table (plain or markdown). All of it comes from the pattern's
// BlockLayout (nn/attention/analysis.h).
#include <png.h>

#include <algorithm>
#include <cctype>
#include <csetjmp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <vector>

#include "apps/commands.h"
#include "core/error.h"
#include "nn/attention/analysis.h"

namespace sparta::apps {
namespace {

struct PatternOptions {
  std::string spec;
  int64_t n = 0;
  int64_t block = 0;  // 0: n / 16 in [1, 64]
  int heads = 1;
  int head = 0;
  int64_t head_dim = 64;
  int layers = 3;
  std::string out;
  bool ascii = false;
};

struct AnalyzeOptions {
  int64_t n = 1024;
  int64_t block = 0;  // 0: min(64, n)
  int64_t head_dim = 64;
  int layers = 3;
  bool markdown = false;
};

bool ends_with(std::string s, const std::string& suffix) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// libpng reports errors by longjmp, so this frame holds no objects with destructors.
const char* encode_png(FILE* f, const nn::Raster& r, png_bytep* rows) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (png == nullptr) return "cannot create a libpng writer";
  png_infop info = png_create_info_struct(png);
  if (info == nullptr || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return "libpng failed";
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, png_uint_32(r.width), png_uint_32(r.height), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return nullptr;
}

void write_png(const std::string& path, const nn::Raster& r) {
  std::vector<png_bytep> rows(size_t(r.height));
  for (int64_t y = 0; y < r.height; ++y) rows[size_t(y)] = const_cast<png_bytep>(r.rgb.data() + size_t(y * r.width * 3));
  FILE* f = std::fopen(path.c_str(), "wb");
  SPARTA_CHECK(f != nullptr, "viz", "cannot write '", path, "'");
  const char* err = encode_png(f, r, rows.data());
  const bool closed = std::fclose(f) == 0;  // the last bytes reach the file here
  SPARTA_CHECK(err == nullptr, "viz", "writing '", path, "': ", err);
  SPARTA_CHECK(closed, "viz", "writing '", path, "' failed");
}

void run_pattern(PatternOptions o) {
  const std::string spec = nn::resolve_spec(o.spec, o.n);
  nn::PatternPtr p = nn::parse_pattern(spec);
  if (o.block == 0) o.block = std::clamp<int64_t>(o.n / 16, 1, 64);
  auto layout = nn::checked_layout(*p, o.n, o.block, o.heads);
  SPARTA_CHECK(o.head >= 0 && o.head < o.heads, "viz", "head ", o.head, " is outside [0, ", o.heads, ")");
  const std::string extension_error = "--out '" + o.out + "': expected a file name ending in .svg or .png";
  SPARTA_CHECK(o.out.empty() || ends_with(o.out, ".svg") || ends_with(o.out, ".png"), "viz", extension_error);

  std::printf("resolved  %s -> %s\n", o.spec.c_str(), spec.c_str());
  nn::AnalysisOptions ao;
  ao.n = o.n;
  ao.block = o.block;
  ao.heads = o.heads;
  ao.head_dim = o.head_dim;
  ao.max_layers = o.layers;
  std::fputs(nn::format_report(nn::analyze(*p, ao)).c_str(), stdout);
  const int h = layout->layout_of(o.head);
  if (o.ascii) {
    std::printf("\nhead %d, %s:\n", o.head,
                o.n <= 128 ? "one character per position ('#' allowed, '-' listed but masked, '.' not listed)"
                           : "one character per block ('#' full, '+' partial, '-' computed but masked, '.' empty)");
    std::fputs(nn::to_ascii(*layout, h).c_str(), stdout);
  }
  if (ends_with(o.out, ".svg")) {
    const std::string title = p->describe() + ", n=" + std::to_string(o.n) + ", block " + std::to_string(o.block) +
                              ", head " + std::to_string(o.head);
    std::ofstream f(o.out, std::ios::binary);
    SPARTA_CHECK(f.good(), "viz", "cannot write '", o.out, "'");
    f << nn::to_svg(*layout, h, title);
    SPARTA_CHECK(f.good(), "viz", "writing '", o.out, "' failed");
    std::printf("wrote %s\n", o.out.c_str());
  } else if (ends_with(o.out, ".png")) {
    const nn::Raster r = nn::to_raster(*layout, h);
    write_png(o.out, r);
    std::printf("wrote %s (%lld x %lld px)\n", o.out.c_str(), static_cast<long long>(r.width),
                static_cast<long long>(r.height));
  }
}

void run_analyze(AnalyzeOptions o) {
  if (o.block == 0) o.block = std::clamp<int64_t>(o.n, 1, 64);
  std::vector<nn::PatternAnalysis> rows;
  for (const std::string& name : nn::default_pattern_names()) {
    nn::PatternPtr p = nn::parse_pattern(nn::default_spec(name, o.n));
    nn::AnalysisOptions ao;
    ao.n = o.n;
    ao.block = o.block;
    ao.head_dim = o.head_dim;
    ao.max_layers = o.layers;
    rows.push_back(nn::analyze(*p, ao));
  }
  // What a kernel keeps does not depend on the pattern: one line above the table says it.
  const nn::PatternAnalysis& a = rows.front();
  std::printf("n = %lld, block %lld, head dim %lld, 1 head; FLOPs: forward, 4d per pair (Q K^T and P V); reach: "
              "stacked layers, at most %d; every kernel keeps out + log-sum-exp, %.1f KiB in f32, never the n x n "
              "scores (%.1f MiB)\n\n",
              static_cast<long long>(o.n), static_cast<long long>(o.block), static_cast<long long>(o.head_dim),
              o.layers, double(a.kernel_bytes) / 1024, double(a.score_bytes) / (1024 * 1024));
  std::fputs(nn::format_table(rows, o.markdown).c_str(), stdout);
}

}  // namespace

void add_viz_command(CLI::App& app) {
  CLI::App* viz = app.add_subcommand("viz", "pictures and cost analysis of sparse attention patterns");
  viz->require_subcommand(1);

  auto po = std::make_shared<PatternOptions>();
  CLI::App* pat = viz->add_subcommand("pattern", "report, ASCII mask and SVG/PNG picture of one pattern");
  pat->add_option("--pattern", po->spec,
                  "a spec (fixed:16:2, local:32, strided:16+local:8, bigbird:1:1:2:7) or a bare name with defaults "
                  "from --seq (dense, local, strided, fixed, bigbird, longformer, topk)")
      ->required();
  pat->add_option("--seq", po->n, "sequence length N")->required();
  pat->add_option("--block", po->block, "block size (default N/16 in [1, 64])");
  pat->add_option("--heads", po->heads, "number of heads");
  pat->add_option("--head", po->head, "head to draw");
  pat->add_option("--head-dim", po->head_dim, "head dimension d for the FLOP and memory counts");
  pat->add_option("--layers", po->layers, "most stacked layers to try for full reach");
  pat->add_option("--out", po->out, "write the picture: FILE.svg or FILE.png");
  pat->add_flag("--ascii", po->ascii, "print the mask as characters");
  pat->callback([po] { run_pattern(*po); });

  auto ao = std::make_shared<AnalyzeOptions>();
  CLI::App* ana = viz->add_subcommand("analyze", "cost and reach of every pattern with its default parameters");
  ana->add_option("--seq", ao->n, "sequence length N");
  ana->add_option("--block", ao->block, "block size (default min(64, N))");
  ana->add_option("--head-dim", ao->head_dim, "head dimension d");
  ana->add_option("--layers", ao->layers, "most stacked layers to try for full reach");
  ana->add_flag("--markdown", ao->markdown, "print a markdown table");
  ana->callback([ao] { run_analyze(*ao); });
}

}  // namespace sparta::apps

// The data pipeline: the byte tokenizer, text / directory / shard sources and each of their
// errors, the tail split, the shuffled window sampler (determinism, epoch coverage, resume) and the
// prefetcher (same sequence, exact cursor, worker errors).
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>

#include "data/byte_tokenizer.h"
#include "data/prefetch.h"
#include "data/sampler.h"
#include "data/shards.h"
#include "data/split.h"
#include "data/token_source.h"
#include "tests/support.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using namespace sparta;
using namespace sparta::data;
using namespace sparta::test;

namespace {

std::mt19937_64& rng() {
  static std::mt19937_64 r(run_seed());
  return r;
}

std::string random_bytes(size_t n) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(byte(rng()));
  return s;
}

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | cp >> 6);
    s += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += char(0xE0 | cp >> 12);
    s += char(0x80 | (cp >> 6 & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xF0 | cp >> 18);
    s += char(0x80 | (cp >> 12 & 0x3F));
    s += char(0x80 | (cp >> 6 & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
}

// Valid UTF-8 with code points of every encoded length (surrogates skipped); `starts` receives
// the offset of each code point.
std::string random_utf8(size_t n_code_points, std::vector<size_t>* starts = nullptr) {
  const uint32_t top[4] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF}, bottom[4] = {0, 0x80, 0x800, 0x10000};
  std::uniform_int_distribution<int> length(0, 3);
  std::string s;
  for (size_t i = 0; i < n_code_points; ++i) {
    const int l = length(rng());
    uint32_t cp = std::uniform_int_distribution<uint32_t>(bottom[l], top[l])(rng());
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xE000;
    if (starts) starts->push_back(s.size());
    append_utf8(s, cp);
  }
  return s;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  BOOST_REQUIRE(f.good());
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::vector<uint16_t> as_tokens(const std::string& bytes) {
  std::vector<uint16_t> t;
  for (char c : bytes) t.push_back(static_cast<unsigned char>(c));
  return t;
}

// Token i is i, so the values of a window say where in the stream it came from.
TokenSourcePtr positions(int64_t n) {
  std::vector<uint16_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), uint16_t(0));
  return tokens_source(t, 65536, "positions");
}

std::vector<int64_t> values(const Tensor& t) { return t.to_vector<int64_t>(); }

bool same_batch(const Batch& a, const Batch& b) {
  return values(a.inputs) == values(b.inputs) && values(a.targets) == values(b.targets);
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

// ---- tokenizer ------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(byte_tokenizer_round_trips_bytes_and_utf8) {
  const std::string bytes = random_bytes(5000);
  const std::vector<uint16_t> tokens = ByteTokenizer::encode(bytes);
  BOOST_CHECK(tokens == as_tokens(bytes));
  BOOST_CHECK(ByteTokenizer::decode(tokens) == bytes);

  std::vector<size_t> starts;
  const std::string text = random_utf8(3000, &starts);
  BOOST_CHECK_EQUAL(ByteTokenizer::first_invalid_utf8(text), -1);
  BOOST_CHECK(ByteTokenizer::decode(ByteTokenizer::encode(text)) == text);
  // A stray continuation byte, a byte that never starts a sequence, a sequence cut short.
  const size_t at = starts[std::uniform_int_distribution<size_t>(0, starts.size() - 1)(rng())];
  for (const char* bad : {"\x80", "\xFF", "\xE2\x82"}) {
    std::string broken = text;
    broken.insert(at, bad);
    BOOST_CHECK_EQUAL(ByteTokenizer::first_invalid_utf8(broken), int64_t(at));
  }
  BOOST_CHECK_EQUAL(ByteTokenizer::first_invalid_utf8("ab\xC0\xAF"), 2);  // overlong '/'
  check_error([] { ByteTokenizer::decode({97, 98, 256}); }, {"[ByteTokenizer]", "token 256", "index 2"});
}

// ---- text sources ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(text_file_source_equals_file_bytes) {
  TempDir dir("data");
  const std::string bytes = random_bytes(10000);
  write_file(dir / "raw.bin", bytes);
  TokenSourcePtr src = open_text_file(dir / "raw.bin", Utf8Mode::bytes);
  BOOST_CHECK_EQUAL(src->size(), 10000);
  BOOST_CHECK_EQUAL(src->vocab_size(), 256);
  BOOST_CHECK(src->read_all() == as_tokens(bytes));
  std::uniform_int_distribution<int64_t> pos(0, 10000);
  for (int k = 0; k < 50; ++k) {
    int64_t a = pos(rng()), b = pos(rng());
    if (a > b) std::swap(a, b);
    std::vector<uint16_t> got(size_t(b - a));
    src->read(a, b - a, got.data());
    BOOST_CHECK(got == as_tokens(bytes.substr(size_t(a), size_t(b - a))));
  }
  BOOST_CHECK(src->describe().find(dir / "raw.bin") != std::string::npos);
  check_error([&] { uint16_t t[2]; src->read(9999, 2, t); }, {"outside", "10000 tokens", "raw.bin"});

  // Strict mode validates in 1 MiB chunks: sequences straddling a chunk's end must pass, and an
  // error past the first chunk must report its offset in the file.
  const std::string text = random_utf8(1000000);
  BOOST_REQUIRE_GT(text.size(), size_t(2) << 20);
  write_file(dir / "big.txt", text);
  BOOST_CHECK(open_text_file(dir / "big.txt")->read_all() == as_tokens(text));
  const size_t mib = size_t(1) << 20;
  for (size_t before : {mib - 3, mib - 2, mib - 1}) {
    write_file(dir / "edge.txt", std::string(before, 'a') + "\xF0\x9F\x98\x80" + "b");
    BOOST_CHECK_EQUAL(open_text_file(dir / "edge.txt")->size(), int64_t(before + 5));
  }
  for (size_t before : {mib - 1, mib, mib + 1}) {
    write_file(dir / "bad.txt", std::string(before, 'a') + "\xF0\x9F" + "xyz");
    const std::string offset = "byte offset " + std::to_string(before);
    check_error([&] { open_text_file(dir / "bad.txt"); }, {"bad.txt", offset.c_str()});
  }
}

BOOST_AUTO_TEST_CASE(text_file_errors) {
  TempDir dir("data");
  const std::string missing = dir / "missing.txt";
  check_error([&] { open_text_file(missing); }, {"[text file]", "cannot open", missing.c_str(), "No such file"});
  check_error([&] { open_text_file(dir.path.string()); }, {"[text file]", "is a directory"});

  write_file(dir / "latin1.txt", "caf\xE9 au lait");
  check_error([&] { open_text_file(dir / "latin1.txt", Utf8Mode::strict); },
              {"[text file]", "latin1.txt", "not valid UTF-8", "byte offset 3", "utf8: bytes"});
  BOOST_CHECK(open_text_file(dir / "latin1.txt", Utf8Mode::bytes)->read_all() == as_tokens("caf\xE9 au lait"));

  BOOST_CHECK(utf8_mode_from_name("bytes") == Utf8Mode::bytes);
  BOOST_CHECK(utf8_mode_from_name("strict") == Utf8Mode::strict);
  check_error([] { utf8_mode_from_name("latin1"); }, {"[utf8]", "'latin1'", "strict or bytes"});

  // An empty file opens; asking it for a window names the file, its size and the size needed.
  write_file(dir / "empty.txt", "");
  TokenSourcePtr empty = open_text_file(dir / "empty.txt");
  BOOST_CHECK_EQUAL(empty->size(), 0);
  check_error([&] { WindowSampler(empty, {2, 8, 0}); }, {"[sampler]", "empty.txt", "has 0 tokens", "needs at least 9"});
}

BOOST_AUTO_TEST_CASE(directory_concatenates_matching_files_by_name) {
  TempDir dir("data");
  write_file(dir / "b.txt", "BBB");
  write_file(dir / "a.txt", "aa");
  write_file(dir / "aa.txt", "");  // an empty part in the middle
  write_file(dir / "10.txt", "ten");
  write_file(dir / "c.md", "not matched");
  write_file(dir / ".hidden.txt", "hidden files are skipped, as a shell would");
  fs::create_directory(dir / "sub.txt");  // a directory is never a part
  write_file(dir / "sub.txt/x.txt", "nor are subdirectories");
  BOOST_CHECK((list_matching(dir.path.string(), "*.txt") ==
               std::vector<std::string>{dir / "10.txt", dir / "a.txt", dir / "aa.txt", dir / "b.txt"}));

  TokenSourcePtr src = open_text_dir(dir.path.string(), "*.txt");
  const std::string want = "tenaaBBB";
  BOOST_CHECK_EQUAL(src->size(), int64_t(want.size()));
  for (size_t a = 0; a <= want.size(); ++a) {
    for (size_t b = a; b <= want.size(); ++b) {
      std::vector<uint16_t> got(b - a);
      src->read(int64_t(a), int64_t(b - a), got.data());
      BOOST_CHECK_MESSAGE(got == as_tokens(want.substr(a, b - a)), "tokens [" << a << ", " << b << ")");
    }
  }
  BOOST_CHECK(src->describe().find("4 text files matching '*.txt'") != std::string::npos);
  BOOST_CHECK(open_text_dir(dir.path.string(), "[ab]*.t?t")->read_all() == as_tokens("aaBBB"));

  // Under strict, a bad file is named with its own offset.
  write_file(dir / "d.txt", "ok\xC3(");
  check_error([&] { open_text_dir(dir.path.string(), "*.txt"); }, {"d.txt", "byte offset 2"});
  BOOST_CHECK_EQUAL(open_text_dir(dir.path.string(), "*.txt", Utf8Mode::bytes)->size(), 12);
}

BOOST_AUTO_TEST_CASE(directory_and_glob_errors) {
  TempDir dir("data");
  const std::string d = dir.path.string();
  write_file(dir / "a.txt", "text");
  const std::string nowhere = dir / "nowhere";
  check_error([&] { open_text_dir(nowhere, "*.txt"); }, {"[glob]", nowhere.c_str(), "does not exist", "*.txt"});
  check_error([&] { open_text_dir(dir / "a.txt", "*.txt"); }, {"[glob]", "a.txt", "is not a directory"});
  check_error([&] { open_text_dir(d, "*.json"); }, {"[glob]", "no file in", d.c_str(), "'*.json'"});
  fs::create_directory(dir / "empty");
  check_error([&] { open_text_dir(dir / "empty", "*"); }, {"[glob]", "no file in", "empty", "'*'"});
  check_error([&] { open_text_dir(d, "[ab.txt"); }, {"[glob]", "bad pattern '[ab.txt'", d.c_str(), "never closed"});
  check_error([&] { open_text_dir(d, "sub/*.txt"); }, {"[glob]", "bad pattern", "'/'"});
  check_error([&] { open_text_dir(d, ""); }, {"[glob]", "empty"});
  check_error([&] { open_text_dir(d, "a\\"); }, {"[glob]", "lone"});
  // A ']' first in a bracket is a member, as fnmatch reads it, not an unclosed bracket.
  write_file(dir / "].txt", "bracket");
  BOOST_CHECK_EQUAL(open_text_dir(d, "[]]*")->size(), 7);
}

// ---- shards ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(shards_round_trip) {
  TempDir dir("data");
  std::vector<uint16_t> tokens(3001);
  std::uniform_int_distribution<int> tok(0, 49999);
  for (auto& t : tokens) t = uint16_t(tok(rng()));
  tokens[0] = 0x1234;
  const std::string path = dir / "a.sptk";
  write_shard(path, tokens, 50000);
  BOOST_CHECK(read_shard(path) == tokens);
  BOOST_CHECK((names_in(dir.path) == std::vector<std::string>{"a.sptk"}));  // no temporary left over

  // The bytes on disk, as Note [shard format] has them.
  const std::string raw = read_file(path);
  BOOST_REQUIRE_EQUAL(raw.size(), 16 + 2 * tokens.size());
  BOOST_CHECK_EQUAL(raw.substr(0, 16), std::string("SPTK\x01\0\0\0\x50\xC3\0\0\0\0\0\0", 16));
  BOOST_CHECK_EQUAL(raw.substr(16, 2), std::string("\x34\x12"));

  TokenSourcePtr src = open_shard(path);
  BOOST_CHECK_EQUAL(src->size(), 3001);
  BOOST_CHECK_EQUAL(src->vocab_size(), 50000);
  std::vector<uint16_t> part(100);
  src->read(2901, 100, part.data());
  BOOST_CHECK(std::equal(part.begin(), part.end(), tokens.begin() + 2901));

  // Rewriting replaces the contents; a rejected write leaves the old shard and no temporary.
  write_shard(path, {1, 2, 3}, 50000);
  BOOST_CHECK((read_shard(path) == std::vector<uint16_t>{1, 2, 3}));
  check_error([&] { write_shard(path, {1, 60000, 3}, 50000); },
              {"[write_shard]", "a.sptk", "token 60000", "index 1", "nothing was written"});
  check_error([&] { write_shard(dir / "big.sptk", {1}, 70000); }, {"big.sptk", "70000", "1..65536"});
  BOOST_CHECK((read_shard(path) == std::vector<uint16_t>{1, 2, 3}));
  BOOST_CHECK((names_in(dir.path) == std::vector<std::string>{"a.sptk"}));
  const std::string no_dir = dir / "no/such/dir/x.sptk";
  check_error([&] { write_shard(no_dir, {1}, 256); }, {"[write_shard]", "cannot create", no_dir.c_str()});
  write_shard(dir / "empty.sptk", {}, 256);
  BOOST_CHECK_EQUAL(open_shard(dir / "empty.sptk")->size(), 0);

  // A text file into shards of N tokens, read back as one stream in name order (11 shards, so
  // that a name sort and a numeric sort would differ without the zero padding).
  std::string text = random_utf8(4000);
  if (text.size() % 10 == 0) text += '.';
  write_file(dir / "corpus.txt", text);
  const int64_t n = int64_t(text.size()) / 10;
  const std::vector<std::string> written = tokenize_text_to_shards(dir / "corpus.txt", dir / "shards", n);
  BOOST_REQUIRE_EQUAL(written.size(), 11u);
  BOOST_CHECK_EQUAL(written[10], dir / "shards/shard_000010.sptk");
  for (size_t i = 0; i < 10; ++i) BOOST_CHECK_EQUAL(open_shard(written[i])->size(), n);
  TokenSourcePtr all = open_shards(dir / "shards");
  BOOST_CHECK_EQUAL(all->vocab_size(), 256);
  BOOST_CHECK(all->read_all() == as_tokens(text));
  BOOST_CHECK(all->describe().find("11 shards matching '*.sptk'") != std::string::npos);
  check_error([&] { tokenize_text_to_shards(dir / "empty_input.txt", dir / "s2", 10); }, {"cannot open", "empty_input.txt"});
  write_file(dir / "nothing.txt", "");
  check_error([&] { tokenize_text_to_shards(dir / "nothing.txt", dir / "s2", 10); }, {"nothing.txt", "no tokens"});
  check_error([&] { tokenize_text_to_shards(dir / "corpus.txt", dir / "s2", 0); }, {"tokens_per_shard", "0"});
}

BOOST_AUTO_TEST_CASE(corrupt_shards_are_named) {
  TempDir dir("data");
  std::vector<uint16_t> tokens(64);
  std::iota(tokens.begin(), tokens.end(), uint16_t(100));
  write_shard(dir / "good.sptk", tokens, 256);
  const std::string good = read_file(dir / "good.sptk");
  auto corrupt = [&](const std::string& name, std::string bytes) {
    write_file(dir / name, bytes);
    return dir / name;
  };

  std::string p = corrupt("magic.sptk", "SPTX" + good.substr(4));
  check_error([&] { open_shard(p); }, {"[shard]", p.c_str(), "bad magic"});
  p = corrupt("short.sptk", good.substr(0, 10));
  check_error([&] { open_shard(p); }, {"[shard]", p.c_str(), "truncated", "10 bytes"});
  p = corrupt("odd.sptk", good.substr(0, good.size() - 1));
  check_error([&] { open_shard(p); }, {"[shard]", p.c_str(), "odd"});
  std::string v2 = good;
  v2[4] = 2;
  p = corrupt("v2.sptk", v2);
  check_error([&] { open_shard(p); }, {"[shard]", p.c_str(), "version 2"});
  std::string reserved = good;
  reserved[13] = 1;
  p = corrupt("reserved.sptk", reserved);
  check_error([&] { open_shard(p); }, {"[shard]", p.c_str(), "reserved"});
  const std::string missing = dir / "missing.sptk";
  check_error([&] { open_shard(missing); }, {"[shard]", "cannot open", missing.c_str()});

  // Token 5 becomes 256 + 105: found when read, not when opened, and named with its index.
  std::string high = good;
  high[16 + 2 * 5 + 1] = 1;
  p = corrupt("high.sptk", high);
  TokenSourcePtr src = open_shard(p);
  BOOST_CHECK_EQUAL(src->size(), 64);
  std::vector<uint16_t> head(5);
  src->read(0, 5, head.data());
  BOOST_CHECK(std::equal(head.begin(), head.end(), tokens.begin()));
  check_error([&] { src->read_all(); }, {"[shard]", p.c_str(), "token 361", "index 5", "vocabulary size 256"});
  check_error([&] { WindowSampler(src, {1, 63, 0}).next(); }, {"high.sptk", "token 361"});

  // Shards of one corpus must agree on the vocabulary.
  fs::create_directory(dir / "mixed");
  write_shard(dir / "mixed/a.sptk", tokens, 256);
  write_shard(dir / "mixed/b.sptk", tokens, 1000);
  check_error([&] { open_shards(dir / "mixed"); }, {"b.sptk", "vocabulary size 1000", "a.sptk", "256"});
}

// ---- split ----------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(tail_split_sizes_and_disjointness) {
  TokenSourcePtr src = positions(1001);
  Split s = split_tail(src, 0.1);
  BOOST_CHECK_EQUAL(s.train->size(), 901);
  BOOST_CHECK_EQUAL(s.validation->size(), 100);
  std::vector<uint16_t> train = s.train->read_all(), val = s.validation->read_all();
  // Together they are the stream, in order, each token once.
  std::vector<uint16_t> joined = train;
  joined.insert(joined.end(), val.begin(), val.end());
  BOOST_CHECK(joined == src->read_all());
  BOOST_CHECK_EQUAL(s.validation->vocab_size(), 65536);
  BOOST_CHECK(s.validation->describe().find("validation split") != std::string::npos);
  BOOST_CHECK(s.validation->describe().find("positions") != std::string::npos);
  // A view never reads past its end into the other split.
  check_error([&] { uint16_t t[2]; s.train->read(900, 2, t); }, {"outside", "901 tokens", "train split"});

  Split none = split_tail(src, 0.0);
  BOOST_CHECK_EQUAL(none.train->size(), 1001);
  BOOST_CHECK_EQUAL(none.validation->size(), 0);
  check_error([&] { split_tail(src, 1.0); }, {"[split]", "val_fraction", "[0, 1)", "got 1"});
  check_error([&] { split_tail(src, -0.5); }, {"[split]", "got -0.5"});

  // A split too small for one window names itself, its size and the size needed.
  Split tiny = split_tail(positions(100), 0.05);
  check_error([&] { WindowSampler(tiny.validation, {1, 8, 0}); },
              {"[sampler]", "validation split", "positions", "has 5 tokens", "needs at least 9"});
}

// ---- sampler --------------------------------------------------------------------------------

// Note [global batches]: rank r of a world of 3 with batch b draws rows [r b, (r + 1) b) of what one
// process with batch 3 b draws, across epoch boundaries too, and the cursors agree after each batch.
BOOST_AUTO_TEST_CASE(sampler_ranks_split_the_global_batches) {
  Split s = split_tail(positions(1000), 0.2);
  const int64_t T = 7, b = 5, world = 3;  // 114 windows: global batches of 15 run across epochs
  SamplerOptions whole{b * world, T, 42};
  WindowSampler one(s.train, whole);
  std::vector<WindowSampler> ranks;
  for (int64_t r = 0; r < world; ++r) {
    SamplerOptions o{b, T, 42};
    o.rank = r;
    o.world = world;
    ranks.emplace_back(s.train, o);
  }
  for (int step = 0; step < 20; ++step) {
    std::vector<int64_t> expect = values(one.next().inputs), got;
    for (WindowSampler& r : ranks) {
      const std::vector<int64_t> part = values(r.next().inputs);
      got.insert(got.end(), part.begin(), part.end());
      BOOST_CHECK(r.state() == one.state());
    }
    BOOST_CHECK(got == expect);
  }
  SamplerOptions bad{b, T, 42};
  bad.rank = 3;
  bad.world = 3;
  check_error([&] { WindowSampler(s.train, bad); }, {"[sampler]", "rank 3 of a world of 3"});
}

BOOST_AUTO_TEST_CASE(sampler_windows_are_shifted_inside_their_split_and_cover_each_epoch) {
  Split s = split_tail(positions(1000), 0.2);
  const int64_t T = 7, B = 6, W = 799 / T;  // 114 windows of the 800 train tokens
  WindowSampler sampler(s.train, {B, T, 42});
  BOOST_REQUIRE_EQUAL(sampler.windows_per_epoch(), W);
  std::vector<std::vector<int64_t>> order(2);
  for (int64_t drawn = 0; drawn < 2 * W;) {
    Batch b = sampler.next();
    BOOST_REQUIRE((b.inputs.shape() == Shape{B, T}) && (b.targets.shape() == Shape{B, T}));
    BOOST_REQUIRE(b.inputs.dtype() == DType::i64 && b.targets.dtype() == DType::i64);
    std::vector<int64_t> in = values(b.inputs), tg = values(b.targets);
    for (int64_t r = 0; r < B; ++r, ++drawn) {
      const int64_t start = in[size_t(r * T)];
      for (int64_t t = 0; t < T; ++t) {
        BOOST_CHECK_EQUAL(in[size_t(r * T + t)], start + t);
        BOOST_CHECK_EQUAL(tg[size_t(r * T + t)], start + t + 1);
      }
      BOOST_CHECK_EQUAL(start % T, 0);
      BOOST_CHECK_LT(start + T, 800);  // the last target is still a train token
      BOOST_CHECK_EQUAL(start, sampler.window_at(drawn / W, drawn % W) * T);
      order[size_t(drawn / W)].push_back(start / T);
    }
  }
  BOOST_CHECK((sampler.state() == SamplerState{2, 0}));
  std::vector<int64_t> every(static_cast<size_t>(W));
  std::iota(every.begin(), every.end(), 0);
  for (const auto& epoch : order) {
    std::vector<int64_t> sorted = epoch;
    std::sort(sorted.begin(), sorted.end());
    BOOST_CHECK(sorted == every);  // each window exactly once
    BOOST_CHECK(epoch != every);   // and shuffled
  }
  BOOST_CHECK(order[0] != order[1]);  // a new order each epoch

  // The validation split draws only validation tokens; without shuffling, in stream order.
  WindowSampler val(s.validation, {3, T, 42, false});
  BOOST_REQUIRE_EQUAL(val.windows_per_epoch(), 199 / T);
  for (int k = 0; k < 20; ++k) {
    std::vector<int64_t> in = values(val.next().inputs);
    for (int64_t r = 0; r < 3; ++r) {
      const int64_t window = (k * 3 + r) % val.windows_per_epoch();
      BOOST_CHECK_EQUAL(in[size_t(r * T)], 800 + window * T);
    }
  }
}

BOOST_AUTO_TEST_CASE(sampler_is_deterministic_and_resumes_exactly) {
  TokenSourcePtr src = tokens_source(as_tokens(random_bytes(5000)), 256);
  const SamplerOptions opt{4, 16, 1234};
  WindowSampler a(src, opt), b(src, opt), other(src, {4, 16, 1235});
  BOOST_REQUIRE_EQUAL(a.windows_per_epoch(), 312);
  bool differs = false;
  for (int k = 0; k < 10; ++k) {
    Batch x = a.next();
    BOOST_CHECK(same_batch(x, b.next()));
    differs = differs || !same_batch(x, other.next());
  }
  BOOST_CHECK(differs);

  // Take k batches, save the cursor, and a fresh sampler restored from it continues exactly as
  // the uninterrupted one does, across the end of the epoch (78 batches).
  WindowSampler run(src, opt);
  for (int k = 0; k < 7; ++k) run.next();
  const std::map<std::string, int64_t> saved = run.state().to_map("data.");
  BOOST_CHECK((saved == std::map<std::string, int64_t>{{"data.epoch", 0}, {"data.index", 28}}));
  WindowSampler resumed(src, opt);
  resumed.set_state(SamplerState::from_map(saved, "data."));
  for (int k = 0; k < 100; ++k) BOOST_REQUIRE_MESSAGE(same_batch(run.next(), resumed.next()), "batch " << 7 + k);
  BOOST_CHECK(run.state() == resumed.state());
  BOOST_CHECK_EQUAL(run.state().epoch, 1);

  check_error([&] { SamplerState::from_map({{"data.epoch", 1}}, "data."); }, {"[sampler]", "lacks", "'data.index'"});
  check_error([&] { SamplerState::from_map({{"epoch", -1}, {"index", 0}}); }, {"[sampler]", "'epoch' = -1"});
  check_error([&] { resumed.set_state({0, 312}); }, {"[sampler]", "index 312", "312 windows", "change since the checkpoint"});
  check_error([&] { WindowSampler(src, {0, 16, 0}); }, {"[sampler]", "batch", "0"});
  check_error([&] { WindowSampler(src, {1, 0, 0}); }, {"[sampler]", "seq_len", "0"});
}

BOOST_AUTO_TEST_CASE(sampler_permutes_tiny_and_odd_sized_epochs) {
  // The Feistel domain is a power of 4; epochs of other sizes must still be permutations.
  for (int64_t windows : {1, 2, 3, 5, 16, 17, 1000}) {
    WindowSampler s(positions(windows * 2 + 1), {1, 2, uint64_t(windows)});
    BOOST_REQUIRE_EQUAL(s.windows_per_epoch(), windows);
    for (int64_t epoch = 0; epoch < 3; ++epoch) {
      std::set<int64_t> seen;
      for (int64_t i = 0; i < windows; ++i) seen.insert(s.window_at(epoch, i));
      BOOST_CHECK_EQUAL(int64_t(seen.size()), windows);
      BOOST_CHECK(*seen.rbegin() == windows - 1);
    }
  }
}

// ---- prefetcher -----------------------------------------------------------------------------

namespace {

// Reads fail from the (ok + 1)-th on, as a disk that goes away would.
class FailingSource : public TokenSource {
 public:
  FailingSource(TokenSourcePtr inner, int ok) : inner_(std::move(inner)), ok_(ok) {}
  int64_t size() const override { return inner_->size(); }
  void read(int64_t offset, int64_t n, uint16_t* out) const override {
    if (reads_++ >= ok_) SPARTA_FAIL("test source", "disk on fire at read ", reads_.load());
    inner_->read(offset, n, out);
  }
  std::string describe() const override { return "failing source"; }
  int64_t vocab_size() const override { return inner_->vocab_size(); }

 private:
  TokenSourcePtr inner_;
  int ok_;
  mutable std::atomic<int> reads_{0};
};

}  // namespace

BOOST_AUTO_TEST_CASE(prefetcher_delivers_the_sampler_sequence_and_resumes_exactly) {
  TokenSourcePtr src = tokens_source(as_tokens(random_bytes(3000)), 256);
  const SamplerOptions opt{3, 10, 7};
  WindowSampler reference(src, opt);
  std::vector<Batch> want;
  std::vector<SamplerState> after;
  for (int k = 0; k < 40; ++k) {
    want.push_back(reference.next());
    after.push_back(reference.state());
  }

  for (int64_t depth : {1, 3, 8}) {
    SamplerState cursor;
    {
      Prefetcher p(WindowSampler(src, opt), depth);
      BOOST_CHECK(p.state() == SamplerState{});
      for (int k = 0; k < 15; ++k) BOOST_REQUIRE_MESSAGE(same_batch(p.next(), want[size_t(k)]), "batch " << k);
      // The worker has read ahead; the cursor is still that of the 15th batch handed out.
      cursor = p.state();
      BOOST_CHECK(cursor == after[14]);
    }
    WindowSampler restored(src, opt);
    restored.set_state(SamplerState::from_map(cursor.to_map()));
    Prefetcher p(std::move(restored), depth);
    for (int k = 15; k < 40; ++k) BOOST_REQUIRE_MESSAGE(same_batch(p.next(), want[size_t(k)]), "batch " << k);
    BOOST_CHECK(p.state() == after[39]);
  }

  // Destroyed while its worker waits on a full queue: returns instead of hanging.
  { Prefetcher idle(WindowSampler(src, opt), 2); }
  check_error([&] { Prefetcher(WindowSampler(src, opt), 0); }, {"[prefetch]", "depth", "0"});
}

BOOST_AUTO_TEST_CASE(prefetcher_rethrows_worker_errors) {
  auto failing = std::make_shared<FailingSource>(tokens_source(as_tokens(random_bytes(500)), 256), 4);
  WindowSampler reference(tokens_source(failing->read_all(), 256), {1, 8, 5});
  // read_all above used up one good read: three batches come through, then the error, every time.
  Prefetcher p(WindowSampler(failing, {1, 8, 5}), 2);
  for (int k = 0; k < 3; ++k) BOOST_CHECK(same_batch(p.next(), reference.next()));
  const SamplerState last = p.state();
  check_error([&] { p.next(); }, {"[test source]", "disk on fire at read 5"});
  check_error([&] { p.next(); }, {"[test source]", "disk on fire"});
  BOOST_CHECK(p.state() == last);  // the failed batch was never handed out
}

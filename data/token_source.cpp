#include "data/token_source.h"

#include <fnmatch.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "data/byte_tokenizer.h"
#include "data/shards.h"

namespace sparta::data {

namespace fs = std::filesystem;

std::vector<uint16_t> TokenSource::read_all() const {
  std::vector<uint16_t> out(static_cast<size_t>(size()));
  read(0, size(), out.data());
  return out;
}

Utf8Mode utf8_mode_from_name(const std::string& name) {
  if (name == "strict") return Utf8Mode::strict;
  if (name == "bytes") return Utf8Mode::bytes;
  SPARTA_FAIL("utf8", "unknown mode '", name, "'; expected strict or bytes");
}

const char* utf8_mode_name(Utf8Mode mode) { return mode == Utf8Mode::strict ? "strict" : "bytes"; }

namespace {

void check_range(const TokenSource& s, int64_t offset, int64_t n) {
  SPARTA_CHECK(offset >= 0 && n >= 0 && offset + n <= s.size(), "TokenSource", "tokens [", offset, ", ", offset + n,
               ") are outside the ", s.size(), " tokens of ", s.describe());
}

// The file offset of the first byte that is not valid UTF-8, or -1. Reads in chunks so that a
// large corpus is never held whole; a sequence cut by a chunk's end is carried into the next.
int64_t first_invalid_utf8(const ReadOnlyFile& f) {
  constexpr int64_t kChunk = int64_t(1) << 20;
  std::string buf;
  int64_t base = 0, next = 0;  // file offsets of buf[0] and of the next unread byte
  while (next < f.size()) {
    const int64_t n = std::min(kChunk, f.size() - next);
    const size_t kept = buf.size();
    buf.resize(kept + size_t(n));
    f.read_at(next, n, buf.data() + kept);
    next += n;
    const int64_t bad = ByteTokenizer::first_invalid_utf8(buf);
    if (bad < 0) {
      base += int64_t(buf.size());
      buf.clear();
    } else if (next < f.size() && bad + 4 > int64_t(buf.size())) {
      // Possibly a valid sequence of up to 4 bytes that continues in the next chunk.
      buf.erase(0, size_t(bad));
      base += bad;
    } else {
      return base + bad;
    }
  }
  return -1;
}

class TextFileSource : public TokenSource {
 public:
  TextFileSource(const std::string& path, Utf8Mode mode) : file_(path, "text file") {
    if (mode == Utf8Mode::strict) {
      const int64_t bad = first_invalid_utf8(file_);
      SPARTA_CHECK(bad < 0, "text file", "'", path, "' is not valid UTF-8 at byte offset ", bad,
                   " (utf8: bytes reads any file as raw bytes)");
    }
  }
  int64_t size() const override { return file_.size(); }
  void read(int64_t offset, int64_t n, uint16_t* out) const override {
    check_range(*this, offset, n);
    std::string bytes(size_t(n), '\0');
    file_.read_at(offset, n, bytes.data());
    const std::vector<uint16_t> tokens = ByteTokenizer::encode(bytes);
    std::copy(tokens.begin(), tokens.end(), out);
  }
  std::string describe() const override { return "text file '" + file_.path() + "'"; }
  int64_t vocab_size() const override { return ByteTokenizer::kVocabSize; }

 private:
  ReadOnlyFile file_;
};

class ShardSource : public TokenSource {
 public:
  explicit ShardSource(const std::string& path) : reader_(path) {}
  int64_t size() const override { return reader_.size(); }
  void read(int64_t offset, int64_t n, uint16_t* out) const override {
    check_range(*this, offset, n);
    reader_.read(offset, n, out);
  }
  std::string describe() const override { return "shard '" + reader_.path() + "'"; }
  int64_t vocab_size() const override { return reader_.vocab_size(); }

 private:
  ShardReader reader_;
};

class MemorySource : public TokenSource {
 public:
  MemorySource(std::vector<uint16_t> tokens, int64_t vocab, std::string name)
      : tokens_(std::move(tokens)), vocab_(vocab), name_(std::move(name)) {
    SPARTA_CHECK(vocab_ >= 1 && vocab_ <= 65536, "TokenSource", name_, ": vocabulary size ", vocab_,
                 " does not fit uint16 tokens (1..65536)");
    for (size_t i = 0; i < tokens_.size(); ++i) {
      SPARTA_CHECK(tokens_[i] < vocab_, "TokenSource", name_, ": token ", tokens_[i], " at index ", i,
                   " is >= the vocabulary size ", vocab_);
    }
  }
  int64_t size() const override { return int64_t(tokens_.size()); }
  void read(int64_t offset, int64_t n, uint16_t* out) const override {
    check_range(*this, offset, n);
    std::copy_n(tokens_.begin() + offset, n, out);
  }
  std::string describe() const override { return name_; }
  int64_t vocab_size() const override { return vocab_; }

 private:
  std::vector<uint16_t> tokens_;
  int64_t vocab_;
  std::string name_;
};

class ConcatSource : public TokenSource {
 public:
  ConcatSource(std::vector<TokenSourcePtr> parts, std::string description)
      : parts_(std::move(parts)), description_(std::move(description)) {
    SPARTA_CHECK(!parts_.empty(), "TokenSource", description_, ": nothing to concatenate");
    for (const auto& p : parts_) {
      SPARTA_CHECK(p->vocab_size() == parts_[0]->vocab_size(), "TokenSource", description_, ": ", p->describe(),
                   " has vocabulary size ", p->vocab_size(), " but ", parts_[0]->describe(), " has ",
                   parts_[0]->vocab_size());
      starts_.push_back(size_);
      size_ += p->size();
    }
  }
  int64_t size() const override { return size_; }
  void read(int64_t offset, int64_t n, uint16_t* out) const override {
    check_range(*this, offset, n);
    while (n > 0) {
      // The last part starting at or before offset; empty parts share their start with the next.
      const size_t i = size_t(std::upper_bound(starts_.begin(), starts_.end(), offset) - starts_.begin()) - 1;
      const int64_t local = offset - starts_[i];
      const int64_t take = std::min(n, parts_[i]->size() - local);
      parts_[i]->read(local, take, out);
      offset += take;
      out += take;
      n -= take;
    }
  }
  std::string describe() const override { return description_; }
  int64_t vocab_size() const override { return parts_[0]->vocab_size(); }

 private:
  std::vector<TokenSourcePtr> parts_;
  std::vector<int64_t> starts_;
  int64_t size_ = 0;
  std::string description_;
};

void check_pattern(const std::string& dir, const std::string& pattern) {
  auto bad = [&](const std::string& why) { SPARTA_FAIL("glob", "bad pattern '", pattern, "' for '", dir, "': ", why); };
  if (pattern.empty()) bad("it is empty");
  if (pattern.find('/') != std::string::npos) bad("it matches file names, so it cannot contain '/'");
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\') {
      if (++i == pattern.size()) bad("it ends with a lone '\\'");
    } else if (pattern[i] == '[') {
      // As fnmatch reads a bracket: a ']' right after '[' or '[!' is a member, not the end.
      size_t j = i + 1;
      if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) ++j;
      if (j < pattern.size() && pattern[j] == ']') ++j;
      while (j < pattern.size() && pattern[j] != ']') ++j;
      if (j == pattern.size()) bad("the '[' at position " + std::to_string(i) + " is never closed");
      i = j;
    }
  }
}

std::string matching_description(const char* kind, const std::string& dir, const std::string& pattern, size_t n) {
  return std::to_string(n) + " " + kind + " matching '" + pattern + "' in '" + dir + "'";
}

}  // namespace

std::vector<std::string> list_matching(const std::string& dir, const std::string& pattern) {
  check_pattern(dir, pattern);
  std::error_code ec;
  SPARTA_CHECK(fs::is_directory(dir, ec), "glob", "'", dir, "' ",
               fs::exists(dir, ec) ? "is not a directory" : "does not exist", " (looking for '", pattern, "')");
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    // FNM_PERIOD: like a shell, '*' does not pick up hidden files (editor swap files, temporaries).
    if (e.is_regular_file() && ::fnmatch(pattern.c_str(), name.c_str(), FNM_PERIOD) == 0) names.push_back(name);
  }
  SPARTA_CHECK(!ec, "glob", "cannot list '", dir, "': ", ec.message());
  SPARTA_CHECK(!names.empty(), "glob", "no file in '", dir, "' matches '", pattern, "'");
  std::sort(names.begin(), names.end());
  std::vector<std::string> paths;
  for (const std::string& n : names) paths.push_back((fs::path(dir) / n).string());
  return paths;
}

TokenSourcePtr open_text_file(const std::string& path, Utf8Mode mode) {
  return std::make_shared<TextFileSource>(path, mode);
}

TokenSourcePtr open_text_dir(const std::string& dir, const std::string& pattern, Utf8Mode mode) {
  std::vector<TokenSourcePtr> parts;
  for (const std::string& p : list_matching(dir, pattern)) parts.push_back(open_text_file(p, mode));
  const size_t n = parts.size();
  return concat_sources(std::move(parts), matching_description("text files", dir, pattern, n));
}

TokenSourcePtr open_shard(const std::string& path) { return std::make_shared<ShardSource>(path); }

TokenSourcePtr open_shards(const std::string& dir, const std::string& pattern) {
  std::vector<TokenSourcePtr> parts;
  for (const std::string& p : list_matching(dir, pattern)) parts.push_back(open_shard(p));
  const size_t n = parts.size();
  return concat_sources(std::move(parts), matching_description("shards", dir, pattern, n));
}

TokenSourcePtr tokens_source(std::vector<uint16_t> tokens, int64_t vocab_size, std::string name) {
  return std::make_shared<MemorySource>(std::move(tokens), vocab_size, std::move(name));
}

TokenSourcePtr concat_sources(std::vector<TokenSourcePtr> parts, std::string description) {
  return std::make_shared<ConcatSource>(std::move(parts), std::move(description));
}

}  // namespace sparta::data

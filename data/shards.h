#pragma once
// Token shards: pre-tokenised corpora on disk, one file per shard.
//
// Note [shard format]: a 16-byte header, then the tokens.
//   bytes 0..3    magic "SPTK"
//   bytes 4..7    uint32 little-endian format version (1)
//   bytes 8..11   uint32 little-endian vocabulary size (1..65536); every token is below it
//   bytes 12..15  uint32 reserved, 0
//   bytes 16..    uint16 little-endian tokens; their count is (file size - 16) / 2
// The token count is not stored, so that a shard can be written by streaming; a file whose token
// area has an odd number of bytes is therefore known to be truncated. Tokens are checked against
// the vocabulary as they are read, not at open, so that opening a large corpus stays cheap.
#include <cstdint>
#include <string>
#include <vector>

#include "data/token_source.h"

namespace sparta::data {

constexpr int64_t kShardHeaderBytes = 16;
constexpr uint32_t kShardVersion = 1;

// A read-only file read with pread(), so that one handle serves several threads at once (Note
// [TokenSource threads]). Errors name `what` and the path.
class ReadOnlyFile {
 public:
  ReadOnlyFile(const std::string& path, std::string what);
  ~ReadOnlyFile();
  ReadOnlyFile(const ReadOnlyFile&) = delete;
  ReadOnlyFile& operator=(const ReadOnlyFile&) = delete;

  int64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Exactly n bytes from offset; a short read (the file shrank since it was opened) throws.
  void read_at(int64_t offset, int64_t n, void* out) const;

 private:
  std::string path_, what_;
  int fd_ = -1;
  int64_t size_ = 0;
};

class ShardReader {
 public:
  // Checks the header and the length; errors name the file.
  explicit ShardReader(const std::string& path);
  int64_t size() const { return size_; }
  int64_t vocab_size() const { return vocab_; }
  const std::string& path() const { return file_.path(); }
  // Tokens [offset, offset + n); a token >= vocab_size() throws naming the file and its index.
  void read(int64_t offset, int64_t n, uint16_t* out) const;

 private:
  ReadOnlyFile file_;
  int64_t size_ = 0, vocab_ = 0;
};

std::vector<uint16_t> read_shard(const std::string& path);

// Writes a shard atomically: a temporary file beside `path`, fsync, then rename, so that `path`
// holds either its old contents or the complete new shard. Tokens are checked against vocab_size
// before anything is written.
void write_shard(const std::string& path, const std::vector<uint16_t>& tokens, int64_t vocab_size);

// Copies a source into shards of tokens_per_shard tokens (the last one may be shorter) named
// <out_dir>/<prefix>_000000.sptk, ... so that sorting by name keeps their order; creates out_dir.
// Returns the paths written.
std::vector<std::string> write_shards(const TokenSource& source, const std::string& out_dir, int64_t tokens_per_shard,
                                      const std::string& prefix = "shard");
// The same for a text file through the byte tokenizer.
std::vector<std::string> tokenize_text_to_shards(const std::string& text_path, const std::string& out_dir,
                                                 int64_t tokens_per_shard, Utf8Mode mode = Utf8Mode::strict,
                                                 const std::string& prefix = "shard");

}  // namespace sparta::data

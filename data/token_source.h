#pragma once
// Where training tokens come from: a flat, random-access stream of uint16 token ids, whatever the
// files behind it (one text file, a directory of them, or pre-tokenised shards). The sampler and
// the train/validation split see only this interface.
//
// Note [TokenSource threads]: read() is const and must be safe to call from several threads at
// once (the prefetch worker of the training split and the evaluation loop of the validation split
// read the same files). The file-backed sources read with pread(), which keeps no file position.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sparta::data {

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // Number of tokens in the stream.
  virtual int64_t size() const = 0;
  // Copies tokens [offset, offset + n) into out; throws, naming the source, when the range is
  // not inside [0, size()) or the files behind it turn out to be unreadable or corrupt.
  virtual void read(int64_t offset, int64_t n, uint16_t* out) const = 0;
  // A phrase naming the source for error messages: "text file 'corpus/a.txt'".
  virtual std::string describe() const = 0;
  // Every token is below this.
  virtual int64_t vocab_size() const = 0;

  std::vector<uint16_t> read_all() const;
};

using TokenSourcePtr = std::shared_ptr<const TokenSource>;

// How text files are checked: strict rejects a file that is not valid UTF-8 (naming the file and
// the byte offset), because a corpus that is meant to be text and is not usually means a wrong
// file or a wrong encoding; bytes takes any file as raw bytes.
enum class Utf8Mode { strict, bytes };
Utf8Mode utf8_mode_from_name(const std::string& name);  // "strict" | "bytes"
const char* utf8_mode_name(Utf8Mode mode);

// One text file, one token per byte (ByteTokenizer). Strict mode reads the whole file once at
// open to validate it.
TokenSourcePtr open_text_file(const std::string& path, Utf8Mode mode = Utf8Mode::strict);
// The regular files in `dir` (not its subdirectories) whose names match the fnmatch `pattern`,
// sorted by name and concatenated with nothing between them.
TokenSourcePtr open_text_dir(const std::string& dir, const std::string& pattern, Utf8Mode mode = Utf8Mode::strict);
// One token shard (data/shards.h), or the shards in `dir` matching `pattern`, sorted by name and
// concatenated; all of them must declare the same vocabulary size.
TokenSourcePtr open_shard(const std::string& path);
TokenSourcePtr open_shards(const std::string& dir, const std::string& pattern = "*.sptk");
// Tokens held in memory (tests, small corpora); every token must be below vocab_size.
TokenSourcePtr tokens_source(std::vector<uint16_t> tokens, int64_t vocab_size, std::string name = "tokens in memory");
// The parts one after another; they must share one vocabulary size.
TokenSourcePtr concat_sources(std::vector<TokenSourcePtr> parts, std::string description);

// The paths of the regular files in `dir` whose names match `pattern`, sorted by name. Errors
// name the directory and the pattern: a missing directory, a malformed pattern (empty, containing
// '/', an unclosed '['), or no match at all.
std::vector<std::string> list_matching(const std::string& dir, const std::string& pattern);

}  // namespace sparta::data

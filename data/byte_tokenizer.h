#pragma once
// The byte-level tokenizer: every byte is a token (vocabulary 256), so any UTF-8 text, or any byte
// string at all, round-trips exactly. Token ids are uint16 to share the shard format with larger
// vocabularies.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sparta::data {

struct ByteTokenizer {
  static constexpr int64_t kVocabSize = 256;
  static std::vector<uint16_t> encode(std::string_view text);
  // Throws naming the first token that is not a byte.
  static std::string decode(const std::vector<uint16_t>& tokens);
  // The offset of the first byte that is not valid UTF-8, or -1 when the whole text is valid.
  static int64_t first_invalid_utf8(std::string_view text);
};

}  // namespace sparta::data

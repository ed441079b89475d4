#include "data/shards.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace sparta::data {

namespace fs = std::filesystem;

// ---- ReadOnlyFile ---------------------------------------------------------------------------

ReadOnlyFile::ReadOnlyFile(const std::string& path, std::string what) : path_(path), what_(std::move(what)) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  SPARTA_CHECK(fd_ >= 0, what_, "cannot open '", path, "': ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    const bool is_dir = S_ISDIR(st.st_mode);
    ::close(fd_);
    fd_ = -1;
    SPARTA_FAIL(what_, "'", path, "' is ", is_dir ? "a directory" : "not a regular file");
  }
  size_ = int64_t(st.st_size);
}

ReadOnlyFile::~ReadOnlyFile() {
  if (fd_ >= 0) ::close(fd_);
}

void ReadOnlyFile::read_at(int64_t offset, int64_t n, void* out) const {
  char* dst = static_cast<char*>(out);
  while (n > 0) {
    const ssize_t got = ::pread(fd_, dst, size_t(n), off_t(offset));
    if (got < 0 && errno == EINTR) continue;
    SPARTA_CHECK(got >= 0, what_, "cannot read '", path_, "' at byte ", offset, ": ", std::strerror(errno));
    SPARTA_CHECK(got > 0, what_, "'", path_, "' ended at byte ", offset, " while ", n,
                 " more bytes were expected (was it truncated after it was opened?)");
    dst += got;
    offset += got;
    n -= got;
  }
}

// ---- the format -----------------------------------------------------------------------------

namespace {

uint32_t load_u32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

void store_u32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

void check_vocab(int64_t vocab, const std::string& path) {
  SPARTA_CHECK(vocab >= 1 && vocab <= 65536, "shard", "'", path, "': vocabulary size ", vocab,
               " does not fit uint16 tokens (1..65536)");
}

}  // namespace

ShardReader::ShardReader(const std::string& path) : file_(path, "shard") {
  SPARTA_CHECK(file_.size() >= kShardHeaderBytes, "shard", "'", path, "' is truncated: ", file_.size(),
               " bytes, shorter than the ", kShardHeaderBytes, "-byte header");
  unsigned char h[kShardHeaderBytes];
  file_.read_at(0, kShardHeaderBytes, h);
  SPARTA_CHECK(std::memcmp(h, "SPTK", 4) == 0, "shard", "'", path, "' is not a token shard (bad magic; expected 'SPTK')");
  const uint32_t version = load_u32(h + 4);
  SPARTA_CHECK(version == kShardVersion, "shard", "'", path, "' has format version ", version, "; this build reads ",
               kShardVersion);
  vocab_ = load_u32(h + 8);
  check_vocab(vocab_, path);
  SPARTA_CHECK(load_u32(h + 12) == 0, "shard", "'", path, "' is corrupt: reserved header field is ", load_u32(h + 12),
               ", expected 0");
  const int64_t body = file_.size() - kShardHeaderBytes;
  SPARTA_CHECK(body % 2 == 0, "shard", "'", path, "' is truncated or corrupt: ", body,
               " bytes of tokens is an odd count for uint16 tokens");
  size_ = body / 2;
}

void ShardReader::read(int64_t offset, int64_t n, uint16_t* out) const {
  SPARTA_CHECK(offset >= 0 && n >= 0 && offset + n <= size_, "shard", "'", path(), "': tokens [", offset, ", ",
               offset + n, ") are outside its ", size_, " tokens");
  // Decoded byte by byte so that the format stays little-endian on any host.
  std::vector<unsigned char> raw(size_t(2 * n));
  file_.read_at(kShardHeaderBytes + 2 * offset, 2 * n, raw.data());
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t t = uint16_t(raw[size_t(2 * i)] | raw[size_t(2 * i + 1)] << 8);
    SPARTA_CHECK(t < vocab_, "shard", "'", path(), "' is corrupt: token ", t, " at index ", offset + i,
                 " is >= its vocabulary size ", vocab_);
    out[i] = t;
  }
}

std::vector<uint16_t> read_shard(const std::string& path) {
  ShardReader r(path);
  std::vector<uint16_t> out(size_t(r.size()));
  r.read(0, r.size(), out.data());
  return out;
}

// ---- writing --------------------------------------------------------------------------------

namespace {

// Unique among the threads and processes that may write beside the same path.
std::string temp_path_for(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

void fsync_dir_of(const std::string& path) {
  // Makes the rename itself durable; where the directory cannot be opened the rename still stands.
  fs::path dir = fs::path(path).parent_path();
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void write_shard(const std::string& path, const std::vector<uint16_t>& tokens, int64_t vocab_size) {
  check_vocab(vocab_size, path);
  for (size_t i = 0; i < tokens.size(); ++i) {
    SPARTA_CHECK(tokens[i] < vocab_size, "write_shard", "'", path, "': token ", tokens[i], " at index ", i,
                 " is >= the vocabulary size ", vocab_size, "; nothing was written");
  }
  std::vector<unsigned char> bytes(size_t(kShardHeaderBytes) + 2 * tokens.size());
  std::memcpy(bytes.data(), "SPTK", 4);
  store_u32(bytes.data() + 4, kShardVersion);
  store_u32(bytes.data() + 8, uint32_t(vocab_size));
  store_u32(bytes.data() + 12, 0);
  unsigned char* p = bytes.data() + kShardHeaderBytes;
  for (size_t i = 0; i < tokens.size(); ++i) {
    p[2 * i] = static_cast<unsigned char>(tokens[i]);
    p[2 * i + 1] = static_cast<unsigned char>(tokens[i] >> 8);
  }

  const std::string tmp = temp_path_for(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  SPARTA_CHECK(fd >= 0, "write_shard", "cannot create '", tmp, "' for '", path, "': ", std::strerror(errno));
  auto fail = [&](const char* step) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    SPARTA_FAIL("write_shard", "cannot ", step, " '", path, "': ", why, "; it was left as it was");
  };
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t put = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) fail("write");
    done += size_t(put);
  }
  if (::fsync(fd) != 0) fail("fsync");
  if (::close(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    SPARTA_FAIL("write_shard", "cannot close '", tmp, "': ", why, "; '", path, "' was left as it was");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    SPARTA_FAIL("write_shard", "cannot rename '", tmp, "' to '", path, "': ", why);
  }
  fsync_dir_of(path);
}

std::vector<std::string> write_shards(const TokenSource& source, const std::string& out_dir, int64_t tokens_per_shard,
                                      const std::string& prefix) {
  SPARTA_CHECK(tokens_per_shard > 0, "write_shards", "tokens_per_shard must be positive, got ", tokens_per_shard);
  SPARTA_CHECK(source.size() > 0, "write_shards", source.describe(), " has no tokens; no shards were written");
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  SPARTA_CHECK(!ec && fs::is_directory(out_dir), "write_shards", "cannot create directory '", out_dir,
               "': ", ec ? ec.message() : "a file of that name exists");
  std::vector<std::string> paths;
  std::vector<uint16_t> buf;
  for (int64_t begin = 0, i = 0; begin < source.size(); begin += tokens_per_shard, ++i) {
    const int64_t n = std::min(tokens_per_shard, source.size() - begin);
    buf.resize(size_t(n));
    source.read(begin, n, buf.data());
    char name[32];
    std::snprintf(name, sizeof(name), "_%06lld.sptk", static_cast<long long>(i));
    paths.push_back((fs::path(out_dir) / (prefix + name)).string());
    write_shard(paths.back(), buf, source.vocab_size());
  }
  return paths;
}

std::vector<std::string> tokenize_text_to_shards(const std::string& text_path, const std::string& out_dir,
                                                 int64_t tokens_per_shard, Utf8Mode mode, const std::string& prefix) {
  return write_shards(*open_text_file(text_path, mode), out_dir, tokens_per_shard, prefix);
}

}  // namespace sparta::data

#include "train/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <system_error>

#include "core/error.h"

namespace sparta::train {

namespace {

const std::array<uint32_t, 256>& crc32c_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

// Protobuf wire format, just what Event needs: varints (wire type 0), fixed64 (1), length-delimited (2),
// fixed32 (5). Fixed-width values are little-endian whatever the host.
struct ProtoWriter {
  std::string out;

  void varint(uint64_t v) {
    while (v >= 0x80) {
      out.push_back(char(uint8_t(v) | 0x80));
      v >>= 7;
    }
    out.push_back(char(v));
  }
  void key(int field, int wire_type) { varint(uint64_t(field) << 3 | uint64_t(wire_type)); }
  void fixed(uint64_t bits, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(char(uint8_t(bits >> (8 * i))));
  }
  void int_field(int field, int64_t v) {
    key(field, 0);
    varint(uint64_t(v));  // negative int64 takes ten bytes, as protobuf encodes it
  }
  void double_field(int field, double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    key(field, 1);
    fixed(bits, 8);
  }
  void float_field(int field, float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    key(field, 5);
    fixed(bits, 4);
  }
  void bytes_field(int field, std::string_view s) {
    key(field, 2);
    varint(s.size());
    out.append(s.data(), s.size());
  }
};

// Event field numbers (tensorboard/compat/proto/event.proto, summary.proto, tensor.proto).
enum : int {
  kEventWallTime = 1,
  kEventStep = 2,
  kEventFileVersion = 3,
  kEventSummary = 5,
  kEventSessionLog = 7,
  kSummaryValue = 1,
  kValueTag = 1,
  kValueSimpleValue = 2,
  kValueTensor = 8,
  kValueMetadata = 9,
  kMetadataPluginData = 1,
  kMetadataDataClass = 4,
  kPluginName = 1,
  kTensorDtype = 1,
  kTensorShape = 2,
  kTensorStringVal = 8,
  kSessionLogStatus = 1,
};
constexpr int64_t kDataClassTensor = 2;
constexpr int64_t kDtypeString = 7;
constexpr int64_t kSessionStart = 1;

// Event{wall_time, step, <what>}: `what` is an already encoded field of the `what` oneof.
std::string event(double wall_time, int64_t step, const std::string& what) {
  ProtoWriter e;
  e.double_field(kEventWallTime, wall_time);
  if (step != 0) e.int_field(kEventStep, step);  // proto3 leaves defaults out
  e.out += what;
  return e.out;
}

std::string scalar_value(const std::string& tag, double value) {
  ProtoWriter v;
  v.bytes_field(kValueTag, tag);
  v.float_field(kValueSimpleValue, float(value));
  return v.out;
}

std::string hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == 0) return "localhost";
  return buf;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const auto& table = crc32c_table();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

std::string tfrecord_frame(std::string_view data) {
  ProtoWriter r;
  r.fixed(data.size(), 8);
  r.fixed(mask_crc(crc32c(r.out)), 4);
  r.out.append(data.data(), data.size());
  r.fixed(mask_crc(crc32c(data)), 4);
  return r.out;
}

double wall_clock_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

EventWriter::EventWriter(const std::string& dir, int64_t resume_step) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  SPARTA_CHECK(!ec, "tensorboard", "cannot create directory '", dir, "': ", ec.message());
  const std::string stem = dir + "/events.out.tfevents." + std::to_string(std::time(nullptr)) + "." + hostname() +
                           "." + std::to_string(getpid()) + ".sparta";
  // Exclusive creation: two writers started in the same second by one process (a test, a restart
  // inside one daemon job) must not share a file, since each record stream must stay whole.
  for (int n = 0; n < 1000 && !file_; ++n) {
    std::string candidate = n == 0 ? stem : stem + "." + std::to_string(n);
    int fd = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST) continue;
    SPARTA_CHECK(fd >= 0, "tensorboard", "cannot create '", candidate, "': ", std::strerror(errno));
    file_.reset(::fdopen(fd, "wb"));
    if (!file_) {
      int err = errno;
      ::close(fd);
      SPARTA_FAIL("tensorboard", "cannot open '", candidate, "': ", std::strerror(err));
    }
    path_ = candidate;
  }
  SPARTA_CHECK(file_, "tensorboard", "no free event file name in '", dir, "' after ", stem);

  const double now = wall_clock_now();
  ProtoWriter version;
  version.bytes_field(kEventFileVersion, "brain.Event:2");
  write_event(event(now, 0, version.out));
  if (resume_step >= 0) {
    ProtoWriter status;
    status.int_field(kSessionLogStatus, kSessionStart);
    ProtoWriter log;
    log.bytes_field(kEventSessionLog, status.out);
    write_event(event(now, resume_step + 1, log.out));
  }
  flush();
}

void EventWriter::add_scalar(const std::string& tag, int64_t step, double value, double wall_time) {
  ProtoWriter summary;
  summary.bytes_field(kSummaryValue, scalar_value(tag, value));
  ProtoWriter what;
  what.bytes_field(kEventSummary, summary.out);
  write_event(event(wall_time, step, what.out));
}

void EventWriter::add_scalars(int64_t step, const std::map<std::string, double>& values, double wall_time) {
  ProtoWriter summary;
  for (const auto& [tag, value] : values) summary.bytes_field(kSummaryValue, scalar_value(tag, value));
  ProtoWriter what;
  what.bytes_field(kEventSummary, summary.out);
  write_event(event(wall_time, step, what.out));
  flush();
}

void EventWriter::add_text(const std::string& tag, int64_t step, const std::string& text, double wall_time) {
  // The text plugin reads a rank-0 DT_STRING tensor from values whose metadata names it.
  ProtoWriter plugin;
  plugin.bytes_field(kPluginName, "text");
  ProtoWriter metadata;
  metadata.bytes_field(kMetadataPluginData, plugin.out);
  metadata.int_field(kMetadataDataClass, kDataClassTensor);
  ProtoWriter tensor;
  tensor.int_field(kTensorDtype, kDtypeString);
  tensor.bytes_field(kTensorShape, "");
  tensor.bytes_field(kTensorStringVal, text);
  ProtoWriter value;
  value.bytes_field(kValueTag, tag);
  value.bytes_field(kValueMetadata, metadata.out);
  value.bytes_field(kValueTensor, tensor.out);
  ProtoWriter summary;
  summary.bytes_field(kSummaryValue, value.out);
  ProtoWriter what;
  what.bytes_field(kEventSummary, summary.out);
  write_event(event(wall_time, step, what.out));
  flush();
}

void EventWriter::flush() {
  SPARTA_CHECK(file_, "tensorboard", "flush on a closed event writer");
  SPARTA_CHECK(std::fflush(file_.get()) == 0, "tensorboard", "cannot write '", path_, "': ", std::strerror(errno));
}

void EventWriter::write_event(const std::string& event) {
  SPARTA_CHECK(file_, "tensorboard", "write on a closed event writer");
  const std::string record = tfrecord_frame(event);
  SPARTA_CHECK(std::fwrite(record.data(), 1, record.size(), file_.get()) == record.size(), "tensorboard",
               "cannot write '", path_, "': ", std::strerror(errno));
}

}  // namespace sparta::train

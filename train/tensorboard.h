#pragma once
// TensorBoard event files written directly, without TensorFlow or protobuf.
//
// An event file is a sequence of TFRecords, each framing one serialized `tensorboard.Event`:
//   uint64 length (little-endian) | uint32 masked crc32c(length bytes) | data | uint32 masked crc32c(data)
// The first event carries file_version "brain.Event:2"; later ones carry a Summary of scalar values
// (Summary.Value{tag = 1, simple_value = 2}), a text tensor for the text plugin, or a SessionLog.
// The writer flushes to the OS after every call that ends a logged step, so a TensorBoard watching
// the directory sees each step as it happens.
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace sparta::train {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), continuing from `crc` (0 to start).
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
inline uint32_t crc32c(std::string_view bytes) { return crc32c(bytes.data(), bytes.size()); }
// TFRecord stores CRCs rotated and offset, so that a CRC over data that embeds CRCs stays strong.
inline uint32_t mask_crc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

// `data` framed as one TFRecord.
std::string tfrecord_frame(std::string_view data);

// Seconds since the Unix epoch, with sub-second precision (TensorBoard's wall_time).
double wall_clock_now();

class EventWriter {
 public:
  // Creates `dir` if missing and opens events.out.tfevents.<unix seconds>.<hostname>.<pid>.sparta in it
  // (".sparta.<n>" when that name is taken), writing the file_version event. With `resume_step` >= 0,
  // a SessionLog START at resume_step + 1 follows: TensorBoard then drops the events of earlier files
  // whose step is greater than resume_step, which a crashed run logged after its last checkpoint.
  explicit EventWriter(const std::string& dir, int64_t resume_step = -1);
  EventWriter(EventWriter&&) noexcept = default;
  EventWriter& operator=(EventWriter&&) noexcept = default;
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  const std::string& path() const { return path_; }

  // One event holding one scalar (stored as float32, as TensorBoard does). Not flushed: call flush()
  // once the step's values are all written.
  void add_scalar(const std::string& tag, int64_t step, double value, double wall_time = wall_clock_now());
  // One event holding all of a step's scalars, then flush().
  void add_scalars(int64_t step, const std::map<std::string, double>& values, double wall_time = wall_clock_now());
  // Text shown by TensorBoard's text plugin (markdown), e.g. the resolved config. Flushed.
  void add_text(const std::string& tag, int64_t step, const std::string& text, double wall_time = wall_clock_now());
  // Hands buffered records to the OS (not fsync: a reader on the same machine sees them).
  void flush();

 private:
  struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  void write_event(const std::string& event);

  std::string path_;
  std::unique_ptr<std::FILE, FileCloser> file_;
};

}  // namespace sparta::train

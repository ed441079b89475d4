// The trainer's metrics sinks: TensorBoard event files read back by a reader written here from the
// format's definition (its own bitwise CRC-32C and protobuf decoding, and TensorBoard's own
// EventAccumulator when the tensorboard Python package is installed), metrics.jsonl appends, resume
// truncation and torn lines, and the console progress line.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "tests/support.h"
#include "tests/temp_dir.h"
#include "train/metrics.h"
#include "train/progress.h"
#include "train/tensorboard.h"

using namespace sparta;
using namespace sparta::train;
using namespace sparta::test;
namespace fs = std::filesystem;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(in, "cannot read " << path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// --- An independent event-file reader -----------------------------------------------------------

// CRC-32C bit by bit, straight from the definition (no table), to check the library's table version.
uint32_t reference_crc32c(std::string_view bytes) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}
uint32_t reference_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

uint64_t little_endian(std::string_view bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes.size(); ++i) v |= uint64_t(uint8_t(bytes[i])) << (8 * i);
  return v;
}

struct ProtoField {
  int number;
  int wire_type;
  uint64_t value;     // varint, fixed32 or fixed64
  std::string bytes;  // length-delimited
};

std::vector<ProtoField> decode_proto(std::string_view msg) {
  std::vector<ProtoField> fields;
  size_t i = 0;
  auto varint = [&] {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      BOOST_REQUIRE_MESSAGE(i < msg.size() && shift < 64, "truncated varint");
      uint8_t b = uint8_t(msg[i++]);
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (i < msg.size()) {
    uint64_t key = varint();
    ProtoField f{int(key >> 3), int(key & 7), 0, {}};
    if (f.wire_type == 0) {
      f.value = varint();
    } else if (f.wire_type == 1 || f.wire_type == 5) {
      size_t n = f.wire_type == 1 ? 8 : 4;
      BOOST_REQUIRE(i + n <= msg.size());
      f.value = little_endian(msg.substr(i, n));
      i += n;
    } else {
      BOOST_REQUIRE_MESSAGE(f.wire_type == 2, "unexpected wire type " << f.wire_type);
      uint64_t n = varint();
      BOOST_REQUIRE(i + n <= msg.size());
      f.bytes = std::string(msg.substr(i, n));
      i += n;
    }
    fields.push_back(std::move(f));
  }
  return fields;
}

struct ReadEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::optional<std::string> file_version;
  std::optional<int> session_status;
  std::vector<std::pair<std::string, float>> scalars;
  std::vector<std::pair<std::string, std::string>> texts;  // tag, string of a text-plugin tensor
};

ReadEvent decode_event(std::string_view data) {
  ReadEvent e;
  for (const ProtoField& f : decode_proto(data)) {
    if (f.number == 1) {
      BOOST_REQUIRE_EQUAL(f.wire_type, 1);
      std::memcpy(&e.wall_time, &f.value, 8);
    } else if (f.number == 2) {
      BOOST_REQUIRE_EQUAL(f.wire_type, 0);
      e.step = int64_t(f.value);
    } else if (f.number == 3) {
      e.file_version = f.bytes;
    } else if (f.number == 7) {
      for (const ProtoField& s : decode_proto(f.bytes))
        if (s.number == 1) e.session_status = int(s.value);
    } else if (f.number == 5) {
      for (const ProtoField& v : decode_proto(f.bytes)) {
        BOOST_REQUIRE_EQUAL(v.number, 1);  // Summary.value
        std::string tag, plugin, text;
        std::optional<float> simple;
        for (const ProtoField& g : decode_proto(v.bytes)) {
          if (g.number == 1) tag = g.bytes;
          if (g.number == 2) {
            BOOST_REQUIRE_EQUAL(g.wire_type, 5);
            uint32_t bits = uint32_t(g.value);
            float x;
            std::memcpy(&x, &bits, 4);
            simple = x;
          }
          if (g.number == 9)  // metadata.plugin_data.plugin_name
            for (const ProtoField& m : decode_proto(g.bytes))
              if (m.number == 1)
                for (const ProtoField& p : decode_proto(m.bytes))
                  if (p.number == 1) plugin = p.bytes;
          if (g.number == 8)  // TensorProto: dtype 7 (DT_STRING), string_val
            for (const ProtoField& t : decode_proto(g.bytes)) {
              if (t.number == 1) BOOST_CHECK_EQUAL(t.value, 7u);
              if (t.number == 8) text = t.bytes;
            }
        }
        if (simple) e.scalars.emplace_back(tag, *simple);
        else {
          BOOST_CHECK_EQUAL(plugin, "text");
          e.texts.emplace_back(tag, text);
        }
      }
    } else {
      BOOST_ERROR("unexpected Event field " << f.number);
    }
  }
  return e;
}

std::vector<ReadEvent> read_event_file(const std::string& path) {
  std::string content = read_file(path);
  std::string_view s = content;
  std::vector<ReadEvent> events;
  size_t i = 0;
  while (i < s.size()) {
    BOOST_REQUIRE_MESSAGE(i + 12 <= s.size(), "torn record header at byte " << i);
    std::string_view len_bytes = s.substr(i, 8);
    BOOST_REQUIRE_EQUAL(little_endian(s.substr(i + 8, 4)), reference_mask(reference_crc32c(len_bytes)));
    uint64_t n = little_endian(len_bytes);
    BOOST_REQUIRE_MESSAGE(i + 12 + n + 4 <= s.size(), "torn record at byte " << i);
    std::string_view data = s.substr(i + 12, n);
    BOOST_REQUIRE_EQUAL(little_endian(s.substr(i + 12 + n, 4)), reference_mask(reference_crc32c(data)));
    events.push_back(decode_event(data));
    i += 12 + n + 4;
  }
  return events;
}

bool python_has_tensorboard() {
  return std::system("python3 -c 'import tensorboard.backend.event_processing.event_accumulator' >/dev/null 2>&1") ==
         0;
}

// Runs TensorBoard's EventAccumulator over `dir`: one "tag step value" line per scalar, then one
// "text tag step length" line per text tensor.
std::string tensorboard_scalars(const TempDir& tmp, const std::string& dir) {
  const std::string script = tmp / "read_events.py", out = tmp / "tb_out.txt";
  write_file(script,
             "import sys\n"
             "from tensorboard.backend.event_processing import event_accumulator as ea\n"
             "acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})\n"
             "acc.Reload()\n"
             "for tag in sorted(acc.Tags()[ea.SCALARS]):\n"
             "    for e in acc.Scalars(tag):\n"
             "        print(tag, e.step, repr(e.value))\n"
             "for tag in sorted(acc.Tags()[ea.TENSORS]):\n"
             "    for e in acc.Tensors(tag):\n"
             "        print('text', tag, e.step, len(e.tensor_proto.string_val[0]))\n");
  int rc = std::system(("python3 " + script + " " + dir + " > " + out).c_str());
  BOOST_REQUIRE_EQUAL(rc, 0);
  return read_file(out);
}

MetricsRecord record(int64_t step) {
  MetricsRecord r;
  r.step = step;
  r.loss = random({}, DType::f64, 1, 5).item<double>();
  r.lr = random({}, DType::f64, 1e-5, 1e-3).item<double>();
  r.grad_norm = random({}, DType::f64, 0, 2).item<double>();
  r.tokens_per_s = random({}, DType::f64, 1e3, 1e6).item<double>();
  r.elapsed_s = 0.5 * double(step);
  r.memory_bytes = 1000000 + step;
  return r;
}

void check_same(const MetricsRecord& got, const MetricsRecord& want) {
  BOOST_CHECK_EQUAL(got.step, want.step);
  BOOST_CHECK_EQUAL(got.loss, want.loss);  // written with round-trip precision
  BOOST_CHECK_EQUAL(got.lr, want.lr);
  BOOST_CHECK_EQUAL(got.grad_norm, want.grad_norm);
  BOOST_CHECK_EQUAL(got.tokens_per_s, want.tokens_per_s);
  BOOST_CHECK_EQUAL(got.elapsed_s, want.elapsed_s);
  BOOST_CHECK_EQUAL(got.memory_bytes, want.memory_bytes);
  BOOST_CHECK(got.val_loss == want.val_loss);
  BOOST_CHECK(got.val_bpb == want.val_bpb);
  BOOST_CHECK(got.val_ppl == want.val_ppl);
  BOOST_CHECK(got.extra == want.extra);
}

std::vector<int64_t> steps_of(const std::vector<MetricsRecord>& records) {
  std::vector<int64_t> steps;
  for (const auto& r : records) steps.push_back(r.step);
  return steps;
}

}  // namespace

// --- CRC and framing -----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(crc32c_matches_known_vectors) {
  // The check value of CRC-32C, and the iSCSI vectors of RFC 3720 B.4.
  BOOST_CHECK_EQUAL(crc32c("123456789"), 0xE3069283u);
  BOOST_CHECK_EQUAL(crc32c(""), 0u);
  BOOST_CHECK_EQUAL(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  BOOST_CHECK_EQUAL(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) ascending.push_back(char(i)), descending.push_back(char(31 - i));
  BOOST_CHECK_EQUAL(crc32c(ascending), 0x46DD794Eu);
  BOOST_CHECK_EQUAL(crc32c(descending), 0x113FDB5Cu);

  // Random bytes against the bitwise definition, and continuation across a split.
  std::vector<int64_t> bytes = random_int(0, 256, {1000}).to_vector<int64_t>();
  std::string data;
  for (int64_t b : bytes) data.push_back(char(b));
  BOOST_CHECK_EQUAL(crc32c(data), reference_crc32c(data));
  BOOST_CHECK_EQUAL(crc32c(data.data() + 300, 700, crc32c(data.data(), 300)), crc32c(data));
  BOOST_CHECK_EQUAL(mask_crc(0xE3069283u), reference_mask(0xE3069283u));

  std::string framed = tfrecord_frame("abc");
  BOOST_REQUIRE_EQUAL(framed.size(), 8u + 4 + 3 + 4);
  BOOST_CHECK_EQUAL(little_endian(std::string_view(framed).substr(0, 8)), 3u);
  BOOST_CHECK_EQUAL(framed.substr(12, 3), "abc");
  BOOST_CHECK_EQUAL(little_endian(std::string_view(framed).substr(15, 4)), reference_mask(reference_crc32c("abc")));
}

// --- TensorBoard event files ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(event_file_reads_back) {
  TempDir tmp("metrics");
  const std::string dir = tmp / "tb";
  std::vector<float> losses;
  for (int64_t step = 1; step <= 5; ++step) losses.push_back(random({}, DType::f32, 0, 10).item<float>());
  {
    EventWriter w(dir);
    const std::string name = fs::path(w.path()).filename().string();
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    const std::string pid_suffix = "." + std::string(host) + "." + std::to_string(getpid()) + ".sparta";
    BOOST_CHECK_EQUAL(name.rfind("events.out.tfevents.", 0), 0u);
    BOOST_CHECK(name.size() > pid_suffix.size() && name.compare(name.size() - pid_suffix.size(), std::string::npos,
                                                                pid_suffix) == 0);
    const int64_t seconds = std::stoll(name.substr(20));
    BOOST_CHECK(std::abs(double(seconds) - wall_clock_now()) < 600);

    for (int64_t step = 1; step <= 5; ++step) {
      w.add_scalar("train/loss", step, losses[step - 1], 1000.0 + double(step));
      w.add_scalar("train/lr", step, 3e-4 * double(step), 1000.0 + double(step));
      w.flush();
    }
    w.add_scalars(6, {{"val/loss", 1.5}, {"val/ppl", std::exp(1.5)}}, 2000.25);
    w.add_text("config", 0, "model:\n  d_model: 64\n", 2001);
    w.add_scalar("neg", -3, -0.5, 2002);
    w.flush();

    // Read while the writer is still open: what a live TensorBoard sees.
    std::vector<ReadEvent> events = read_event_file(w.path());
    BOOST_REQUIRE_EQUAL(events.size(), 1u + 10 + 1 + 1 + 1);
    BOOST_REQUIRE(events[0].file_version);
    BOOST_CHECK_EQUAL(*events[0].file_version, "brain.Event:2");
    BOOST_CHECK(std::abs(events[0].wall_time - wall_clock_now()) < 600);
    for (int64_t step = 1; step <= 5; ++step) {
      const ReadEvent& loss = events[size_t(2 * step - 1)];
      const ReadEvent& lr = events[size_t(2 * step)];
      BOOST_CHECK_EQUAL(loss.step, step);
      BOOST_CHECK_EQUAL(loss.wall_time, 1000.0 + double(step));
      BOOST_REQUIRE_EQUAL(loss.scalars.size(), 1u);
      BOOST_CHECK_EQUAL(loss.scalars[0].first, "train/loss");
      BOOST_CHECK_EQUAL(loss.scalars[0].second, losses[step - 1]);
      BOOST_CHECK_EQUAL(lr.scalars[0].first, "train/lr");
      BOOST_CHECK_EQUAL(lr.scalars[0].second, float(3e-4 * double(step)));
    }
    const ReadEvent& val = events[11];
    BOOST_CHECK_EQUAL(val.step, 6);
    BOOST_CHECK_EQUAL(val.wall_time, 2000.25);
    BOOST_REQUIRE_EQUAL(val.scalars.size(), 2u);
    BOOST_CHECK_EQUAL(val.scalars[0].first, "val/loss");
    BOOST_CHECK_EQUAL(val.scalars[0].second, 1.5f);
    BOOST_CHECK_EQUAL(val.scalars[1].first, "val/ppl");
    BOOST_CHECK_EQUAL(val.scalars[1].second, float(std::exp(1.5)));
    const ReadEvent& text = events[12];
    BOOST_CHECK_EQUAL(text.step, 0);
    BOOST_REQUIRE_EQUAL(text.texts.size(), 1u);
    BOOST_CHECK_EQUAL(text.texts[0].first, "config");
    BOOST_CHECK_EQUAL(text.texts[0].second, "model:\n  d_model: 64\n");
    BOOST_CHECK_EQUAL(events[13].step, -3);  // negative int64 as a ten-byte varint
    BOOST_CHECK_EQUAL(events[13].scalars[0].second, -0.5f);
  }

  // A second writer in the same second and process gets its own file; resuming at step 3 puts a
  // SessionLog START at step 4, which makes TensorBoard drop the old file's steps 4 and 5.
  {
    EventWriter resumed(dir, 3);
    BOOST_CHECK_EQUAL(files_in(dir).size(), 2u);
    resumed.add_scalars(4, {{"train/loss", 0.25}});
    std::vector<ReadEvent> events = read_event_file(resumed.path());
    BOOST_REQUIRE_EQUAL(events.size(), 3u);
    BOOST_CHECK(events[0].file_version);
    BOOST_REQUIRE(events[1].session_status);
    BOOST_CHECK_EQUAL(*events[1].session_status, 1);
    BOOST_CHECK_EQUAL(events[1].step, 4);
    BOOST_CHECK_EQUAL(events[2].scalars[0].second, 0.25f);
  }

  if (!python_has_tensorboard()) {
    BOOST_TEST_MESSAGE("tensorboard Python package not installed: EventAccumulator check skipped");
    return;
  }
  std::string got = tensorboard_scalars(tmp, dir);
  // Python prints repr(float), which parses back to the same double.
  std::istringstream in(got);
  std::map<std::string, std::map<int64_t, double>> scalars;
  std::map<std::string, size_t> text_lengths;
  std::string word;
  while (in >> word) {
    if (word == "text") {
      std::string tag;
      int64_t step;
      in >> tag >> step >> text_lengths[tag];
      continue;
    }
    int64_t step;
    double value;
    in >> step >> value;
    scalars[word][step] = value;
  }
  // The START at step 4 purged every earlier event at step 4 or later (val/loss at 6 too).
  BOOST_CHECK_EQUAL(scalars["train/loss"].size(), 4u);  // steps 1..3 from the first file, 4 from the second
  for (int64_t step = 1; step <= 3; ++step) BOOST_CHECK_EQUAL(float(scalars["train/loss"][step]), losses[step - 1]);
  BOOST_CHECK_EQUAL(scalars["train/loss"][4], 0.25);
  BOOST_CHECK_EQUAL(scalars["train/lr"].size(), 3u);
  BOOST_CHECK(scalars["val/loss"].empty());
  BOOST_CHECK_EQUAL(scalars["neg"][-3], -0.5);
  BOOST_CHECK_EQUAL(text_lengths["config"], std::string("model:\n  d_model: 64\n").size());
}

BOOST_AUTO_TEST_CASE(event_writer_errors_name_the_path) {
  TempDir tmp("metrics");
  write_file(tmp / "plain_file", "x");
  check_error([&] { EventWriter w(tmp / "plain_file/tb"); }, {"[tensorboard]", "plain_file/tb"});
  EventWriter w(tmp / "tb");
  EventWriter moved = std::move(w);
  check_error([&] { w.add_scalar("x", 1, 1.0); }, {"[tensorboard]", "closed"});
  moved.add_scalars(1, {{"x", 1.0}});
  BOOST_CHECK_EQUAL(read_event_file(moved.path()).size(), 2u);
}

// --- metrics.jsonl -------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(metrics_lines_append_and_read_back) {
  TempDir tmp("metrics");
  const std::string path = tmp / "metrics.jsonl";
  std::vector<MetricsRecord> written;
  {
    MetricsLog log(path);
    BOOST_CHECK(!log.last_step());
    for (int64_t step = 1; step <= 6; ++step) {
      MetricsRecord r = record(step * 10);
      if (step % 3 == 0) {
        r.val_loss = r.loss + 0.1;
        r.val_bpb = r.val_loss.value() / std::log(2.0);
        r.val_ppl = std::exp(*r.val_loss);
        r.extra["attn_density"] = 0.125;
      }
      log.append(r);
      written.push_back(r);
      // Flushed per line: a reader sees it before the log is closed.
      BOOST_CHECK_EQUAL(read_metrics(path).size(), size_t(step));
    }
    BOOST_CHECK_EQUAL(*log.last_step(), 60);
  }
  std::vector<MetricsRecord> got = read_metrics(path);
  BOOST_REQUIRE_EQUAL(got.size(), written.size());
  for (size_t i = 0; i < got.size(); ++i) check_same(got[i], written[i]);
  BOOST_CHECK((steps_of(read_metrics(path, 30)) == std::vector<int64_t>{40, 50, 60}));
  BOOST_CHECK(read_metrics(path, 60).empty());

  // One JSON object per line, keys in a fixed order starting with the step.
  std::string text = read_file(path);
  BOOST_CHECK_EQUAL(std::count(text.begin(), text.end(), '\n'), 6);
  BOOST_CHECK_EQUAL(text.rfind("{\"step\":10,\"loss\":", 0), 0u);

  // Reopening appends after the existing lines; earlier lines stay byte for byte.
  {
    MetricsLog log(path);
    BOOST_CHECK_EQUAL(*log.last_step(), 60);
    log.append(record(70));
  }
  BOOST_CHECK_EQUAL(read_file(path).substr(0, text.size()), text);
  BOOST_CHECK_EQUAL(read_metrics(path).size(), 7u);

  // Non-finite values survive as NaN (JSON null).
  MetricsRecord diverged = record(80);
  diverged.loss = NAN;
  diverged.extra["overflow"] = INFINITY;
  { MetricsLog(path).append(diverged); }
  MetricsRecord back = read_metrics(path, 70).at(0);
  BOOST_CHECK(std::isnan(back.loss));
  BOOST_CHECK(std::isnan(back.extra.at("overflow")));
}

BOOST_AUTO_TEST_CASE(metrics_log_rejects_bad_appends_without_writing) {
  TempDir tmp("metrics");
  const std::string path = tmp / "metrics.jsonl";
  MetricsLog log(path);
  log.append(record(5));
  log.append(record(5));  // a second line for a step (an evaluation logged apart) is allowed
  const std::string before = read_file(path);
  check_error([&] { log.append(record(4)); }, {"[metrics]", "step 4 after step 5", "metrics.jsonl"});
  MetricsRecord clash = record(6);
  clash.extra["loss"] = 1;
  check_error([&] { log.append(clash); }, {"[metrics]", "extra key 'loss'"});
  BOOST_CHECK_EQUAL(read_file(path), before);
  check_error([&] { MetricsLog bad(tmp / "missing_dir/metrics.jsonl"); }, {"[metrics]", "missing_dir/metrics.jsonl"});
}

BOOST_AUTO_TEST_CASE(metrics_torn_last_line) {
  TempDir tmp("metrics");
  const std::string path = tmp / "metrics.jsonl";
  {
    MetricsLog log(path);
    for (int64_t step = 1; step <= 3; ++step) log.append(record(step));
  }
  const std::string whole = read_file(path);
  // A crash in the middle of the fourth line.
  const MetricsRecord step4 = record(4);
  const std::string fourth = metrics_line(step4);
  write_file(path, whole + fourth.substr(0, fourth.size() / 2));
  BOOST_CHECK((steps_of(read_metrics(path)) == std::vector<int64_t>{1, 2, 3}));

  // Appending resumes after the last complete line: the torn tail is dropped, not glued to.
  { MetricsLog(path).append(step4); }
  BOOST_CHECK_EQUAL(read_file(path), whole + fourth + "\n");
  BOOST_CHECK((steps_of(read_metrics(path)) == std::vector<int64_t>{1, 2, 3, 4}));

  // A whole last line that only lacks its newline is kept.
  write_file(path, whole + fourth);
  BOOST_CHECK_EQUAL(read_metrics(path).size(), 4u);
  BOOST_CHECK_EQUAL(truncate_after_step(path, 100), 0);
  BOOST_CHECK_EQUAL(read_file(path), whole + fourth + "\n");

  // A bad line before the end is corruption, not a torn write: named, and nothing changes.
  const std::string corrupt = whole + "{\"step\": oops}\n" + fourth + "\n";
  write_file(path, corrupt);
  check_error([&] { read_metrics(path); }, {"[metrics]", "metrics.jsonl:4", "not valid JSON"});
  check_error([&] { truncate_after_step(path, 2); }, {"[metrics]", "metrics.jsonl:4"});
  check_error([&] { MetricsLog log(path); }, {"[metrics]", "metrics.jsonl:4"});
  BOOST_CHECK_EQUAL(read_file(path), corrupt);

  write_file(path, whole + "{\"step\":9,\"loss\":\"high\",\"lr\":0,\"grad_norm\":0,\"tokens_per_s\":0,"
                          "\"elapsed_s\":0,\"memory_bytes\":0}\n");
  check_error([&] { read_metrics(path); }, {"[metrics]", "metrics.jsonl:4", "'loss'", "\"high\""});
  write_file(path, whole + "{\"step\":9,\"loss\":1}\n");
  check_error([&] { read_metrics(path); }, {"[metrics]", "metrics.jsonl:4", "missing key 'lr'"});
  write_file(path, whole + "{\"step\":9.5}\n");
  check_error([&] { truncate_after_step(path, 2); }, {"[metrics]", "metrics.jsonl:4", "'step'", "integer"});
  check_error([&] { read_metrics(tmp / "nope.jsonl"); }, {"[metrics]", "nope.jsonl"});
}

BOOST_AUTO_TEST_CASE(metrics_resume_drops_steps_after_the_checkpoint) {
  TempDir tmp("metrics");
  const std::string path = tmp / "metrics.jsonl";
  std::vector<MetricsRecord> first;
  {
    MetricsLog log(path);
    for (int64_t step = 1; step <= 8; ++step) {
      first.push_back(record(step));
      log.append(first.back());
    }
  }
  const std::string full = read_file(path);

  // Nothing after step 8: the file is left alone (same inode, same bytes).
  struct stat before, after;
  BOOST_REQUIRE_EQUAL(::stat(path.c_str(), &before), 0);
  BOOST_CHECK_EQUAL(truncate_after_step(path, 8), 0);
  BOOST_REQUIRE_EQUAL(::stat(path.c_str(), &after), 0);
  BOOST_CHECK_EQUAL(before.st_ino, after.st_ino);
  BOOST_CHECK_EQUAL(truncate_after_step(tmp / "absent.jsonl", 3), 0);
  BOOST_CHECK(!fs::exists(tmp / "absent.jsonl"));

  // The checkpoint was at step 5: 6..8 go, the kept lines are the same bytes, no temporary is left.
  BOOST_CHECK_EQUAL(truncate_after_step(path, 5), 3);
  std::vector<MetricsRecord> kept = read_metrics(path);
  BOOST_REQUIRE_EQUAL(kept.size(), 5u);
  for (size_t i = 0; i < kept.size(); ++i) check_same(kept[i], first[i]);
  const std::string truncated = read_file(path);
  BOOST_CHECK_EQUAL(full.substr(0, truncated.size()), truncated);
  BOOST_CHECK((files_in(tmp.path) == std::vector<std::string>{"metrics.jsonl"}));

  // Resuming through the log does the same, then the resumed run logs each step once.
  write_file(path, full);
  {
    MetricsLog log(path, 5);
    BOOST_CHECK_EQUAL(*log.last_step(), 5);
    check_error([&] { log.append(record(3)); }, {"step 3 after step 5"});
    for (int64_t step = 6; step <= 10; ++step) log.append(record(step));
  }
  BOOST_CHECK((steps_of(read_metrics(path)) == std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  BOOST_CHECK_EQUAL(read_file(path).substr(0, truncated.size()), truncated);

  // Resuming from step 0 (no checkpoint reached) empties the log.
  { MetricsLog log(path, 0); BOOST_CHECK(!log.last_step()); }
  BOOST_CHECK(read_metrics(path).empty());
}

// --- The progress line ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(progress_line_formats) {
  ProgressInfo info;
  info.step = 120;
  info.total_steps = 1000;
  info.loss = 2.34123;
  info.lr = 2.9e-4;
  info.tokens_per_s = 10240;
  info.memory_bytes = 1200000000;
  info.eta_s = 192;
  BOOST_CHECK_EQUAL(format_progress(info), "step 120/1000 | loss 2.3412 | lr 2.9e-04 | 10.2k tok/s | 1.2 GB | eta 3m12s");

  ProgressInfo bare;
  bare.step = 7;
  bare.loss = NAN;
  bare.lr = 1e-3;
  bare.tokens_per_s = 850;
  BOOST_CHECK_EQUAL(format_progress(bare), "step 7 | loss nan | lr 1.0e-03 | 850 tok/s | eta ?");

  BOOST_CHECK_EQUAL(format_count(0), "0.00");
  BOOST_CHECK_EQUAL(format_count(9.5), "9.50");
  BOOST_CHECK_EQUAL(format_count(950), "950");
  BOOST_CHECK_EQUAL(format_count(999.7), "1.00k");
  BOOST_CHECK_EQUAL(format_count(1234), "1.23k");
  BOOST_CHECK_EQUAL(format_count(10240), "10.2k");
  BOOST_CHECK_EQUAL(format_count(9999), "10.0k");
  BOOST_CHECK_EQUAL(format_count(102400), "102k");
  BOOST_CHECK_EQUAL(format_count(1.5e6), "1.50M");
  BOOST_CHECK_EQUAL(format_count(23.4e6), "23.4M");
  BOOST_CHECK_EQUAL(format_count(2.5e9), "2.50G");
  BOOST_CHECK_EQUAL(format_count(NAN), "?");

  BOOST_CHECK_EQUAL(format_bytes(0), "0 B");
  BOOST_CHECK_EQUAL(format_bytes(512), "512 B");
  BOOST_CHECK_EQUAL(format_bytes(1500), "1.5 kB");
  BOOST_CHECK_EQUAL(format_bytes(12300000), "12.3 MB");
  BOOST_CHECK_EQUAL(format_bytes(999990000), "1.0 GB");
  BOOST_CHECK_EQUAL(format_bytes(123000000000), "123 GB");
  BOOST_CHECK_EQUAL(format_bytes(2500000000000), "2.5 TB");

  BOOST_CHECK_EQUAL(format_duration(0), "0s");
  BOOST_CHECK_EQUAL(format_duration(45.4), "45s");
  BOOST_CHECK_EQUAL(format_duration(59.6), "1m00s");
  BOOST_CHECK_EQUAL(format_duration(192), "3m12s");
  BOOST_CHECK_EQUAL(format_duration(3599.6), "1h00m");
  BOOST_CHECK_EQUAL(format_duration(3900), "1h05m");
  BOOST_CHECK_EQUAL(format_duration(36000 + 59 * 60 + 50), "11h00m");
  BOOST_CHECK_EQUAL(format_duration(90000), "1d01h");
  BOOST_CHECK_EQUAL(format_duration(NAN), "?");
  BOOST_CHECK_EQUAL(format_duration(-1), "?");
  BOOST_CHECK_EQUAL(format_duration(INFINITY), "?");
}

BOOST_AUTO_TEST_CASE(eta_from_a_moving_average) {
  EtaEstimator eta(4);
  BOOST_CHECK(std::isnan(eta.seconds_per_step()));
  BOOST_CHECK(std::isnan(eta.eta_s(10)));
  eta.record(10);  // a slow first step (warm-up) ...
  for (int i = 0; i < 3; ++i) eta.record(1);
  BOOST_CHECK_CLOSE(eta.seconds_per_step(), 13.0 / 4, 1e-9);
  eta.record(1);  // ... leaves the window
  BOOST_CHECK_CLOSE(eta.seconds_per_step(), 1.0, 1e-9);
  BOOST_CHECK_CLOSE(eta.eta_s(100), 100.0, 1e-9);
  BOOST_CHECK_EQUAL(eta.eta_s(-5), 0.0);

  // Intervals of several steps weigh by their steps.
  EtaEstimator multi;
  multi.record(5, 10);
  multi.record(1, 1);
  BOOST_CHECK_CLOSE(multi.seconds_per_step(), 6.0 / 11, 1e-9);
  ProgressInfo info;
  info.eta_s = multi.eta_s(3960);  // 2160 s
  BOOST_CHECK(format_progress(info).find("eta 36m00s") != std::string::npos);

  check_error([&] { multi.record(-1); }, {"[progress]", "-1"});
  check_error([&] { multi.record(1, 0); }, {"[progress]", "0 steps"});
  check_error([&] { EtaEstimator bad(0); }, {"[progress]", "window"});
}

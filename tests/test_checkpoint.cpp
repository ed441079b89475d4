// Checkpoints and weight export: bit-exact HDF5 round trips for every dtype and the whole training
// state, atomic replacement under an injected fault, corrupt, truncated and foreign files, retention
// by the manager, compatibility errors; safetensors files checked byte by byte against the format's
// specification (and by the Python reference reader where it is installed).
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>

#include <nlohmann/json.hpp>

#include "tests/support.h"
#include "tests/temp_dir.h"
#include "train/checkpoint.h"
#include "train/checkpoint_manager.h"
#include "train/hdf5.h"
#include "train/safetensors.h"

using namespace sparta;
using namespace sparta::test;
using namespace sparta::train;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& f : fs::directory_iterator(dir)) names.push_back(f.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string bytes_of(const Tensor& t) {
  Tensor c = contiguous(t);
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

// Arbitrary bit patterns (NaN payloads, -0, subnormals, infinities): a checkpoint must return
// every one unchanged. bool holds only 0 and 1.
Tensor random_bits(const Shape& shape, DType dtype) {
  static std::mt19937_64 rng(run_seed());
  Tensor t = Tensor::empty(shape, dtype);
  auto* p = static_cast<unsigned char*>(t.data_ptr());
  const unsigned mask = dtype == DType::boolean ? 1 : 255;
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<unsigned char>(rng() & mask);
  return t;
}

void check_same_tensors(const NamedTensors& got, const NamedTensors& want, const std::string& what) {
  BOOST_REQUIRE_EQUAL(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    BOOST_CHECK_EQUAL(got[i].first, want[i].first);
    BOOST_CHECK_MESSAGE(got[i].second.dtype() == want[i].second.dtype(), what << " " << want[i].first << ": dtype");
    BOOST_CHECK_MESSAGE(got[i].second.shape() == want[i].second.shape(),
                        what << " " << want[i].first << ": shape " << shape_str(got[i].second.shape()));
    BOOST_CHECK_MESSAGE(bytes_of(got[i].second) == bytes_of(want[i].second), what << " " << want[i].first << ": bytes");
  }
}

uint64_t bits(double v) {
  uint64_t b;
  std::memcpy(&b, &v, 8);
  return b;
}

void check_same_state(const CheckpointState& got, const CheckpointState& want) {
  check_same_tensors(got.model, want.model, "model");
  check_same_tensors(got.optimizer, want.optimizer, "optimizer");
  BOOST_CHECK_EQUAL(got.step, want.step);
  BOOST_CHECK(got.counters == want.counters);
  BOOST_REQUIRE_EQUAL(got.scalars.size(), want.scalars.size());
  for (const auto& [k, v] : want.scalars) {
    BOOST_REQUIRE(got.scalars.count(k));
    BOOST_CHECK_MESSAGE(bits(got.scalars.at(k)) == bits(v), "scalar " << k);
  }
  BOOST_CHECK(got.config_yaml == want.config_yaml);
}

CheckpointState sample_state(bool long_config = false) {
  CheckpointState s;
  s.model = {{"embed.weight", random({7, 5})},
             {"blocks.0.attn.qkv.weight", random_bits({6, 4}, DType::bf16)},
             {"blocks.0.attn.qkv.bias", random_bits({6}, DType::f16)},
             {"blocks.0.mlp.fc.weight", random_bits({3, 2, 2}, DType::f64)},
             {"blocks.0.ln.weight", random_bits({5}, DType::f32)},
             {"scale", random_bits({}, DType::f32)},
             {"empty", Tensor::empty({0, 3}, DType::f32)},
             {"transposed", noncontiguous(random({4, 3}), true)},
             {"ids", random_bits({4}, DType::i64)},
             {"small", random_bits({3}, DType::i32)},
             {"bytes", random_bits({5}, DType::u8)},
             {"mask", random_bits({2, 2}, DType::boolean)}};
  for (const char* moment : {"exp_avg", "exp_avg_sq"}) {
    for (size_t i : {0, 1}) {
      const auto& [name, param] = s.model[i];
      s.optimizer.emplace_back(std::string(moment) + "/" + name, random_bits(param.shape(), DType::f32));
    }
  }
  s.optimizer.emplace_back("step", random_bits({}, DType::i64));
  s.step = 1234;
  s.counters = {{"rng.seed", 42},
                {"rng.offset", std::numeric_limits<int64_t>::max()},
                {"data.epoch", 0},
                {"data.index", -7}};
  s.scalars = {{"loss_scale", 65536.0},
               {"best_val_loss", std::nan("")},
               {"neg_zero", -0.0},
               {"inf", -INFINITY},
               {"tiny", 5e-324}};
  s.config_yaml = "model:\n  d_model: 16\n  name: \"ünïcødé ✓\"  # marker-8c1f2\n";
  // Over 64 KiB, the most an attribute can hold inside an object header.
  if (long_config) {
    for (int i = 0; i < 4000; ++i) s.config_yaml += "# padding line " + std::to_string(i) + " ........\n";
  }
  return s;
}

// Resets the fault hook even when an assertion fails.
struct FaultHook {
  explicit FaultHook(int n) { train::detail::set_checkpoint_fault_after_datasets(n); }
  ~FaultHook() { train::detail::set_checkpoint_fault_after_datasets(-1); }
};

}  // namespace

BOOST_AUTO_TEST_CASE(checkpoint_round_trip_is_bit_exact) {
  TempDir dir("checkpoint");
  const std::string path = dir / "ckpt.h5";
  for (bool long_config : {false, true}) {
    CheckpointState s = sample_state(long_config);
    BOOST_REQUIRE_GT(s.config_yaml.size(), long_config ? 65536u : 10u);
    save_checkpoint(path, s);
    check_same_state(load_checkpoint(path), s);
  }

  // The layout others read with h5py.
  {
    std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
    h5::File f = h5::File::open_read_only(path);
    h5::Group root = f.root();
    BOOST_CHECK_EQUAL(root.int_attr("format_version"), 1);
    BOOST_CHECK_EQUAL(root.string_attr("checksum").rfind("fnv1a64:", 0), 0u);
    h5::Group model = root.open_group("model");
    BOOST_CHECK(model.link_names()[1] == "blocks.0.attn.qkv.weight");
    h5::Dataset qkv = model.open_dataset("blocks.0.attn.qkv.weight");
    BOOST_CHECK_EQUAL(qkv.string_attr("dtype"), "bf16");
    BOOST_CHECK(qkv.type_class() == H5T_INTEGER && qkv.type_size() == 2);
    BOOST_CHECK(qkv.shape() == (Shape{6, 4}));
    BOOST_CHECK(model.open_dataset("embed.weight").type_class() == H5T_FLOAT);
    h5::Group optim = root.open_group("optim");
    BOOST_CHECK(optim.is_group("exp_avg"));
    BOOST_CHECK(optim.open_group("exp_avg").has_link("blocks.0.attn.qkv.weight"));
    BOOST_CHECK_EQUAL(root.open_group("state").int_attr("step"), 1234);
    BOOST_CHECK_EQUAL(root.open_group("state").open_group("counters").int_attr("rng.seed"), 42);
  }

  // Nothing but defaults: empty groups, an empty config.
  save_checkpoint(path, CheckpointState{});
  check_same_state(load_checkpoint(path), CheckpointState{});

  // Saving over an existing checkpoint replaces it and leaves nothing else behind.
  CheckpointState s = sample_state();
  s.step = 99;
  save_checkpoint(path, s);
  BOOST_CHECK_EQUAL(load_checkpoint(path).step, 99);
  BOOST_CHECK(files_in(dir.path) == std::vector<std::string>{"ckpt.h5"});
}

BOOST_AUTO_TEST_CASE(a_failed_save_leaves_the_previous_checkpoint) {
  TempDir dir("checkpoint");
  const std::string path = dir / "ckpt.h5";
  CheckpointState before = sample_state();
  save_checkpoint(path, before);
  CheckpointState after = sample_state();
  after.step = 2000;
  for (int n : {0, 3, 13}) {  // before any dataset, inside /model, inside /optim
    FaultHook hook(n);
    check_error([&] { save_checkpoint(path, after); }, {"[checkpoint]", "injected fault"});
  }
  check_same_state(load_checkpoint(path), before);
  BOOST_CHECK(files_in(dir.path) == std::vector<std::string>{"ckpt.h5"});

  // A first save that fails leaves no file at all.
  {
    FaultHook hook(5);
    check_error([&] { save_checkpoint(dir / "fresh.h5", after); }, {"injected fault"});
  }
  BOOST_CHECK(files_in(dir.path) == std::vector<std::string>{"ckpt.h5"});
}

BOOST_AUTO_TEST_CASE(flipped_bytes_are_reported_as_corruption) {
  TempDir dir("checkpoint");
  const std::string path = dir / "ckpt.h5";
  CheckpointState s = sample_state();
  save_checkpoint(path, s);
  const std::string clean = read_bytes(path);

  // One bit of a parameter's data.
  std::string data = bytes_of(s.model[0].second);
  size_t at = clean.find(data);
  BOOST_REQUIRE(at != std::string::npos);
  std::string bad = clean;
  bad[at + data.size() / 2] ^= 0x10;
  write_bytes(path, bad);
  check_error([&] { load_checkpoint(path); },
              {"[checkpoint]", path.c_str(), "is corrupt", "checksum of /model/embed.weight"});

  // One character of the config (HDF5 checksums only some of its own metadata; ours covers all).
  at = clean.find("marker-8c1f2");
  BOOST_REQUIRE(at != std::string::npos);
  bad = clean;
  bad[at] = 'M';
  write_bytes(path, bad);
  check_error([&] { load_checkpoint(path); }, {"[checkpoint]", path.c_str(), "is corrupt", "checksum"});

  // Edits through HDF5 itself (as h5py would make them) keep its metadata consistent: the root
  // checksum sees them.
  auto edit = [&](const std::function<void(hid_t)>& change) {
    write_bytes(path, clean);
    std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    BOOST_REQUIRE(f >= 0);
    change(f);
    BOOST_REQUIRE(H5Fclose(f) >= 0);
  };
  edit([](hid_t f) {
    // H5Aopen_by_name cannot write in HDF5 1.10 ("can't locate open attribute"): open the group.
    hid_t g = H5Gopen2(f, "/state", H5P_DEFAULT);
    hid_t a = H5Aopen(g, "step", H5P_DEFAULT);
    int64_t step = 1235;
    BOOST_REQUIRE(a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &step) >= 0);
    H5Aclose(a);
    H5Gclose(g);
  });
  check_error([&] { load_checkpoint(path); }, {path.c_str(), "is corrupt (checksum: stored fnv1a64:"});
  edit([](hid_t f) { BOOST_REQUIRE(H5Ldelete(f, "/optim/exp_avg_sq/embed.weight", H5P_DEFAULT) >= 0); });
  check_error([&] { load_checkpoint(path); }, {path.c_str(), "is corrupt (checksum: stored fnv1a64:"});

  write_bytes(path, clean);
  check_same_state(load_checkpoint(path), s);
}

BOOST_AUTO_TEST_CASE(unusable_files_are_named_in_errors) {
  TempDir dir("checkpoint");
  const std::string missing = dir / "missing.h5";
  check_error([&] { load_checkpoint(missing); }, {"[checkpoint]", missing.c_str(), "does not exist"});

  const std::string text = dir / "text.h5";
  write_bytes(text, "model: not hdf5\n");
  check_error([&] { load_checkpoint(text); }, {text.c_str(), "is not an HDF5 file"});
  write_bytes(text, "");
  check_error([&] { load_checkpoint(text); }, {text.c_str(), "is not an HDF5 file"});

  const std::string cut = dir / "cut.h5";
  save_checkpoint(cut, sample_state());
  std::string whole = read_bytes(cut);
  write_bytes(cut, whole.substr(0, whole.size() / 2));
  check_error([&] { load_checkpoint(cut); }, {cut.c_str(), "cannot be opened", "truncated file: eof ="});

  // Hand-made files: a future format version, then the groups missing one by one.
  const std::string made = dir / "made.h5";
  auto make = [&](int64_t version, std::vector<std::string> groups) {
    std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
    h5::File f = h5::File::create(made);
    h5::Group root = f.root();
    if (version > 0) root.set_int_attr("format_version", version);
    for (const std::string& g : groups) {
      if (g.find('/') == std::string::npos) {
        root.create_group(g);
      } else {
        root.open_group(g.substr(0, g.find('/'))).create_group(g.substr(g.find('/') + 1));
      }
    }
    f.close();
  };
  make(2, {"model", "optim", "state"});
  check_error([&] { load_checkpoint(made); }, {made.c_str(), "format version 2", "reads version 1"});
  make(0, {"model", "optim", "state"});
  check_error([&] { load_checkpoint(made); }, {made.c_str(), "no format_version attribute"});
  make(1, {});
  check_error([&] { load_checkpoint(made); }, {made.c_str(), "has no group /model"});
  make(1, {"model", "optim"});
  check_error([&] { load_checkpoint(made); }, {made.c_str(), "has no group /state"});
  make(1, {"model", "optim", "state"});
  check_error([&] { load_checkpoint(made); }, {made.c_str(), "/state", "no attribute 'step'"});
}

BOOST_AUTO_TEST_CASE(hdf5_handles_name_the_file_and_object_in_errors) {
  TempDir dir("checkpoint");
  const std::string path = dir / "plain.h5";
  std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  {
    h5::File f = h5::File::create(path);
    h5::Group g = f.root().create_group("g");
    g.set_string_attr("s", "ünï\nline");
    g.set_double_attr("x", 0.5);
    // A fixed-length string, as h5py writes numpy bytes and older tools write strings.
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, 8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(g.id(), "fixed", type, space, H5P_DEFAULT, H5P_DEFAULT);
    BOOST_REQUIRE(a >= 0 && H5Awrite(a, type, "abc\0\0\0\0\0") >= 0);
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
    h5::Dataset d = g.create_dataset("d", H5T_IEEE_F32LE, {2, 3});
    std::vector<float> v = {1, 2, 3, 4, 5, 6};
    d.write(H5T_NATIVE_FLOAT, v.data());
    f.close();
  }
  h5::File f = h5::File::open_read_only(path);
  h5::Group g = f.root().open_group("g");
  BOOST_CHECK_EQUAL(g.string_attr("s"), "ünï\nline");
  BOOST_CHECK_EQUAL(g.string_attr("fixed"), "abc");
  BOOST_CHECK(g.attr_names() == (std::vector<std::string>{"fixed", "s", "x"}));
  std::vector<float> back(6);
  g.open_dataset("d").read(H5T_NATIVE_FLOAT, back.data());
  BOOST_CHECK(back == (std::vector<float>{1, 2, 3, 4, 5, 6}));
  const std::string where = "[hdf5] " + path + " /g: ";
  check_error([&] { g.open_dataset("nope"); }, {(where + "has no dataset 'nope'").c_str()});
  check_error([&] { g.open_group("d"); }, {(where + "has no group 'd'").c_str()});
  check_error([&] { g.int_attr("x"); }, {(where + "attribute 'x' is not an integer").c_str()});
  check_error([&] { g.string_attr("missing"); }, {(where + "has no attribute 'missing'").c_str()});
  check_error([&] { g.create_group("new"); }, {(where + "cannot create group 'new' (").c_str()});  // read-only
  check_error([&] { h5::File::open_read_only(dir / "none.h5"); }, {"[hdf5]", "none.h5: cannot open the file ("});
}

BOOST_AUTO_TEST_CASE(bad_names_are_refused_before_anything_is_written) {
  TempDir dir("checkpoint");
  const std::string path = dir / "ckpt.h5";
  Tensor t = random({2});
  CheckpointState s;
  s.model = {{"a", t}, {"a", t}};
  check_error([&] { save_checkpoint(path, s); }, {"[checkpoint]", "duplicate model name 'a'"});
  s.model = {{"a", t}};
  s.optimizer = {{"m", t}, {"m/a", t}};
  check_error([&] { save_checkpoint(path, s); }, {"optimizer name 'm/a'", "group 'm'"});
  for (const char* name : {"a//b", "/a", "a/", "", "a/./b"}) {
    s.optimizer = {{name, t}};
    check_error([&] { save_checkpoint(path, s); }, {"[checkpoint]", "not usable as an HDF5 path"});
  }
  s.optimizer = {{"x", Tensor()}};
  check_error([&] { save_checkpoint(path, s); }, {"optimizer tensor 'x' is undefined"});
  BOOST_CHECK(files_in(dir.path).empty());
}

BOOST_AUTO_TEST_CASE(compatibility_errors_name_the_parameter) {
  CheckpointState s;
  s.model = {{"blocks.0.attn.qkv.weight", random({48, 16})}, {"blocks.0.attn.proj.weight", random({16, 16})}};
  NamedTensors model = {{"blocks.0.attn.qkv.weight", random({48, 16}, DType::bf16)},
                        {"blocks.0.attn.proj.weight", random({16, 16})}};
  check_compatible(s, model);  // dtypes may differ

  model[0].second = random({96, 32});
  check_error(
      [&] { check_compatible(s, model); },
      {"[checkpoint]", "parameter blocks.0.attn.qkv.weight: checkpoint has shape (48, 16), the model (96, 32)"});
  model[0].second = random({48, 16});
  model.emplace_back("head.weight", random({4, 16}));
  check_error([&] { check_compatible(s, model); }, {"parameter head.weight", "missing from the checkpoint"});
  model.pop_back();
  model.pop_back();
  check_error([&] { check_compatible(s, model); }, {"unexpected parameter blocks.0.attn.proj.weight"});
}

BOOST_AUTO_TEST_CASE(manager_keeps_the_last_k_and_the_best) {
  TempDir dir("checkpoint");
  const std::string ckpts = dir / "checkpoints";
  auto state_at = [](int64_t step) {
    CheckpointState s;
    s.model = {{"w", random({3})}};
    s.step = step;
    return s;
  };
  {
    CheckpointManager m(ckpts, 2, true);
    BOOST_CHECK(!m.latest() && !m.best());
    const std::vector<std::pair<int64_t, std::optional<double>>> saves = {
        {10, 3.0}, {20, 1.0}, {30, 2.0}, {40, std::nullopt}, {50, 1.5}, {60, NAN}};
    for (auto [step, loss] : saves) {
      std::string path = m.save(step, state_at(step), loss);
      BOOST_CHECK_EQUAL(path, ckpts + "/" + CheckpointManager::file_name(step));
      BOOST_CHECK_EQUAL(load_checkpoint(path).step, step);
    }
    BOOST_CHECK(files_in(ckpts) ==
                (std::vector<std::string>{"index.json", "step_00000020.h5", "step_00000050.h5", "step_00000060.h5"}));
    BOOST_CHECK_EQUAL(*m.latest(), ckpts + "/step_00000060.h5");
    BOOST_CHECK_EQUAL(*m.best(), ckpts + "/step_00000020.h5");
  }
  {
    CheckpointManager m(ckpts, 2, true);  // what the index recorded
    BOOST_CHECK_EQUAL(*m.latest(), ckpts + "/step_00000060.h5");
    BOOST_CHECK_EQUAL(*m.best(), ckpts + "/step_00000020.h5");
    m.save(70, state_at(70), 0.5);  // a new best frees the old one
    BOOST_CHECK(files_in(ckpts) == (std::vector<std::string>{"index.json", "step_00000060.h5", "step_00000070.h5"}));
    BOOST_CHECK_EQUAL(*m.best(), ckpts + "/step_00000070.h5");
  }
  {
    // Without its index the directory is still usable: files are adopted, losses are unknown.
    fs::remove(ckpts + "/index.json");
    CheckpointManager m(ckpts, 2, true);
    BOOST_CHECK_EQUAL(m.entries().size(), 2u);
    BOOST_CHECK_EQUAL(*m.latest(), ckpts + "/step_00000070.h5");
    BOOST_CHECK(!m.best());
  }
  {
    CheckpointManager m(dir / "plain", 2, false);
    for (int64_t step : {1, 2, 3}) m.save(step, state_at(step), double(step));  // the best was step 1
    BOOST_CHECK(files_in(dir / "plain") ==
                (std::vector<std::string>{"index.json", "step_00000002.h5", "step_00000003.h5"}));
    BOOST_CHECK_EQUAL(*m.best(), dir / "plain/step_00000002.h5");  // the best of what is kept
  }
  check_error([&] { CheckpointManager(dir / "zero", 0, true); }, {"[CheckpointManager]", "keep_last", "got 0"});
  write_bytes(ckpts + "/index.json", "{\"format_version\": 1, \"checkpoints\": [{\"step\": 1}]}");
  check_error([&] { CheckpointManager(ckpts, 2, true); }, {"index.json", "not a valid checkpoint index"});
}

// ---- safetensors ------------------------------------------------------------------------------

namespace {

uint64_t le64(const std::string& raw, size_t at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(static_cast<unsigned char>(raw[at + size_t(i)])) << (8 * i);
  return v;
}

// A file from a header text and data bytes, as a hand-written (possibly malformed) one would be.
std::string make_safetensors(const std::string& header, const std::string& data) {
  std::string raw(8, '\0');
  for (int i = 0; i < 8; ++i) raw[size_t(i)] = char((header.size() >> (8 * i)) & 0xff);
  return raw + header + data;
}

NamedTensors sample_tensors() {
  return {{"w", random({3, 4})},
          {"b", random({5}, DType::bf16)},
          {"h", random({2, 3}, DType::f16)},
          {"d", random({2}, DType::f64)},
          {"ids", random_int(-100, 100, {4})},
          {"i", random_int(-5, 5, {3}, DType::i32)},
          {"u", random_bits({5}, DType::u8)},
          {"flag", random_bits({3}, DType::boolean)},
          {"s", random({})},
          {"z", Tensor::empty({0, 4})},
          {"t", noncontiguous(random({3, 2}), true)}};
}

}  // namespace

BOOST_AUTO_TEST_CASE(safetensors_header_matches_the_specification) {
  TempDir dir("checkpoint");
  // The smallest case, byte for byte: N, the header padded with spaces to 8, then 1.0f and 2.0f.
  const std::string tiny = dir / "tiny.safetensors";
  write_safetensors(tiny, {{"a", from_vector({1.0, 2.0}, {2})}});
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string want = make_safetensors(header, std::string("\x00\x00\x80\x3f\x00\x00\x00\x40", 8));
  BOOST_CHECK(read_bytes(tiny) == want);

  // A mixed file, parsed here without read_safetensors.
  const std::string path = dir / "model.safetensors";
  NamedTensors tensors = sample_tensors();
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"config", "{\"d_model\": 16}"}};
  write_safetensors(path, tensors, metadata);
  std::string raw = read_bytes(path);
  uint64_t n = le64(raw, 0);
  BOOST_REQUIRE_LE(8 + n, raw.size());
  BOOST_CHECK_EQUAL((8 + n) % 8, 0u);
  std::string text = raw.substr(8, n);
  BOOST_CHECK_EQUAL(text.front(), '{');
  BOOST_CHECK(text.find_last_not_of(' ') == text.rfind('}'));  // only spaces after the object
  nlohmann::json j = nlohmann::json::parse(text);
  BOOST_CHECK(j["__metadata__"] == nlohmann::json(metadata));
  const std::map<DType, std::string> names = {{DType::f32, "F32"}, {DType::bf16, "BF16"}, {DType::f16, "F16"},
                                              {DType::f64, "F64"}, {DType::i64, "I64"},   {DType::i32, "I32"},
                                              {DType::u8, "U8"},   {DType::boolean, "BOOL"}};
  uint64_t offset = 0;
  size_t last_pos = 0;
  for (const auto& [name, t] : tensors) {
    const nlohmann::json& e = j.at(name);
    BOOST_CHECK_EQUAL(e.size(), 3u);
    BOOST_CHECK_EQUAL(e["dtype"].get<std::string>(), names.at(t.dtype()));
    BOOST_CHECK(e["shape"].get<std::vector<int64_t>>() == t.shape());
    // Header order is data order, and the data is contiguous.
    BOOST_CHECK(e["data_offsets"] == nlohmann::json({offset, offset + t.nbytes()}));
    size_t pos = text.find("\"" + name + "\":{");
    BOOST_CHECK(pos != std::string::npos && pos >= last_pos);
    last_pos = pos;
    BOOST_CHECK_MESSAGE(raw.substr(8 + n + offset, t.nbytes()) == bytes_of(t), name << ": data bytes");
    offset += t.nbytes();
  }
  BOOST_CHECK_EQUAL(raw.size(), 8 + n + offset);

  Safetensors back = read_safetensors(path);
  check_same_tensors(back.tensors, tensors, "safetensors");
  BOOST_CHECK(back.metadata == metadata);
  BOOST_CHECK(files_in(dir.path) == (std::vector<std::string>{"model.safetensors", "tiny.safetensors"}));
}

// Skipped (and reported as skipped) where python3 has no safetensors module; the specification
// test above stands alone.
boost::test_tools::assertion_result python_has_safetensors(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result ok(std::system("python3 -c 'import safetensors' > /dev/null 2>&1") == 0);
  ok.message() << "python3 has no safetensors module";
  return ok;
}

BOOST_AUTO_TEST_CASE(safetensors_loads_in_the_python_reference_reader,
                     *boost::unit_test::precondition(python_has_safetensors)) {
  TempDir dir("checkpoint");
  const std::string path = dir / "py.safetensors";
  write_safetensors(path,
                    {{"a", from_vector({0, 1, 2, 3, 4, 5}, {2, 3})},
                     {"b", from_vector_i64({1, -2, 3}, {3})},
                     {"c", from_vector({0.5, -2}, {2}, DType::f16)},
                     {"d", from_vector({1.5, -3}, {2}, DType::bf16)}},
                    {{"who", "sparta"}});
  const std::string script = dir / "check.py";
  write_bytes(script, R"(import sys
try:
    import torch
    from safetensors.torch import load_file
    from safetensors import safe_open
    t = load_file(sys.argv[1])
    assert t["a"].tolist() == [[0, 1, 2], [3, 4, 5]] and t["a"].dtype == torch.float32
    assert t["b"].tolist() == [1, -2, 3] and t["b"].dtype == torch.int64
    assert t["c"].tolist() == [0.5, -2.0] and t["c"].dtype == torch.float16
    assert t["d"].tolist() == [1.5, -3.0] and t["d"].dtype == torch.bfloat16
    with safe_open(sys.argv[1], "pt") as f:
        assert f.metadata() == {"who": "sparta"}
except ImportError:
    from safetensors import deserialize
    got = {name: (info["dtype"], info["shape"]) for name, info in deserialize(open(sys.argv[1], "rb").read())}
    assert got == {"a": ("float32", [2, 3]), "b": ("int64", [3]), "c": ("float16", [2]), "d": ("bfloat16", [2])}, got
)");
  BOOST_CHECK_EQUAL(std::system(("python3 " + script + " " + path).c_str()), 0);
}

BOOST_AUTO_TEST_CASE(safetensors_rejects_malformed_files) {
  TempDir dir("checkpoint");
  const std::string path = dir / "bad.safetensors";
  auto expect = [&](const std::string& raw, std::initializer_list<const char*> fragments) {
    write_bytes(path, raw);
    check_error([&] { read_safetensors(path); }, fragments);
  };
  const std::string two = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  write_bytes(path, make_safetensors(two, std::string(12, 'x')));
  BOOST_CHECK_EQUAL(read_safetensors(path).tensors.size(), 2u);

  expect(make_safetensors(two, std::string(9, 'x')), {"[safetensors]", path.c_str(), "tensor 'b'", "out of range",
                                                      "truncated"});
  expect(std::string("\x10\x00\x00", 3), {path.c_str(), "truncated (3 bytes"});
  expect(make_safetensors(two, "").substr(0, 30), {path.c_str(), "exceeds", "truncated"});
  expect(make_safetensors(R"({"a":{"dtype":"F32",)", ""), {path.c_str(), "bad JSON header"});
  expect(make_safetensors(R"([1, 2])", ""), {path.c_str(), "does not start with '{'"});
  expect(make_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                          std::string(12, 'x')),
         {path.c_str(), "'a' and 'b' overlap"});
  expect(make_safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                          std::string(12, 'x')),
         {path.c_str(), "bytes [4, 8)", "belong to no tensor"});
  expect(make_safetensors(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, 'x')),
         {"tensor 'a'", "hold 8 bytes", "needs 12"});
  expect(make_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(10, 'x')),
         {"has 10 bytes but the tensors cover 8"});
  expect(make_safetensors(R"({"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", "xx"),
         {"tensor 'a'", "unsupported dtype 'F8_E4M3'"});
  expect(make_safetensors(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, 'x')),
         {"tensor 'a'", "non-negative integer", "-2"});
  expect(make_safetensors(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                          R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                          "xx"),
         {path.c_str(), "names 'a' twice"});
  expect(make_safetensors(R"({"__metadata__":{"n":1}})", ""), {"__metadata__ value of 'n' must be a string"});
  expect(make_safetensors(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":0}})", "x"),
         {"tensor 'a'", "unknown key 'x'"});

  // Writing refuses what it could not read back, and leaves nothing behind.
  const std::string out = dir / "out.safetensors";
  Tensor t = random({2});
  check_error([&] { write_safetensors(out, {{"a", t}, {"a", t}}); }, {out.c_str(), "duplicate tensor name 'a'"});
  check_error([&] { write_safetensors(out, {{"__metadata__", t}}); }, {"'__metadata__' is reserved"});
  check_error([&] { write_safetensors(out, {{"a", t}}, {{"k", "\xff\xfe"}}); }, {"valid UTF-8"});
  BOOST_CHECK(!fs::exists(out));
  BOOST_CHECK(files_in(dir.path) == std::vector<std::string>{"bad.safetensors"});
}

#include "train/checkpoint.h"

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/ops.h"
#include "train/atomic_file.h"
#include "train/hdf5.h"

namespace sparta::train {

namespace {

std::atomic<int> fault_after_datasets{-1};

// FNV-1a 64: simple, byte-order defined, and fast enough next to the disk. Every variable-length
// field is length-prefixed so that two different states cannot hash the same byte stream.
struct Fnv1a64 {
  uint64_t h = 0xcbf29ce484222325ull;
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) {
      h ^= b[i];
      h *= 0x100000001b3ull;
    }
  }
  void u64(uint64_t v) {
    unsigned char le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(v >> (8 * i));
    bytes(le, 8);
  }
  void str(const std::string& s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }
};

std::string checksum_str(uint64_t h) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "fnv1a64:%016" PRIx64, h);
  return buf;
}

// How each dtype lies in the file (little-endian, as safetensors and PyTorch have it) and in
// memory. Half types are uint16: HDF5 1.10 has no 16-bit float, and bits must come back unchanged.
struct Layout {
  hid_t file_type;
  hid_t mem_type;
  H5T_class_t h5_class;
};

Layout layout_of(DType t) {
  switch (t) {
    case DType::f64: return {H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, H5T_FLOAT};
    case DType::f32: return {H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, H5T_FLOAT};
    case DType::bf16: case DType::f16: return {H5T_STD_U16LE, H5T_NATIVE_UINT16, H5T_INTEGER};
    case DType::i32: return {H5T_STD_I32LE, H5T_NATIVE_INT32, H5T_INTEGER};
    case DType::i64: return {H5T_STD_I64LE, H5T_NATIVE_INT64, H5T_INTEGER};
    case DType::u8: case DType::boolean: return {H5T_STD_U8LE, H5T_NATIVE_UINT8, H5T_INTEGER};
  }
  SPARTA_FAIL("checkpoint", "unsupported dtype");
}

// What the root checksum covers for one dataset; the data enters through its own checksum.
struct Summary {
  DType dtype;
  Shape shape;
  uint64_t data_checksum;
};
using Summaries = std::map<std::string, Summary>;  // by name: the root checksum is order-free

uint64_t root_checksum(const Summaries& model, const Summaries& optim, const CheckpointState& s) {
  Fnv1a64 h;
  h.str("sparta checkpoint");
  h.u64(uint64_t(kCheckpointFormatVersion));
  for (const Summaries* section : {&model, &optim}) {
    h.u64(section->size());
    for (const auto& [name, sum] : *section) {
      h.str(name);
      h.str(dtype_name(sum.dtype));
      h.u64(sum.shape.size());
      for (int64_t d : sum.shape) h.u64(uint64_t(d));
      h.u64(sum.data_checksum);
    }
  }
  h.u64(uint64_t(s.step));
  h.u64(s.counters.size());
  for (const auto& [k, v] : s.counters) {
    h.str(k);
    h.u64(uint64_t(v));
  }
  h.u64(s.scalars.size());
  for (const auto& [k, v] : s.scalars) {
    h.str(k);
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    h.u64(bits);
  }
  h.str(s.config_yaml);
  return h.h;
}

std::vector<std::string> split_name(const std::string& name) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = name.find('/', start);
    parts.push_back(name.substr(start, slash - start));
    if (slash == std::string::npos) return parts;
    start = slash + 1;
  }
}

void check_names(const NamedTensors& entries, const char* section) {
  std::set<std::string> seen;
  for (const auto& [name, t] : entries) {
    for (const std::string& part : split_name(name)) {
      SPARTA_CHECK(!part.empty() && part != "." && part != "..", "checkpoint", section, " name '", name,
                   "' is not usable as an HDF5 path (empty, '.' or '..' part)");
    }
    SPARTA_CHECK(seen.insert(name).second, "checkpoint", "duplicate ", section, " name '", name, "'");
    SPARTA_CHECK(t.defined(), "checkpoint", section, " tensor '", name, "' is undefined");
  }
  // "a" and "a/b" cannot both exist: "a" would be a dataset and a group at once.
  for (const std::string& name : seen) {
    for (size_t slash = name.find('/'); slash != std::string::npos; slash = name.find('/', slash + 1)) {
      SPARTA_CHECK(!seen.count(name.substr(0, slash)), "checkpoint", section, " name '", name, "' needs a group '",
                   name.substr(0, slash), "', which is also the name of a tensor");
    }
  }
}

void maybe_fault(int written) {
  int n = fault_after_datasets.load();
  SPARTA_CHECK(n < 0 || written < n, "checkpoint", "injected fault after ", written, " datasets (test hook)");
}

// Writes one dataset under `section`, making the groups that a '/' in its name asks for.
Summary write_tensor(const h5::Group& section, const std::string& name, const Tensor& t) {
  std::vector<std::string> parts = split_name(name);
  std::vector<h5::Group> chain;  // keeps every intermediate group open while its child is made
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const h5::Group& parent = chain.empty() ? section : chain.back();
    chain.push_back(parent.has_link(parts[i]) ? parent.open_group(parts[i]) : parent.create_group(parts[i]));
  }
  const h5::Group& parent = chain.empty() ? section : chain.back();
  Tensor host = contiguous(to_device(t.detach(), Device::cpu()));
  Layout layout = layout_of(host.dtype());
  h5::Dataset d = parent.create_dataset(parts.back(), layout.file_type, host.shape());
  d.write(layout.mem_type, host.data_ptr());
  Fnv1a64 h;
  h.bytes(host.data_ptr(), host.nbytes());
  d.set_string_attr("dtype", dtype_name(host.dtype()));
  d.set_string_attr("checksum", checksum_str(h.h));
  return {host.dtype(), host.shape(), h.h};
}

Summaries write_section(const h5::Group& root, const char* section, const NamedTensors& entries, int& written) {
  h5::Group g = root.create_group(section);
  Summaries sums;
  for (const auto& [name, t] : entries) {
    sums[name] = write_tensor(g, name, t);
    maybe_fault(++written);
  }
  return sums;
}

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  SPARTA_FAIL("checkpoint", "checkpoint ", path, " is corrupt (", what, ")");
}

Tensor read_tensor(const std::string& path, const h5::Group& parent, const std::string& link, Summary& sum) {
  h5::Dataset d = parent.open_dataset(link);
  std::string dtype_str = d.string_attr("dtype");
  DType dtype;
  try {
    dtype = dtype_from_name(dtype_str);
  } catch (const Error&) {
    corrupt(path, d.name() + " has unknown dtype '" + dtype_str + "'");
  }
  Layout layout = layout_of(dtype);
  if (d.type_class() != layout.h5_class || d.type_size() != dtype_size(dtype)) {
    corrupt(path, d.name() + " is marked " + dtype_name(dtype) + " but its stored type has " +
                      std::to_string(d.type_size()) + "-byte elements of another kind");
  }
  Tensor t = Tensor::empty(d.shape(), dtype);
  d.read(layout.mem_type, t.data_ptr());
  Fnv1a64 h;
  h.bytes(t.data_ptr(), t.nbytes());
  std::string stored = d.string_attr("checksum");
  if (stored != checksum_str(h.h)) {
    corrupt(path, "checksum of " + d.name() + ": stored " + stored + ", computed " + checksum_str(h.h));
  }
  sum = {dtype, t.shape(), h.h};
  return t;
}

void read_group(const std::string& path, const h5::Group& g, const std::string& prefix, NamedTensors& out,
                Summaries& sums) {
  for (const std::string& link : g.link_names()) {
    if (g.is_group(link)) {
      read_group(path, g.open_group(link), prefix + link + "/", out, sums);
    } else {
      std::string name = prefix + link;
      out.emplace_back(name, read_tensor(path, g, link, sums[name]));
    }
  }
}

h5::Group require_group(const std::string& path, const h5::Group& parent, const std::string& link) {
  if (!parent.is_group(link)) {
    SPARTA_FAIL("checkpoint", "checkpoint ", path, " has no group ", parent.name() == "/" ? "" : parent.name(), "/",
                link);
  }
  return parent.open_group(link);
}

CheckpointState read_checkpoint(const std::string& path, const h5::File& file) {
  h5::Group root = file.root();
  SPARTA_CHECK(root.has_attr("format_version"), "checkpoint", "checkpoint ", path,
               " has no format_version attribute (not a sparta checkpoint?)");
  int64_t version = root.int_attr("format_version");
  SPARTA_CHECK(version == kCheckpointFormatVersion, "checkpoint", "checkpoint ", path, " has format version ",
               version, "; this build reads version ", kCheckpointFormatVersion);

  CheckpointState s;
  Summaries model, optim;
  read_group(path, require_group(path, root, "model"), "", s.model, model);
  read_group(path, require_group(path, root, "optim"), "", s.optimizer, optim);
  h5::Group st = require_group(path, root, "state");
  s.step = st.int_attr("step");
  h5::Group counters = require_group(path, st, "counters");
  for (const std::string& k : counters.attr_names()) s.counters[k] = counters.int_attr(k);
  h5::Group scalars = require_group(path, st, "scalars");
  for (const std::string& k : scalars.attr_names()) s.scalars[k] = scalars.double_attr(k);
  s.config_yaml = root.string_attr("config");

  std::string stored = root.has_attr("checksum") ? root.string_attr("checksum") : "none";
  std::string computed = checksum_str(root_checksum(model, optim, s));
  if (stored != computed) corrupt(path, "checksum: stored " + stored + ", computed " + computed);
  return s;
}

void write_checkpoint(const std::string& path, const CheckpointState& state) {
  replace_file_atomically(path, [&](const std::string& tmp) {
    h5::File file = h5::File::create(tmp);
    {
      h5::Group root = file.root();
      int written = 0;
      maybe_fault(written);
      Summaries model = write_section(root, "model", state.model, written);
      Summaries optim = write_section(root, "optim", state.optimizer, written);
      h5::Group st = root.create_group("state");
      st.set_int_attr("step", state.step);
      h5::Group counters = st.create_group("counters");
      for (const auto& [k, v] : state.counters) counters.set_int_attr(k, v);
      h5::Group scalars = st.create_group("scalars");
      for (const auto& [k, v] : state.scalars) scalars.set_double_attr(k, v);
      root.set_int_attr("format_version", kCheckpointFormatVersion);
      root.set_string_attr("config", state.config_yaml);
      root.set_string_attr("checksum", checksum_str(root_checksum(model, optim, state)));
    }
    file.flush();
    file.close();
  });
}

}  // namespace

void save_checkpoint(const std::string& path, const CheckpointState& state) {
  check_names(state.model, "model");
  check_names(state.optimizer, "optimizer");
  std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  try {
    write_checkpoint(path, state);
  } catch (const Error& e) {
    SPARTA_FAIL("checkpoint", "cannot save checkpoint ", path, ": ", e.what());
  }
}

CheckpointState load_checkpoint(const std::string& path) {
  std::error_code ec;
  SPARTA_CHECK(std::filesystem::exists(path, ec), "checkpoint", "checkpoint ", path, " does not exist");
  std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  SPARTA_CHECK(h5::File::is_hdf5(path), "checkpoint", "checkpoint ", path, " is not an HDF5 file");
  h5::File file;
  try {
    file = h5::File::open_read_only(path);
  } catch (const Error& e) {
    SPARTA_FAIL("checkpoint", "checkpoint ", path, " cannot be opened (truncated or damaged?): ", e.what());
  }
  try {
    return read_checkpoint(path, file);
  } catch (const h5::H5Error& e) {
    // HDF5 checksums its own metadata: a flipped bit there surfaces as a read failure.
    corrupt(path, e.what());
  }
}

void check_compatible(const CheckpointState& state, const NamedTensors& model_params) {
  std::map<std::string, const Tensor*> saved;
  for (const auto& [name, t] : state.model) saved[name] = &t;
  std::set<std::string> wanted;
  for (const auto& [name, t] : model_params) {
    wanted.insert(name);
    auto it = saved.find(name);
    SPARTA_CHECK(it != saved.end(), "checkpoint", "parameter ", name, " of the model is missing from the checkpoint");
    SPARTA_CHECK(it->second->shape() == t.shape(), "checkpoint", "parameter ", name, ": checkpoint has shape ",
                 shape_str(it->second->shape()), ", the model ", shape_str(t.shape()));
  }
  for (const auto& [name, t] : state.model) {
    SPARTA_CHECK(wanted.count(name), "checkpoint", "checkpoint has unexpected parameter ", name,
                 " (the model has no parameter of that name)");
  }
}

namespace detail {
void set_checkpoint_fault_after_datasets(int n) { fault_after_datasets.store(n); }
}  // namespace detail

}  // namespace sparta::train

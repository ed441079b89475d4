#include "train/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "core/ops.h"
#include "train/atomic_file.h"

// The format is little-endian and tensors are written straight from memory.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors I/O assumes a little-endian host"
#endif

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;  // keeps the header's order, which is the data's order

namespace sparta::train {

namespace {

// The reference implementation refuses larger headers; a corrupt length must not make us
// allocate gigabytes.
constexpr uint64_t kMaxHeader = 100'000'000;

std::string load_location(const std::string& path, const std::string& tensor) {
  return path + ": tensor '" + tensor + "'";
}

uint64_t as_u64(const Json& v, const std::string& where, const char* what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return uint64_t(v.get<int64_t>());
  SPARTA_FAIL("safetensors", where, ": ", what, " must be a non-negative integer, got ", v.dump());
}

struct Item {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

Item parse_item(const std::string& path, const std::string& name, const Json& v, uint64_t data_size) {
  const std::string where = load_location(path, name);
  SPARTA_CHECK(v.is_object(), "safetensors", where, ": entry must be an object, got ", v.dump());
  for (const auto& [key, _] : v.items()) {
    SPARTA_CHECK(key == "dtype" || key == "shape" || key == "data_offsets", "safetensors", where, ": unknown key '",
                 key, "' (expected dtype, shape, data_offsets)");
  }
  SPARTA_CHECK(v.contains("dtype") && v["dtype"].is_string(), "safetensors", where, ": dtype must be a string");
  SPARTA_CHECK(v.contains("shape") && v["shape"].is_array(), "safetensors", where, ": shape must be an array");
  SPARTA_CHECK(v.contains("data_offsets") && v["data_offsets"].is_array() && v["data_offsets"].size() == 2,
               "safetensors", where, ": data_offsets must be an array [begin, end]");
  Item it;
  it.name = name;
  try {
    it.dtype = dtype_from_safetensors(v["dtype"].get<std::string>());
  } catch (const Error& e) {
    SPARTA_FAIL("safetensors", where, ": ", e.what());
  }
  uint64_t numel = 1;
  bool overflow = false;
  for (const Json& d : v["shape"]) {
    uint64_t n = as_u64(d, where, "every dimension of shape");
    overflow |= n > uint64_t(std::numeric_limits<int64_t>::max()) || (n != 0 && numel > UINT64_MAX / n);
    if (!overflow) numel *= n;
    it.shape.push_back(int64_t(n));
  }
  size_t item = dtype_size(it.dtype);
  overflow |= numel > UINT64_MAX / item;
  SPARTA_CHECK(!overflow, "safetensors", where, ": shape ", v["shape"].dump(), " is too large");
  it.begin = as_u64(v["data_offsets"][0], where, "data_offsets[0]");
  it.end = as_u64(v["data_offsets"][1], where, "data_offsets[1]");
  SPARTA_CHECK(it.begin <= it.end, "safetensors", where, ": data_offsets [", it.begin, ", ", it.end,
               "] end before they begin");
  SPARTA_CHECK(it.end <= data_size, "safetensors", where, ": data_offsets [", it.begin, ", ", it.end,
               "] out of range: the data section has ", data_size, " bytes (truncated file?)");
  SPARTA_CHECK(it.end - it.begin == numel * item, "safetensors", where, ": data_offsets [", it.begin, ", ", it.end,
               "] hold ", it.end - it.begin, " bytes, but ", v["dtype"].get<std::string>(), " of shape ",
               shape_str(it.shape), " needs ", numel * item);
  return it;
}

// As the reference reader requires: the tensors tile the data section exactly.
void check_tiling(const std::string& path, std::vector<const Item*> items, uint64_t data_size) {
  std::sort(items.begin(), items.end(),
            [](const Item* a, const Item* b) { return a->begin != b->begin ? a->begin < b->begin : a->end < b->end; });
  uint64_t covered = 0;
  const Item* prev = nullptr;
  for (const Item* it : items) {
    SPARTA_CHECK(it->begin >= covered, "safetensors", path, ": tensors '", prev ? prev->name : "", "' and '",
                 it->name, "' overlap (data_offsets [", prev ? prev->begin : 0, ", ", prev ? prev->end : 0, "] and [",
                 it->begin, ", ", it->end, "])");
    SPARTA_CHECK(it->begin == covered, "safetensors", path, ": bytes [", covered, ", ", it->begin,
                 ") of the data section belong to no tensor");
    covered = it->end;
    prev = it;
  }
  SPARTA_CHECK(covered == data_size, "safetensors", path, ": the data section has ", data_size,
               " bytes but the tensors cover ", covered);
}

}  // namespace

const char* safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::f64: return "F64";
    case DType::f32: return "F32";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
    case DType::boolean: return "BOOL";
  }
  SPARTA_FAIL("safetensors", "unsupported dtype");
}

DType dtype_from_safetensors(const std::string& name) {
  for (DType t : {DType::f64, DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8, DType::boolean}) {
    if (name == safetensors_dtype(t)) return t;
  }
  SPARTA_FAIL("safetensors", "unsupported dtype '", name, "' (sparta reads F64, F32, BF16, F16, I32, I64, U8, BOOL)");
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) {
    Json m = Json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = m;
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    SPARTA_CHECK(!name.empty() && name != "__metadata__", "safetensors", path, ": tensor name '", name,
                 "' is reserved or empty");
    SPARTA_CHECK(!header.contains(name), "safetensors", path, ": duplicate tensor name '", name, "'");
    SPARTA_CHECK(t.defined(), "safetensors", path, ": tensor '", name, "' is undefined");
    header[name] = {{"dtype", safetensors_dtype(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    SPARTA_FAIL("safetensors", path, ": tensor names and metadata must be valid UTF-8 (", e.what(), ")");
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  replace_file_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    SPARTA_CHECK(out, "safetensors", "cannot create ", tmp, ": ", std::strerror(errno));
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), std::streamsize(text.size()));
    for (const auto& [name, t] : tensors) {  // one host copy at a time
      Tensor host = contiguous(to_device(t.detach(), Device::cpu()));
      out.write(static_cast<const char*>(host.data_ptr()), std::streamsize(host.nbytes()));
    }
    out.close();
    SPARTA_CHECK(out, "safetensors", "cannot write ", tmp, " (disk full?)");
  });
}

Safetensors read_safetensors(const std::string& path) {
  std::error_code ec;
  SPARTA_CHECK(fs::is_regular_file(path, ec), "safetensors", path, " does not exist or is not a file");
  const uint64_t size = fs::file_size(path, ec);
  std::ifstream in(path, std::ios::binary);
  SPARTA_CHECK(in && !ec, "safetensors", "cannot open ", path, ": ", std::strerror(errno));
  SPARTA_CHECK(size >= 8, "safetensors", path, ": truncated (", size,
               " bytes; the file starts with an 8-byte header length)");
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(len[i]) << (8 * i);
  SPARTA_CHECK(n <= kMaxHeader, "safetensors", path, ": header length ", n,
               " is over the 100 MB limit (not a safetensors file?)");
  SPARTA_CHECK(n <= size - 8, "safetensors", path, ": header length ", n, " exceeds the ", size - 8,
               " bytes after it (truncated file?)");
  std::string text(n, '\0');
  in.read(text.data(), std::streamsize(n));
  SPARTA_CHECK(in, "safetensors", "cannot read the header of ", path);
  SPARTA_CHECK(n > 0 && text[0] == '{', "safetensors", path, ": the header does not start with '{'");

  Json header;
  std::string duplicate;
  std::set<std::string> keys;
  try {
    header = Json::parse(text, [&](int depth, Json::parse_event_t event, Json& parsed) {
      if (event == Json::parse_event_t::key && depth == 1 && !keys.insert(parsed.get<std::string>()).second) {
        duplicate = parsed.get<std::string>();
      }
      return true;
    });
  } catch (const nlohmann::json::exception& e) {
    SPARTA_FAIL("safetensors", path, ": bad JSON header: ", e.what());
  }
  SPARTA_CHECK(duplicate.empty(), "safetensors", path, ": the header names '", duplicate, "' twice");
  SPARTA_CHECK(header.is_object(), "safetensors", path, ": the header is not a JSON object");

  const uint64_t data_size = size - 8 - n;
  Safetensors out;
  std::vector<Item> items;
  for (const auto& [key, v] : header.items()) {
    if (key == "__metadata__") {
      SPARTA_CHECK(v.is_object(), "safetensors", path, ": __metadata__ must be an object of strings");
      for (const auto& [mk, mv] : v.items()) {
        SPARTA_CHECK(mv.is_string(), "safetensors", path, ": __metadata__ value of '", mk,
                     "' must be a string, got ", mv.dump());
        out.metadata[mk] = mv.get<std::string>();
      }
    } else {
      items.push_back(parse_item(path, key, v, data_size));
    }
  }
  std::vector<const Item*> ptrs;
  for (const Item& it : items) ptrs.push_back(&it);
  check_tiling(path, ptrs, data_size);

  for (const Item& it : items) {
    Tensor t = Tensor::empty(it.shape, it.dtype);
    in.seekg(std::streamoff(8 + n + it.begin));
    in.read(static_cast<char*>(t.data_ptr()), std::streamsize(it.end - it.begin));
    SPARTA_CHECK(in, "safetensors", load_location(path, it.name), ": cannot read its data");
    out.tensors.emplace_back(it.name, t);
  }
  return out;
}

}  // namespace sparta::train

#pragma once
// Small RAII handles over the HDF5 C API: a file, its groups, datasets and their attributes.
//
// Why the C API: HDF5's C++ wrappers are not thread-safe and throw their own exception types; here
// every failure becomes a sparta::Error "[hdf5] <file> <object>: <what> (<HDF5's reason>)", and
// HDF5's automatic printing of its error stack to stderr is switched off.
//
// Note [HDF5 lock]: Debian's HDF5 is built without its thread-safety option, so two threads in the
// library at once corrupt its global state. Every entry point of the checkpoint code holds
// library_mutex() for its whole HDF5 conversation; handles must not cross that boundary.
#include <hdf5.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/shape.h"

namespace sparta::train::h5 {

// What every handle throws, so that callers can tell "HDF5 could not read this" (a damaged file)
// from their own checks.
class H5Error : public Error {
 public:
  using Error::Error;
};

std::recursive_mutex& library_mutex();

// One hid_t, the function that closes it, and the names an error message needs.
class Object {
 public:
  using Closer = herr_t (*)(hid_t);
  Object() = default;
  Object(hid_t id, Closer closer, std::string file, std::string name);
  ~Object();
  Object(Object&& other) noexcept;
  Object& operator=(Object&& other) noexcept;
  Object(const Object&) = delete;
  Object& operator=(const Object&) = delete;

  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  const std::string& file() const { return file_; }
  const std::string& name() const { return name_; }  // "/", "/model", "/model/blocks.0.w"
  // Closes now, throwing if HDF5 reports a failure (the destructor closes and ignores failures).
  void close();

  // Attributes: scalar int64, float64 or UTF-8 string (written variable-length; fixed-length ones
  // written elsewhere are read too). Strings end at their first NUL.
  bool has_attr(const std::string& key) const;
  void set_int_attr(const std::string& key, int64_t value) const;
  void set_double_attr(const std::string& key, double value) const;
  void set_string_attr(const std::string& key, const std::string& value) const;
  int64_t int_attr(const std::string& key) const;
  double double_attr(const std::string& key) const;
  std::string string_attr(const std::string& key) const;
  std::vector<std::string> attr_names() const;  // in name order

  // Throws "[hdf5] <file> <object>: <what> (<HDF5's innermost error>)".
  [[noreturn]] void fail(const std::string& what) const;

 protected:
  std::string child_name(const std::string& link) const;

 private:
  Object open_attr(const std::string& key) const;
  hid_t id_ = -1;
  Closer closer_ = nullptr;
  std::string file_;
  std::string name_;
};

class Dataset : public Object {
 public:
  using Object::Object;
  Shape shape() const;
  H5T_class_t type_class() const;
  size_t type_size() const;  // bytes per element in the file
  bool type_is_signed() const;
  // mem_type describes `data`; HDF5 converts between it and the file's type.
  void write(hid_t mem_type, const void* data) const;
  void read(hid_t mem_type, void* data) const;
};

class Group : public Object {
 public:
  using Object::Object;
  // New groups track the creation order of their links, so link_names() returns what was written
  // in the order it was written.
  Group create_group(const std::string& link) const;
  Group open_group(const std::string& link) const;
  bool has_link(const std::string& link) const;
  bool is_group(const std::string& link) const;  // false for datasets and missing links
  // Creation order where the group tracks it, name order otherwise (files written elsewhere).
  std::vector<std::string> link_names() const;
  // A contiguous dataset (so its bytes lie in one run in the file) of file_type and shape;
  // an empty shape makes a scalar dataset.
  Dataset create_dataset(const std::string& link, hid_t file_type, const Shape& shape) const;
  Dataset open_dataset(const std::string& link) const;
};

class File : public Object {
 public:
  using Object::Object;
  // Creates or truncates path for writing. Callers write only temporary files with it.
  static File create(const std::string& path);
  // Fails with HDF5's reason ("truncated file", "file signature not found") for unusable files.
  static File open_read_only(const std::string& path);
  static bool is_hdf5(const std::string& path);
  Group root() const;
  void flush() const;
};

}  // namespace sparta::train::h5

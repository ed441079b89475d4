#include "train/hdf5.h"

#include <utility>

#include "core/error.h"

namespace sparta::train::h5 {

namespace {

// HDF5 prints its whole error stack to stderr on every failure unless told not to; ours become
// exceptions that carry the innermost reason instead (see last_error).
void silence_hdf5() {
  static const bool done = [] {
    H5open();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

herr_t innermost(unsigned n, const H5E_error2_t* err, void* out) {
  if (n == 0 && err->desc) *static_cast<std::string*>(out) = err->desc;
  return 0;
}

// The description of the deepest entry on HDF5's error stack ("truncated file: eof = 512, ...",
// "file signature not found"): the one that says what was actually wrong.
std::string last_error() {
  std::string desc;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, &desc);
  H5Eclear2(H5E_DEFAULT);
  return desc;
}

// Property lists and dataspaces live only inside one call.
Object temp(hid_t id, Object::Closer closer, const Object& owner, const std::string& what) {
  if (id < 0) owner.fail(what);
  return Object(id, closer, owner.file(), owner.name());
}

Object link_plist(const Object& owner) {
  Object lcpl = temp(H5Pcreate(H5P_LINK_CREATE), H5Pclose, owner, "cannot create a link property list");
  H5Pset_char_encoding(lcpl.id(), H5T_CSET_UTF8);
  return lcpl;
}

Object file_access_plist(const std::string& path) {
  silence_hdf5();
  hid_t id = H5Pcreate(H5P_FILE_ACCESS);
  Object fapl(id, H5Pclose, path, "");
  if (id < 0) fapl.fail("cannot create a file access property list");
  // STRONG: H5Fclose closes every object still open in the file, so once it returns the file is
  // really closed and can be fsynced and renamed.
  H5Pset_fclose_degree(id, H5F_CLOSE_STRONG);
  // The 1.8 format: readable by every HDF5 since 2008 (h5py included), with checksummed object
  // headers and link creation order.
  H5Pset_libver_bounds(id, H5F_LIBVER_V18, H5F_LIBVER_V18);
#if H5_VERSION_GE(1, 10, 7)
  // Filesystems without flock (some NFS mounts) would otherwise make every open fail.
  H5Pset_file_locking(id, true, true);
#endif
  return fapl;
}

Shape space_shape(hid_t space, const Object& owner) {
  int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) owner.fail("cannot read the dataspace");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space, dims.data(), nullptr) < 0) owner.fail("cannot read the dataspace");
  return Shape(dims.begin(), dims.end());
}

Object scalar_space(const Object& owner) {
  return temp(H5Screate(H5S_SCALAR), H5Sclose, owner, "cannot create a scalar dataspace");
}

herr_t collect_attr_name(hid_t, const char* name, const H5A_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

}  // namespace

std::recursive_mutex& library_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}

// ---- Object ---------------------------------------------------------------------------------

Object::Object(hid_t id, Closer closer, std::string file, std::string name)
    : id_(id), closer_(closer), file_(std::move(file)), name_(std::move(name)) {}

Object::~Object() {
  if (valid() && closer_) closer_(id_);
}

Object::Object(Object&& o) noexcept
    : id_(std::exchange(o.id_, -1)), closer_(o.closer_), file_(std::move(o.file_)), name_(std::move(o.name_)) {}

Object& Object::operator=(Object&& o) noexcept {
  if (this != &o) {
    if (valid() && closer_) closer_(id_);
    id_ = std::exchange(o.id_, -1);
    closer_ = o.closer_;
    file_ = std::move(o.file_);
    name_ = std::move(o.name_);
  }
  return *this;
}

void Object::close() {
  if (!valid()) return;
  herr_t r = closer_ ? closer_(id_) : 0;
  id_ = -1;
  if (r < 0) fail("cannot close");
}

void Object::fail(const std::string& what) const {
  std::string reason = last_error();
  std::string where = name_.empty() ? file_ : file_ + " " + name_;
  throw H5Error(sparta::detail::concat("[hdf5] ", where, ": ", what, reason.empty() ? "" : " (" + reason + ")"));
}

std::string Object::child_name(const std::string& link) const {
  return name_ == "/" || name_.empty() ? "/" + link : name_ + "/" + link;
}

bool Object::has_attr(const std::string& key) const {
  htri_t r = H5Aexists(id_, key.c_str());
  if (r < 0) fail("cannot look up attribute '" + key + "'");
  return r > 0;
}

Object Object::open_attr(const std::string& key) const {
  if (!has_attr(key)) fail("has no attribute '" + key + "'");
  return temp(H5Aopen(id_, key.c_str(), H5P_DEFAULT), H5Aclose, *this, "cannot open attribute '" + key + "'");
}

namespace {
void write_attr(const Object& owner, const std::string& key, hid_t file_type, hid_t mem_type, const void* value) {
  if (owner.has_attr(key) && H5Adelete(owner.id(), key.c_str()) < 0) {
    owner.fail("cannot replace attribute '" + key + "'");
  }
  Object space = scalar_space(owner);
  Object attr = temp(H5Acreate2(owner.id(), key.c_str(), file_type, space.id(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                     owner, "cannot create attribute '" + key + "'");
  if (H5Awrite(attr.id(), mem_type, value) < 0) owner.fail("cannot write attribute '" + key + "'");
  attr.close();
}

H5T_class_t attr_class(const Object& owner, const Object& attr, const std::string& key) {
  Object type = temp(H5Aget_type(attr.id()), H5Tclose, owner, "cannot read the type of attribute '" + key + "'");
  return H5Tget_class(type.id());
}
}  // namespace

void Object::set_int_attr(const std::string& key, int64_t value) const {
  write_attr(*this, key, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void Object::set_double_attr(const std::string& key, double value) const {
  write_attr(*this, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void Object::set_string_attr(const std::string& key, const std::string& value) const {
  // Variable-length UTF-8, as h5py writes strings (and reads them back as str, not bytes); the
  // bytes live in the file's global heap, so a long config needs no special attribute storage.
  Object type = temp(H5Tcopy(H5T_C_S1), H5Tclose, *this, "cannot create a string type");
  H5Tset_size(type.id(), H5T_VARIABLE);
  H5Tset_cset(type.id(), H5T_CSET_UTF8);
  const char* p = value.c_str();
  write_attr(*this, key, type.id(), type.id(), &p);
}

int64_t Object::int_attr(const std::string& key) const {
  Object attr = open_attr(key);
  if (attr_class(*this, attr, key) != H5T_INTEGER) fail("attribute '" + key + "' is not an integer");
  int64_t v = 0;
  if (H5Aread(attr.id(), H5T_NATIVE_INT64, &v) < 0) fail("cannot read attribute '" + key + "'");
  return v;
}

double Object::double_attr(const std::string& key) const {
  Object attr = open_attr(key);
  H5T_class_t c = attr_class(*this, attr, key);
  if (c != H5T_FLOAT && c != H5T_INTEGER) fail("attribute '" + key + "' is not a number");
  double v = 0;
  if (H5Aread(attr.id(), H5T_NATIVE_DOUBLE, &v) < 0) fail("cannot read attribute '" + key + "'");
  return v;
}

std::string Object::string_attr(const std::string& key) const {
  Object attr = open_attr(key);
  Object type = temp(H5Aget_type(attr.id()), H5Tclose, *this, "cannot read the type of attribute '" + key + "'");
  if (H5Tget_class(type.id()) != H5T_STRING) fail("attribute '" + key + "' is not a string");
  if (H5Tis_variable_str(type.id()) > 0) {  // as h5py writes them
    Object mem = temp(H5Tcopy(H5T_C_S1), H5Tclose, *this, "cannot create a string type");
    H5Tset_size(mem.id(), H5T_VARIABLE);
    H5Tset_cset(mem.id(), H5Tget_cset(type.id()));  // HDF5 converts neither way between ASCII and UTF-8
    char* p = nullptr;
    if (H5Aread(attr.id(), mem.id(), &p) < 0) fail("cannot read attribute '" + key + "'");
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  std::string s(H5Tget_size(type.id()), '\0');
  if (H5Aread(attr.id(), type.id(), s.data()) < 0) fail("cannot read attribute '" + key + "'");
  s.resize(s.find('\0') == std::string::npos ? s.size() : s.find('\0'));
  return s;
}

std::vector<std::string> Object::attr_names() const {
  std::vector<std::string> names;
  hsize_t idx = 0;
  if (H5Aiterate2(id_, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attr_name, &names) < 0) fail("cannot list attributes");
  return names;
}

// ---- Dataset --------------------------------------------------------------------------------

Shape Dataset::shape() const {
  Object space = temp(H5Dget_space(id()), H5Sclose, *this, "cannot read the dataspace");
  return space_shape(space.id(), *this);
}

H5T_class_t Dataset::type_class() const {
  Object type = temp(H5Dget_type(id()), H5Tclose, *this, "cannot read the datatype");
  return H5Tget_class(type.id());
}

size_t Dataset::type_size() const {
  Object type = temp(H5Dget_type(id()), H5Tclose, *this, "cannot read the datatype");
  return H5Tget_size(type.id());
}

bool Dataset::type_is_signed() const {
  Object type = temp(H5Dget_type(id()), H5Tclose, *this, "cannot read the datatype");
  return H5Tget_class(type.id()) != H5T_INTEGER || H5Tget_sign(type.id()) == H5T_SGN_2;
}

void Dataset::write(hid_t mem_type, const void* data) const {
  if (numel_of(shape()) == 0) return;  // nothing to write, and HDF5 rejects a null buffer
  if (H5Dwrite(id(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) fail("cannot write the dataset");
}

void Dataset::read(hid_t mem_type, void* data) const {
  if (numel_of(shape()) == 0) return;
  if (H5Dread(id(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) fail("cannot read the dataset");
}

// ---- Group ----------------------------------------------------------------------------------

Group Group::create_group(const std::string& link) const {
  Object gcpl = temp(H5Pcreate(H5P_GROUP_CREATE), H5Pclose, *this, "cannot create a group property list");
  H5Pset_link_creation_order(gcpl.id(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  Object lcpl = link_plist(*this);
  hid_t id = H5Gcreate2(this->id(), link.c_str(), lcpl.id(), gcpl.id(), H5P_DEFAULT);
  if (id < 0) fail("cannot create group '" + link + "'");
  return Group(id, H5Gclose, file(), child_name(link));
}

Group Group::open_group(const std::string& link) const {
  if (!is_group(link)) fail("has no group '" + link + "'");
  hid_t id = H5Gopen2(this->id(), link.c_str(), H5P_DEFAULT);
  if (id < 0) fail("cannot open group '" + link + "'");
  return Group(id, H5Gclose, file(), child_name(link));
}

bool Group::has_link(const std::string& link) const {
  htri_t r = H5Lexists(id(), link.c_str(), H5P_DEFAULT);
  if (r < 0) fail("cannot look up '" + link + "'");
  return r > 0;
}

bool Group::is_group(const std::string& link) const {
  if (!has_link(link)) return false;
  hid_t obj = H5Oopen(id(), link.c_str(), H5P_DEFAULT);
  if (obj < 0) fail("cannot open '" + link + "'");
  bool group = H5Iget_type(obj) == H5I_GROUP;
  H5Oclose(obj);
  return group;
}

std::vector<std::string> Group::link_names() const {
  Object gcpl = temp(H5Gget_create_plist(id()), H5Pclose, *this, "cannot read the group's properties");
  unsigned order = 0;
  H5Pget_link_creation_order(gcpl.id(), &order);
  H5_index_t index = (order & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
  H5G_info_t info;
  if (H5Gget_info(id(), &info) < 0) fail("cannot list the group");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t n = H5Lget_name_by_idx(id(), ".", index, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (n < 0) fail("cannot list the group");
    std::string name(size_t(n) + 1, '\0');
    H5Lget_name_by_idx(id(), ".", index, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
    name.resize(size_t(n));
    names.push_back(std::move(name));
  }
  return names;
}

Dataset Group::create_dataset(const std::string& link, hid_t file_type, const Shape& shape) const {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Object space = shape.empty() ? scalar_space(*this)
                               : temp(H5Screate_simple(int(dims.size()), dims.data(), nullptr), H5Sclose, *this,
                                      "cannot create a dataspace of shape " + shape_str(shape));
  Object lcpl = link_plist(*this);
  hid_t id = H5Dcreate2(this->id(), link.c_str(), file_type, space.id(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) fail("cannot create dataset '" + link + "'");
  return Dataset(id, H5Dclose, file(), child_name(link));
}

Dataset Group::open_dataset(const std::string& link) const {
  if (!has_link(link)) fail("has no dataset '" + link + "'");
  hid_t id = H5Dopen2(this->id(), link.c_str(), H5P_DEFAULT);
  if (id < 0) fail("cannot open dataset '" + link + "'");
  return Dataset(id, H5Dclose, file(), child_name(link));
}

// ---- File -----------------------------------------------------------------------------------

File File::create(const std::string& path) {
  Object fapl = file_access_plist(path);
  Object fcpl = temp(H5Pcreate(H5P_FILE_CREATE), H5Pclose, fapl, "cannot create a file property list");
  H5Pset_link_creation_order(fcpl.id(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.id(), fapl.id());
  if (id < 0) fapl.fail("cannot create the file");
  return File(id, H5Fclose, path, "");
}

File File::open_read_only(const std::string& path) {
  Object fapl = file_access_plist(path);
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.id());
  if (id < 0) fapl.fail("cannot open the file");
  return File(id, H5Fclose, path, "");
}

bool File::is_hdf5(const std::string& path) {
  silence_hdf5();
  bool yes = H5Fis_hdf5(path.c_str()) > 0;
  H5Eclear2(H5E_DEFAULT);
  return yes;
}

Group File::root() const {
  hid_t id = H5Gopen2(this->id(), "/", H5P_DEFAULT);
  if (id < 0) fail("cannot open the root group");
  return Group(id, H5Gclose, file(), "/");
}

void File::flush() const {
  if (H5Fflush(id(), H5F_SCOPE_GLOBAL) < 0) fail("cannot flush");
}

}  // namespace sparta::train::h5

#include "datasets/activations.h"

#include <hdf5.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <set>
#include <sstream>
#include <type_traits>

#include "core/error.h"
#include "core/host/file_io.h"
#include "datasets/sha256.h"

namespace turbo {
namespace data {
namespace {

static_assert(std::is_same<hid_t, int64_t>::value, "HDF5 >= 1.10 with 64-bit hid_t expected");

// The HDF5 library prints its own error stack to stderr by default; every failure here is turned
// into a turbo::Error instead, so silence it once. And no library shutdown at exit: after a write
// error (a full disk) H5Fclose fails and leaves the file half closed, and HDF5 1.10's exit
// handler then crashed closing it again (issue 10 defect 4). Every file here is closed
// explicitly, so the handler has nothing else to do. (Before any other HDF5 call, to take effect.)
// The project links HDF5's C library only: the C++ library's own finalizer calls H5close
// regardless of H5dont_atexit, which ASan showed crashing on exactly that path.
void quiet_hdf5() {
  static const bool done = [] {
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

// Owns one HDF5 identifier and closes it with the matching H5?close.
class H5Handle {
 public:
  H5Handle() = default;
  H5Handle(hid_t id, herr_t (*closer)(hid_t)) : id_(id), closer_(closer) {}
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  H5Handle(H5Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  ~H5Handle() {
    if (id_ >= 0 && closer_) closer_(id_);
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  herr_t (*closer_)(hid_t) = nullptr;
};

// The innermost messages of the HDF5 error stack of the call that just failed (the automatic
// printing is off, the stack is still kept), as ": <message>; <message>", and a plain statement
// when one of them is a failed checksum (fletcher32 over chunk data, or a metadata checksum).
herr_t collect_error(unsigned n, const H5E_error2_t* e, void* out) {
  auto& v = *static_cast<std::vector<std::string>*>(out);
  if (e->desc && *e->desc && n < 64) v.emplace_back(e->desc);
  return 0;
}
std::string hdf5_cause() {
  std::vector<std::string> msgs;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_error, &msgs);  // innermost first
  if (msgs.empty()) return "";
  std::string out;
  bool checksum = false;
  for (size_t i = 0; i < msgs.size() && i < 2; ++i) out += (i ? "; " : ": ") + msgs[i];
  for (const std::string& m : msgs)
    checksum = checksum || m.find("checksum") != std::string::npos ||
               m.find("Fletcher32") != std::string::npos;
  if (checksum) out += " (checksum mismatch: the file is corrupt)";
  return out;
}

hid_t check_id(hid_t id, const std::string& what) {
  TURBO_CHECK(id >= 0, "HDF5: " << what << hdf5_cause());
  return id;
}
void check_status(herr_t s, const std::string& what) {
  TURBO_CHECK(s >= 0, "HDF5: " << what << hdf5_cause());
}

// The newest file format HDF5 1.10 writes (superblock v3, version-2 object headers, fixed-array
// chunk indexes: every piece of metadata carries a checksum). Pinned to 1.10 rather than "latest"
// so that a newer library writes the same bytes.
H5Handle checksummed_file_access() {
  H5Handle fapl(check_id(H5Pcreate(H5P_FILE_ACCESS), "file access list"), &H5Pclose);
  check_status(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110),
               "selecting the HDF5 1.10 file format");
  return fapl;
}

// Reads verify the fletcher32 checksum of every chunk (HDF5's default, stated here).
H5Handle verifying_transfer() {
  H5Handle dxpl(check_id(H5Pcreate(H5P_DATASET_XFER), "transfer list"), &H5Pclose);
  check_status(H5Pset_edc_check(dxpl.get(), H5Z_ENABLE_EDC), "enabling checksum verification");
  return dxpl;
}

bool has_fletcher32(hid_t ds) {
  H5Handle dcpl(check_id(H5Dget_create_plist(ds), "dataset creation list"), &H5Pclose);
  unsigned flags = 0, config = 0;
  size_t n = 0;
  return H5Pget_filter_by_id2(dcpl.get(), H5Z_FILTER_FLETCHER32, &flags, &n, nullptr, 0, nullptr,
                              &config) >= 0;
}

// IEEE binary16 little-endian, built as h5py builds numpy float16 (HDF5 1.10 has no predefined
// half type): sign bit 15, exponent bits 10..14 (bias 15), mantissa bits 0..9.
H5Handle make_half_type() {
  H5Handle t(check_id(H5Tcopy(H5T_IEEE_F32LE), "copying the float type"), &H5Tclose);
  check_status(H5Tset_fields(t.get(), 15, 10, 5, 0, 10), "setting FP16 fields");
  check_status(H5Tset_size(t.get(), 2), "setting FP16 size");
  check_status(H5Tset_ebias(t.get(), 15), "setting FP16 exponent bias");
  return t;
}

bool is_half_type(hid_t t) {
  if (H5Tget_class(t) != H5T_FLOAT || H5Tget_size(t) != 2) return false;
  size_t spos, epos, esize, mpos, msize;
  if (H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) < 0) return false;
  return spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 &&
         H5Tget_ebias(t) == 15 && H5Tget_order(t) == H5T_ORDER_LE;
}

std::string layer_group_name(int layer) { return "/layers/" + std::to_string(layer); }

// ---- attribute writers (fixed order, no timestamps) -------------------------------------------

// A fixed-length, null-padded UTF-8 string (h5py: string_dtype("utf-8", length)): it is stored in
// the attribute message, under the object header's checksum. (A variable-length string lives in
// the global heap, which HDF5 does not checksum, and a flipped bit there crashed HDF5 1.10's
// H5Aread.)
void write_string_attr(hid_t obj, const char* name, const std::string& value) {
  const std::string stored = value.empty() ? std::string(1, '\0') : value;  // size >= 1
  H5Handle type(check_id(H5Tcopy(H5T_C_S1), "string type"), &H5Tclose);
  check_status(H5Tset_size(type.get(), stored.size()), "string size");
  check_status(H5Tset_strpad(type.get(), H5T_STR_NULLPAD), "string padding");
  check_status(H5Tset_cset(type.get(), H5T_CSET_UTF8), "string charset");
  H5Handle space(check_id(H5Screate(H5S_SCALAR), "scalar space"), &H5Sclose);
  H5Handle attr(check_id(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                         std::string("creating attribute ") + name),
                &H5Aclose);
  check_status(H5Awrite(attr.get(), type.get(), stored.data()),
               std::string("writing attribute ") + name);
}

template <typename T>
void write_scalar_attr(hid_t obj, const char* name, hid_t file_type, hid_t mem_type, T value) {
  H5Handle space(check_id(H5Screate(H5S_SCALAR), "scalar space"), &H5Sclose);
  H5Handle attr(check_id(H5Acreate2(obj, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                         std::string("creating attribute ") + name),
                &H5Aclose);
  check_status(H5Awrite(attr.get(), mem_type, &value), std::string("writing attribute ") + name);
}

void write_int_array_attr(hid_t obj, const char* name, const std::vector<int>& values) {
  const hsize_t n = values.size();
  H5Handle space(check_id(H5Screate_simple(1, &n, nullptr), "array space"), &H5Sclose);
  H5Handle attr(
      check_id(H5Acreate2(obj, name, H5T_STD_I32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
               std::string("creating attribute ") + name),
      &H5Aclose);
  std::vector<int32_t> v(values.begin(), values.end());
  if (n) check_status(H5Awrite(attr.get(), H5T_NATIVE_INT32, v.data()), "writing layers");
}

// ---- attribute readers ------------------------------------------------------------------------

H5Handle open_attr(hid_t obj, const char* name, const std::string& path) {
  TURBO_CHECK(H5Aexists(obj, name) > 0,
              "'" << path << "' is not a turboattn activation file: root attribute '" << name
                  << "' is missing (schema in datasets/README.md)");
  return H5Handle(
      check_id(H5Aopen(obj, name, H5P_DEFAULT), std::string("opening attribute ") + name),
      &H5Aclose);
}

std::string read_string_attr(hid_t obj, const char* name, const std::string& path) {
  H5Handle attr = open_attr(obj, name, path);
  H5Handle ftype(check_id(H5Aget_type(attr.get()), "attribute type"), &H5Tclose);
  TURBO_CHECK(H5Tget_class(ftype.get()) == H5T_STRING,
              "'" << path << "': attribute '" << name << "' must be a string");
  if (H5Tis_variable_str(ftype.get()) > 0) {
    H5Handle mtype(check_id(H5Tcopy(H5T_C_S1), "string type"), &H5Tclose);
    H5Tset_size(mtype.get(), H5T_VARIABLE);
    H5Tset_cset(mtype.get(), H5Tget_cset(ftype.get()));
    char* p = nullptr;
    check_status(H5Aread(attr.get(), mtype.get(), &p), std::string("reading attribute ") + name);
    std::string out = p ? p : "";
    if (p) H5free_memory(p);
    return out;
  }
  const size_t n = H5Tget_size(ftype.get());
  std::string out(n, '\0');
  check_status(H5Aread(attr.get(), ftype.get(), &out[0]), std::string("reading attribute ") + name);
  out.resize(std::strlen(out.c_str()));
  return out;
}

template <typename T>
T read_scalar_attr(hid_t obj, const char* name, hid_t mem_type, const std::string& path) {
  H5Handle attr = open_attr(obj, name, path);
  H5Handle ftype(check_id(H5Aget_type(attr.get()), "attribute type"), &H5Tclose);
  H5Handle space(check_id(H5Aget_space(attr.get()), "attribute space"), &H5Sclose);
  const H5T_class_t cls = H5Tget_class(ftype.get());
  TURBO_CHECK(
      (cls == H5T_INTEGER || cls == H5T_FLOAT) && H5Sget_simple_extent_npoints(space.get()) == 1,
      "'" << path << "': attribute '" << name << "' must be a numeric scalar");
  T value{};
  check_status(H5Aread(attr.get(), mem_type, &value), std::string("reading attribute ") + name);
  return value;
}

// Objects are reached through hard links only: a soft or external link would let one path read
// another tensor (/layers/0/q -> /layers/1/q) without a word.
void require_hard_link(hid_t root, const std::string& name, const std::string& path) {
  H5L_info_t info;
  check_status(H5Lget_info(root, name.c_str(), &info, H5P_DEFAULT),
               "examining the link " + name + " of '" + path + "'");
  TURBO_CHECK(info.type == H5L_TYPE_HARD, "'" << path << "': " << name
                                              << " is a soft or external link; the schema "
                                                 "stores every group and dataset in place");
}

// Checks a dataset's storage against its shape before anything is read: chunk dimensions within
// the shape (a flipped bit made them [1, 256, 2097216] and H5Dread crashed), and every chunk
// present exactly once, aligned and inside the file (a missing chunk reads as
// zeros without an error).
void check_storage(hid_t ds, int rank, const hsize_t* dims, const std::string& name,
                   const std::string& path) {
  const std::string where = "'" + path + "': " + name;
  H5Handle dcpl(check_id(H5Dget_create_plist(ds), "dataset creation list of " + name), &H5Pclose);
  const H5D_layout_t layout = H5Pget_layout(dcpl.get());
  hsize_t elements = 1;
  for (int i = 0; i < rank; ++i) elements *= dims[i];
  if (layout != H5D_CHUNKED) {
    TURBO_CHECK(layout == H5D_CONTIGUOUS || layout == H5D_COMPACT,
                where << " has an unsupported storage layout (corrupt metadata?)");
    return;
  }
  hsize_t chunk[3] = {0, 0, 0};
  TURBO_CHECK(H5Pget_chunk(dcpl.get(), rank, chunk) == rank,
              where << ": chunk rank differs from the dataset rank (corrupt metadata)");
  hsize_t grid[3] = {1, 1, 1}, expected = 1;
  for (int i = 0; i < rank; ++i) {
    TURBO_CHECK(chunk[i] >= 1 && chunk[i] <= std::max<hsize_t>(dims[i], 1),
                where << ": chunk dimension " << i << " is " << chunk[i] << " for a shape of "
                      << dims[i] << " (corrupt metadata)");
    grid[i] = (dims[i] + chunk[i] - 1) / chunk[i];
    expected *= grid[i];
  }
  if (elements == 0) return;
  H5Handle space(check_id(H5Dget_space(ds), "dataspace of " + name), &H5Sclose);
  hsize_t n_chunks = 0;
  check_status(H5Dget_num_chunks(ds, space.get(), &n_chunks), "counting the chunks of " + name);
  TURBO_CHECK(n_chunks == expected, where << " stores " << n_chunks << " chunks, its shape needs "
                                          << expected << " (truncated or corrupt chunk index)");
  struct stat st;
  const hsize_t file_size = ::stat(path.c_str(), &st) == 0 ? static_cast<hsize_t>(st.st_size) : 0;
  std::vector<bool> seen(static_cast<size_t>(expected), false);
  for (hsize_t k = 0; k < n_chunks; ++k) {
    hsize_t offset[3] = {0, 0, 0};
    unsigned filter_mask = 0;
    haddr_t addr = 0;
    hsize_t size = 0;
    check_status(H5Dget_chunk_info(ds, space.get(), k, offset, &filter_mask, &addr, &size),
                 "reading the chunk index of " + name);
    hsize_t linear = 0;
    for (int i = 0; i < rank; ++i) {
      TURBO_CHECK(offset[i] % chunk[i] == 0 && offset[i] < dims[i],
                  where << ": chunk " << k
                        << " sits at a misaligned or out-of-range offset "
                           "(corrupt chunk index)");
      linear = linear * grid[i] + offset[i] / chunk[i];
    }
    TURBO_CHECK(!seen[static_cast<size_t>(linear)],
                where << ": two chunks claim one position (corrupt chunk index)");
    seen[static_cast<size_t>(linear)] = true;
    // (filter_mask may be nonzero: gzip is optional and skipped for a chunk it cannot shrink.)
    TURBO_CHECK(size > 0 && addr != HADDR_UNDEF &&
                    (file_size == 0 || (addr < file_size && size <= file_size - addr)),
                where << ": chunk " << k << " points outside the file (truncated or corrupt)");
  }
}

}  // namespace

// ================================ reader =======================================================

ActivationReader::ActivationReader(const std::string& path) : path_(path) {
  quiet_hdf5();
  check_input_file(path, "activation file");  // a directory or FIFO is named, never opened
  TURBO_CHECK(H5Fis_hdf5(path.c_str()) > 0, "'" << path << "' is not an HDF5 file");
  file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  TURBO_CHECK(file_ >= 0,
              "cannot open HDF5 file '" << path << "' (truncated or corrupt?)" << hdf5_cause());
  try {
    const hid_t root = file_;
    const int schema = read_scalar_attr<int32_t>(root, "schema_version", H5T_NATIVE_INT32, path);
    TURBO_CHECK(schema == kActivationSchemaVersion, "'" << path << "' has schema_version " << schema
                                                        << "; this build reads version "
                                                        << kActivationSchemaVersion);
    meta_.model = read_string_attr(root, "model", path);
    meta_.model_sha256 = read_string_attr(root, "model_sha256", path);
    meta_.text_source = read_string_attr(root, "text_source", path);
    meta_.version = read_string_attr(root, "turboattn_version", path);
    meta_.command = read_string_attr(root, "command", path);
    meta_.rope_theta = read_scalar_attr<double>(root, "rope_theta", H5T_NATIVE_DOUBLE, path);
    meta_.n_layers = read_scalar_attr<int32_t>(root, "n_layers", H5T_NATIVE_INT32, path);
    meta_.n_heads = read_scalar_attr<int32_t>(root, "n_heads", H5T_NATIVE_INT32, path);
    meta_.n_kv_heads = read_scalar_attr<int32_t>(root, "n_kv_heads", H5T_NATIVE_INT32, path);
    meta_.head_dim = read_scalar_attr<int32_t>(root, "head_dim", H5T_NATIVE_INT32, path);
    meta_.n_tokens = read_scalar_attr<int64_t>(root, "n_tokens", H5T_NATIVE_INT64, path);
    TURBO_CHECK(meta_.n_layers > 0 && meta_.n_heads > 0 && meta_.n_kv_heads > 0 &&
                    meta_.head_dim > 0 && meta_.n_tokens > 0 &&
                    meta_.n_heads % meta_.n_kv_heads == 0,
                "'" << path << "': inconsistent shape attributes (n_layers " << meta_.n_layers
                    << ", n_heads " << meta_.n_heads << ", n_kv_heads " << meta_.n_kv_heads
                    << ", head_dim " << meta_.head_dim << ", n_tokens " << meta_.n_tokens << ")");
    // Layers present: the /layers group's members, checked against the `layers` attribute.
    TURBO_CHECK(H5Lexists(root, "layers", H5P_DEFAULT) > 0,
                "'" << path << "' has no /layers group (schema in datasets/README.md)");
    {
      H5Handle attr = open_attr(root, "layers", path);
      H5Handle space(check_id(H5Aget_space(attr.get()), "layers space"), &H5Sclose);
      const hssize_t n = H5Sget_simple_extent_npoints(space.get());
      std::vector<int32_t> v(static_cast<size_t>(std::max<hssize_t>(n, 0)));
      if (n > 0) check_status(H5Aread(attr.get(), H5T_NATIVE_INT32, v.data()), "reading layers");
      meta_.layers.assign(v.begin(), v.end());
    }
    // An empty list would give a sweep with no rows, marked complete.
    TURBO_CHECK(!meta_.layers.empty(), "'" << path << "': attribute 'layers' lists no layer");
    require_hard_link(root, "layers", path);
    std::set<int> seen;
    for (int l : meta_.layers) {
      TURBO_CHECK(l >= 0 && l < meta_.n_layers && seen.insert(l).second,
                  "'" << path << "': attribute 'layers' holds an invalid or repeated layer " << l);
      TURBO_CHECK(H5Lexists(root, layer_group_name(l).c_str(), H5P_DEFAULT) > 0,
                  "'" << path << "': layer " << l << " is listed but " << layer_group_name(l)
                      << " is missing");
      require_hard_link(root, layer_group_name(l), path);
      for (const char* t : {"/q", "/k", "/v"}) {
        TURBO_CHECK(H5Lexists(root, (layer_group_name(l) + t).c_str(), H5P_DEFAULT) > 0,
                    "'" << path << "': " << layer_group_name(l) << t << " is missing");
        require_hard_link(root, layer_group_name(l) + t, path);
      }
    }
    TURBO_CHECK(H5Lexists(root, "tokens", H5P_DEFAULT) > 0,
                "'" << path << "' has no /tokens dataset");
    require_hard_link(root, "tokens", path);
    // Checksums: a superblock of version 2 or later (HDF5 1.8+ formats checksum all metadata) and
    // fletcher32 on every dataset. A file without them (older turboattn, or another writer) is
    // read, with one warning per file and process: corruption of its data would go unnoticed.
    H5F_info2_t info;
    check_status(H5Fget_info2(file_, &info), "reading the superblock of '" + path + "'");
    checksummed_ = info.super.version >= 2;
    std::vector<std::string> names{"tokens"};
    for (int l : meta_.layers)
      for (const char* t : {"/q", "/k", "/v"}) names.push_back(layer_group_name(l) + t);
    for (const std::string& name : names) {
      if (!checksummed_) break;
      H5Handle ds(check_id(H5Dopen2(file_, name.c_str(), H5P_DEFAULT),
                           "opening " + name + " of '" + path + "'"),
                  &H5Dclose);
      checksummed_ = has_fletcher32(ds.get());
    }
    H5Eclear2(H5E_DEFAULT);
    static std::set<std::string> warned;
    if (!checksummed_ && warned.insert(path).second)
      std::cerr << "warning: '" << path
                << "' was written without checksums (no fletcher32 on its datasets or an HDF5 "
                   "format before 1.8): a corrupt byte in it cannot be detected; re-capture it "
                   "with this turboattn to add them\n";
  } catch (...) {
    H5Fclose(file_);
    file_ = -1;
    throw;
  }
}

ActivationReader::~ActivationReader() {
  if (file_ >= 0) H5Fclose(file_);
}

std::vector<int32_t> ActivationReader::tokens() const {
  H5Handle ds(check_id(H5Dopen2(file_, "tokens", H5P_DEFAULT), "opening /tokens of " + path_),
              &H5Dclose);
  H5Handle space(check_id(H5Dget_space(ds.get()), "tokens space"), &H5Sclose);
  H5Handle type(check_id(H5Dget_type(ds.get()), "tokens type"), &H5Tclose);
  TURBO_CHECK(
      H5Tget_class(type.get()) == H5T_INTEGER && H5Sget_simple_extent_ndims(space.get()) == 1,
      "'" << path_ << "': /tokens must be a 1-D integer dataset");
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);
  TURBO_CHECK(static_cast<int64_t>(n) == meta_.n_tokens, "'" << path_ << "': /tokens holds " << n
                                                             << " ids but n_tokens is "
                                                             << meta_.n_tokens);
  std::vector<int32_t> out(n);
  check_storage(ds.get(), 1, &n, "/tokens", path_);
  check_status(
      H5Dread(ds.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, verifying_transfer().get(), out.data()),
      "reading /tokens of " + path_ + " (truncated or corrupt?)");
  return out;
}

HostTensor<Half> ActivationReader::read(int layer, char which, int64_t token_begin,
                                        int64_t token_end) const {
  TURBO_CHECK(which == 'q' || which == 'k' || which == 'v',
              "tensor must be 'q', 'k' or 'v', got '" << which << "'");
  TURBO_CHECK(
      std::find(meta_.layers.begin(), meta_.layers.end(), layer) != meta_.layers.end(),
      "'" << path_ << "' holds no layer " << layer << " (layers present: " << [&] {
        std::ostringstream os;
        for (size_t i = 0; i < meta_.layers.size(); ++i) os << (i ? "," : "") << meta_.layers[i];
        return os.str();
      }() << ")");
  if (token_end < 0) token_end = meta_.n_tokens;
  TURBO_CHECK(token_begin >= 0 && token_begin < token_end && token_end <= meta_.n_tokens,
              "token range [" << token_begin << ", " << token_end << ") is outside [0, "
                              << meta_.n_tokens << ") of '" << path_ << "'");
  const std::string name = layer_group_name(layer) + "/" + which;
  H5Handle ds(
      check_id(H5Dopen2(file_, name.c_str(), H5P_DEFAULT), "opening " + name + " of " + path_),
      &H5Dclose);
  H5Handle type(check_id(H5Dget_type(ds.get()), "dataset type"), &H5Tclose);
  TURBO_CHECK(is_half_type(type.get()),
              "'" << path_ << "': " << name << " must be IEEE FP16 little-endian");
  H5Handle space(check_id(H5Dget_space(ds.get()), "dataset space"), &H5Sclose);
  TURBO_CHECK(H5Sget_simple_extent_ndims(space.get()) == 3,
              "'" << path_ << "': " << name << " must be 3-D");
  hsize_t dims[3];
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  const int64_t heads = which == 'q' ? meta_.n_heads : meta_.n_kv_heads;
  TURBO_CHECK(static_cast<int64_t>(dims[0]) == heads &&
                  static_cast<int64_t>(dims[1]) == meta_.n_tokens &&
                  static_cast<int64_t>(dims[2]) == meta_.head_dim,
              "'" << path_ << "': " << name << " has shape [" << dims[0] << ", " << dims[1] << ", "
                  << dims[2] << "], expected [" << heads << ", " << meta_.n_tokens << ", "
                  << meta_.head_dim << "]");
  check_storage(ds.get(), 3, dims, name, path_);
  const int64_t n = token_end - token_begin;
  HostTensor<Half> out(1, heads, n, meta_.head_dim);
  const hsize_t start[3] = {0, static_cast<hsize_t>(token_begin), 0};
  const hsize_t count[3] = {static_cast<hsize_t>(heads), static_cast<hsize_t>(n), dims[2]};
  check_status(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
               "selecting tokens");
  H5Handle mspace(check_id(H5Screate_simple(3, count, nullptr), "memory space"), &H5Sclose);
  H5Handle mtype = make_half_type();
  check_status(H5Dread(ds.get(), mtype.get(), mspace.get(), space.get(), verifying_transfer().get(),
                       out.storage.data()),
               "reading " + name + " of " + path_ + " (truncated or corrupt?)");
  const std::string what = std::string(1, static_cast<char>(which - 'a' + 'A')) + " (layer " +
                           std::to_string(layer) + ") of '" + path_ + "'";
  check_finite(out.view().as_const(), what.c_str());
  return out;
}

std::string ActivationReader::sha256() const { return sha256_file(path_); }

// ================================ writer =======================================================

ActivationWriter::ActivationWriter(const std::string& path, const ActivationMeta& meta, bool force)
    : path_(path), tmp_path_(path + ".tmp"), meta_(meta) {
  quiet_hdf5();
  TURBO_CHECK(meta.n_layers > 0 && meta.n_heads > 0 && meta.n_kv_heads > 0 && meta.head_dim > 0 &&
                  meta.n_tokens > 0 && meta.n_heads % meta.n_kv_heads == 0,
              "activation metadata has inconsistent shapes (n_layers "
                  << meta.n_layers << ", n_heads " << meta.n_heads << ", n_kv_heads "
                  << meta.n_kv_heads << ", head_dim " << meta.head_dim << ", n_tokens "
                  << meta.n_tokens << ")");
  std::set<int> seen;
  for (int l : meta.layers)
    TURBO_CHECK(
        l >= 0 && l < meta.n_layers && seen.insert(l).second,
        "invalid or repeated layer " << l << " for a model of " << meta.n_layers << " layers");
  std::sort(meta_.layers.begin(), meta_.layers.end());
  if (!force) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f) {
      std::fclose(f);
      throw Error("output '" + path + "' exists; pass --force to overwrite it");
    }
  }
  std::remove(tmp_path_.c_str());
  // No timestamps anywhere (root group included) and a pinned file format, so that the bytes
  // depend on the inputs only; the format checksums all metadata.
  H5Handle fcpl(check_id(H5Pcreate(H5P_FILE_CREATE), "file creation list"), &H5Pclose);
  check_status(H5Pset_obj_track_times(fcpl.get(), false), "disabling root timestamps");
  H5Handle fapl = checksummed_file_access();
  file_ = H5Fcreate(tmp_path_.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get());
  TURBO_CHECK(file_ >= 0,
              "cannot create '" << tmp_path_ << "' (directory missing or not writable?)");
  try {
    const hid_t root = file_;
    write_string_attr(root, "model", meta_.model);
    write_string_attr(root, "model_sha256", meta_.model_sha256);
    write_scalar_attr<double>(root, "rope_theta", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                              meta_.rope_theta);
    write_scalar_attr<int32_t>(root, "n_layers", H5T_STD_I32LE, H5T_NATIVE_INT32, meta_.n_layers);
    write_scalar_attr<int32_t>(root, "n_heads", H5T_STD_I32LE, H5T_NATIVE_INT32, meta_.n_heads);
    write_scalar_attr<int32_t>(root, "n_kv_heads", H5T_STD_I32LE, H5T_NATIVE_INT32,
                               meta_.n_kv_heads);
    write_scalar_attr<int32_t>(root, "head_dim", H5T_STD_I32LE, H5T_NATIVE_INT32, meta_.head_dim);
    write_scalar_attr<int64_t>(root, "n_tokens", H5T_STD_I64LE, H5T_NATIVE_INT64, meta_.n_tokens);
    write_string_attr(root, "text_source", meta_.text_source);
    write_string_attr(root, "turboattn_version", meta_.version);
    write_string_attr(root, "command", meta_.command);
    write_scalar_attr<int32_t>(root, "schema_version", H5T_STD_I32LE, H5T_NATIVE_INT32,
                               kActivationSchemaVersion);
    write_int_array_attr(root, "layers", meta_.layers);
    H5Handle gcpl(check_id(H5Pcreate(H5P_GROUP_CREATE), "group creation list"), &H5Pclose);
    check_status(H5Pset_obj_track_times(gcpl.get(), false), "disabling group timestamps");
    H5Handle g(check_id(H5Gcreate2(root, "layers", H5P_DEFAULT, gcpl.get(), H5P_DEFAULT),
                        "creating /layers"),
               &H5Gclose);
  } catch (...) {
    abandon();
    throw;
  }
}

ActivationWriter::~ActivationWriter() { abandon(); }

void ActivationWriter::abandon() noexcept {
  if (file_ >= 0) {
    H5Fclose(file_);
    file_ = -1;
    std::remove(tmp_path_.c_str());
  }
}

namespace {

// Writes one chunked, shuffled, gzip-compressed dataset without timestamps, with a fletcher32
// checksum of every (compressed) chunk, verified on read. dims are 1-D or 3-D.
void write_dataset(hid_t parent, const char* name, hid_t file_type, hid_t mem_type, int rank,
                   const hsize_t* dims, const void* data) {
  H5Handle space(check_id(H5Screate_simple(rank, dims, nullptr), "dataspace"), &H5Sclose);
  H5Handle dcpl(check_id(H5Pcreate(H5P_DATASET_CREATE), "dataset creation list"), &H5Pclose);
  check_status(H5Pset_obj_track_times(dcpl.get(), false), "disabling dataset timestamps");
  hsize_t chunk[3];
  if (rank == 1) {
    chunk[0] = std::min<hsize_t>(dims[0], 4096);
  } else {
    chunk[0] = 1;
    chunk[1] = std::min<hsize_t>(dims[1], 256);
    chunk[2] = dims[2];
  }
  check_status(H5Pset_chunk(dcpl.get(), rank, chunk), "setting chunks");
  check_status(H5Pset_shuffle(dcpl.get()), "enabling shuffle");
  check_status(H5Pset_deflate(dcpl.get(), 6), "enabling gzip");
  check_status(H5Pset_fletcher32(dcpl.get()), "enabling fletcher32");
  H5Handle ds(check_id(H5Dcreate2(parent, name, file_type, space.get(), H5P_DEFAULT, dcpl.get(),
                                  H5P_DEFAULT),
                       std::string("creating dataset ") + name),
              &H5Dclose);
  check_status(H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
               std::string("writing dataset ") + name);
}

}  // namespace

void ActivationWriter::write_tokens(const std::vector<int32_t>& tokens) {
  TURBO_CHECK(file_ >= 0, "activation writer for '" << path_ << "' is closed");
  TURBO_CHECK(!tokens_written_, "tokens already written to '" << path_ << "'");
  TURBO_CHECK(static_cast<int64_t>(tokens.size()) == meta_.n_tokens,
              "got " << tokens.size() << " token ids, metadata says n_tokens = " << meta_.n_tokens);
  const hsize_t n = tokens.size();
  write_dataset(file_, "tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &n, tokens.data());
  tokens_written_ = true;
}

void ActivationWriter::write_layer(int layer, const HostTensor<Half>& q, const HostTensor<Half>& k,
                                   const HostTensor<Half>& v) {
  TURBO_CHECK(file_ >= 0, "activation writer for '" << path_ << "' is closed");
  TURBO_CHECK(std::find(meta_.layers.begin(), meta_.layers.end(), layer) != meta_.layers.end(),
              "layer " << layer << " is not in the metadata's layer list");
  TURBO_CHECK(std::find(written_.begin(), written_.end(), layer) == written_.end(),
              "layer " << layer << " already written");
  struct Item {
    const HostTensor<Half>* t;
    const char* name;
    const char* label;
    int heads;
  };
  const Item items[3] = {{&q, "q", "Q", meta_.n_heads},
                         {&k, "k", "K", meta_.n_kv_heads},
                         {&v, "v", "V", meta_.n_kv_heads}};
  for (const Item& it : items) {
    TURBO_CHECK(it.t->b == 1 && it.t->h == it.heads && it.t->n == meta_.n_tokens &&
                    it.t->d == meta_.head_dim,
                it.label << " (layer " << layer << ") has shape [" << it.t->b << ", " << it.t->h
                         << ", " << it.t->n << ", " << it.t->d << "], expected [1, " << it.heads
                         << ", " << meta_.n_tokens << ", " << meta_.head_dim << "]");
    const std::string what = std::string(it.label) + " (layer " + std::to_string(layer) + ")";
    check_finite(it.t->view(), what.c_str());
  }
  H5Handle gcpl(check_id(H5Pcreate(H5P_GROUP_CREATE), "group creation list"), &H5Pclose);
  check_status(H5Pset_obj_track_times(gcpl.get(), false), "disabling group timestamps");
  H5Handle g(check_id(H5Gcreate2(file_, layer_group_name(layer).c_str(), H5P_DEFAULT, gcpl.get(),
                                 H5P_DEFAULT),
                      "creating " + layer_group_name(layer)),
             &H5Gclose);
  H5Handle half = make_half_type();
  for (const Item& it : items) {
    const hsize_t dims[3] = {static_cast<hsize_t>(it.heads), static_cast<hsize_t>(meta_.n_tokens),
                             static_cast<hsize_t>(meta_.head_dim)};
    write_dataset(g.get(), it.name, half.get(), half.get(), 3, dims, it.t->storage.data());
  }
  written_.push_back(layer);
}

void ActivationWriter::close() {
  TURBO_CHECK(file_ >= 0, "activation writer for '" << path_ << "' is already closed");
  try {
    TURBO_CHECK(tokens_written_, "closing '" << path_ << "' before the token ids were written");
    for (int l : meta_.layers)
      TURBO_CHECK(std::find(written_.begin(), written_.end(), l) != written_.end(),
                  "closing '" << path_ << "' before layer " << l << " was written");
  } catch (...) {
    abandon();
    throw;
  }
  const herr_t s = H5Fclose(file_);
  file_ = -1;
  if (s < 0) {
    std::remove(tmp_path_.c_str());
    throw Error("HDF5: closing '" + tmp_path_ + "' failed (disk full?)");
  }
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_path_.c_str());
    throw Error("cannot rename '" + tmp_path_ + "' to '" + path_ + "'");
  }
}

}  // namespace data
}  // namespace turbo

// GGUF (version 2 and 3) reader: metadata, tensor infos, alignment, and dequantization to FP32.
//
// Format (ggml docs/gguf.md): magic "GGUF", u32 version, u64 tensor_count, u64 kv_count, the
// key/value metadata, the tensor infos (name, n_dims, ne[n_dims] innermost first, ggml type,
// offset relative to the data section), then the data section at the next multiple of
// `general.alignment` (default 32). All little-endian.
//
// Every read is bounds-checked: a truncated or corrupt file (wrong magic, bad counts, offsets
// outside the file, misaligned data, unknown or unsupported types) throws turbo::Error naming the
// file and the field; it never reads out of bounds.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace turbo {
namespace data {

// ggml tensor types (ggml.h `enum ggml_type`); only the ones named here are known.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kBF16 = 30,
};

// Name of a ggml type ("Q4_1"), or "type <n>" for one this reader does not know.
std::string ggml_type_name(uint32_t type);
// Whether dequantize() handles the type.
bool ggml_type_supported(uint32_t type);

// GGUF metadata value types (gguf.md `gguf_metadata_value_type`).
enum class GgufValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// One metadata value. Scalars fill one of i / f / s; arrays fill the matching vector
// (nested arrays are parsed and kept only as their element count).
struct GgufValue {
  GgufValueType type = GgufValueType::kU8;
  GgufValueType elem_type = GgufValueType::kU8;  // arrays only
  int64_t i = 0;  // every integer type and bool (u64 values above 2^63 are rejected)
  double f = 0;   // f32 / f64
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  uint64_t count = 0;  // arrays: number of elements
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ne[0] is the innermost (contiguous) dimension, as in ggml
  uint32_t type = 0;
  uint64_t offset = 0;  // relative to the data section
  uint64_t nbytes = 0;
  int64_t numel() const;
  // Row-major shape, outermost first (numpy / PyTorch order): reversed ne.
  std::vector<int64_t> shape() const { return std::vector<int64_t>(ne.rbegin(), ne.rend()); }
};

class GgufFile {
 public:
  // Reads and validates the whole file (header, metadata, tensor infos, data bounds).
  explicit GgufFile(const std::string& path);
  // Parses an in-memory image (tests); `label` names it in errors.
  GgufFile(std::vector<uint8_t> bytes, const std::string& label);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return bytes_.size(); }

  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  const GgufValue& value(const std::string& key) const;  // throws naming the missing key
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  // Typed accessors; each throws turbo::Error naming the key when it is absent or of another type.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;   // any integer type
  double get_float(const std::string& key) const;  // f32, f64 (or an integer)
  bool get_bool(const std::string& key) const;
  const std::vector<std::string>& get_string_array(const std::string& key) const;
  const std::vector<int64_t>& get_int_array(const std::string& key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  bool has_tensor(const std::string& name) const;
  const GgufTensorInfo& tensor(const std::string& name) const;  // throws when absent
  // The raw bytes of a tensor inside the file image.
  const uint8_t* tensor_data(const GgufTensorInfo& t) const {
    return bytes_.data() + data_offset_ + t.offset;
  }
  // Dequantized FP32 values in ggml order (ne[0] fastest). Throws for unsupported types.
  std::vector<float> dequantize(const std::string& name) const;
  void dequantize(const GgufTensorInfo& t, float* out) const;

 private:
  void parse();
  std::string path_;
  std::vector<uint8_t> bytes_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Dequantizes `n` values of ggml type `type` from `src` (n a multiple of the type's block size),
// exactly as the PyPI `gguf` package does (gguf/quants.py): FP16 scales widened to FP32, then one
// FP32 product per value (and one FP32 add for the offset of Q4_1), no fused multiply-add.
void dequantize_row(uint32_t type, const uint8_t* src, float* dst, int64_t n);

// Bytes of `n` values of `type`; throws for an unknown type or n not a multiple of the block.
uint64_t ggml_nbytes(uint32_t type, int64_t n);

}  // namespace data
}  // namespace turbo

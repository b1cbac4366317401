#include "datasets/gguf.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/fp16.h"
#include "core/host/file_io.h"

namespace turbo {
namespace data {
namespace {

// ---- quantized block layouts (ggml ggml-common.h), little-endian on disk ---------------------

constexpr int kQK4_0 = 32, kQK4_1 = 32, kQK5_0 = 32, kQK5_1 = 32, kQK8_0 = 32, kQK_K = 256;

struct BlockQ4_0 {
  uint16_t d;              // FP16 scale
  uint8_t qs[kQK4_0 / 2];  // value j in the low nibble of qs[j], value j + 16 in the high nibble
};
static_assert(sizeof(BlockQ4_0) == 18, "block_q4_0 size");

struct BlockQ4_1 {
  uint16_t d;  // FP16 scale
  uint16_t m;  // FP16 minimum
  uint8_t qs[kQK4_1 / 2];
};
static_assert(sizeof(BlockQ4_1) == 20, "block_q4_1 size");

struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];  // bit j: the fifth bit of value j
  uint8_t qs[kQK5_0 / 2];
};
static_assert(sizeof(BlockQ5_0) == 22, "block_q5_0 size");

struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK5_1 / 2];
};
static_assert(sizeof(BlockQ5_1) == 24, "block_q5_1 size");

struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34, "block_q8_0 size");

// K-quants: super-blocks of 256 values in 16 sub-blocks of 16 (Q2_K, Q3_K) or 8 of 32 (Q4_K,
// Q5_K), each with its own 4- or 6-bit scale (and min) under FP16 super-block scales.
constexpr int kKScaleSize = 12;  // Q4_K / Q5_K: 8 six-bit scales and 8 six-bit mins

struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];  // low nibble: scale, high nibble: min, per sub-block of 16
  uint8_t qs[kQK_K / 4];       // 2-bit codes
  uint16_t d;                  // FP16 super-block scale of the scales
  uint16_t dmin;               // FP16 super-block scale of the mins
};
static_assert(sizeof(BlockQ2_K) == 84, "block_q2_K size");

struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];  // third bit of each code (set: no -4 offset)
  uint8_t qs[kQK_K / 4];     // low 2 bits
  uint8_t scales[12];        // 16 six-bit scales, offset by 32
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110, "block_q3_K size");

struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144, "block_q4_K size");

struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qh[kQK_K / 8];  // fifth bit of each code
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176, "block_q5_K size");

// The 6-bit scale and min of sub-block j < 8 of a Q4_K / Q5_K block (ggml get_scale_min_k4):
// bytes 0-3 hold scales 0-3 (low 6 bits), 4-7 mins 0-3, 8-11 the low nibbles of scales / mins
// 4-7, whose top 2 bits are the top bits of bytes 0-3 / 4-7.
inline void k4_scale_min(const uint8_t* q, int j, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 0x3F;
    m = q[j + 4] & 0x3F;
  } else {
    sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 2) & 0x30);
    m = (q[j + 4] >> 4) | ((q[j] >> 2) & 0x30);
  }
}

struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];  // low 4 bits
  uint8_t qh[kQK_K / 4];  // high 2 bits
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210, "block_q6_K size");

struct TypeTraits {
  uint32_t type;
  const char* name;
  int block;  // values per block
  int bytes;  // bytes per block
  bool supported;
};

constexpr TypeTraits kTypes[] = {
    {0, "F32", 1, 4, true},          {1, "F16", 1, 2, true},
    {2, "Q4_0", 32, 18, true},       {3, "Q4_1", 32, 20, true},
    {6, "Q5_0", 32, 22, true},       {7, "Q5_1", 32, 24, true},
    {8, "Q8_0", 32, 34, true},       {9, "Q8_1", 32, 40, false},
    {10, "Q2_K", 256, 84, true},     {11, "Q3_K", 256, 110, true},
    {12, "Q4_K", 256, 144, true},    {13, "Q5_K", 256, 176, true},
    {14, "Q6_K", 256, 210, true},    {15, "Q8_K", 256, 292, false},
    {16, "IQ2_XXS", 256, 66, false}, {17, "IQ2_XS", 256, 74, false},
    {18, "IQ3_XXS", 256, 98, false}, {19, "IQ1_S", 256, 50, false},
    {20, "IQ4_NL", 32, 18, false},   {21, "IQ3_S", 256, 110, false},
    {22, "IQ2_S", 256, 82, false},   {23, "IQ4_XS", 256, 136, false},
    {24, "I8", 1, 1, false},         {25, "I16", 1, 2, false},
    {26, "I32", 1, 4, false},        {27, "I64", 1, 8, false},
    {28, "F64", 1, 8, false},        {29, "IQ1_M", 256, 56, false},
    {30, "BF16", 1, 2, true},        {34, "TQ1_0", 256, 54, false},
    {35, "TQ2_0", 256, 66, false},
};

const TypeTraits* find_type(uint32_t type) {
  for (const TypeTraits& t : kTypes)
    if (t.type == type) return &t;
  return nullptr;
}

std::string supported_list() {
  std::string s;
  for (const TypeTraits& t : kTypes)
    if (t.supported) s += (s.empty() ? "" : ", ") + std::string(t.name);
  return s;
}

inline float fp16_to_f32(uint16_t h) { return detail::half_bits_to_float_host(h); }

template <typename Block>
inline Block load_block(const uint8_t* p) {
  Block b;
  std::memcpy(&b, p, sizeof(Block));
  return b;
}

// ---- bounds-checked cursor over the file image ------------------------------------------------

class Cursor {
 public:
  Cursor(const std::vector<uint8_t>& bytes, const std::string& label) : b_(bytes), label_(label) {}
  uint64_t pos() const { return pos_; }
  void need(uint64_t n, const char* what) const {
    TURBO_CHECK(n <= b_.size() - pos_, "GGUF '" << label_ << "' is truncated: " << what
                                                << " at offset " << pos_ << " needs " << n
                                                << " bytes, " << (b_.size() - pos_) << " left");
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  const std::vector<uint8_t>& b_;
  const std::string& label_;
  uint64_t pos_ = 0;
};

uint64_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kU16:
    case GgufValueType::kI16:
      return 2;
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kF32:
      return 4;
    case GgufValueType::kU64:
    case GgufValueType::kI64:
    case GgufValueType::kF64:
      return 8;
    default:
      return 0;
  }
}

bool is_integer(GgufValueType t) {
  return t == GgufValueType::kU8 || t == GgufValueType::kI8 || t == GgufValueType::kU16 ||
         t == GgufValueType::kI16 || t == GgufValueType::kU32 || t == GgufValueType::kI32 ||
         t == GgufValueType::kU64 || t == GgufValueType::kI64 || t == GgufValueType::kBool;
}

// Reads one scalar of type t into v (i / f / s).
void read_scalar(Cursor& c, GgufValueType t, GgufValue& v, const std::string& key,
                 const std::string& label) {
  switch (t) {
    case GgufValueType::kU8:
      v.i = c.read<uint8_t>("u8 value");
      break;
    case GgufValueType::kI8:
      v.i = c.read<int8_t>("i8 value");
      break;
    case GgufValueType::kU16:
      v.i = c.read<uint16_t>("u16 value");
      break;
    case GgufValueType::kI16:
      v.i = c.read<int16_t>("i16 value");
      break;
    case GgufValueType::kU32:
      v.i = c.read<uint32_t>("u32 value");
      break;
    case GgufValueType::kI32:
      v.i = c.read<int32_t>("i32 value");
      break;
    case GgufValueType::kI64:
      v.i = c.read<int64_t>("i64 value");
      break;
    case GgufValueType::kU64: {
      const uint64_t u = c.read<uint64_t>("u64 value");
      TURBO_CHECK(u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                  "GGUF '" << label << "': value of '" << key << "' exceeds 2^63");
      v.i = static_cast<int64_t>(u);
      break;
    }
    case GgufValueType::kBool: {
      const uint8_t b = c.read<uint8_t>("bool value");
      TURBO_CHECK(b <= 1, "GGUF '" << label << "': bool '" << key << "' holds " << int(b));
      v.i = b;
      break;
    }
    case GgufValueType::kF32:
      v.f = c.read<float>("f32 value");
      break;
    case GgufValueType::kF64:
      v.f = c.read<double>("f64 value");
      break;
    case GgufValueType::kString:
      v.s = c.read_string("string value");
      break;
    default:
      throw Error("GGUF '" + label + "': key '" + key + "' has unknown value type " +
                  std::to_string(static_cast<uint32_t>(t)));
  }
}

void read_value(Cursor& c, GgufValueType t, GgufValue& v, const std::string& key,
                const std::string& label, int depth, uint64_t file_size) {
  v.type = t;
  if (t != GgufValueType::kArray) {
    read_scalar(c, t, v, key, label);
    return;
  }
  TURBO_CHECK(depth < 4, "GGUF '" << label << "': arrays nested too deeply under '" << key << "'");
  const uint32_t et = c.read<uint32_t>("array element type");
  TURBO_CHECK(et <= 12,
              "GGUF '" << label << "': key '" << key << "' has unknown array element type " << et);
  v.elem_type = static_cast<GgufValueType>(et);
  v.count = c.read<uint64_t>("array length");
  // Each element takes at least one byte (strings at least 8): a count beyond the file is corrupt.
  const uint64_t min_elem =
      v.elem_type == GgufValueType::kString || v.elem_type == GgufValueType::kArray
          ? 8
          : scalar_size(v.elem_type);
  TURBO_CHECK(v.count <= file_size / std::max<uint64_t>(min_elem, 1),
              "GGUF '" << label << "': array '" << key << "' claims " << v.count
                       << " elements, more than the file can hold");
  for (uint64_t n = 0; n < v.count; ++n) {
    GgufValue e;
    read_value(c, v.elem_type, e, key, label, depth + 1, file_size);
    if (v.elem_type == GgufValueType::kString) {
      v.strings.push_back(std::move(e.s));
    } else if (v.elem_type == GgufValueType::kF32 || v.elem_type == GgufValueType::kF64) {
      v.floats.push_back(e.f);
    } else if (v.elem_type != GgufValueType::kArray) {
      v.ints.push_back(e.i);
    }
  }
}

}  // namespace

std::string ggml_type_name(uint32_t type) {
  const TypeTraits* t = find_type(type);
  return t ? t->name : "type " + std::to_string(type);
}

bool ggml_type_supported(uint32_t type) {
  const TypeTraits* t = find_type(type);
  return t && t->supported;
}

uint64_t ggml_nbytes(uint32_t type, int64_t n) {
  const TypeTraits* t = find_type(type);
  TURBO_CHECK(t, "unknown ggml tensor type " << type);
  TURBO_CHECK(n >= 0 && n % t->block == 0, t->name << " holds blocks of " << t->block << " values; "
                                                   << n << " is not a multiple");
  return static_cast<uint64_t>(n / t->block) * static_cast<uint64_t>(t->bytes);
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

// ---- dequantization (mirrors gguf/quants.py operation for operation) -------------------------

void dequantize_row(uint32_t type, const uint8_t* src, float* dst, int64_t n) {
  const TypeTraits* tt = find_type(type);
  TURBO_CHECK(tt && tt->supported, "cannot dequantize tensor type "
                                       << ggml_type_name(type)
                                       << "; supported: " << supported_list());
  TURBO_CHECK(n % tt->block == 0,
              tt->name << " needs a multiple of " << tt->block << " values, got " << n);
  const int64_t nb = n / tt->block;
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      break;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = fp16_to_f32(h);
      }
      break;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        const uint32_t bits = static_cast<uint32_t>(h) << 16;
        std::memcpy(dst + i, &bits, 4);
      }
      break;
    case GgmlType::kQ4_0:
      for (int64_t b = 0; b < nb; ++b) {
        const BlockQ4_0 x = load_block<BlockQ4_0>(src + b * sizeof(BlockQ4_0));
        const float d = fp16_to_f32(x.d);
        float* y = dst + b * kQK4_0;
        for (int j = 0; j < kQK4_0 / 2; ++j) {
          y[j] = d * static_cast<float>((x.qs[j] & 0x0F) - 8);
          y[j + kQK4_0 / 2] = d * static_cast<float>((x.qs[j] >> 4) - 8);
        }
      }
      break;
    case GgmlType::kQ4_1:
      for (int64_t b = 0; b < nb; ++b) {
        const BlockQ4_1 x = load_block<BlockQ4_1>(src + b * sizeof(BlockQ4_1));
        const float d = fp16_to_f32(x.d), m = fp16_to_f32(x.m);
        float* y = dst + b * kQK4_1;
        for (int j = 0; j < kQK4_1 / 2; ++j) {
          y[j] = d * static_cast<float>(x.qs[j] & 0x0F) + m;  // two roundings: product, then sum
          y[j + kQK4_1 / 2] = d * static_cast<float>(x.qs[j] >> 4) + m;
        }
      }
      break;
    case GgmlType::kQ5_0:
      for (int64_t b = 0; b < nb; ++b) {
        const BlockQ5_0 x = load_block<BlockQ5_0>(src + b * sizeof(BlockQ5_0));
        const float d = fp16_to_f32(x.d);
        uint32_t qh;
        std::memcpy(&qh, x.qh, 4);
        float* y = dst + b * kQK5_0;
        for (int j = 0; j < kQK5_0 / 2; ++j) {
          const int lo = (x.qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
          const int hi = (x.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
          y[j] = d * static_cast<float>(lo - 16);
          y[j + kQK5_0 / 2] = d * static_cast<float>(hi - 16);
        }
      }
      break;
    case GgmlType::kQ5_1:
      for (int64_t b = 0; b < nb; ++b) {
        const BlockQ5_1 x = load_block<BlockQ5_1>(src + b * sizeof(BlockQ5_1));
        const float d = fp16_to_f32(x.d), m = fp16_to_f32(x.m);
        uint32_t qh;
        std::memcpy(&qh, x.qh, 4);
        float* y = dst + b * kQK5_1;
        for (int j = 0; j < kQK5_1 / 2; ++j) {
          const int lo = (x.qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
          const int hi = (x.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
          y[j] = d * static_cast<float>(lo) + m;
          y[j + kQK5_1 / 2] = d * static_cast<float>(hi) + m;
        }
      }
      break;
    case GgmlType::kQ8_0:
      for (int64_t b = 0; b < nb; ++b) {
        const BlockQ8_0 x = load_block<BlockQ8_0>(src + b * sizeof(BlockQ8_0));
        const float d = fp16_to_f32(x.d);
        float* y = dst + b * kQK8_0;
        for (int j = 0; j < kQK8_0; ++j) y[j] = static_cast<float>(x.qs[j]) * d;
      }
      break;
    case GgmlType::kQ2_K:
      // Value p = 128 h + 32 s + l: code (qs[32 h + l] >> 2 s) & 3 of sub-block p / 16;
      // (d * scale) * q - (dmin * min).
      for (int64_t b = 0; b < nb; ++b) {
        const BlockQ2_K x = load_block<BlockQ2_K>(src + b * sizeof(BlockQ2_K));
        const float d = fp16_to_f32(x.d), dmin = fp16_to_f32(x.dmin);
        float* y = dst + b * kQK_K;
        for (int p = 0; p < kQK_K; ++p) {
          const int h = p / 128, s = (p % 128) / 32, l = p % 32;
          const uint8_t sc = x.scales[p / 16];
          const float dl = d * static_cast<float>(sc & 0x0F);
          const float ml = dmin * static_cast<float>(sc >> 4);
          y[p] = dl * static_cast<float>((x.qs[32 * h + l] >> (2 * s)) & 3) - ml;
        }
      }
      break;
    case GgmlType::kQ3_K:
      // Scale i (of 16): low nibble (scales[i % 8] >> 4 (i / 8)) & 15, top bits
      // (scales[8 + i % 4] >> 2 (i / 4)) & 3, minus 32. Value p = 128 h + 32 s + l: low bits
      // (qs[32 h + l] >> 2 s) & 3, minus 4 unless bit p / 32 of hmask[l] is set; (d * scale) * q.
      for (int64_t b = 0; b < nb; ++b) {
        const BlockQ3_K x = load_block<BlockQ3_K>(src + b * sizeof(BlockQ3_K));
        const float d = fp16_to_f32(x.d);
        float* y = dst + b * kQK_K;
        for (int p = 0; p < kQK_K; ++p) {
          const int i = p / 16;
          const int lo = (x.scales[i % 8] >> (4 * (i / 8))) & 0x0F;
          const int hi = (x.scales[8 + i % 4] >> (2 * (i / 4))) & 0x03;
          const float dl = d * static_cast<float>((lo | (hi << 4)) - 32);
          const int h = p / 128, s = (p % 128) / 32, l = p % 32;
          const int ql = (x.qs[32 * h + l] >> (2 * s)) & 3;
          const int qh = (x.hmask[l] >> (p / 32)) & 1;
          y[p] = dl * static_cast<float>(ql - (qh ? 0 : 4));
        }
      }
      break;
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
      // Value p = 64 c + 32 s + l: low nibble (qs[32 c + l] >> 4 s) & 15 (Q5_K: plus bit p / 32
      // of qh[l] as the fifth bit) of sub-block p / 32; (d * scale) * q - (dmin * min).
      for (int64_t b = 0; b < nb; ++b) {
        const bool q5 = static_cast<GgmlType>(type) == GgmlType::kQ5_K;
        const uint8_t* blk = src + b * tt->bytes;
        BlockQ5_K x{};  // Q4_K is Q5_K without qh
        if (q5) {
          x = load_block<BlockQ5_K>(blk);
        } else {
          const BlockQ4_K x4 = load_block<BlockQ4_K>(blk);
          x.d = x4.d;
          x.dmin = x4.dmin;
          std::memcpy(x.scales, x4.scales, sizeof(x.scales));
          std::memcpy(x.qs, x4.qs, sizeof(x.qs));
        }
        const float d = fp16_to_f32(x.d), dmin = fp16_to_f32(x.dmin);
        float* y = dst + b * kQK_K;
        for (int j = 0; j < kQK_K / 32; ++j) {
          int sc, m;
          k4_scale_min(x.scales, j, sc, m);
          const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
          for (int l = 0; l < 32; ++l) {
            const int p = 32 * j + l;
            int q = (x.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0x0F;
            if (q5) q |= ((x.qh[l] >> j) & 1) << 4;
            y[p] = dl * static_cast<float>(q) - ml;
          }
        }
      }
      break;
    case GgmlType::kQ6_K:
      // Value p = 128 h + r of a block: low nibble (ql[64 h + r % 64] >> 4 (r / 64)) & 15, high
      // bits (qh[32 h + r % 32] >> 2 (r / 32)) & 3, scale scales[p / 16]; (d * scale) * (q - 32).
      for (int64_t b = 0; b < nb; ++b) {
        const BlockQ6_K x = load_block<BlockQ6_K>(src + b * sizeof(BlockQ6_K));
        const float d = fp16_to_f32(x.d);
        float* y = dst + b * kQK_K;
        for (int p = 0; p < kQK_K; ++p) {
          const int h = p / 128, r = p % 128;
          const int lo = (x.ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0F;
          const int hi = (x.qh[32 * h + r % 32] >> (2 * (r / 32))) & 0x03;
          const float ds = d * static_cast<float>(x.scales[p / 16]);
          y[p] = ds * static_cast<float>((lo | (hi << 4)) - 32);
        }
      }
      break;
    default:
      throw Error("cannot dequantize tensor type " + ggml_type_name(type));
  }
}

// ---- the file ---------------------------------------------------------------------------------

GgufFile::GgufFile(const std::string& path) : path_(path) {
  // A directory or FIFO is refused by name (read_binary_file), never sized as a huge file.
  try {
    bytes_ = read_binary_file(path, "GGUF model");
  } catch (const Error& e) {
    throw Error(std::string(e.what()) +
                " (run datasets/fetch_models.sh to fetch the default model)");
  }
  parse();
}

GgufFile::GgufFile(std::vector<uint8_t> bytes, const std::string& label)
    : path_(label), bytes_(std::move(bytes)) {
  parse();
}

void GgufFile::parse() {
  const std::string& label = path_;
  Cursor c(bytes_, label);
  TURBO_CHECK(bytes_.size() >= 4 && std::memcmp(bytes_.data(), "GGUF", 4) == 0,
              "'" << label << "' is not a GGUF file (magic bytes are not \"GGUF\")");
  c.read<uint32_t>("magic");
  version_ = c.read<uint32_t>("version");
  TURBO_CHECK(version_ == 2 || version_ == 3,
              "GGUF '" << label << "' has version " << version_ << "; this reader handles 2 and 3");
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // A key/value pair takes >= 13 bytes and a tensor info >= 28: larger counts are corrupt.
  TURBO_CHECK(n_kv <= bytes_.size() / 13 && n_tensors <= bytes_.size() / 28,
              "GGUF '" << label << "' claims " << n_kv << " metadata entries and " << n_tensors
                       << " tensors, more than the file can hold (corrupt header)");
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string("metadata key");
    const uint32_t t = c.read<uint32_t>("metadata value type");
    TURBO_CHECK(t <= 12,
                "GGUF '" << label << "': key '" << key << "' has unknown value type " << t);
    GgufValue v;
    read_value(c, static_cast<GgufValueType>(t), v, key, label, 0, bytes_.size());
    TURBO_CHECK(kv_.count(key) == 0,
                "GGUF '" << label << "': duplicate metadata key '" << key << "'");
    kv_.emplace(std::move(key), std::move(v));
  }
  if (has("general.alignment")) {
    const int64_t a = get_int("general.alignment");
    TURBO_CHECK(a > 0 && (a & (a - 1)) == 0 && a <= (1 << 20),
                "GGUF '" << label << "': general.alignment " << a << " is not a power of two");
    alignment_ = static_cast<uint64_t>(a);
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.read_string("tensor name");
    const uint32_t n_dims = c.read<uint32_t>("tensor rank");
    TURBO_CHECK(n_dims >= 1 && n_dims <= 4, "GGUF '" << label << "': tensor '" << t.name
                                                     << "' has rank " << n_dims
                                                     << " (1..4 allowed)");
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.read<uint64_t>("tensor dimension");
      TURBO_CHECK(
          ne >= 1 && ne <= (uint64_t{1} << 40) &&
              static_cast<uint64_t>(numel) <= (uint64_t{1} << 50) / ne,
          "GGUF '" << label << "': tensor '" << t.name << "' has an invalid dimension " << ne);
      t.ne.push_back(static_cast<int64_t>(ne));
      numel *= static_cast<int64_t>(ne);
    }
    t.type = c.read<uint32_t>("tensor type");
    t.offset = c.read<uint64_t>("tensor offset");
    const TypeTraits* tt = find_type(t.type);
    TURBO_CHECK(tt,
                "GGUF '" << label << "': tensor '" << t.name << "' has unknown type " << t.type);
    TURBO_CHECK(t.ne[0] % tt->block == 0, "GGUF '" << label << "': tensor '" << t.name
                                                   << "' of type " << tt->name << " has a row of "
                                                   << t.ne[0] << " values, not a multiple of "
                                                   << tt->block);
    t.nbytes = ggml_nbytes(t.type, numel);
    TURBO_CHECK(tensor_index_.count(t.name) == 0,
                "GGUF '" << label << "': duplicate tensor '" << t.name << "'");
    tensor_index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  data_offset_ = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  const uint64_t size = bytes_.size();
  TURBO_CHECK(n_tensors == 0 || data_offset_ <= size,
              "GGUF '" << label << "' is truncated: the data section would start at "
                       << data_offset_ << " but the file has " << size << " bytes");
  for (const GgufTensorInfo& t : tensors_) {
    TURBO_CHECK(t.offset % alignment_ == 0, "GGUF '" << label << "': tensor '" << t.name
                                                     << "' offset " << t.offset
                                                     << " is not aligned to " << alignment_);
    TURBO_CHECK(t.offset <= size - data_offset_ && t.nbytes <= size - data_offset_ - t.offset,
                "GGUF '" << label << "': tensor '" << t.name << "' (" << t.nbytes
                         << " bytes at data offset " << t.offset << ") lies outside the file ("
                         << size << " bytes; truncated?)");
  }
}

const GgufValue& GgufFile::value(const std::string& key) const {
  auto it = kv_.find(key);
  TURBO_CHECK(it != kv_.end(), "GGUF '" << path_ << "' has no metadata key '" << key << "'");
  return it->second;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = value(key);
  TURBO_CHECK(v.type == GgufValueType::kString,
              "GGUF '" << path_ << "': '" << key << "' is not a string");
  return v.s;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = value(key);
  TURBO_CHECK(is_integer(v.type), "GGUF '" << path_ << "': '" << key << "' is not an integer");
  return v.i;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = value(key);
  if (is_integer(v.type)) return static_cast<double>(v.i);
  TURBO_CHECK(v.type == GgufValueType::kF32 || v.type == GgufValueType::kF64,
              "GGUF '" << path_ << "': '" << key << "' is not a number");
  TURBO_CHECK(std::isfinite(v.f),
              "GGUF '" << path_ << "': '" << key << "' is " << v.f << "; it must be finite");
  return v.f;
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = value(key);
  TURBO_CHECK(v.type == GgufValueType::kBool,
              "GGUF '" << path_ << "': '" << key << "' is not a bool");
  return v.i != 0;
}

const std::vector<std::string>& GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = value(key);
  TURBO_CHECK(v.type == GgufValueType::kArray && v.elem_type == GgufValueType::kString,
              "GGUF '" << path_ << "': '" << key << "' is not an array of strings");
  return v.strings;
}

const std::vector<int64_t>& GgufFile::get_int_array(const std::string& key) const {
  const GgufValue& v = value(key);
  TURBO_CHECK(v.type == GgufValueType::kArray && is_integer(v.elem_type),
              "GGUF '" << path_ << "': '" << key << "' is not an array of integers");
  return v.ints;
}

bool GgufFile::has_tensor(const std::string& name) const { return tensor_index_.count(name) != 0; }

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  TURBO_CHECK(it != tensor_index_.end(), "GGUF '" << path_ << "' has no tensor '" << name << "'");
  return tensors_[it->second];
}

void GgufFile::dequantize(const GgufTensorInfo& t, float* out) const {
  TURBO_CHECK(ggml_type_supported(t.type),
              "GGUF '" << path_ << "': tensor '" << t.name << "' has type "
                       << ggml_type_name(t.type)
                       << ", which this reader cannot dequantize; supported: " << supported_list());
  const int64_t n = t.numel();
  dequantize_row(t.type, tensor_data(t), out, n);
  // A NaN or infinity in a weight would turn every logit into NaN downstream; name it here.
  for (int64_t i = 0; i < n; ++i)
    TURBO_CHECK(std::isfinite(out[i]), "GGUF '" << path_ << "': tensor '" << t.name << "' holds "
                                                << out[i] << " at element " << i
                                                << " (ggml order); weights must be finite");
}

std::vector<float> GgufFile::dequantize(const std::string& name) const {
  const GgufTensorInfo& t = tensor(name);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  dequantize(t, out.data());
  return out;
}

}  // namespace data
}  // namespace turbo

// Configuration: one field per SPEC knob, with a stable string key.
//
// AttentionConfig::to_string() is the report key ("method=flashq,q_gran=tile,..."), every knob in
// a fixed order; parse_attention_config() reads it back (missing knobs keep their defaults).
// Unknown knob names or values raise turbo::Error listing what is valid. The knob table below is
// the single list the CLI, the sweep grid and the reports are built from.
#pragma once

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/flashq.h"
#include "core/quant.h"
#include "core/sas.h"

namespace turbo {

enum class Granularity : int { kTile = 0, kToken = 1, kHead = 2 };
enum class Stage2Axis : int { kChannel = 0, kToken = 1 };
enum class KSmooth : int { kNone = 0, kMean = 1 };
enum class BufferMode : int { kFp16 = 0, kInt8 = 1 };
enum class PrioTensors : int { kK = 0, kKV = 1 };
enum class PrioMetric : int { kGapStd = 0, kGap, kStd, kKurtosis, kRandom };
// Stage-2 step (SPEC 2): the integer ceil((hi - lo) / L), or the exact fractional step
// (hi - lo) / L with the reconstruction rounded back to the INT8 grid (core/quant.h stage2f_*).
enum class S2Step : int { kInt = 0, kFloat = 1 };
// Stage-1 scale of a compressed cache block (SPEC 6): one per block, or one per token.
enum class KvScale : int { kBlock = 0, kToken = 1 };
// Which KIVI: the rules of its authors' code (jy-yuan/KIVI), or this toolkit's earlier reading.
enum class KiviImpl : int { kAuthors = 0, kLegacy = 1 };
// Which SageAttention: the rules of its authors' code (thu-ml/SageAttention), or this toolkit's
// earlier reading (SPEC 1 stage-1 quantizer over br x bc tiles, FP32 mean, FP16 P and V).
enum class SageImpl : int { kAuthors = 0, kLegacy = 1 };
// SageAttention's Q/K scale groups (authors): one per block (its Triton per-block kernel: 128 Q
// rows, 64 K tokens), or its per-thread groups (the sm80 CUDA path: 8 groups of a 32-row Q warp,
// 4 groups of a 64-token K block, following the mma fragment layout).
enum class SageGran : int { kBlock = 0, kThread = 1 };
// SageAttention's P.V precision (authors): FP16 P and V with an FP32 accumulator (sm80), an FP16
// accumulator per K block added to the FP32 output (sm86, Triton), FP8 E4M3 P and per-channel V
// with an FP32 accumulator (sm90).
enum class SagePv : int { kFp32 = 0, kFp16 = 1, kFp8 = 2 };
// Which attention algorithm a backend runs. flashq is SPEC 5/6; the others are the baselines and
// the FP16 noise floor (SPEC 9), all behind the same Backend interface.
enum class Method : int { kFlashQ = 0, kFp16, kKivi, kInt8Kv, kSage, kFp8 };
// KV bit width of the compressed cache: 8 (stage 1 only), 4, 2, or head-wise mixed (SPEC 7).
enum class KvBits : int { k8 = 0, k4, k2, kMixed };

// Name tables, in enum order.
template <typename E>
struct EnumNames;
#define TURBO_ENUM_NAMES(E, ...)                                 \
  template <>                                                    \
  struct EnumNames<E> {                                          \
    static const std::vector<std::string>& names() {             \
      static const std::vector<std::string> kNames{__VA_ARGS__}; \
      return kNames;                                             \
    }                                                            \
  };
TURBO_ENUM_NAMES(Granularity, "tile", "token", "head")
TURBO_ENUM_NAMES(Stage2Axis, "channel", "token")
TURBO_ENUM_NAMES(KSmooth, "none", "mean")
TURBO_ENUM_NAMES(BufferMode, "fp16", "int8")
TURBO_ENUM_NAMES(PrioTensors, "k", "kv")
TURBO_ENUM_NAMES(PrioMetric, "gap_std", "gap", "std", "kurtosis", "random")
TURBO_ENUM_NAMES(S2Step, "int", "float")
TURBO_ENUM_NAMES(KvScale, "block", "token")
TURBO_ENUM_NAMES(KiviImpl, "authors", "legacy")
TURBO_ENUM_NAMES(SageImpl, "authors", "legacy")
TURBO_ENUM_NAMES(SageGran, "block", "thread")
TURBO_ENUM_NAMES(SagePv, "fp32", "fp16", "fp8")
TURBO_ENUM_NAMES(Method, "flashq", "fp16", "kivi", "int8kv", "sage", "fp8")
TURBO_ENUM_NAMES(KvBits, "8", "4", "2", "mixed")
TURBO_ENUM_NAMES(ScaleStorage, "fp16", "fp32")
TURBO_ENUM_NAMES(Poly, "ls2", "ls3", "ls4", "minimax2", "minimax3", "minimax4", "taylor2",
                 "taylor3", "taylor4", "spec3")
TURBO_ENUM_NAMES(SasPrecision, "fp16", "fp32")
TURBO_ENUM_NAMES(ExpMode, "sas", "exact")
TURBO_ENUM_NAMES(PQuant, "u8", "s8", "u8_row", "fp16")
#undef TURBO_ENUM_NAMES

inline std::string join_names(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

template <typename E>
std::string enum_name(E e) {
  return EnumNames<E>::names().at(static_cast<size_t>(e));
}

template <typename E>
E parse_enum(const std::string& s, const std::string& knob) {
  const auto& names = EnumNames<E>::names();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == s) return static_cast<E>(i);
  throw Error("invalid value '" + s + "' for knob '" + knob + "'; valid: " + join_names(names));
}

inline int kv_bits_value(KvBits b) {
  switch (b) {
    case KvBits::k8:
      return 8;
    case KvBits::k4:
      return 4;
    case KvBits::k2:
      return 2;
    default:
      return 0;  // mixed: per head, from a calibration bit map
  }
}

// Rows per stage-1 group of n rows at granularity g with tile size `tile` (SPEC 1): tile -> Br or
// Bc rows from row 0, token -> 1, head -> all n.
inline int64_t group_rows_for(Granularity g, int64_t tile, int64_t n) {
  switch (g) {
    case Granularity::kToken:
      return 1;
    case Granularity::kHead:
      return n > 0 ? n : 1;
    case Granularity::kTile:
    default:
      return tile > 0 ? tile : 1;
  }
}

// FlashQ quantizer knobs (SPEC 1, 2, 3, 6) and the baselines' quantizer knobs.
struct QuantConfig {
  Granularity q_gran = Granularity::kTile;
  Granularity kv_gran = Granularity::kTile;
  int br = 64;  // query rows per tile
  int bc = 64;  // key/value tokens per tile
  KSmooth k_smooth = KSmooth::kNone;
  int block = 64;  // n_b: tokens per compressed KV block
  KvBits kv_bits = KvBits::k4;
  float f2 = 0.5f;  // mixed: fraction of kv heads per layer at 2 bits
  Stage2Axis k_axis = Stage2Axis::kChannel;
  Stage2Axis v_axis = Stage2Axis::kChannel;
  int group_size = 32;  // channels per group for a token-axis stage 2; KIVI group size
  BufferMode buffer = BufferMode::kFp16;
  S2Step s2_step = S2Step::kInt;       // stage-2 step of the cache blocks
  KvScale kv_scale = KvScale::kBlock;  // stage-1 scale granularity of the cache blocks
  int sink = 0;    // decode cache: the first `sink` tokens kept in FP16, never compressed
  int window = 0;  // decode cache: the newest `window` tokens (at least) kept in FP16
  ScaleStorage scale_storage = ScaleStorage::kFp16;  // direct quantizer (KIVI legacy)
  int residual = 32;                                 // KIVI: newest tokens kept in FP16
  KiviImpl kivi_impl = KiviImpl::kAuthors;
  SageImpl sage_impl = SageImpl::kAuthors;
  SageGran sage_gran = SageGran::kBlock;
  SagePv sage_pv = SagePv::kFp32;
  PrioTensors prio_tensors = PrioTensors::kK;
  PrioMetric prio_metric = PrioMetric::kGapStd;
};

struct SasConfig {
  int n_r = 6;
  Poly poly = Poly::kLs3;
  SasPrecision precision = SasPrecision::kFp16;
  ExpMode exp_mode = ExpMode::kSas;
  SasParams params() const { return make_sas_params(n_r, poly, precision, exp_mode); }
};

// SPEC "Conventions": tau = 1 / sqrt(D) as FP32, read as the FP32 number nearest to the real
// 1/sqrt(D). (1.0f / sqrtf(D) rounds twice and is one ulp off for D = 96 and 112.) The double
// quotient is correctly rounded and then rounded to FP32 once more; that second rounding is
// exact-nearest for every D in 1..4096 (core/config_test.cpp checks it against long double).
inline float default_tau(int64_t head_dim) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
}

struct AttentionConfig {
  Method method = Method::kFlashQ;
  QuantConfig quant;
  SasConfig sas;
  PQuant p_quant = PQuant::kU8;
  bool causal = true;
  int splits = 1;    // split-K runs for decode (SPEC 6)
  float tau = 0.0f;  // softmax scale; 0 means 1 / sqrt(D)

  float tau_for(int head_dim) const { return tau > 0.0f ? tau : default_tau(head_dim); }
  std::string to_string() const;
  Status validate() const;
};

// ---- the knob table --------------------------------------------------------------------------

struct Knob {
  const char* name;
  const char* help;
  std::vector<std::string> values;  // finite choices, empty for numbers
  std::function<std::string(const AttentionConfig&)> get;
  std::function<void(AttentionConfig&, const std::string&)> set;
};

namespace detail {
inline int parse_int_knob(const std::string& s, const std::string& knob) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno == ERANGE || v < INT_MIN || v > INT_MAX)
    throw Error("knob '" + knob + "' needs an integer, got '" + s + "'");
  return static_cast<int>(v);
}
inline float parse_float_knob(const std::string& s, const std::string& knob) {
  char* end = nullptr;
  const float v = std::strtof(s.c_str(), &end);
  if (s.empty() || *end != '\0') throw Error("knob '" + knob + "' needs a number, got '" + s + "'");
  return v;
}
// The shortest %g form that reads back to the same float (up to 9 digits), so that distinct
// values never share a report key and parse_attention_config(to_string()) is exact.
inline std::string float_key(float v) {
  char buf[32];
  for (int digits = 6; digits <= 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(v));
    if (std::strtof(buf, nullptr) == v) break;
  }
  return buf;
}
}  // namespace detail

#define TURBO_ENUM_KNOB(NAME, FIELD, TYPE, HELP)                                              \
  Knob {                                                                                      \
    NAME, HELP, EnumNames<TYPE>::names(),                                                     \
        [](const AttentionConfig& c) { return enum_name(c.FIELD); },                          \
        [](AttentionConfig& c, const std::string& v) { c.FIELD = parse_enum<TYPE>(v, NAME); } \
  }
#define TURBO_INT_KNOB(NAME, FIELD, HELP)                                             \
  Knob {                                                                              \
    NAME, HELP, {}, [](const AttentionConfig& c) { return std::to_string(c.FIELD); }, \
        [](AttentionConfig& c, const std::string& v) {                                \
          c.FIELD = detail::parse_int_knob(v, NAME);                                  \
        }                                                                             \
  }
#define TURBO_FLOAT_KNOB(NAME, FIELD, HELP)                                              \
  Knob {                                                                                 \
    NAME, HELP, {}, [](const AttentionConfig& c) { return detail::float_key(c.FIELD); }, \
        [](AttentionConfig& c, const std::string& v) {                                   \
          c.FIELD = detail::parse_float_knob(v, NAME);                                   \
        }                                                                                \
  }

inline const std::vector<Knob>& knobs() {
  static const std::vector<Knob> kKnobs = {
      TURBO_ENUM_KNOB("method", method, Method, "attention algorithm (flashq or a baseline)"),
      TURBO_ENUM_KNOB("q_gran", quant.q_gran, Granularity, "stage-1 group of Q: tile, token, head"),
      TURBO_ENUM_KNOB("kv_gran", quant.kv_gran, Granularity, "stage-1 group of K/V in prefill"),
      TURBO_INT_KNOB("br", quant.br, "query rows per tile (Br)"),
      TURBO_INT_KNOB("bc", quant.bc, "key/value tokens per tile (Bc)"),
      TURBO_ENUM_KNOB("k_smooth", quant.k_smooth, KSmooth, "subtract the per-channel K mean"),
      TURBO_INT_KNOB("block", quant.block, "tokens per compressed KV block (n_b)"),
      TURBO_ENUM_KNOB("kv_bits", quant.kv_bits, KvBits, "KV cache bits (mixed: per head, SPEC 7)"),
      TURBO_FLOAT_KNOB("f2", quant.f2, "mixed: fraction of kv heads per layer at 2 bits"),
      TURBO_ENUM_KNOB("k_axis", quant.k_axis, Stage2Axis, "stage-2 group axis of K"),
      TURBO_ENUM_KNOB("v_axis", quant.v_axis, Stage2Axis, "stage-2 group axis of V"),
      TURBO_INT_KNOB("group_size", quant.group_size, "channels per token-axis group; KIVI group"),
      TURBO_ENUM_KNOB("buffer", quant.buffer, BufferMode, "residual buffer of the KV cache"),
      TURBO_ENUM_KNOB(
          "s2_step", quant.s2_step, S2Step,
          "stage-2 step: integer ceil, or fractional (reconstruction on the INT8 grid)"),
      TURBO_ENUM_KNOB("kv_scale", quant.kv_scale, KvScale,
                      "stage-1 scale of a cache block: one per block or one per token"),
      TURBO_INT_KNOB("sink", quant.sink, "decode cache: first tokens kept in FP16"),
      TURBO_INT_KNOB("window", quant.window, "decode cache: newest tokens kept in FP16"),
      TURBO_ENUM_KNOB("scale_storage", quant.scale_storage, ScaleStorage,
                      "direct quantizer scale/zero storage"),
      TURBO_INT_KNOB("residual", quant.residual, "KIVI: newest tokens kept in FP16"),
      TURBO_ENUM_KNOB("kivi_impl", quant.kivi_impl, KiviImpl,
                      "KIVI as its authors' code (authors) or the earlier reading (legacy)"),
      TURBO_ENUM_KNOB("sage_impl", quant.sage_impl, SageImpl,
                      "SageAttention as its authors' code (authors) or the earlier reading "
                      "(legacy)"),
      TURBO_ENUM_KNOB("sage_gran", quant.sage_gran, SageGran,
                      "SageAttention Q/K scale groups: per block (128 Q rows, 64 K tokens) or "
                      "per thread (sm80)"),
      TURBO_ENUM_KNOB("sage_pv", quant.sage_pv, SagePv,
                      "SageAttention P.V: fp32 (sm80), fp16 accumulator (sm86), fp8 (sm90)"),
      TURBO_ENUM_KNOB("prio_tensors", quant.prio_tensors, PrioTensors,
                      "head priority from K or K+V"),
      TURBO_ENUM_KNOB("prio_metric", quant.prio_metric, PrioMetric, "head priority metric"),
      TURBO_INT_KNOB("n_r", sas.n_r, "SAS sparsity threshold (integer)"),
      TURBO_ENUM_KNOB("poly", sas.poly, Poly, "SAS polynomial"),
      TURBO_ENUM_KNOB("sas_precision", sas.precision, SasPrecision, "SAS arithmetic precision"),
      TURBO_ENUM_KNOB("exp_mode", sas.exp_mode, ExpMode, "sas, or exact FP32 exp"),
      TURBO_ENUM_KNOB("p_quant", p_quant, PQuant, "quantization of P before the PV product"),
      Knob{"causal",
           "causal mask",
           {"0", "1"},
           [](const AttentionConfig& c) { return std::string(c.causal ? "1" : "0"); },
           [](AttentionConfig& c, const std::string& v) {
             if (v != "0" && v != "1")
               throw Error("invalid value '" + v + "' for knob 'causal'; valid: 0, 1");
             c.causal = v == "1";
           }},
      TURBO_INT_KNOB("splits", splits, "split-K runs in decode"),
      TURBO_FLOAT_KNOB("tau", tau, "softmax scale (0: 1/sqrt(D))"),
  };
  return kKnobs;
}
#undef TURBO_ENUM_KNOB
#undef TURBO_INT_KNOB
#undef TURBO_FLOAT_KNOB

inline const Knob& find_knob(const std::string& name) {
  for (const Knob& k : knobs())
    if (name == k.name) return k;
  std::vector<std::string> valid;
  for (const Knob& k : knobs()) valid.push_back(k.name);
  throw Error("unknown knob '" + name + "'; valid: " + join_names(valid));
}

inline void set_knob(AttentionConfig& c, const std::string& name, const std::string& value) {
  find_knob(name).set(c, value);
}

inline std::string AttentionConfig::to_string() const {
  std::string out;
  for (const Knob& k : knobs()) {
    if (!out.empty()) out += ',';
    out += k.name;
    out += '=';
    out += k.get(*this);
  }
  return out;
}

// Reads "name=value,name=value"; knobs not named keep their defaults.
inline AttentionConfig parse_attention_config(const std::string& key) {
  AttentionConfig c;
  size_t pos = 0;
  while (pos < key.size()) {
    size_t end = key.find(',', pos);
    if (end == std::string::npos) end = key.size();
    const std::string item = key.substr(pos, end - pos);
    if (!item.empty()) {
      const size_t eq = item.find('=');
      if (eq == std::string::npos) throw Error("config item '" + item + "' is not name=value");
      set_knob(c, item.substr(0, eq), item.substr(eq + 1));
    }
    pos = end + 1;
  }
  return c;
}

// Largest br, bc, block, group_size and residual a config may ask for (tokens or channels).
constexpr int kMaxTileSize = 1 << 16;

inline Status AttentionConfig::validate() const {
  auto fail = [](const std::string& m) { return Status::Fail(m); };
  if (sas.n_r < 1 || sas.n_r >= kMaxNr)
    return fail("n_r must be in [1, 15], got " + std::to_string(sas.n_r));
  // Tile, block and group sizes size per-thread buffers: bounded, so that a typo (bc=2147483647)
  // is refused here instead of allocating gigabytes inside a parallel region.
  const std::string bound = std::to_string(kMaxTileSize);
  if (quant.br < 1 || quant.bc < 1 || quant.br > kMaxTileSize || quant.bc > kMaxTileSize)
    return fail("br and bc must be in [1, " + bound + "]");
  if (quant.block < 1 || quant.block > kMaxTileSize)
    return fail("block must be in [1, " + bound + "]");
  if (quant.group_size < 1 || quant.group_size > kMaxTileSize)
    return fail("group_size must be in [1, " + bound + "]");
  if (quant.residual < 0 || quant.residual > kMaxTileSize)
    return fail("residual must be in [0, " + bound + "]");
  if (quant.sink < 0) return fail("sink must be >= 0, got " + std::to_string(quant.sink));
  if (quant.window < 0) return fail("window must be >= 0, got " + std::to_string(quant.window));
  if (quant.f2 < 0.0f || quant.f2 > 1.0f) return fail("f2 must be in [0, 1]");
  if (splits < 1) return fail("splits must be >= 1");
  if (!(tau >= 0.0f) || std::isinf(tau)) return fail("tau must be finite and >= 0");
  return Status::Ok();
}

}  // namespace turbo

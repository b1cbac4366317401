// The method table: one row per attention method (as ggml's type_traits has one row per type),
// read by every layer that needs to know something about a method: the Backend front
// (legal kv_bits, bit maps), the reference dispatch, the sweep grid's canonical configs (which
// knobs a method reads in each phase), the CSV (knobs a method does not read are empty cells) and
// the KV cache (the bits it stores). Adding a method is one row here plus its implementation.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"

namespace turbo {

// Prefill: attention over a whole window. Decode: attention over a KV cache built by appends.
enum class Phase : int { kPrefill = 0, kDecode = 1 };
constexpr unsigned kPrefillOnly = 1u << static_cast<int>(Phase::kPrefill);
constexpr unsigned kDecodeOnly = 1u << static_cast<int>(Phase::kDecode);
constexpr unsigned kBothPhases = kPrefillOnly | kDecodeOnly;

// Knobs a method reads in some phases, when a condition on the config holds (null: always).
struct KnobUse {
  std::vector<std::string> knobs;
  unsigned phases = kBothPhases;
  bool (*when)(const AttentionConfig&) = nullptr;
};

struct MethodTraits {
  Method method;
  const char* stores;  // what its KV cache holds (documentation, README)
  // Bits of the values a kv head's cache stores: 16 (FP16), 8, or 0 = kv_bits, per kv head from
  // a bit map when kv_bits = mixed.
  int stored_bits;
  std::vector<KvBits> kv_bits;  // legal kv_bits; empty: the method does not read kv_bits
  bool bit_map;                 // kv_bits = mixed takes a per-kv-head bit map (SPEC 7)
  std::vector<KnobUse> reads;   // besides `method` and `tau`, which every method reads
};

namespace method_detail {
inline bool sas_exp(const AttentionConfig& c) { return c.sas.exp_mode == ExpMode::kSas; }
inline bool stage2(const AttentionConfig& c) { return c.quant.kv_bits != KvBits::k8; }
inline bool token_axis_stage2(const AttentionConfig& c) {
  return stage2(c) &&
         (c.quant.k_axis == Stage2Axis::kToken || c.quant.v_axis == Stage2Axis::kToken);
}
inline bool mixed(const AttentionConfig& c) { return c.quant.kv_bits == KvBits::kMixed; }
inline bool kivi_legacy(const AttentionConfig& c) { return c.quant.kivi_impl == KiviImpl::kLegacy; }
inline bool sage_legacy(const AttentionConfig& c) { return c.quant.sage_impl == SageImpl::kLegacy; }
inline bool sage_authors(const AttentionConfig& c) { return !sage_legacy(c); }
}  // namespace method_detail

// In Method enum order (checked by method_traits()).
inline const std::vector<MethodTraits>& method_table() {
  using namespace method_detail;
  static const std::vector<MethodTraits> kTable = {
      {Method::kFlashQ,
       "stage-1 INT8 blocks of `block` tokens, stage 2 to kv_bits (SPEC 2), an FP16 or INT8 "
       "residual buffer",
       0,
       {KvBits::k8, KvBits::k4, KvBits::k2, KvBits::kMixed},
       true,
       {{{"q_gran", "br", "bc", "k_smooth", "exp_mode", "p_quant"}},
        {{"n_r", "poly", "sas_precision"}, kBothPhases, sas_exp},
        {{"kv_gran", "causal"}, kPrefillOnly},
        {{"block", "kv_bits", "buffer", "splits", "kv_scale", "sink", "window"}, kDecodeOnly},
        {{"k_axis", "v_axis", "s2_step"}, kDecodeOnly, stage2},
        {{"group_size"}, kDecodeOnly, token_axis_stage2},
        {{"f2", "prio_tensors", "prio_metric"}, kDecodeOnly, mixed}}},
      {Method::kFp16, "FP16 K/V", 16, {}, false, {{{"causal"}, kPrefillOnly}}},
      {Method::kKivi,
       "K per channel, V per token, asymmetric kv_bits codes; recent tokens FP16 (authors: the "
       "last 1..residual K and residual+1 V rows at attention; legacy: SPEC 3, residual..)",
       0,
       {KvBits::k4, KvBits::k2, KvBits::kMixed},
       true,
       {{{"kivi_impl"}},
        // The authors' prefill attends the unquantized K/V: it reads no quantizer knob.
        {{"kv_bits", "group_size", "residual", "scale_storage"}, kDecodeOnly},
        {{"kv_bits", "group_size", "residual", "scale_storage"}, kPrefillOnly, kivi_legacy},
        {{"f2", "prio_tensors", "prio_metric"}, kBothPhases, mixed},
        {{"causal"}, kPrefillOnly}}},
      {Method::kInt8Kv,
       "per-token symmetric INT8 K/V + FP32 scale",
       8,
       {},
       false,
       {{{"causal"}, kPrefillOnly}}},
      {Method::kSage,
       "FP16 K/V (quantized at attention time)",
       16,
       {},
       false,
       // The authors' blocks are fixed (128 Q rows, 64 K tokens); the legacy reading's are br, bc.
       {{{"sage_impl", "k_smooth"}},
        {{"br", "bc"}, kBothPhases, sage_legacy},
        {{"sage_gran", "sage_pv"}, kBothPhases, sage_authors},
        {{"causal"}, kPrefillOnly}}},
      {Method::kFp8,
       "E4M3 blocks of `bc` tokens + FP32 scale, the newest < bc tokens FP16",
       8,
       {},
       false,
       {{{"br", "bc", "p_quant"}}, {{"causal"}, kPrefillOnly}}},
  };
  return kTable;
}

inline const MethodTraits& method_traits(Method m) {
  const auto& t = method_table();
  const size_t i = static_cast<size_t>(m);
  TURBO_CHECK(i < t.size() && t[i].method == m,
              "method '" << enum_name(m) << "' has no row in the method table (core/method.h)");
  return t[i];
}

// Whether `phase` of c's method reads knob `knob` (given c's other knobs).
inline bool method_reads(const AttentionConfig& c, Phase phase, const std::string& knob) {
  if (knob == "method" || knob == "tau") return true;
  const unsigned bit = 1u << static_cast<int>(phase);
  for (const KnobUse& u : method_traits(c.method).reads) {
    if (!(u.phases & bit) || (u.when && !u.when(c))) continue;
    for (const std::string& k : u.knobs)
      if (k == knob) return true;
  }
  return false;
}

// The method's own limits on c: a legal kv_bits (for the methods that read it).
inline Status method_supports(const AttentionConfig& c) {
  const MethodTraits& t = method_traits(c.method);
  if (t.kv_bits.empty()) return Status::Ok();
  std::vector<std::string> legal;
  for (KvBits b : t.kv_bits) {
    if (b == c.quant.kv_bits) return Status::Ok();
    legal.push_back(enum_name(b));
  }
  return Status::Fail(enum_name(c.method) + " takes kv_bits " + join_names(legal, ", ") + ", got " +
                      enum_name(c.quant.kv_bits));
}

// The bits kv head `kv_head` of a cache for c stores: the method's fixed width, or the head's
// entry of `head_bits` (a bit map) when there is one, or kv_bits.
inline int method_stored_bits(const AttentionConfig& c, const std::vector<int>& head_bits,
                              int kv_head) {
  const MethodTraits& t = method_traits(c.method);
  if (t.stored_bits != 0) return t.stored_bits;
  if (!head_bits.empty()) return head_bits.at(static_cast<size_t>(kv_head));
  return kv_bits_value(c.quant.kv_bits);
}

// The same for one phase: kv_bits = mixed comes with a per-kv-head bit map, which only a KV cache
// takes, so a prefill that reads kv_bits (kivi's) cannot run it.
inline Status method_supports(const AttentionConfig& c, Phase phase) {
  const Status s = method_supports(c);
  if (s.ok && c.quant.kv_bits == KvBits::kMixed && phase == Phase::kPrefill &&
      method_reads(c, phase, "kv_bits"))
    return Status::Fail(enum_name(c.method) +
                        " prefill reads kv_bits, and kv_bits=mixed needs a per-kv-head bit map, "
                        "which only a KV cache takes (decode)");
  return s;
}

// A cache's bit map against c's method: only a method that takes one gets one, each entry one of
// the method's legal widths; kv_bits = mixed needs one.
inline Status method_supports_bit_map(const AttentionConfig& c, const std::vector<int>& head_bits) {
  const MethodTraits& t = method_traits(c.method);
  if (head_bits.empty())
    return t.bit_map && c.quant.kv_bits == KvBits::kMixed
               ? Status::Fail("kv_bits=mixed needs a per-head bit map (turboattn calibrate)")
               : Status::Ok();
  if (!t.bit_map)
    return Status::Fail("per-kv-head bits apply to methods that take a bit map; method '" +
                        enum_name(c.method) + "' has a fixed format");
  std::vector<std::string> legal;
  for (KvBits b : t.kv_bits)
    if (b != KvBits::kMixed) legal.push_back(enum_name(b));
  for (int b : head_bits) {
    bool ok = false;
    for (KvBits l : t.kv_bits) ok = ok || (l != KvBits::kMixed && kv_bits_value(l) == b);
    if (!ok)
      return Status::Fail("head bits of " + enum_name(c.method) + " must be " +
                          join_names(legal, ", ") + ", got " + std::to_string(b));
  }
  return Status::Ok();
}

}  // namespace turbo

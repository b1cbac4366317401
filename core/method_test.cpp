// The method table (core/method.h): complete, consistent with the knob table, and what the layers
// that read it get from it (knobs read per phase, legal kv_bits, bit maps, stored bits).
#include "core/method.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace turbo {
namespace {

AttentionConfig cfg(const std::string& key) { return parse_attention_config(key); }

bool reads(const std::string& key, Phase p, const std::string& knob) {
  return method_reads(cfg(key), p, knob);
}

TEST(MethodTable, OneRowPerMethodInEnumOrder) {
  const auto& names = EnumNames<Method>::names();
  ASSERT_EQ(method_table().size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const Method m = parse_enum<Method>(names[i], "method");
    EXPECT_EQ(method_traits(m).method, m) << names[i];
    EXPECT_NE(std::string(method_traits(m).stores), "") << names[i];
  }
}

TEST(MethodTable, RowsNameRealKnobsOnce) {
  for (const MethodTraits& t : method_table()) {
    // Once per phase: a knob may sit in two entries whose phases do not overlap (kivi's quantizer
    // knobs: always in decode, in prefill only for the legacy variant).
    std::set<std::string> seen[2];
    for (const KnobUse& u : t.reads) {
      EXPECT_NE(u.phases & kBothPhases, 0u) << enum_name(t.method);
      for (const std::string& k : u.knobs) {
        EXPECT_NO_THROW(find_knob(k)) << enum_name(t.method) << ": " << k;
        EXPECT_NE(k, "method");
        EXPECT_NE(k, "tau");
        for (int p = 0; p < 2; ++p)
          if (u.phases & (1u << p))
            EXPECT_TRUE(seen[p].insert(k).second)
                << enum_name(t.method) << " lists " << k << " twice in one phase";
      }
    }
  }
}

// What a bit map, kv_bits and the stored bits imply of each other, for every row.
TEST(MethodTable, StorageColumnsAgree) {
  for (const MethodTraits& t : method_table()) {
    AttentionConfig c;
    c.method = t.method;
    const std::string m = enum_name(t.method);
    bool lists_mixed = false;
    for (KvBits b : t.kv_bits) lists_mixed = lists_mixed || b == KvBits::kMixed;
    EXPECT_EQ(t.bit_map, lists_mixed) << m << ": a bit map is what kv_bits=mixed means";
    // A width from kv_bits (stored_bits 0) needs kv_bits to be read in decode, and conversely.
    c.quant.kv_bits = t.kv_bits.empty() ? KvBits::k4 : t.kv_bits.front();
    EXPECT_EQ(t.stored_bits == 0, method_reads(c, Phase::kDecode, "kv_bits")) << m;
    EXPECT_EQ(t.stored_bits == 0, !t.kv_bits.empty()) << m;
    if (t.stored_bits != 0) {
      EXPECT_TRUE(t.stored_bits == 8 || t.stored_bits == 16) << m;
      EXPECT_EQ(method_stored_bits(c, {}, 0), t.stored_bits) << m;
    }
    if (t.bit_map) {  // the map's own knobs are read whenever it is
      c.quant.kv_bits = KvBits::kMixed;
      for (const char* k : {"f2", "prio_tensors", "prio_metric"})
        EXPECT_TRUE(method_reads(c, Phase::kDecode, k)) << m << " " << k;
      EXPECT_EQ(method_stored_bits(c, {2, 4}, 1), 4) << m;
    }
  }
}

TEST(MethodTable, KnobsReadPerPhase) {
  // every method reads method and tau, nothing else that is not in its row
  for (const char* m : {"flashq", "fp16", "kivi", "int8kv", "sage", "fp8"})
    for (Phase p : {Phase::kPrefill, Phase::kDecode}) {
      const std::string key = std::string("method=") + m;
      EXPECT_TRUE(reads(key, p, "method"));
      EXPECT_TRUE(reads(key, p, "tau"));
      EXPECT_EQ(reads(key, p, "causal"), p == Phase::kPrefill) << m;
    }
  EXPECT_FALSE(reads("method=flashq", Phase::kPrefill, "kv_bits"));
  EXPECT_TRUE(reads("method=flashq", Phase::kDecode, "kv_bits"));
  EXPECT_TRUE(reads("method=flashq", Phase::kDecode, "n_r"));
  EXPECT_FALSE(reads("method=flashq,exp_mode=exact", Phase::kDecode, "n_r"));
  EXPECT_TRUE(reads("method=flashq,kv_bits=4", Phase::kDecode, "k_axis"));
  EXPECT_FALSE(reads("method=flashq,kv_bits=8", Phase::kDecode, "k_axis"));
  EXPECT_FALSE(reads("method=flashq,kv_bits=4", Phase::kDecode, "group_size"));
  EXPECT_TRUE(reads("method=flashq,kv_bits=4,v_axis=token", Phase::kDecode, "group_size"));
  EXPECT_FALSE(reads("method=flashq,kv_bits=4", Phase::kDecode, "f2"));
  // The authors' KIVI prefill attends unquantized K/V; the legacy prefill quantizes.
  EXPECT_FALSE(reads("method=kivi", Phase::kPrefill, "kv_bits"));
  EXPECT_TRUE(reads("method=kivi,kivi_impl=legacy", Phase::kPrefill, "kv_bits"));
  EXPECT_TRUE(reads("method=kivi", Phase::kPrefill, "kivi_impl"));
  EXPECT_TRUE(reads("method=flashq", Phase::kDecode, "window"));
  EXPECT_FALSE(reads("method=flashq", Phase::kPrefill, "sink"));
  EXPECT_FALSE(reads("method=flashq,kv_bits=8", Phase::kDecode, "s2_step"));
  EXPECT_TRUE(reads("method=kivi", Phase::kDecode, "residual"));
  EXPECT_FALSE(reads("method=kivi", Phase::kDecode, "n_r"));
  EXPECT_TRUE(reads("method=sage", Phase::kDecode, "k_smooth"));
  EXPECT_FALSE(reads("method=sage", Phase::kDecode, "p_quant"));
  // The authors' SageAttention has fixed blocks (128 Q rows, 64 K tokens) and reads its grouping
  // and P.V precision; the legacy reading reads br and bc instead.
  EXPECT_FALSE(reads("method=sage", Phase::kPrefill, "br"));
  EXPECT_TRUE(reads("method=sage", Phase::kDecode, "sage_pv"));
  EXPECT_TRUE(reads("method=sage", Phase::kPrefill, "sage_gran"));
  EXPECT_TRUE(reads("method=sage,sage_impl=legacy", Phase::kPrefill, "bc"));
  EXPECT_FALSE(reads("method=sage,sage_impl=legacy", Phase::kDecode, "sage_pv"));
  EXPECT_FALSE(reads("method=flashq", Phase::kDecode, "sage_impl"));
  EXPECT_TRUE(reads("method=fp8", Phase::kDecode, "p_quant"));
  EXPECT_FALSE(reads("method=int8kv", Phase::kDecode, "kv_bits"));
  EXPECT_FALSE(reads("method=fp16", Phase::kPrefill, "br"));
}

TEST(MethodTable, LegalKvBitsAndBitMaps) {
  EXPECT_TRUE(method_supports(cfg("method=flashq,kv_bits=mixed")).ok);
  EXPECT_EQ(method_supports(cfg("method=kivi,kv_bits=8")).message,
            "kivi takes kv_bits 4, 2, mixed, got 8");
  EXPECT_TRUE(method_supports(cfg("method=int8kv,kv_bits=8")).ok);  // int8kv does not read it
  // kivi legacy's prefill reads kv_bits, and mixed comes with a bit map only a cache takes
  EXPECT_FALSE(
      method_supports(cfg("method=kivi,kivi_impl=legacy,kv_bits=mixed"), Phase::kPrefill).ok);
  EXPECT_TRUE(method_supports(cfg("method=kivi,kv_bits=mixed"), Phase::kPrefill).ok);
  EXPECT_TRUE(method_supports(cfg("method=kivi,kv_bits=mixed"), Phase::kDecode).ok);
  EXPECT_TRUE(method_supports(cfg("method=flashq,kv_bits=mixed"), Phase::kPrefill).ok);

  EXPECT_NE(method_supports_bit_map(cfg("method=flashq,kv_bits=mixed"), {})
                .message.find("needs a per-head bit map"),
            std::string::npos);
  EXPECT_TRUE(method_supports_bit_map(cfg("method=flashq,kv_bits=mixed"), {2, 4, 8}).ok);
  EXPECT_EQ(method_supports_bit_map(cfg("method=kivi,kv_bits=mixed"), {2, 8}).message,
            "head bits of kivi must be 4, 2, got 8");
  EXPECT_NE(method_supports_bit_map(cfg("method=int8kv"), {4}).message.find("fixed format"),
            std::string::npos);
}

}  // namespace
}  // namespace turbo

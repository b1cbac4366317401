// Tests of core/config.h: the knob table, the report key and its parser, validation.
#include "core/config.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/error_test_util.h"

namespace {

using turbo::AttentionConfig;
using turbo::error_of;

std::string knob_value(const AttentionConfig& c, const std::string& name) {
  return turbo::find_knob(name).get(c);
}

TEST(Config, KnobNamesAreUniqueAndKeyListsEveryKnobInOrder) {
  std::set<std::string> names;
  std::string want;
  const AttentionConfig c;
  for (const turbo::Knob& k : turbo::knobs()) {
    EXPECT_TRUE(names.insert(k.name).second) << "duplicate knob " << k.name;
    EXPECT_NE(std::string(k.help), "") << k.name;
    want += (want.empty() ? "" : ",") + std::string(k.name) + "=" + k.get(c);
  }
  EXPECT_EQ(c.to_string(), want);
  EXPECT_GE(names.size(), 20u);
  // Every numerics knob of SPEC is in the key.
  for (const char* n : {"q_gran",     "kv_gran",      "br",
                        "bc",         "k_smooth",     "block",
                        "kv_bits",    "k_axis",       "v_axis",
                        "group_size", "buffer",       "scale_storage",
                        "n_r",        "poly",         "sas_precision",
                        "exp_mode",   "p_quant",      "causal",
                        "splits",     "prio_tensors", "prio_metric",
                        "f2",         "s2_step",      "kv_scale",
                        "sink",       "window",       "kivi_impl",
                        "sage_impl",  "sage_gran",    "sage_pv"})
    EXPECT_EQ(names.count(n), 1u) << n;
}

TEST(Config, DefaultsAreTheSpecDefaults) {
  const AttentionConfig c;
  EXPECT_EQ(c.to_string(),
            "method=flashq,q_gran=tile,kv_gran=tile,br=64,bc=64,k_smooth=none,block=64,kv_bits=4,"
            "f2=0.5,k_axis=channel,v_axis=channel,group_size=32,buffer=fp16,s2_step=int,"
            "kv_scale=block,sink=0,window=0,scale_storage=fp16,residual=32,kivi_impl=authors,"
            "sage_impl=authors,sage_gran=block,sage_pv=fp32,"
            "prio_tensors=k,prio_metric=gap_std,n_r=6,poly=ls3,sas_precision=fp16,"
            "exp_mode=sas,p_quant=u8,causal=1,splits=1,tau=0");
  EXPECT_TRUE(c.validate().ok) << c.validate().message;
}

// Every listed value of every enumerated knob: set, key, parse back, same key and same field.
TEST(Config, EveryEnumValueRoundTrips) {
  int count = 0;
  for (const turbo::Knob& k : turbo::knobs()) {
    for (const std::string& v : k.values) {
      AttentionConfig c;
      turbo::set_knob(c, k.name, v);
      EXPECT_EQ(k.get(c), v) << k.name;
      const std::string key = c.to_string();
      const AttentionConfig back = turbo::parse_attention_config(key);
      EXPECT_EQ(back.to_string(), key);
      EXPECT_EQ(knob_value(back, k.name), v);
      // A key naming only this knob parses to the same config.
      EXPECT_EQ(turbo::parse_attention_config(std::string(k.name) + "=" + v).to_string(), key);
      ++count;
    }
  }
  EXPECT_GT(count, 40);
}

TEST(Config, EnumValuesListedEqualTheEnumNames) {
  EXPECT_EQ(turbo::find_knob("poly").values.size(), static_cast<size_t>(turbo::kNumPolys));
  EXPECT_EQ(turbo::find_knob("p_quant").values,
            (std::vector<std::string>{"u8", "s8", "u8_row", "fp16"}));
  EXPECT_EQ(turbo::find_knob("q_gran").values, (std::vector<std::string>{"tile", "token", "head"}));
  EXPECT_EQ(turbo::find_knob("kv_bits").values, (std::vector<std::string>{"8", "4", "2", "mixed"}));
  AttentionConfig c;
  turbo::set_knob(c, "poly", "minimax4");
  EXPECT_EQ(c.sas.poly, turbo::Poly::kMinimax4);
  turbo::set_knob(c, "p_quant", "u8_row");
  EXPECT_EQ(c.p_quant, turbo::PQuant::kU8Row);
  turbo::set_knob(c, "kv_bits", "2");
  EXPECT_EQ(turbo::kv_bits_value(c.quant.kv_bits), 2);
  turbo::set_knob(c, "causal", "0");
  EXPECT_FALSE(c.causal);
}

TEST(Config, NumericKnobsRoundTrip) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"br", {"1", "16", "64", "128"}},
      {"bc", {"1", "32", "64", "256"}},
      {"block", {"16", "64"}},
      {"n_r", {"3", "4", "5", "6", "7", "8", "9", "10"}},
      {"splits", {"1", "2", "7"}},
      {"group_size", {"16", "32", "128"}},
      {"residual", {"0", "32", "128"}},
      {"f2", {"0", "0.25", "0.5", "1"}},
      {"tau", {"0", "0.125", "0.0883883"}}};
  for (const auto& kc : cases) {
    for (const std::string& v : kc.second) {
      AttentionConfig c;
      turbo::set_knob(c, kc.first, v);
      EXPECT_EQ(knob_value(c, kc.first), v) << kc.first;
      const AttentionConfig back = turbo::parse_attention_config(c.to_string());
      EXPECT_EQ(back.to_string(), c.to_string());
    }
  }
  AttentionConfig c;
  turbo::set_knob(c, "n_r", "9");
  EXPECT_EQ(c.sas.n_r, 9);
  EXPECT_EQ(c.sas.params().n_r, 9);
  turbo::set_knob(c, "f2", "0.25");
  EXPECT_EQ(c.quant.f2, 0.25f);
}

// The key identifies the config: two configs with different float knobs must not share a key,
// and parsing the key must give back the exact value (the reports are joined on it).
TEST(Config, FloatKnobKeyIsExact) {
  for (float f2 : {1.0f / 3.0f, 0.1f, 0.30000001f, 0.123456789f}) {
    AttentionConfig c;
    c.quant.f2 = f2;
    const AttentionConfig back = turbo::parse_attention_config(c.to_string());
    EXPECT_EQ(back.quant.f2, f2) << c.to_string();
  }
  // Short values keep their short key.
  AttentionConfig d;
  d.quant.f2 = 0.1f;
  EXPECT_NE(d.to_string().find("f2=0.1,"), std::string::npos) << d.to_string();
  AttentionConfig c;
  c.tau = 1.0f / std::sqrt(80.0f);
  EXPECT_EQ(turbo::parse_attention_config(c.to_string()).tau, c.tau) << c.to_string();
}

TEST(Config, UnknownKnobListsValidNames) {
  const std::string m = error_of([] { turbo::parse_attention_config("n_r=6,nr=5"); });
  ASSERT_NE(m, "");
  EXPECT_NE(m.find("'nr'"), std::string::npos) << m;
  for (const turbo::Knob& k : turbo::knobs())
    EXPECT_NE(m.find(k.name), std::string::npos) << k.name;
}

TEST(Config, UnknownValueListsValidValues) {
  for (const turbo::Knob& k : turbo::knobs()) {
    if (k.values.empty()) continue;
    const std::string m = error_of([&] {
      AttentionConfig c;
      turbo::set_knob(c, k.name, "bogus");
    });
    ASSERT_NE(m, "") << k.name;
    EXPECT_NE(m.find("bogus"), std::string::npos) << m;
    EXPECT_NE(m.find(k.name), std::string::npos) << m;
    for (const std::string& v : k.values)
      EXPECT_NE(m.find(v), std::string::npos) << k.name << ": " << m;
  }
  // Numbers: non-numeric and trailing garbage are errors naming the knob.
  for (const char* bad : {"x", "6x", "", "1.5"}) {
    const std::string m = error_of([&] {
      AttentionConfig c;
      turbo::set_knob(c, "n_r", bad);
    });
    EXPECT_NE(m.find("n_r"), std::string::npos) << "'" << bad << "' -> " << m;
  }
  // An integer outside int's range is an error, not a silent wrap (4294967302 would wrap to 6).
  for (const char* big : {"4294967302", "-4294967290", "99999999999999999999"}) {
    const std::string m = error_of([&] {
      AttentionConfig c;
      turbo::set_knob(c, "n_r", big);
    });
    EXPECT_NE(m.find("n_r"), std::string::npos) << "'" << big << "' -> '" << m << "'";
  }
  EXPECT_NE(error_of([] { turbo::parse_attention_config("n_r"); }), "");
  EXPECT_NE(error_of([] { turbo::parse_attention_config("f2=abc"); }), "");
}

TEST(Config, ParseKeepsDefaultsAndToleratesEmpty) {
  EXPECT_EQ(turbo::parse_attention_config("").to_string(), AttentionConfig().to_string());
  EXPECT_EQ(turbo::parse_attention_config(",,").to_string(), AttentionConfig().to_string());
  const AttentionConfig c = turbo::parse_attention_config("poly=taylor3,n_r=4");
  EXPECT_EQ(c.sas.poly, turbo::Poly::kTaylor3);
  EXPECT_EQ(c.sas.n_r, 4);
  EXPECT_EQ(c.quant.br, 64);
}

TEST(Config, ValidateCatchesBadValues) {
  auto bad = [](const std::string& key, const std::string& fragment) {
    const turbo::Status s = turbo::parse_attention_config(key).validate();
    EXPECT_FALSE(s.ok) << key;
    EXPECT_NE(s.message.find(fragment), std::string::npos) << key << ": " << s.message;
  };
  bad("n_r=0", "n_r");
  bad("n_r=-3", "n_r");
  bad("n_r=16", "n_r");
  bad("n_r=100", "n_r");
  bad("splits=0", "splits");
  bad("splits=-1", "splits");
  bad("br=0", "br");
  bad("bc=0", "bc");
  bad("block=0", "block");
  bad("group_size=0", "group_size");
  bad("residual=-1", "residual");
  bad("f2=1.5", "f2");
  bad("f2=-0.1", "f2");
  bad("tau=-1", "tau");
  bad("tau=inf", "tau");
  bad("tau=nan", "tau");
  for (int n_r = 1; n_r < turbo::kMaxNr; ++n_r) {
    EXPECT_TRUE(turbo::parse_attention_config("n_r=" + std::to_string(n_r)).validate().ok) << n_r;
  }
  EXPECT_TRUE(turbo::parse_attention_config("splits=8,f2=1,tau=0.125").validate().ok);
}

TEST(Config, TauDefaultsToInverseSqrtD) {
  AttentionConfig c;
  EXPECT_EQ(c.tau_for(64), 0.125f);
  EXPECT_EQ(c.tau_for(128), 1.0f / std::sqrt(128.0f));
  c.tau = 0.5f;
  EXPECT_EQ(c.tau_for(64), 0.5f);
}

}  // namespace

// ---- core/backend.h: shape checks and the registry
// -----------------------------------------------

namespace {

turbo::HostTensor<turbo::Half> zeros(int64_t b, int64_t h, int64_t n, int64_t d) {
  return turbo::HostTensor<turbo::Half>(b, h, n, d);
}

std::string shape_error(const turbo::HostTensor<turbo::Half>& q,
                        const turbo::HostTensor<turbo::Half>& k,
                        const turbo::HostTensor<turbo::Half>& v,
                        turbo::HostTensor<turbo::Half>& o) {
  return error_of([&] { turbo::check_attention_shapes(q.view(), k.view(), v.view(), o.view()); });
}

TEST(BackendShapes, AcceptsValidAndRejectsInvalid) {
  for (int64_t d : {16, 32, 48, 64, 80, 96, 112, 128, 256}) {
    auto q = zeros(1, 4, 5, d), k = zeros(1, 2, 5, d), v = zeros(1, 2, 5, d), o = zeros(1, 4, 5, d);
    EXPECT_EQ(shape_error(q, k, v, o), "") << d;
  }
  for (int64_t d : {8, 24, 272, 512}) {
    auto q = zeros(1, 2, 5, d), k = zeros(1, 2, 5, d), v = zeros(1, 2, 5, d), o = zeros(1, 2, 5, d);
    EXPECT_NE(shape_error(q, k, v, o).find("head_dim"), std::string::npos) << d;
  }
  {
    auto q = zeros(1, 3, 5, 64), k = zeros(1, 2, 5, 64), v = zeros(1, 2, 5, 64),
         o = zeros(1, 3, 5, 64);
    EXPECT_NE(shape_error(q, k, v, o).find("multiple of kv heads"), std::string::npos);
  }
  {
    auto q = zeros(1, 2, 5, 64), k = zeros(1, 2, 5, 64), v = zeros(1, 2, 6, 64),
         o = zeros(1, 2, 5, 64);
    EXPECT_NE(shape_error(q, k, v, o), "");
  }
  {
    auto q = zeros(1, 2, 5, 64), k = zeros(1, 2, 5, 64), v = zeros(1, 2, 5, 64),
         o = zeros(1, 2, 4, 64);
    EXPECT_NE(shape_error(q, k, v, o).find("output"), std::string::npos);
  }
  {
    auto q = zeros(2, 2, 5, 64), k = zeros(1, 2, 5, 64), v = zeros(1, 2, 5, 64),
         o = zeros(2, 2, 5, 64);
    EXPECT_NE(shape_error(q, k, v, o).find("batch"), std::string::npos);
  }
}

TEST(BackendRegistry, UnknownNameListsAvailable) {
  const std::string m = error_of([] { turbo::make_backend("no-such-backend"); });
  EXPECT_NE(m.find("no-such-backend"), std::string::npos) << m;
  EXPECT_NE(m.find("available"), std::string::npos) << m;
}

}  // namespace

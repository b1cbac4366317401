// One harness for the cuda-vs-ref comparisons, shared by cuda_backend_test.cu (GoogleTest) and
// validate_main.cu (the device report). Each case runs one op on both backends with the same
// random inputs and counts the elements whose bits differ (every element compared; outputs
// poisoned before the run; a nonzero-norm guard against vacuous passes).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/backend.h"
#include "reference/test_inputs.h"

namespace turbo {
namespace cuda {
namespace validate {

struct CaseResult {
  std::string op;
  std::string name;
  int64_t mismatches = 0;
  int64_t total = 0;
  bool exact = true;     // false: tolerance-checked (exp_mode = exact, p_quant = fp16)
  double max_rel = 0.0;  // tolerance cases: max |a - b| / (|b| + 1e-3)
  bool nonzero = false;  // the reference output has a nonzero element
  std::string note;
};

inline uint16_t bits(Half h) { return h.bits; }
inline uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline std::vector<Half> random_halves(size_t n, uint64_t seed, float scale,
                                       double zero_frac = 0.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<Half> out(n);
  for (auto& h : out) {
    const double r = u(rng);
    h = r < zero_frac ? (r < zero_frac / 2 ? float_to_half(-0.0f) : float_to_half(0.0f))
                      : float_to_half(normal(rng));
  }
  return out;
}

// ---- element ops --------------------------------------------------------------------------------

inline CaseResult stage1_case(Backend& ref, Backend& dev, int64_t n, int d, int64_t group_rows,
                              uint64_t seed, double zero_frac) {
  CaseResult r{"quantize_stage1", "n=" + std::to_string(n) + ",d=" + std::to_string(d) +
                                      ",group_rows=" + std::to_string(group_rows) +
                                      ",zeros=" + std::to_string(zero_frac)};
  const auto x = random_halves(static_cast<size_t>(n * d), seed, 2.0f, zero_frac);
  const int64_t groups = (n + group_rows - 1) / group_rows;
  std::vector<int8_t> c1(x.size(), 99), c2(x.size(), -99);
  std::vector<float> s1(static_cast<size_t>(groups), NAN), s2(static_cast<size_t>(groups), -1.0f);
  ref.quantize_stage1(x.data(), n, d, group_rows, c1.data(), s1.data());
  dev.quantize_stage1(x.data(), n, d, group_rows, c2.data(), s2.data());
  for (size_t i = 0; i < c1.size(); ++i) r.mismatches += c1[i] != c2[i], r.nonzero |= c1[i] != 0;
  for (size_t i = 0; i < s1.size(); ++i)
    r.mismatches += bits(s1[i]) != bits(s2[i]), r.nonzero |= bits(s1[i]) != 0;
  r.total = static_cast<int64_t>(c1.size() + s1.size());
  if (zero_frac >= 1.0) {
    // Only +-0 inputs: SPEC 1 fixes the answer (|-0| = +0, so every scale is +0 and every code 0),
    // so an all-zero output is the expected one, checked here bit for bit, not a vacuous pass.
    for (size_t i = 0; i < s1.size(); ++i) r.mismatches += bits(s1[i]) != 0u;
    for (size_t i = 0; i < c1.size(); ++i) r.mismatches += c1[i] != 0;
    r.nonzero = true;
  }
  return r;
}

inline CaseResult stage2_case(Backend& ref, Backend& dev, const BlockLayout& L, uint64_t seed) {
  CaseResult r{"compress_block+decompress_block",
               "n_b=" + std::to_string(L.n_b) + ",d=" + std::to_string(L.d) +
                   ",bits=" + std::to_string(L.bits) + ",axis=" + (L.axis ? "token" : "channel") +
                   ",group=" + std::to_string(L.group_size)};
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> code(-127, 127), narrow(-9, 30);
  std::vector<int8_t> q(static_cast<size_t>(L.elements()));
  for (size_t i = 0; i < q.size(); ++i)
    q[i] = static_cast<int8_t>(i % 7 == 0 ? narrow(rng) : code(rng));
  // The stage-1 scale slot is left as is: fill both with the same sentinel bytes.
  std::vector<uint8_t> b1(static_cast<size_t>(L.bytes()), 0xA5), b2(b1);
  ref.compress_block(q.data(), L, b1.data());
  dev.compress_block(q.data(), L, b2.data());
  for (size_t i = 0; i < b1.size(); ++i) r.mismatches += b1[i] != b2[i], r.nonzero |= b1[i] != 0;
  std::vector<int8_t> d1(q.size(), 77), d2(q.size(), -77);
  ref.decompress_block(b1.data(), L, d1.data());
  dev.decompress_block(b1.data(), L, d2.data());
  for (size_t i = 0; i < d1.size(); ++i) r.mismatches += d1[i] != d2[i];
  r.total = static_cast<int64_t>(b1.size() + d1.size());
  return r;
}

inline CaseResult asym_case(Backend& ref, Backend& dev, int64_t groups, int len, int nbits,
                            ScaleStorage st, uint64_t seed) {
  CaseResult r{"quantize_asym", "groups=" + std::to_string(groups) + ",len=" + std::to_string(len) +
                                    ",bits=" + std::to_string(nbits) +
                                    ",storage=" + (st == ScaleStorage::kFp16 ? "fp16" : "fp32")};
  auto x = random_halves(static_cast<size_t>(groups * len), seed, 3.0f, 0.05);
  for (int i = 0; i < len; ++i)
    x[static_cast<size_t>(i)] = float_to_half(i % 2 ? 0.0f : -0.0f);  // an all-zero group
  const size_t n = x.size();
  std::vector<uint8_t> c1(n, 0xEE), c2(n, 0x11);
  std::vector<float> s1(static_cast<size_t>(groups), NAN), s2(s1.size(), 5.0f), z1(s1.size(), NAN),
      z2(s1.size(), 5.0f);
  ref.quantize_asym(x.data(), groups, len, nbits, st, c1.data(), s1.data(), z1.data());
  dev.quantize_asym(x.data(), groups, len, nbits, st, c2.data(), s2.data(), z2.data());
  for (size_t i = 0; i < n; ++i) r.mismatches += c1[i] != c2[i], r.nonzero |= c1[i] != 0;
  for (size_t i = 0; i < s1.size(); ++i)
    r.mismatches += (bits(s1[i]) != bits(s2[i])) + (bits(z1[i]) != bits(z2[i]));
  r.total = static_cast<int64_t>(n + 2 * s1.size());
  return r;
}

// Every FP16 value in [0, n_r + 1), plus +inf.
inline CaseResult sas_case(Backend& ref, Backend& dev, const SasConfig& cfg) {
  CaseResult r{"sas", "n_r=" + std::to_string(cfg.n_r) + ",poly=" + enum_name(cfg.poly) +
                          ",precision=" + enum_name(cfg.precision) +
                          ",exp_mode=" + enum_name(cfg.exp_mode)};
  std::vector<Half> x;
  for (uint32_t b = 0; b < 0x7c00u; ++b) {
    const Half h{static_cast<uint16_t>(b)};
    if (half_to_float(h) < static_cast<float>(cfg.n_r + 1)) x.push_back(h);
  }
  x.push_back(Half{0x7c00u});
  x.push_back(Half{0x8000u});  // -0
  std::vector<float> o1(x.size(), NAN), o2(x.size(), -1.0f);
  ref.sas(x.data(), static_cast<int64_t>(x.size()), cfg, o1.data());
  dev.sas(x.data(), static_cast<int64_t>(x.size()), cfg, o2.data());
  r.exact = cfg.exp_mode == ExpMode::kSas;
  for (size_t i = 0; i < x.size(); ++i) {
    r.nonzero |= o1[i] != 0.0f;
    if (r.exact) {
      r.mismatches += bits(o1[i]) != bits(o2[i]);
    } else {
      const double e = std::fabs(static_cast<double>(o1[i]) - o2[i]) /
                       (std::fabs(static_cast<double>(o1[i])) + 1e-30);
      r.max_rel = std::max(r.max_rel, e);
      r.mismatches += e > 1e-6;
    }
  }
  r.total = static_cast<int64_t>(x.size());
  return r;
}

// ---- attention ----------------------------------------------------------------------------------

struct AttnShape {
  int64_t batch = 1, hq = 2, hkv = 1, n = 100, d = 64;
};

inline std::string shape_name(const AttnShape& s) {
  return "B=" + std::to_string(s.batch) + ",Hq=" + std::to_string(s.hq) +
         ",Hkv=" + std::to_string(s.hkv) + ",N=" + std::to_string(s.n) +
         ",D=" + std::to_string(s.d);
}

inline bool tolerance_only(const AttentionConfig& c) {
  return c.sas.exp_mode == ExpMode::kExact || c.p_quant == PQuant::kFp16;
}

// Compares FP16 outputs; tolerance configs count elements off by more than 2e-3 relative.
inline void compare_outputs(const std::vector<Half>& a, const std::vector<Half>& b, bool exact,
                            CaseResult& r) {
  r.exact = exact;
  for (size_t i = 0; i < a.size(); ++i) {
    const float x = half_to_float(a[i]), y = half_to_float(b[i]);
    r.nonzero |= x != 0.0f;
    if (exact) {
      r.mismatches += a[i].bits != b[i].bits;
    } else {
      const double e =
          std::fabs(static_cast<double>(x) - y) / (std::fabs(static_cast<double>(x)) + 1e-2);
      r.max_rel = std::max(r.max_rel, e);
      r.mismatches += !(e <= 2e-2);
    }
  }
  r.total += static_cast<int64_t>(a.size());
}

inline void compare_stats(const std::vector<AttentionStats>& a,
                          const std::vector<AttentionStats>& b, CaseResult& r) {
  for (size_t i = 0; i < a.size(); ++i) {
    r.mismatches +=
        (a[i].rows != b[i].rows) + (a[i].scored != b[i].scored) + (a[i].zeroed != b[i].zeroed);
    const double e =
        std::fabs(a[i].dropped_mass - b[i].dropped_mass) / (std::fabs(a[i].dropped_mass) + 1e-12);
    r.mismatches += !(e <= 1e-9);
    r.total += 4;
  }
}

inline CaseResult prefill_case(Backend& ref, Backend& dev, const AttnShape& s,
                               const AttentionConfig& cfg, uint64_t seed, bool with_stats = false,
                               ref::InputKind kind = ref::InputKind::kGaussian) {
  CaseResult r{"attention_prefill",
               shape_name(s) + (with_stats ? ",stats" : "") + " " + cfg.to_string()};
  const auto in = ref::make_inputs({s.batch, s.hq, s.hkv, s.n, s.d}, kind, seed, 1.5f);
  HostTensor<Half> o1(s.batch, s.hq, s.n, s.d), o2(s.batch, s.hq, s.n, s.d);
  for (auto& h : o1.storage) h = Half{0x7e00};  // NaN poison
  for (auto& h : o2.storage) h = Half{0xfe00};
  std::vector<AttentionStats> st1(static_cast<size_t>(s.batch * s.hq)), st2(st1.size());
  ref.attention_prefill(cfg, in.q.view(), in.k.view(), in.v.view(), o1.view(),
                        with_stats ? st1.data() : nullptr);
  dev.attention_prefill(cfg, in.q.view(), in.k.view(), in.v.view(), o2.view(),
                        with_stats ? st2.data() : nullptr);
  compare_outputs(o1.storage, o2.storage, !tolerance_only(cfg), r);
  if (with_stats) compare_stats(st1, st2, r);
  return r;
}

// Builds a cache from a prompt of `prompt` tokens, then appends tokens one chunk at a time
// (chunks of `step`), decoding `q_len` rows after each append; compares outputs and bytes().
inline CaseResult decode_case(Backend& ref, Backend& dev, const AttnShape& s,
                              const AttentionConfig& cfg, int64_t prompt, int64_t step, int appends,
                              int64_t q_len, uint64_t seed, const std::vector<int>& head_bits = {},
                              bool with_stats = false) {
  CaseResult r{"attention_decode", shape_name(s) + ",prompt=" + std::to_string(prompt) + ",step=" +
                                       std::to_string(step) + ",q_len=" + std::to_string(q_len) +
                                       (with_stats ? ",stats" : "") + " " + cfg.to_string()};
  KvCacheSpec spec;
  spec.config = cfg;
  spec.batch = static_cast<int>(s.batch);
  spec.kv_heads = static_cast<int>(s.hkv);
  spec.head_dim = static_cast<int>(s.d);
  spec.head_bits = head_bits;
  auto c1 = ref.create_cache(spec);
  auto c2 = dev.create_cache(spec);
  const int64_t total = prompt + step * appends;
  const auto kv = ref::make_inputs({s.batch, s.hkv, s.hkv, total, s.d},
                                   ref::InputKind::kOutlierChannel, seed, 1.5f);
  auto slice = [&](const HostTensor<Half>& t, int64_t t0, int64_t t1) {
    ConstHalfTensor v = t.view();
    v.data = t.storage.data() + t0 * s.d;
    v.shape[2] = t1 - t0;
    return v;
  };
  int64_t len = 0;
  for (int a = 0; a <= appends; ++a) {
    const int64_t t1 = a == 0 ? prompt : len + step;
    ref.cache_append(*c1, slice(kv.k, len, t1), slice(kv.v, len, t1));
    dev.cache_append(*c2, slice(kv.k, len, t1), slice(kv.v, len, t1));
    len = t1;
    const KvBytes b1 = c1->bytes(), b2 = c2->bytes();
    r.mismatches += (b1.codes != b2.codes) + (b1.metadata != b2.metadata) +
                    (b1.buffer != b2.buffer) + (b1.tokens != b2.tokens) +
                    (c1->length() != c2->length());
    r.total += 5;
    const int64_t ql = std::min(q_len, len);
    const auto qin = ref::make_inputs({s.batch, s.hq, s.hkv, ql, s.d}, ref::InputKind::kGaussian,
                                      seed + 17 + a, 1.5f);
    HostTensor<Half> o1(s.batch, s.hq, ql, s.d), o2(s.batch, s.hq, ql, s.d);
    for (auto& h : o1.storage) h = Half{0x7e00};
    for (auto& h : o2.storage) h = Half{0xfe00};
    std::vector<AttentionStats> st1(static_cast<size_t>(s.batch * s.hq)), st2(st1.size());
    ref.attention_decode(cfg, qin.q.view(), *c1, o1.view(), with_stats ? st1.data() : nullptr);
    dev.attention_decode(cfg, qin.q.view(), *c2, o2.view(), with_stats ? st2.data() : nullptr);
    compare_outputs(o1.storage, o2.storage, !tolerance_only(cfg), r);
    if (with_stats) compare_stats(st1, st2, r);
  }
  return r;
}

inline AttentionConfig make_config(const std::string& key) {
  AttentionConfig c = parse_attention_config(key);
  c.method = Method::kFlashQ;
  return c;
}

struct Case {
  std::string op;
  std::function<CaseResult(Backend&, Backend&)> run;
};

// The case list shared by the test and the validator. `small` trims the larger shapes.
inline std::vector<Case> all_cases(bool small) {
  std::vector<Case> cases;
  uint64_t seed = 1000;
  // SPEC 1
  for (int64_t n : {1, 65, 200})
    for (int d : {16, 64, 130})
      for (int64_t g : {int64_t{1}, int64_t{64}, n})
        cases.push_back({"quantize_stage1", [=](Backend& a, Backend& b) {
                           return stage1_case(a, b, n, d, g, seed + n * 7 + d + g, 0.0);
                         }});
  cases.push_back({"quantize_stage1",
                   [=](Backend& a, Backend& b) { return stage1_case(a, b, 64, 64, 8, 5, 0.97); }});
  cases.push_back({"quantize_stage1",
                   [=](Backend& a, Backend& b) { return stage1_case(a, b, 32, 16, 1, 6, 1.0); }});
  // SPEC 2
  for (int nb : {64, 17})
    for (int d : {64, 128})
      for (int bits : {8, 4, 2})
        for (int axis : {0, 1}) {
          if (bits == 8 && axis == 1) continue;
          const BlockLayout L{nb, d, bits, axis, 32};
          cases.push_back({"compress_block", [=](Backend& a, Backend& b) {
                             return stage2_case(a, b, L, seed + nb + d + bits + axis);
                           }});
        }
  // SPEC 3
  for (int bits : {2, 4, 8})
    for (ScaleStorage st : {ScaleStorage::kFp16, ScaleStorage::kFp32})
      for (int len : {32, 128, 7})
        cases.push_back({"quantize_asym", [=](Backend& a, Backend& b) {
                           return asym_case(a, b, 37, len, bits, st, seed + bits + len);
                         }});
  // SPEC 4: exhaustive over FP16 inputs
  for (int nr : {3, 6, 10, 15})
    for (Poly p :
         {Poly::kLs3, Poly::kLs2, Poly::kLs4, Poly::kMinimax3, Poly::kTaylor3, Poly::kTaylor4})
      for (SasPrecision pr : {SasPrecision::kFp16, SasPrecision::kFp32}) {
        if (nr != 6 && p != Poly::kLs3) continue;
        SasConfig c;
        c.n_r = nr;
        c.poly = p;
        c.precision = pr;
        cases.push_back({"sas", [=](Backend& a, Backend& b) { return sas_case(a, b, c); }});
      }
  {
    SasConfig c;
    c.exp_mode = ExpMode::kExact;
    cases.push_back({"sas", [=](Backend& a, Backend& b) { return sas_case(a, b, c); }});
  }
  // SPEC 5: prefill
  const std::vector<AttnShape> shapes =
      small ? std::vector<AttnShape>{{1, 2, 1, 100, 64},
                                     {1, 4, 2, 77, 128},
                                     {2, 2, 2, 33, 256},
                                     {1, 3, 3, 130, 80}}
            : std::vector<AttnShape>{{1, 2, 1, 100, 64}, {1, 4, 2, 77, 128},  {2, 2, 2, 33, 256},
                                     {1, 3, 3, 130, 80}, {1, 8, 2, 513, 128}, {1, 2, 1, 1, 64},
                                     {2, 4, 1, 300, 64}, {1, 2, 2, 257, 256}, {1, 2, 1, 65, 16}};
  const std::vector<std::string> configs = {
      "",
      "causal=0",
      "q_gran=token,kv_gran=token",
      "q_gran=head,kv_gran=head,causal=0",
      "kv_gran=token,causal=0",
      "k_smooth=mean",
      "p_quant=s8",
      "p_quant=u8_row,causal=0",
      "n_r=3,poly=minimax3",
      "n_r=10,poly=taylor4,sas_precision=fp32",
      "sas_precision=fp32,p_quant=u8_row",
      "bc=32,br=16",
      "bc=48,br=128,q_gran=tile,kv_gran=tile",
      "bc=1",
      "bc=100,causal=0",
      "tau=0.3",
      "p_quant=fp16",
      "exp_mode=exact",
  };
  for (size_t si = 0; si < shapes.size(); ++si)
    for (size_t ci = 0; ci < configs.size(); ++ci) {
      if (small && ci > 0 && (ci + si) % 2) continue;
      const AttnShape s = shapes[si];
      const AttentionConfig c = make_config(configs[ci]);
      if (s.n > 300 && c.quant.bc == 1) continue;
      const uint64_t sd = seed + 31 * si + ci;
      cases.push_back({"attention_prefill",
                       [=](Backend& a, Backend& b) { return prefill_case(a, b, s, c, sd); }});
    }
  for (const char* key : {"", "causal=0,kv_gran=token", "n_r=3"})
    cases.push_back({"attention_prefill", [=](Backend& a, Backend& b) {
                       return prefill_case(a, b, {1, 4, 2, 150, 64}, make_config(key), 77, true);
                     }});
  cases.push_back({"attention_prefill", [=](Backend& a, Backend& b) {
                     return prefill_case(a, b, {1, 4, 2, 200, 128}, make_config("k_smooth=mean"),
                                         78, false, ref::InputKind::kOutlierChannel);
                   }});
  cases.push_back({"attention_prefill", [=](Backend& a, Backend& b) {
                     return prefill_case(a, b, {1, 4, 4, 200, 64}, make_config(""), 79, false,
                                         ref::InputKind::kSink);
                   }});
  // SPEC 6: cache + decode
  const std::vector<std::string> dconfigs = {
      "",
      "splits=3",
      "splits=8,kv_bits=2",
      "kv_bits=8,splits=2",
      "k_axis=token,v_axis=token,group_size=32,splits=4",
      "buffer=int8,splits=3",
      "k_smooth=mean,splits=2",
      "k_smooth=mean,buffer=int8",
      "block=32,splits=5,q_gran=token",
      "block=17,kv_bits=2,splits=2",
      "p_quant=u8_row,n_r=4,splits=3",
      "sas_precision=fp32,splits=6",
      "p_quant=fp16,splits=2",
  };
  for (size_t ci = 0; ci < dconfigs.size(); ++ci) {
    const AttentionConfig c = make_config(dconfigs[ci]);
    cases.push_back({"attention_decode", [=](Backend& a, Backend& b) {
                       return decode_case(a, b, {1, 4, 2, 0, 64}, c, 150, 1, small ? 4 : 40, 1,
                                          seed + 500 + ci);
                     }});
    if (!small || ci % 3 == 0)
      cases.push_back({"attention_decode", [=](Backend& a, Backend& b) {
                         return decode_case(a, b, {2, 6, 3, 0, 128}, c, 200, 7, small ? 3 : 12, 5,
                                            seed + 600 + ci);
                       }});
  }
  cases.push_back({"attention_decode", [=](Backend& a, Backend& b) {
                     return decode_case(a, b, {1, 4, 4, 0, 256},
                                        make_config("kv_bits=mixed,splits=4"), 300, 13, 5, 3, 901,
                                        {2, 4, 8, 2});
                   }});
  cases.push_back({"attention_decode", [=](Backend& a, Backend& b) {
                     return decode_case(a, b, {1, 4, 2, 0, 64}, make_config("splits=3"), 130, 3, 4,
                                        2, 902, {}, true);
                   }});
  cases.push_back(
      {"attention_decode", [=](Backend& a, Backend& b) {
         return decode_case(a, b, {1, 2, 1, 0, 64}, make_config("splits=16"), 70, 1, 3, 1, 903);
       }});
  // The decode kernel's shapes: 50/50 mixed 2/4-bit heads at d = 128, GQA 4; and 16 query rows
  // per CTA with more runs than the fused merge takes (rows * splits > 1024: separate merge).
  cases.push_back({"attention_decode", [=](Backend& a, Backend& b) {
                     return decode_case(a, b, {2, 16, 4, 0, 128},
                                        make_config("kv_bits=mixed,splits=5"), 260, 1,
                                        small ? 3 : 9, 1, 904, {2, 4, 4, 2});
                   }});
  cases.push_back({"attention_decode", [=](Backend& a, Backend& b) {
                     return decode_case(a, b, {1, 16, 4, 0, 128}, make_config("splits=70"), 700, 5,
                                        small ? 2 : 4, 4, 905);
                   }});
  return cases;
}

}  // namespace validate
}  // namespace cuda
}  // namespace turbo

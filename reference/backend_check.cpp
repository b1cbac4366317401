#include "reference/backend_check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "core/host/rng.h"
#include "reference/reference.h"
#include "reference/test_inputs.h"

namespace turbo {
namespace check {
namespace {

// Outputs are poisoned with a NaN no op produces, a different one per side: an element neither
// side writes still differs, and either poison is reported as unwritten.
constexpr uint16_t kPoisonTest = 0x7e01, kPoisonRef = 0xfe01;
constexpr double kSasUlps = 4 * 0x1.0p-23;  // expf of libm against the device's, relative
constexpr double kElementTol = 2e-2, kElementFloor = 1e-2;

// Seeded inputs for the element ops (splitmix64 + Box-Muller: the same on every platform).
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed * SplitMix64::kGolden + 1) {}
  uint64_t next() { return g_.next(); }
  double uniform() { return (static_cast<double>(g_.next() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1)
  double normal() {
    return std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform());
  }
  int in(int lo, int hi) {
    return lo + static_cast<int>(g_.below(static_cast<uint64_t>(hi - lo + 1)));
  }

 private:
  SplitMix64 g_;
};

template <typename T>
uint64_t bits_of(const T& x) {
  uint64_t u = 0;
  std::memcpy(&u, &x, sizeof(T));
  return u;
}

// Bit-for-bit comparison of one output array (codes, scales, bytes).
template <typename T>
void compare_exact(CaseResult& r, const std::vector<T>& test, const std::vector<T>& ref) {
  for (size_t i = 0; i < ref.size(); ++i) {
    r.mismatches += bits_of(test[i]) != bits_of(ref[i]);
    r.nonzero |= bits_of(ref[i]) != 0;
  }
  r.compared += static_cast<int64_t>(ref.size());
}

std::string join_vars(std::initializer_list<std::pair<const char*, std::string>> kv) {
  std::string s;
  for (const auto& p : kv) s += (s.empty() ? "" : ",") + std::string(p.first) + "=" + p.second;
  return s;
}
std::string str(int64_t x) { return std::to_string(x); }

// FP16 values: Gaussian * scale, every 16th channel (3 mod 16) 12x larger when `outliers`, and
// a fraction `zeros` of +-0 (half of each sign).
std::vector<Half> random_halves(Rng& rng, int64_t n, int64_t d, double scale, bool outliers,
                                double zeros) {
  std::vector<Half> x(static_cast<size_t>(n * d));
  for (size_t i = 0; i < x.size(); ++i) {
    const double u = rng.uniform();
    if (u < zeros) {
      x[i] = float_to_half(u < zeros / 2 ? -0.0f : 0.0f);
      continue;
    }
    const double s = outliers && (static_cast<int64_t>(i) % d) % 16 == 3 ? 12.0 : 1.0;
    x[i] = float_to_half(static_cast<float>(rng.normal() * scale * s));
  }
  return x;
}

// ---- element ops --------------------------------------------------------------------------------

CaseResult stage1(Backends& b, int64_t n, int d, int64_t g, double zeros, uint64_t seed) {
  CaseResult r{"quantize_stage1",
               join_vars({{"n", str(n)}, {"d", str(d)}, {"group_rows", str(g)}})};
  if (zeros > 0) r.vars += ",zeros=" + std::to_string(zeros);
  Rng rng(seed);
  std::vector<Half> x = random_halves(rng, n, d, 2.0, true, zeros);
  if (n >= 64 && zeros == 0) std::fill(x.begin(), x.begin() + d, Half{0});  // an amax = 0 row
  const int64_t groups = (n + g - 1) / g;
  std::vector<int8_t> ct(x.size(), 99), cr(x.size(), -99);
  std::vector<float> st(static_cast<size_t>(groups), NAN), sr(st.size(), -1.0f);
  b.before_test();
  b.test.quantize_stage1(x.data(), n, d, g, ct.data(), st.data());
  b.before_ref();
  b.ref.quantize_stage1(x.data(), n, d, g, cr.data(), sr.data());
  compare_exact(r, ct, cr);
  compare_exact(r, st, sr);
  if (zeros >= 1.0) {
    // Only +-0 inputs: SPEC 1 fixes the answer (|-0| = +0, so every scale is +0 and every code
    // 0); the all-zero output is checked bit for bit here, so it is no vacuous pass.
    for (float s : sr) r.mismatches += bits_of(s) != 0u;
    for (int8_t c : cr) r.mismatches += c != 0;
    r.nonzero = true;
  }
  return r;
}

// Codes of a stage-1 block: every 7th in a narrow range (small group ranges), the rest anywhere.
std::vector<int8_t> block_codes(const BlockLayout& L, uint64_t seed) {
  Rng rng(seed);
  std::vector<int8_t> q(static_cast<size_t>(L.elements()));
  for (size_t i = 0; i < q.size(); ++i)
    q[i] = static_cast<int8_t>(i % 7 == 0 ? rng.in(-9, 30) : rng.in(-127, 127));
  return q;
}

std::string layout_vars(const BlockLayout& L) {
  return join_vars({{"n_b", str(L.n_b)},
                    {"d", str(L.d)},
                    {"bits", str(L.bits)},
                    {"axis", L.axis ? "token" : "channel"},
                    {"group", str(L.group_size)}}) +
         (L.frac_step ? ",s2_step=float" : "") + (L.token_scales ? ",kv_scale=token" : "");
}

CaseResult compress(Backends& b, const BlockLayout& L, uint64_t seed) {
  CaseResult r{"compress_block", layout_vars(L)};
  const std::vector<int8_t> q = block_codes(L, seed);
  // The stage-1 scale slot is left as is: both start from the same sentinel bytes.
  std::vector<uint8_t> bt(static_cast<size_t>(L.bytes()), 0xA5), br(bt);
  b.before_test();
  b.test.compress_block(q.data(), L, bt.data());
  b.before_ref();
  b.ref.compress_block(q.data(), L, br.data());
  compare_exact(r, bt, br);
  return r;
}

CaseResult decompress(Backends& b, const BlockLayout& L, uint64_t seed) {
  CaseResult r{"decompress_block", layout_vars(L)};
  const std::vector<int8_t> q = block_codes(L, seed);
  std::vector<uint8_t> block(static_cast<size_t>(L.bytes()), 0xA5);
  b.before_ref();
  b.ref.compress_block(q.data(), L, block.data());
  std::vector<int8_t> dt(q.size(), 77), dr(q.size(), -77);
  b.before_test();
  b.test.decompress_block(block.data(), L, dt.data());
  b.before_ref();
  b.ref.decompress_block(block.data(), L, dr.data());
  compare_exact(r, dt, dr);
  return r;
}

CaseResult asym(Backends& b, int64_t groups, int len, int bits, ScaleStorage storage,
                uint64_t seed) {
  CaseResult r{"quantize_asym", join_vars({{"groups", str(groups)},
                                           {"len", str(len)},
                                           {"bits", str(bits)},
                                           {"storage", enum_name(storage)}})};
  Rng rng(seed);
  std::vector<Half> x = random_halves(rng, groups, len, 3.0, false, 0.05);
  for (int i = 0; i < len; ++i) {
    x[static_cast<size_t>(i)] = float_to_half(i % 2 ? 0.0f : -0.0f);  // an all-zero group
    x[static_cast<size_t>(len + i)] = float_to_half(0.5f);            // a constant group: s = 0
  }
  const size_t n = x.size(), ng = static_cast<size_t>(groups);
  std::vector<uint8_t> ct(n, 0xEE), cr(n, 0x11);
  std::vector<float> st(ng, NAN), sr(ng, 5.0f), zt(ng, NAN), zr(ng, 5.0f);
  b.before_test();
  b.test.quantize_asym(x.data(), groups, len, bits, storage, ct.data(), st.data(), zt.data());
  b.before_ref();
  b.ref.quantize_asym(x.data(), groups, len, bits, storage, cr.data(), sr.data(), zr.data());
  compare_exact(r, ct, cr);
  compare_exact(r, st, sr);
  compare_exact(r, zt, zr);
  return r;
}

// Every FP16 value in [0, n_r + 1), +inf and -0.
CaseResult sas(Backends& b, const std::string& key) {
  const SasConfig cfg = parse_attention_config(key).sas;
  CaseResult r{"sas", key};
  std::vector<Half> x;
  for (uint32_t h = 0; h < 0x7c00u; ++h)
    if (half_to_float(Half{static_cast<uint16_t>(h)}) < static_cast<float>(cfg.n_r + 1))
      x.push_back(Half{static_cast<uint16_t>(h)});
  x.push_back(Half{0x7c00u});
  x.push_back(Half{0x8000u});
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> ot(x.size(), NAN), orf(x.size(), -1.0f);
  b.before_test();
  b.test.sas(x.data(), n, cfg, ot.data());
  b.before_ref();
  b.ref.sas(x.data(), n, cfg, orf.data());
  r.exact = cfg.exp_mode == ExpMode::kSas;
  compare_exact(r, ot, orf);
  r.bound = r.exact ? 0.0 : kSasUlps;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = std::fabs(static_cast<double>(ot[i]) - orf[i]);
    r.max_diff = std::max(r.max_diff, d);
    if (orf[i] != 0) r.error = std::max(r.error, d / std::fabs(orf[i]));
    if (!r.exact) r.outside += !(d <= kSasUlps * std::fabs(orf[i]));
  }
  return r;
}

// ---- attention ----------------------------------------------------------------------------------

bool is_exact(const AttentionConfig& c) {
  return c.method == Method::kFlashQ && c.sas.exp_mode == ExpMode::kSas &&
         c.p_quant != PQuant::kFp16;
}

// Tokens [t0, t1) of every head of x.
ConstHalfTensor token_slice(const HostTensor<Half>& x, int64_t t0, int64_t t1) {
  ConstHalfTensor v = x.view();
  v.data = x.storage.data() + t0 * x.d;
  v.shape[2] = t1 - t0;
  return v;
}

// 2 * (the FP16 floor's relative L2 error against FP64) + 2^-11 on one call's inputs.
double attention_bound(const ConstHalfTensor& q, const ConstHalfTensor& k, const ConstHalfTensor& v,
                       bool causal, bool decode, float tau) {
  const int64_t n = q.numel();
  std::vector<double> gt(static_cast<size_t>(n));
  if (decode)
    ref::attention_fp64_decode(q, k, v, tau, gt.data());
  else
    ref::attention_fp64(q, k, v, causal, tau, gt.data());
  HostTensor<Half> fl(q.batch(), q.heads(), q.tokens(), q.dim());
  ref::attention_fp16_floor(q, k, v, decode ? true : causal, tau, fl.view());
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = half_to_float(fl.storage[static_cast<size_t>(i)]) - gt[static_cast<size_t>(i)];
    num += e * e;
    den += gt[static_cast<size_t>(i)] * gt[static_cast<size_t>(i)];
  }
  return 2.0 * std::sqrt(num / std::max(den, 1e-300)) + std::ldexp(1.0, -11);
}

HostTensor<Half> poisoned(int64_t b, int64_t h, int64_t n, int64_t d, uint16_t poison) {
  HostTensor<Half> t(b, h, n, d);
  std::fill(t.storage.begin(), t.storage.end(), Half{poison});
  return t;
}

// One call's FP16 output: every element, bits and (approximate ops) the tolerances; the case
// keeps the call with the largest error / bound.
void compare_attention(CaseResult& r, const HostTensor<Half>& test, const HostTensor<Half>& ref,
                       double bound) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.storage.size(); ++i) {
    const Half x = test.storage[i], y = ref.storage[i];
    if (x.bits == kPoisonTest || y.bits == kPoisonRef) {
      ++r.mismatches;
      r.note = "output element not written";
      continue;
    }
    r.mismatches += x.bits != y.bits;
    const double fy = half_to_float(y), e = static_cast<double>(half_to_float(x)) - fy;
    r.nonzero |= fy != 0.0;
    r.max_diff = std::max(r.max_diff, std::fabs(e));
    if (!r.exact) r.outside += !(std::fabs(e) <= kElementTol * (std::fabs(fy) + kElementFloor));
    num += e * e;
    den += fy * fy;
  }
  r.compared += static_cast<int64_t>(ref.storage.size());
  const double error = den > 0 ? std::sqrt(num / den) : 0.0;
  if (r.exact ? error > r.error
              : (r.bound == 0 || error * r.bound > r.error * bound)) {  // worse error / bound
    r.error = error;
    r.bound = bound;
  }
}

// rows and scored always; zeroed and the dropped mass where the op is exact (the approximate
// exponent may zero other entries).
void compare_stats(CaseResult& r, const std::vector<AttentionStats>& test,
                   const std::vector<AttentionStats>& ref) {
  for (size_t i = 0; i < ref.size(); ++i) {
    const AttentionStats &a = test[i], &e = ref[i];
    bool same = a.rows == e.rows && a.scored == e.scored;
    if (r.exact)
      same = same && a.zeroed == e.zeroed &&
             std::fabs(a.dropped_mass - e.dropped_mass) <= 1e-9 * std::fabs(e.dropped_mass);
    if (!same) r.note = "stats differ (head " + std::to_string(i) + ")";
    r.compared += 4;
  }
}

// Records the case as declined when the backend under test does not support `cfg`.
bool declined(Backends& b, const AttentionConfig& cfg, CaseResult& r) {
  const Status s = b.test.supports(cfg);
  if (s.ok) return false;
  r.unsupported = true;
  r.note = s.message;
  return true;
}

using Inputs = std::function<ref::QkvInputs()>;

CaseResult prefill(Backends& b, const std::string& key, const std::string& shape,
                   const Inputs& make, bool with_stats) {
  const AttentionConfig cfg = parse_attention_config(key);
  CaseResult r{"attention_prefill", shape + (with_stats ? ",stats " : " ") + key};
  if (declined(b, cfg, r)) return r;
  r.exact = is_exact(cfg);
  const ref::QkvInputs in = make();
  const HostTensor<Half>& q = in.q;
  HostTensor<Half> ot = poisoned(q.b, q.h, q.n, q.d, kPoisonTest),
                   orf = poisoned(q.b, q.h, q.n, q.d, kPoisonRef);
  std::vector<AttentionStats> st(static_cast<size_t>(q.b * q.h)), sr(st.size());
  b.before_test();
  b.test.attention_prefill(cfg, q.view(), in.k.view(), in.v.view(), ot.view(),
                           with_stats ? st.data() : nullptr);
  b.before_ref();
  b.ref.attention_prefill(cfg, q.view(), in.k.view(), in.v.view(), orf.view(),
                          with_stats ? sr.data() : nullptr);
  compare_attention(
      r, ot, orf,
      r.exact ? 0.0
              : attention_bound(q.view(), in.k.view(), in.v.view(), cfg.causal, false, cfg.tau));
  if (with_stats) compare_stats(r, st, sr);
  return r;
}

// The decode pattern: a prompt of `prompt` tokens in one append, then `appends` appends of `step`
// tokens; after every append both caches' bytes() and length() are compared and the queries of
// the last min(q_len, length) positions decoded. Q, K, V span every token of the run.
struct DecodeRun {
  int64_t prompt = 1, step = 1, appends = 0, q_len = 1;
  std::vector<int> head_bits;
  bool with_stats = false;
};

CaseResult decode(Backends& b, const std::string& key, const std::string& shape, const Inputs& make,
                  const DecodeRun& d) {
  const AttentionConfig cfg = parse_attention_config(key);
  CaseResult r{"attention_decode", shape +
                                       join_vars({{",prompt", str(d.prompt)},
                                                  {"step", str(d.step)},
                                                  {"appends", str(d.appends)},
                                                  {"q_len", str(d.q_len)}}) +
                                       (d.head_bits.empty() ? "" : ",head_bits") +
                                       (d.with_stats ? ",stats " : " ") + key};
  if (declined(b, cfg, r)) return r;
  r.exact = is_exact(cfg);
  const ref::QkvInputs in = make();
  KvCacheSpec spec;
  spec.config = cfg;
  spec.batch = static_cast<int>(in.k.b);
  spec.kv_heads = static_cast<int>(in.k.h);
  spec.head_dim = static_cast<int>(in.k.d);
  spec.head_bits = d.head_bits;
  b.before_test();
  std::unique_ptr<KvCache> ct = b.test.create_cache(spec);
  b.before_ref();
  std::unique_ptr<KvCache> cr = b.ref.create_cache(spec);
  int64_t len = 0;
  for (int64_t a = 0; a <= d.appends; ++a) {
    const int64_t t1 = a == 0 ? d.prompt : len + d.step;
    b.before_test();
    b.test.cache_append(*ct, token_slice(in.k, len, t1), token_slice(in.v, len, t1));
    b.before_ref();
    b.ref.cache_append(*cr, token_slice(in.k, len, t1), token_slice(in.v, len, t1));
    len = t1;
    const KvBytes bt = ct->bytes(), br = cr->bytes();
    if (bt.codes != br.codes || bt.metadata != br.metadata || bt.buffer != br.buffer ||
        bt.tokens != br.tokens || ct->length() != cr->length())
      r.note = "KvCache::bytes() or length() differ after append " + std::to_string(a) + ": " +
               std::to_string(bt.total()) + " vs " + std::to_string(br.total()) + " bytes";
    r.compared += 5;
    const int64_t ql = std::min(d.q_len, len);
    const ConstHalfTensor q = token_slice(in.q, len - ql, len);
    HostTensor<Half> ot = poisoned(in.q.b, in.q.h, ql, in.q.d, kPoisonTest),
                     orf = poisoned(in.q.b, in.q.h, ql, in.q.d, kPoisonRef);
    std::vector<AttentionStats> st(static_cast<size_t>(in.q.b * in.q.h)), sr(st.size());
    b.before_test();
    b.test.attention_decode(cfg, q, *ct, ot.view(), d.with_stats ? st.data() : nullptr);
    b.before_ref();
    b.ref.attention_decode(cfg, q, *cr, orf.view(), d.with_stats ? sr.data() : nullptr);
    compare_attention(r, ot, orf,
                      r.exact ? 0.0
                              : attention_bound(q, token_slice(in.k, 0, len),
                                                token_slice(in.v, 0, len), true, true, cfg.tau));
    if (d.with_stats) compare_stats(r, st, sr);
  }
  return r;
}

struct Shape {
  int64_t batch, hq, hkv, n, d;
};

std::string shape_vars(const Shape& s) {
  return join_vars({{"B", str(s.batch)},
                    {"Hq", str(s.hq)},
                    {"Hkv", str(s.hkv)},
                    {"N", str(s.n)},
                    {"D", str(s.d)}});
}

Inputs synthetic(const Shape& s, ref::InputKind kind, uint64_t seed) {
  return [=] { return ref::make_inputs({s.batch, s.hq, s.hkv, s.n, s.d}, kind, seed, 1.5f); };
}

}  // namespace

CaseResult run_case(const Case& c, Backends& backends) {
  CaseResult r;
  try {
    r = c.run(backends);
  } catch (const std::exception& e) {
    r = CaseResult{};
    r.op = c.op;
    r.vars = "(threw)";
    r.note = e.what();
    r.pass = false;
    return r;
  }
  if (r.unsupported) return r;
  if (r.note.empty() && !r.nonzero) r.note = "the reference output is all zero";
  r.pass = r.note.empty() && r.compared > 0 &&
           (r.exact ? r.mismatches == 0 : r.outside == 0 && r.error <= r.bound);
  return r;
}

Summary summarize(const std::vector<CaseResult>& results, bool list_declined) {
  struct Sum {
    int cases = 0, failed = 0, unsupported = 0;
    int64_t compared = 0, mismatches = 0;
    double worst_ratio = 0;
    bool exact = true;
  };
  std::vector<std::string> ops;
  std::map<std::string, Sum> sums;
  Summary out;
  for (const CaseResult& c : results) {
    const std::string op = c.op + (c.exact ? " (exact)" : " (bounded)");
    if (!sums.count(op)) ops.push_back(op);
    Sum& s = sums[op];
    if (c.unsupported) {
      ++s.unsupported;
      ++out.declined;
      continue;
    }
    ++out.run;
    ++s.cases;
    s.failed += !c.pass;
    out.failed += !c.pass;
    s.compared += c.compared;
    s.mismatches += c.mismatches;
    s.exact = c.exact;
    if (!c.exact && c.bound > 0) s.worst_ratio = std::max(s.worst_ratio, c.error / c.bound);
  }
  std::ostringstream t;
  t << "| op | cases | failed | unsupported | elements | mismatches | worst error / bound |\n"
       "|---|---|---|---|---|---|---|\n";
  for (const std::string& op : ops) {
    const Sum& s = sums[op];
    char ratio[32] = "–";
    if (!s.exact) std::snprintf(ratio, sizeof ratio, "%.3f", s.worst_ratio);
    t << "| " << op << " | " << s.cases << " | " << s.failed << " | " << s.unsupported << " | "
      << s.compared << " | " << s.mismatches << " | " << ratio << " |\n";
  }
  t << "\n"
    << (out.failed ? "FAIL" : "PASS") << ": " << out.run << " cases run, " << out.failed
    << " failed, " << out.declined << " declined by the backend (not run)\n";
  if (out.declined && list_declined) {
    std::string reasons;
    for (const CaseResult& c : results)
      if (c.unsupported && reasons.find(c.note) == std::string::npos)
        reasons += "  " + c.note + "\n";
    t << "declined:\n" << reasons;
  }
  out.text = t.str();
  return out;
}

std::vector<Case> all_cases(bool quick, uint64_t seed,
                            const std::vector<std::shared_ptr<const LayerInputs>>& data) {
  std::vector<Case> cases;
  // Every case's inputs come from its own seed: `base` + a number fixed per case.
  const uint64_t base = seed * 1000003u;
  uint64_t next = 1000;
  auto add = [&](const char* op, std::function<CaseResult(Backends&, uint64_t)> fn) {
    const uint64_t s = base + next++;
    cases.push_back({op, [fn, s](Backends& b) { return fn(b, s); }});
  };

  // SPEC 1: shapes with d not a multiple of 16 and groups of one row, a block and all rows;
  // rows of zeros (amax = 0), mostly +-0 inputs, and only +-0.
  for (int64_t n : {1, 17, 65, 200})
    for (int d : {16, 64, 128, 130, 256})
      for (int64_t g : {int64_t{1}, int64_t{64}, n}) {
        if (quick && d != 64 && d != 130) continue;
        add("quantize_stage1", [=](Backends& b, uint64_t s) { return stage1(b, n, d, g, 0.0, s); });
      }
  add("quantize_stage1", [](Backends& b, uint64_t s) { return stage1(b, 64, 64, 8, 0.97, s); });
  add("quantize_stage1", [](Backends& b, uint64_t s) { return stage1(b, 32, 16, 1, 1.0, s); });

  // SPEC 2: full and partial blocks, every width and axis (8 bits: channel only).
  for (int nb : {64, 17})
    for (int d : {64, 128})
      for (int bits : {8, 4, 2})
        for (int axis : {0, 1}) {
          if (bits == 8 && axis == 1) continue;
          const BlockLayout L{nb, d, bits, axis, 32};
          add("compress_block", [=](Backends& b, uint64_t s) { return compress(b, L, s); });
          add("decompress_block", [=](Backends& b, uint64_t s) { return decompress(b, L, s); });
        }

  // SPEC 3: 37 groups, the first all +-0 and the second constant (s = 0).
  for (int bits : {2, 4, 8})
    for (ScaleStorage st : {ScaleStorage::kFp16, ScaleStorage::kFp32})
      for (int len : {32, 128, 7})
        add("quantize_asym",
            [=](Backends& b, uint64_t s) { return asym(b, 37, len, bits, st, s); });

  // SPEC 4: exhaustive over FP16 inputs; every polynomial at n_r = 6, ls3 at the other n_r.
  {
    std::vector<std::string> keys;
    for (const char* poly :
         {"ls2", "ls3", "ls4", "minimax2", "minimax3", "minimax4", "taylor2", "taylor3", "taylor4"})
      for (const char* pr : {"fp16", "fp32"})
        keys.push_back(std::string("n_r=6,poly=") + poly + ",sas_precision=" + pr);
    for (int nr : {3, 10, 15})
      for (const char* pr : {"fp16", "fp32"})
        keys.push_back("n_r=" + std::to_string(nr) + ",poly=ls3,sas_precision=" + pr);
    keys.push_back("n_r=3,poly=minimax4");
    keys.push_back("n_r=10,poly=taylor2");
    keys.push_back("n_r=6,exp_mode=exact");
    for (size_t i = 0; i < keys.size(); ++i) {
      if (quick && i % 3 != 0 && i + 1 != keys.size()) continue;
      const std::string key = keys[i];
      add("sas", [key](Backends& b, uint64_t) { return sas(b, key); });
    }
  }

  // SPEC 5, FlashQ prefill: batches, GQA, ragged N and D, every granularity, tile shape and P
  // format.
  const std::vector<Shape> shapes =
      quick ? std::vector<Shape>{{1, 2, 1, 100, 64},
                                 {1, 4, 2, 77, 128},
                                 {2, 2, 2, 33, 256},
                                 {1, 3, 3, 130, 80}}
            : std::vector<Shape>{{1, 2, 1, 100, 64}, {1, 4, 2, 77, 128},  {2, 2, 2, 33, 256},
                                 {1, 3, 3, 130, 80}, {1, 8, 2, 513, 128}, {1, 2, 1, 1, 64},
                                 {2, 4, 1, 300, 64}, {1, 2, 2, 257, 256}, {1, 2, 1, 65, 16}};
  const std::vector<std::string> flashq_keys = {
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
    for (size_t ci = 0; ci < flashq_keys.size(); ++ci) {
      if (quick && ci > 0 && (ci + si) % 2) continue;
      const Shape sh = shapes[si];
      const std::string key =
          "method=flashq" + (flashq_keys[ci].empty() ? "" : "," + flashq_keys[ci]);
      if (sh.n > 300 && flashq_keys[ci] == "bc=1") continue;
      add("attention_prefill", [=](Backends& b, uint64_t s) {
        return prefill(b, key, shape_vars(sh), synthetic(sh, ref::InputKind::kGaussian, s), false);
      });
    }
  for (const char* key :
       {"method=flashq", "method=flashq,causal=0,kv_gran=token", "method=flashq,n_r=3"})
    add("attention_prefill", [key](Backends& b, uint64_t s) {
      const Shape sh{1, 4, 2, 150, 64};
      return prefill(b, key, shape_vars(sh), synthetic(sh, ref::InputKind::kGaussian, s), true);
    });
  add("attention_prefill", [](Backends& b, uint64_t s) {
    const Shape sh{1, 4, 2, 200, 128};
    return prefill(b, "method=flashq,k_smooth=mean", shape_vars(sh) + ",outlier_channels",
                   synthetic(sh, ref::InputKind::kOutlierChannel, s), false);
  });
  add("attention_prefill", [](Backends& b, uint64_t s) {
    const Shape sh{1, 4, 4, 200, 64};
    return prefill(b, "method=flashq", shape_vars(sh) + ",sink",
                   synthetic(sh, ref::InputKind::kSink, s), false);
  });

  // SPEC 6, FlashQ cache + decode: chunked appends across block boundaries, split-K, widths,
  // axes, buffers, K smoothing, mixed bits, statistics, the decode kernel's shapes.
  const std::vector<std::string> decode_keys = {
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
      "p_quant=s8,splits=2",
      "sas_precision=fp32,splits=6",
      "p_quant=fp16,splits=2",
  };
  auto add_decode = [&](const Shape& sh, const std::string& knobs, const DecodeRun& run,
                        ref::InputKind kind) {
    const std::string key = "method=flashq" + (knobs.empty() ? "" : "," + knobs);
    add("attention_decode", [=](Backends& b, uint64_t s) {
      const Shape all{sh.batch, sh.hq, sh.hkv, run.prompt + run.step * run.appends, sh.d};
      return decode(b, key, shape_vars(all), synthetic(all, kind, s), run);
    });
  };
  for (size_t ci = 0; ci < decode_keys.size(); ++ci) {
    add_decode({1, 4, 2, 0, 64}, decode_keys[ci], {150, 1, quick ? 4 : 40, 1, {}, false},
               ref::InputKind::kOutlierChannel);
    if (!quick || ci % 3 == 0)
      add_decode({2, 6, 3, 0, 128}, decode_keys[ci], {200, 7, quick ? 3 : 12, 5, {}, false},
                 ref::InputKind::kOutlierChannel);
  }
  add_decode({1, 4, 4, 0, 256}, "kv_bits=mixed,splits=4", {300, 13, 5, 3, {2, 4, 8, 2}, false},
             ref::InputKind::kOutlierChannel);
  add_decode({1, 4, 2, 0, 64}, "splits=3", {130, 3, 4, 2, {}, true},
             ref::InputKind::kOutlierChannel);
  add_decode({1, 2, 1, 0, 64}, "splits=16", {70, 1, 3, 1, {}, false},
             ref::InputKind::kOutlierChannel);
  // The decode kernel's shapes: 50/50 mixed 2/4-bit heads at d = 128, GQA 4; and 16 query rows
  // per CTA with more runs than the fused merge takes (rows * splits > 1024: separate merge).
  add_decode({2, 16, 4, 0, 128}, "kv_bits=mixed,splits=5",
             {260, 1, quick ? 3 : 9, 1, {2, 4, 4, 2}, false}, ref::InputKind::kOutlierChannel);
  add_decode({1, 16, 4, 0, 128}, "splits=70", {700, 5, quick ? 2 : 4, 4, {}, false},
             ref::InputKind::kOutlierChannel);

  // Appends of several blocks at once (the cuda cache compresses every full block of an append
  // in one launch, straight from the input rows): 150 tokens (2 blocks + 22 buffered), then 181
  // (the buffer completed, 2 more blocks, 11 left), 181 (3 blocks, the buffer left empty), 181,
  // 181; and with block = 17, every append several blocks at a phase of its own.
  const std::vector<std::string> chunk_keys = {
      "splits=2",
      "kv_bits=2",
      "kv_bits=8",
      "buffer=int8,splits=3",
      "k_smooth=mean",
      "k_smooth=mean,buffer=int8,kv_bits=2",
      "k_axis=token,v_axis=token,group_size=32",
      "k_axis=token,v_axis=channel,group_size=16,buffer=int8",
      "block=17,splits=2",
      "block=32,k_smooth=mean,buffer=int8",
  };
  for (size_t ci = 0; ci < chunk_keys.size(); ++ci) {
    if (quick && ci % 3 != 0) continue;
    add_decode({2, 4, 2, 0, 128}, chunk_keys[ci], {150, 181, 4, 3, {}, false},
               ref::InputKind::kOutlierChannel);
    if (!quick)
      add_decode({1, 4, 2, 0, 64}, chunk_keys[ci], {64, 128, 2, 2, {}, false},
                 ref::InputKind::kOutlierChannel);
  }
  add_decode({1, 4, 4, 0, 256}, "kv_bits=mixed,splits=2", {100, 190, 2, 2, {2, 4, 8, 4}, false},
             ref::InputKind::kOutlierChannel);

  // Every method (the baselines and the FP16 floor too) on small shapes, prefill with statistics
  // and decode of the last 1 and 3 positions after one-token appends.
  std::vector<Shape> method_shapes = {{1, 1, 1, 1, 64},
                                      {1, 2, 1, 17, 64},
                                      {1, 4, 2, 127, 128},
                                      {1, 6, 2, 64, 256},
                                      {1, 3, 3, 200, 64}};
  if (quick) method_shapes = {{1, 2, 1, 17, 64}, {1, 4, 2, 127, 128}};
  const std::vector<std::string> method_prefill = {
      "method=flashq",
      "method=flashq,causal=0",
      "method=flashq,q_gran=token,kv_gran=token",
      "method=flashq,k_smooth=mean,p_quant=s8",
      "method=flashq,p_quant=u8_row,n_r=3,poly=minimax3",
      "method=flashq,q_gran=head,kv_gran=head,sas_precision=fp32",
      "method=flashq,exp_mode=exact",
      "method=flashq,p_quant=fp16",
      "method=fp16",
      "method=kivi,kv_bits=2,group_size=32,residual=32",
      "method=int8kv",
      "method=sage,k_smooth=mean",
      "method=fp8,p_quant=u8_row"};
  const std::vector<std::string> method_decode = {
      "method=flashq,kv_bits=8",
      "method=flashq,kv_bits=4",
      "method=flashq,kv_bits=2,k_axis=token,v_axis=token",
      "method=flashq,kv_bits=4,buffer=int8",
      "method=flashq,kv_bits=4,k_smooth=mean",
      "method=flashq,kv_bits=2,splits=3",
      "method=flashq,kv_bits=4,splits=2,p_quant=u8_row",
      "method=flashq,kv_bits=4,exp_mode=exact",
      "method=fp16",
      "method=kivi,kv_bits=4,group_size=32,residual=32",
      "method=int8kv",
      "method=sage",
      "method=fp8"};
  for (const Shape& sh : method_shapes) {
    for (const std::string& key : method_prefill)
      add("attention_prefill", [=](Backends& b, uint64_t s) {
        return prefill(b, key, shape_vars(sh), synthetic(sh, ref::InputKind::kOutlierChannel, s),
                       true);
      });
    for (const std::string& key : method_decode)
      for (int64_t q_len : {int64_t{1}, std::min<int64_t>(3, sh.n)}) {
        const int64_t prompt = std::max<int64_t>(1, sh.n - q_len);
        const DecodeRun run{prompt, 1, sh.n - prompt, q_len, {}, false};
        add("attention_decode", [=](Backends& b, uint64_t s) {
          return decode(b, key, shape_vars(sh), synthetic(sh, ref::InputKind::kOutlierChannel, s),
                        run);
        });
      }
    std::vector<int> mixed(static_cast<size_t>(sh.hkv));
    for (size_t h = 0; h < mixed.size(); ++h) mixed[h] = h % 2 ? 2 : 4;
    const int64_t prompt = std::max<int64_t>(1, sh.n - 1);
    add("attention_decode", [=](Backends& b, uint64_t s) {
      return decode(b, "method=flashq,kv_bits=mixed", shape_vars(sh),
                    synthetic(sh, ref::InputKind::kOutlierChannel, s),
                    {prompt, 1, sh.n - prompt, 1, mixed, false});
    });
  }

  // The design-space knobs of the decode cache (s2_step, kv_scale, sink, window), kept together
  // after the cases above so that those keep their seeds.
  // SPEC 2 with the fractional stage-2 step (s2_step = float), and layouts with per-token stage-1
  // scales (kv_scale = token: the scale slot, left as is, is n_b floats).
  for (int nb : {64, 17})
    for (int bits : {4, 2})
      for (int axis : {0, 1}) {
        const BlockLayout L{nb, 64, bits, axis, 32, /*frac_step=*/1, /*token_scales=*/nb == 17};
        add("compress_block", [=](Backends& b, uint64_t s) { return compress(b, L, s); });
        add("decompress_block", [=](Backends& b, uint64_t s) { return decompress(b, L, s); });
      }

  // They do not change prefill: a backend takes them there too (a sweep sets them for both
  // phases).
  for (const char* key : {"method=flashq,s2_step=float,kv_scale=token,sink=4,window=32",
                          "method=flashq,sink=100,window=7,kv_gran=token,causal=0"})
    add("attention_prefill", [key](Backends& b, uint64_t s) {
      const Shape sh{1, 4, 2, 150, 64};
      return prefill(b, key, shape_vars(sh) + ",sink", synthetic(sh, ref::InputKind::kSink, s),
                     false);
    });

  // Decode with each alone and combined: one-token appends across block boundaries (q_len 1) and
  // 7-token appends that cross them mid-chunk (q_len 3); a sink longer than a block, windows that
  // are not multiples of the block (the buffer tile then holds up to block + window - 1 rows), both
  // buffers, K smoothing, token-axis stage 2, mixed bits and split-K. The sink inputs (kSink: a
  // token 0 with tiny V that draws the attention) are the case these knobs exist for.
  const std::vector<std::string> design_keys = {
      "s2_step=float",
      "s2_step=float,kv_bits=2,splits=3",
      "s2_step=float,k_axis=token,v_axis=token,group_size=32,splits=2",
      "kv_scale=token",
      "kv_scale=token,buffer=int8,splits=2",
      "kv_scale=token,k_smooth=mean,kv_bits=8",
      "sink=1",
      "sink=4,splits=3",
      "sink=100,kv_bits=2",
      "sink=3,k_smooth=mean,buffer=int8,splits=2",
      "window=32",
      "window=100,splits=4",
      "window=64,buffer=int8,kv_bits=2",
      "window=20,p_quant=u8_row,block=32,splits=2",
      "sink=4,window=100,kv_scale=token,s2_step=float,splits=5",
      "sink=70,window=37,block=32,kv_bits=2,s2_step=float",
      "sink=2,window=5,block=17,kv_scale=token,k_smooth=mean,splits=7",
      "sink=1,window=8,kv_scale=token,p_quant=fp16",
      // the README headline's tuned cache, at 4 and 2 bits
      "v_axis=token,kv_scale=token,s2_step=float,sink=1,block=32",
      "kv_bits=2,v_axis=token,kv_scale=token,s2_step=float,sink=1,block=32,splits=3",
  };
  for (size_t ci = 0; ci < design_keys.size(); ++ci) {
    add_decode({1, 4, 2, 0, 64}, design_keys[ci], {150, 1, quick ? 4 : 45, 1, {}, false},
               ref::InputKind::kSink);
    if (!quick || ci % 4 == 0)
      add_decode({2, 6, 3, 0, 128}, design_keys[ci], {90, 7, quick ? 4 : 14, 3, {}, false},
                 ref::InputKind::kOutlierChannel);
  }
  add_decode({1, 4, 4, 0, 128}, "kv_bits=mixed,sink=2,window=40,kv_scale=token,s2_step=float",
             {100, 13, quick ? 3 : 8, 3, {2, 4, 8, 2}, false}, ref::InputKind::kSink);
  add_decode({1, 4, 2, 0, 64}, "block=1,kv_scale=token,sink=2,window=3,splits=4",
             {20, 1, quick ? 3 : 10, 1, {}, false}, ref::InputKind::kSink);
  add_decode({1, 4, 2, 0, 64}, "sink=4,window=30,kv_scale=token,s2_step=float,splits=2",
             {130, 3, 4, 2, {}, true}, ref::InputKind::kSink);
  // Short caches (1, 17, 127 tokens: only sink rows, sink + buffer, sink + blocks + buffer).
  for (const Shape& sh : {Shape{1, 1, 1, 1, 64}, Shape{1, 2, 1, 17, 64}, Shape{1, 4, 2, 127, 128}})
    for (int64_t q_len : {int64_t{1}, std::min<int64_t>(3, sh.n)}) {
      const int64_t prompt = std::max<int64_t>(1, sh.n - q_len);
      add_decode(sh, "kv_bits=4,sink=4,window=16,kv_scale=token,s2_step=float",
                 {prompt, 1, sh.n - prompt, q_len, {}, false}, ref::InputKind::kOutlierChannel);
    }

  // Real activations: each method's prefill and a decode of the last position.
  for (const std::shared_ptr<const LayerInputs>& layer : data) {
    const Inputs real = [layer] { return ref::QkvInputs{layer->q, layer->k, layer->v}; };
    const std::string shape = layer->name + ",N=" + str(layer->q.n);
    for (const char* key :
         {"method=flashq", "method=flashq,k_smooth=mean", "method=fp8", "method=sage"})
      add("attention_prefill",
          [=](Backends& b, uint64_t) { return prefill(b, key, shape, real, true); });
    const int64_t n = layer->q.n;
    for (const char* key :
         {"method=flashq,kv_bits=4", "method=flashq,kv_bits=2,splits=4", "method=kivi,kv_bits=2",
          "method=flashq,kv_bits=4,v_axis=token,kv_scale=token,s2_step=float,sink=1,block=32",
          "method=flashq,kv_bits=2,sink=1,window=64,splits=4"})
      add("attention_decode", [=](Backends& b, uint64_t) {
        return decode(b, key, shape, real,
                      {std::max<int64_t>(1, n - 1), 1, n > 1 ? 1 : 0, 1, {}, false});
      });
  }
  return cases;
}

}  // namespace check
}  // namespace turbo

// An independent, deliberately naive FlashQ prefill (SPEC 1, 4 and 5) written from the SPEC
// text alone, compared bit for bit with the "ref" backend.
//
// Independence: nothing numeric from core/ is called. FP16 rounding is GCC's _Float16 (see
// test_util.h); FP32 steps are plain float expressions (the file builds with -ffp-contract=off)
// and std::fma where SPEC writes fma(); an FP16 FMA is computed exactly in long double and rounded
// once. The only data taken from core/ are the polynomial coefficient tables (SPEC 4: "each a
// named table in core/"), whose values sas_test.cpp checks against their definitions.
//
// Where SPEC leaves a step open, the oracle follows the reading written in the reference's top
// comment (reference/flashq.cpp) only if it is the natural one, and says so here:
//  - V with per-token stage-1 scales (kv_gran = token): s_V cannot be factored out of the int32
//    sum; pv[d] = fma((float)(P8_j * V8_jd), s_Vj, pv[d]) over j in order from 0, then
//    O[d] = fma(O[d], alpha, pv[d] * s_P)  (the reference's documented reading; SPEC is silent).
//  - u8_row: P8 = rint(P * (1.0f / s_P)) with s_P = rowmax / 255 (SPEC "divide once, then
//    multiply"); s_P = 0 gives codes 0.
//  - Output: fp16 of the FP32 quotient O[d] / l.
//  - tau = 1 / sqrt(D) "as FP32": the FP32 nearest to 1 / sqrt(D) (one rounding).
#include <gtest/gtest.h>

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/sas.h"
#include "reference/reference.h"
#include "reference/test_util.h"
#if defined(TURBO_HAVE_CUDA)
#include "cuda/cuda_backend.h"
#endif

namespace {

using turbo::AttentionConfig;
using turbo::Granularity;
using turbo::Half;
using turbo::HostTensor;
using turbo::PQuant;
using turbo::test::f16_round;
using turbo::test::f16_value;
using turbo::test::InputKind;
using turbo::test::Shape;

// FNV-1a of the case name: each case has its own reproducible inputs.
uint64_t seed_of(const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// The backend under test: "ref", unless TURBO_ORACLE_BACKEND names another registered backend
// (a build that links turbo_cuda and defines TURBO_HAVE_CUDA can run the same oracle on "cuda").
std::string backend_name() {
  const char* env = std::getenv("TURBO_ORACLE_BACKEND");
  return env && *env ? env : "ref";
}
std::unique_ptr<turbo::Backend> backend_under_test() {
  turbo::ref::register_reference_backend();
#if defined(TURBO_HAVE_CUDA)
  turbo::cuda::register_cuda_backend();
#endif
  return turbo::make_backend(backend_name());
}

// ---- SPEC 4 -------------------------------------------------------------------------------

struct OracleSas {
  int n_r = 6;
  bool fp16 = true;
  int degree = 3;
  float c[5] = {0, 0, 0, 0, 0};
  float lut[32] = {};

  explicit OracleSas(const turbo::SasConfig& cfg) {
    n_r = cfg.n_r;
    fp16 = cfg.precision == turbo::SasPrecision::kFp16;
    const turbo::PolyDef& d = turbo::poly_def(cfg.poly);  // data: the named table
    degree = d.degree;
    for (int i = 0; i <= degree; ++i) c[i] = fp16 ? f16_round(d.c[i]) : static_cast<float>(d.c[i]);
    for (int k = 0; k < n_r; ++k) {
      const long double e = std::exp(-static_cast<long double>(k));
      lut[k] = fp16 ? f16_round(e) : static_cast<float>(e);
    }
  }

  // fp16(a * b + c) with one rounding: exact in long double for these operands (checked).
  static float fma16(float a, float b, float cc) {
    std::feclearexcept(FE_INEXACT);
    const long double v = static_cast<long double>(a) * b + cc;
    if (std::fetestexcept(FE_INEXACT)) ADD_FAILURE() << "oracle fma16 inexact";
    return f16_round(v);
  }

  float operator()(float x) const {
    if (!(x < static_cast<float>(n_r))) return 0.0f;  // x >= n_r, and +inf
    const int k = static_cast<int>(std::floor(x));
    const float f = x - static_cast<float>(k);
    float p = c[degree];
    for (int i = degree - 1; i >= 0; --i) p = fp16 ? fma16(p, f, c[i]) : std::fma(p, f, c[i]);
    return fp16 ? f16_round(static_cast<long double>(lut[k]) * p) : lut[k] * p;
  }
};

// ---- SPEC 1 -------------------------------------------------------------------------------

struct Quantized {
  std::vector<int> q;    // [n, d]
  std::vector<float> s;  // one per row (the scale of the row's group)
};

Quantized stage1(const std::vector<float>& x, int64_t n, int64_t d, int64_t group_rows) {
  Quantized out{std::vector<int>(static_cast<size_t>(n * d)),
                std::vector<float>(static_cast<size_t>(n))};
  for (int64_t g0 = 0; g0 < n; g0 += group_rows) {
    const int64_t g1 = std::min(n, g0 + group_rows);
    float amax = 0.0f;
    for (int64_t i = g0 * d; i < g1 * d; ++i)
      amax = std::max(amax, std::fabs(x[static_cast<size_t>(i)]));
    const float s = amax / 127.0f;
    const float inv = s == 0.0f ? 0.0f : 1.0f / s;
    for (int64_t i = g0 * d; i < g1 * d; ++i) {
      int q = 0;
      if (s != 0.0f) {
        const float v = x[static_cast<size_t>(i)] * inv;
        const long r = std::lrint(static_cast<double>(v));  // default rounding mode: half to even
        q = static_cast<int>(std::max(-127L, std::min(127L, r)));
      }
      out.q[static_cast<size_t>(i)] = q;
    }
    for (int64_t r = g0; r < g1; ++r) out.s[static_cast<size_t>(r)] = s;
  }
  return out;
}

int64_t group_rows(Granularity g, int tile, int64_t n) {
  if (g == Granularity::kToken) return 1;
  if (g == Granularity::kHead) return n;
  return tile;
}

// One head of an FP16 tensor as floats [n, d].
std::vector<float> head_rows(const HostTensor<Half>& t, int64_t b, int64_t h) {
  std::vector<float> r(static_cast<size_t>(t.n * t.d));
  for (int64_t i = 0; i < t.n * t.d; ++i)
    r[static_cast<size_t>(i)] =
        f16_value(t.storage[static_cast<size_t>((b * t.h + h) * t.n * t.d + i)]);
  return r;
}

// k_smooth = mean: sum_c = int64 sum of k * 2^24 over the first n_mean tokens (prefill: all;
// decode: the tokens of the first append); mean_c = (float)((double)sum_c * 2^-24 / n_mean);
// k' = (float)k - mean_c for all n rows.
void subtract_channel_mean(std::vector<float>& k, int64_t n, int64_t n_mean, int64_t d) {
  for (int64_t c = 0; c < d; ++c) {
    int64_t sum = 0;
    for (int64_t t = 0; t < n_mean; ++t) {
      const long double units =
          std::ldexp(static_cast<long double>(k[static_cast<size_t>(t * d + c)]), 24);
      sum += static_cast<int64_t>(units);  // an integer for every FP16 value
    }
    const float mean =
        static_cast<float>(static_cast<double>(sum) * 0x1p-24 / static_cast<double>(n_mean));
    for (int64_t t = 0; t < n; ++t) k[static_cast<size_t>(t * d + c)] -= mean;
  }
}

// ---- SPEC 5 -------------------------------------------------------------------------------

float oracle_tau(const AttentionConfig& cfg, int64_t d) {
  if (cfg.tau > 0.0f) return cfg.tau;
  return static_cast<float>(1.0L / std::sqrt(static_cast<long double>(d)));
}

// One KV tile as SPEC 5 sees it: INT8 codes of tokens pos0 .. pos0 + n - 1 with their stage-1
// scales (one per token; equal within a tile for tile/head granularity and compressed blocks).
struct OracleTile {
  std::vector<int> k, v;      // [n, D]
  std::vector<float> ks, vs;  // [n]
  bool v_one_scale = true;    // SPEC 5 step 5 as written (one s_V for the tile)
  int64_t pos0 = 0;
  int64_t n = 0;
};

// The state of one query row (SPEC 5): running max, row sum, unnormalised output.
struct OracleRow {
  float m = -INFINITY, l = 0.0f;
  bool first = true;
  std::vector<float> O;
};

// SPEC 5 steps 1-5 for query row (q codes, q scale) at absolute position pos over one tile.
void oracle_tile(OracleRow& r, const int* q, float s_q, int64_t pos, bool causal,
                 const OracleTile& t, int64_t D, float tau, PQuant p_quant, const OracleSas& sas) {
  std::vector<int64_t> js;  // tile-local indices of the unmasked entries
  for (int64_t j = 0; j < t.n; ++j)
    if (!causal || t.pos0 + j <= pos) js.push_back(j);
  if (js.empty()) return;  // masked entries are skipped, not given a value

  // 1. S = fp16(clamp((float)acc * ((s_Q * s_K) * tau)))
  std::vector<float> S;
  float tile_max = -INFINITY;
  for (int64_t j : js) {
    int32_t acc = 0;
    for (int64_t c = 0; c < D; ++c) acc += q[c] * t.k[static_cast<size_t>(j * D + c)];
    const float cs = (s_q * t.ks[static_cast<size_t>(j)]) * tau;
    float v = static_cast<float>(acc) * cs;
    v = std::min(std::max(v, -65504.0f), 65504.0f);
    S.push_back(f16_round(v));
    tile_max = std::max(tile_max, S.back());
  }
  // 2. m_new = max(m_old, max S); P = SAS(fp16(m_new - S))
  const float m_new = std::max(r.m, tile_max);
  std::vector<float> P;
  float p_max = 0.0f;
  for (float sv : S) {
    P.push_back(sas(f16_round(static_cast<long double>(m_new) - sv)));  // the difference is exact
    p_max = std::max(p_max, P.back());
  }
  // 3. alpha
  float alpha;
  if (r.first)
    alpha = 0.0f;
  else if (m_new == r.m)
    alpha = 1.0f;
  else
    alpha = sas(f16_round(static_cast<long double>(m_new) - r.m));
  // 4. P codes
  float s_p, inv;
  switch (p_quant) {
    case PQuant::kS8:
      s_p = 1.0f / 127.0f;
      inv = 127.0f;
      break;
    case PQuant::kU8Row:
      s_p = p_max / 255.0f;
      inv = s_p == 0.0f ? 0.0f : 1.0f / s_p;
      break;
    default:
      s_p = 1.0f / 255.0f;
      inv = 255.0f;
      break;
  }
  std::vector<int32_t> P8;
  int32_t sum_p8 = 0;
  for (float p : P) {
    const long code = std::lrint(static_cast<double>(p * inv));
    EXPECT_LE(code, p_quant == PQuant::kS8 ? 127 : 255);
    P8.push_back(static_cast<int32_t>(code));
    sum_p8 += static_cast<int32_t>(code);
  }
  // 5. l and O
  r.l = std::fma(r.l, alpha, static_cast<float>(sum_p8) * s_p);
  if (t.v_one_scale) {
    const float s_v = t.vs[0];
    for (int64_t c = 0; c < D; ++c) {
      int32_t acc = 0;
      for (size_t e = 0; e < js.size(); ++e) acc += P8[e] * t.v[static_cast<size_t>(js[e] * D + c)];
      r.O[static_cast<size_t>(c)] =
          std::fma(r.O[static_cast<size_t>(c)], alpha, static_cast<float>(acc) * (s_p * s_v));
    }
  } else {
    for (int64_t c = 0; c < D; ++c) {
      float pv = 0.0f;
      for (size_t e = 0; e < js.size(); ++e)
        pv = std::fma(static_cast<float>(P8[e] * t.v[static_cast<size_t>(js[e] * D + c)]),
                      t.vs[static_cast<size_t>(js[e])], pv);
      r.O[static_cast<size_t>(c)] = std::fma(r.O[static_cast<size_t>(c)], alpha, pv * s_p);
    }
  }
  r.m = m_new;
  r.first = false;
}

// 6. fp16(O[d] / l)
void oracle_finish(const OracleRow& r, int64_t D, Half* out) {
  for (int64_t c = 0; c < D; ++c)
    out[c] = Half{turbo::test::f16_bits(r.O[static_cast<size_t>(c)] / r.l)};
}

// Tile [t0, t1) of a stage-1 quantized head.
OracleTile make_tile(const Quantized& K, const Quantized& V, int64_t t0, int64_t t1, int64_t D,
                     bool v_per_token) {
  OracleTile t;
  t.pos0 = t0;
  t.n = t1 - t0;
  t.k.assign(K.q.begin() + t0 * D, K.q.begin() + t1 * D);
  t.v.assign(V.q.begin() + t0 * D, V.q.begin() + t1 * D);
  t.ks.assign(K.s.begin() + t0, K.s.begin() + t1);
  t.vs.assign(V.s.begin() + t0, V.s.begin() + t1);
  t.v_one_scale = !v_per_token || t.n == 1;
  return t;
}

HostTensor<Half> oracle_prefill(const AttentionConfig& cfg, const turbo::test::Inputs& in) {
  const int64_t B = in.q.b, Hq = in.q.h, Hkv = in.k.h, N = in.q.n, D = in.q.d;
  const int64_t g = Hq / Hkv;
  const int bc = cfg.quant.bc;
  const OracleSas sas(cfg.sas);
  const float tau = oracle_tau(cfg, D);
  HostTensor<Half> out(B, Hq, N, D);

  for (int64_t b = 0; b < B; ++b) {
    for (int64_t hk = 0; hk < Hkv; ++hk) {
      std::vector<float> kx = head_rows(in.k, b, hk);
      if (cfg.quant.k_smooth == turbo::KSmooth::kMean) subtract_channel_mean(kx, N, N, D);
      const int64_t kv_rows = group_rows(cfg.quant.kv_gran, bc, N);
      const Quantized K = stage1(kx, N, D, kv_rows);
      const Quantized V = stage1(head_rows(in.v, b, hk), N, D, kv_rows);
      std::vector<OracleTile> tiles;
      for (int64_t t0 = 0; t0 < N; t0 += bc)
        tiles.push_back(make_tile(K, V, t0, std::min<int64_t>(N, t0 + bc), D, kv_rows == 1));

      for (int64_t h = hk * g; h < (hk + 1) * g; ++h) {
        const Quantized Q =
            stage1(head_rows(in.q, b, h), N, D, group_rows(cfg.quant.q_gran, cfg.quant.br, N));
        for (int64_t i = 0; i < N; ++i) {
          OracleRow r;
          r.O.assign(static_cast<size_t>(D), 0.0f);
          for (const OracleTile& t : tiles)
            oracle_tile(r, &Q.q[static_cast<size_t>(i * D)], Q.s[static_cast<size_t>(i)], i,
                        cfg.causal, t, D, tau, cfg.p_quant, sas);
          oracle_finish(r, D, &out.storage[static_cast<size_t>(((b * Hq + h) * N + i) * D)]);
        }
      }
    }
  }
  return out;
}

// FP64 softmax attention of the FP16 inputs, for the oracle's own sanity check.
std::vector<double> exact_attention(const turbo::test::Inputs& in, bool causal, double tau) {
  const int64_t B = in.q.b, Hq = in.q.h, Hkv = in.k.h, N = in.q.n, D = in.q.d, g = Hq / Hkv;
  std::vector<double> out(static_cast<size_t>(B * Hq * N * D), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      const std::vector<float> q = head_rows(in.q, b, h), k = head_rows(in.k, b, h / g),
                               v = head_rows(in.v, b, h / g);
      for (int64_t i = 0; i < N; ++i) {
        const int64_t n_keys = causal ? i + 1 : N;
        std::vector<double> s(static_cast<size_t>(n_keys));
        double mx = -INFINITY;
        for (int64_t j = 0; j < n_keys; ++j) {
          double a = 0;
          for (int64_t c = 0; c < D; ++c) a += static_cast<double>(q[i * D + c]) * k[j * D + c];
          s[static_cast<size_t>(j)] = a * tau;
          mx = std::max(mx, s[static_cast<size_t>(j)]);
        }
        double z = 0;
        for (double& x : s) z += (x = std::exp(x - mx));
        for (int64_t c = 0; c < D; ++c) {
          double o = 0;
          for (int64_t j = 0; j < n_keys; ++j) o += s[static_cast<size_t>(j)] * v[j * D + c];
          out[static_cast<size_t>(((b * Hq + h) * N + i) * D + c)] = o / z;
        }
      }
    }
  return out;
}

double rel_l2(const HostTensor<Half>& o, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = f16_value(o.storage[i]) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

// ---- the cases ----------------------------------------------------------------------------

struct Case {
  std::string name;
  Shape shape;
  std::string config;  // AttentionConfig key fragment
  InputKind input = InputKind::kGaussian;
  double max_rel_l2 = 0.05;  // oracle self-check against FP64 softmax attention
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<Case> cases() {
  std::vector<Case> v;
  auto add = [&](const std::string& name, Shape s, const std::string& cfg,
                 InputKind in = InputKind::kGaussian, double tol = 0.05) {
    v.push_back({name, s, cfg, in, tol});
  };
  const Shape def{1, 2, 2, 100, 64};
  add("default", def, "");
  add("noncausal", def, "causal=0");
  add("q_token", def, "q_gran=token");
  add("q_head", def, "q_gran=head");
  add("kv_token", def, "kv_gran=token");
  add("kv_head", def, "kv_gran=head");
  add("kv_token_noncausal", def, "kv_gran=token,causal=0");
  add("kv_token_n_65", {1, 2, 2, 65, 64}, "kv_gran=token");  // a last tile of one token
  add("kv_token_bc_1", {1, 2, 1, 20, 32}, "kv_gran=token,bc=1,br=1");
  add("all_token", def, "q_gran=token,kv_gran=token");
  add("all_head_noncausal", def, "q_gran=head,kv_gran=head,causal=0");
  add("gqa_4_2", {1, 4, 2, 100, 64}, "");
  add("mqa_6_1", {1, 6, 1, 70, 32}, "causal=0");
  add("batch2", {2, 2, 1, 50, 32}, "");
  add("n_1", {1, 2, 2, 1, 64}, "");
  add("n_64", {1, 2, 2, 64, 64}, "");
  add("n_65", {1, 2, 2, 65, 64}, "");
  add("n_128", {1, 1, 1, 128, 64}, "causal=0");
  add("n_200_tiles_16_32", {1, 2, 2, 200, 32}, "bc=16,br=32");
  add("tiles_48_20", {1, 2, 1, 130, 48}, "bc=20,br=48");
  for (int d : {16, 32, 48, 80, 96, 112, 128, 256})
    add("d_" + std::to_string(d), {1, 2, 2, d >= 128 ? 70 : 100, d}, "");
  for (int n_r = 3; n_r <= 10; ++n_r)
    add("n_r_" + std::to_string(n_r), def, "n_r=" + std::to_string(n_r), InputKind::kGaussian,
        n_r <= 4 ? 0.2 : 0.05);
  add("p_s8", def, "p_quant=s8");
  add("p_u8_row", def, "p_quant=u8_row");
  add("p_u8_row_kv_token", def, "p_quant=u8_row,kv_gran=token");
  add("sas_fp32", def, "sas_precision=fp32");
  add("sas_fp32_n_r_9", def, "sas_precision=fp32,n_r=9");
  add("k_smooth_mean", def, "k_smooth=mean");
  add("k_smooth_mean_outlier", def, "k_smooth=mean", InputKind::kOutlierChannel, 0.1);
  add("outlier_channel", def, "", InputKind::kOutlierChannel, 0.1);
  add("sink", def, "", InputKind::kSink, 0.1);
  add("sink_noncausal_kv_token", def, "causal=0,kv_gran=token", InputKind::kSink, 0.1);
  add("large_saturating", def, "", InputKind::kLarge, 2.0);  // scores clamp at 65504
  add("mixed_scale_token", def, "q_gran=token,kv_gran=token", InputKind::kMixedScale, 0.2);
  add("mixed_scale_tile", def, "", InputKind::kMixedScale, 1.0);
  for (const char* poly :
       {"ls2", "ls4", "minimax2", "minimax3", "minimax4", "taylor2", "taylor3", "taylor4"})
    add(std::string("poly_") + poly, def, std::string("poly=") + poly, InputKind::kGaussian, 0.2);
  add("poly_minimax4_fp32", def, "poly=minimax4,sas_precision=fp32");
  add("tau_explicit", def, "tau=0.2");
  add("combo", {2, 4, 2, 77, 80},
      "q_gran=token,kv_gran=head,p_quant=s8,sas_precision=fp32,n_r=8,poly=minimax3,causal=0,bc=32,"
      "br=16");
  return v;
}

class OracleVsRef : public ::testing::TestWithParam<Case> {};

TEST_P(OracleVsRef, BitExact) {
  const Case& c = GetParam();
  const AttentionConfig cfg = turbo::parse_attention_config(c.config);
  ASSERT_TRUE(cfg.validate().ok);
  const turbo::test::Inputs in = turbo::test::make_inputs(c.shape, c.input, seed_of(c.name));

  const HostTensor<Half> want = oracle_prefill(cfg, in);
  // The oracle computes attention: close to the FP64 softmax, nonzero, finite.
  const double want_norm = turbo::test::l2_norm(want);
  ASSERT_GT(want_norm, 0.0);
  ASSERT_TRUE(std::isfinite(want_norm));
  const double err = rel_l2(want, exact_attention(in, cfg.causal, oracle_tau(cfg, c.shape.d)));
  EXPECT_LT(err, c.max_rel_l2) << "oracle self-check vs FP64, " << c.name;

  HostTensor<Half> got(c.shape.b, c.shape.hq, c.shape.n, c.shape.d);
  for (Half& h : got.storage) h = Half{0x7e00};  // poisoned: NaN
  auto backend = backend_under_test();
  backend->attention_prefill(cfg, in.q.view(), in.k.view(), in.v.view(), got.view(), nullptr);
  const std::string diff = turbo::test::first_difference(got, want);
  EXPECT_EQ(diff, "") << backend_name() << ", " << c.name << " ("
                      << turbo::test::shape_string(c.shape) << ", " << cfg.to_string() << ")";
  std::printf("%-26s rel_l2 vs FP64 %.3e\n", c.name.c_str(), err);
}

INSTANTIATE_TEST_SUITE_P(Prefill, OracleVsRef, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

// ---- SPEC 6: decode over a compressed cache --------------------------------------------------
//
// Readings (SPEC 6 leaves them open; the oracle takes the reference's documented choice):
//  - split-K cuts the T tiles into runs [T * s / S, T * (s + 1) / S), s = 0 .. S-1;
//  - buffer = int8: each row is stage-1 quantized on its own (per-token scale); a full buffer
//    becomes a block by running stage 1 over the FP32 values code * scale of its rows;
//  - k_smooth = mean: the mean is the one of the first append (the prompt);
//  - the Q rows of the call are grouped for q_gran from the call's first row.

// Stage 2 and back on the stage-1 codes of one block [n_b, D] (SPEC 2), groups per axis.
std::vector<int> stage2_dequantized(const std::vector<int>& q, int64_t n_b, int64_t D, int bits,
                                    turbo::Stage2Axis axis, int gs) {
  const int levels = (1 << bits) - 1;
  auto group_of = [&](int64_t t, int64_t c) {
    return axis == turbo::Stage2Axis::kChannel ? c : t * (D / gs) + c / gs;
  };
  const int64_t groups = axis == turbo::Stage2Axis::kChannel ? D : n_b * (D / gs);
  std::vector<int> lo(static_cast<size_t>(groups), 1000), hi(static_cast<size_t>(groups), -1000);
  for (int64_t t = 0; t < n_b; ++t)
    for (int64_t c = 0; c < D; ++c) {
      const int64_t gi = group_of(t, c);
      lo[gi] = std::min(lo[gi], q[static_cast<size_t>(t * D + c)]);
      hi[gi] = std::max(hi[gi], q[static_cast<size_t>(t * D + c)]);
    }
  std::vector<int> out(q.size());
  for (int64_t t = 0; t < n_b; ++t)
    for (int64_t c = 0; c < D; ++c) {
      const int64_t gi = group_of(t, c);
      const int s2 = std::max(1, (hi[gi] - lo[gi] + levels - 1) / levels), z = lo[gi];
      const int x = q[static_cast<size_t>(t * D + c)];
      int code = 0;  // nearest grid point, ties up
      for (int cc = 1; cc <= levels; ++cc)
        if (std::abs(cc * s2 + z - x) <= std::abs(code * s2 + z - x)) code = cc;
      out[static_cast<size_t>(t * D + c)] = std::max(-127, std::min(127, code * s2 + z));
    }
  return out;
}

// Rows [t0, t1) of x [n, D].
std::vector<float> rows_of(const std::vector<float>& x, int64_t t0, int64_t t1, int64_t D) {
  return std::vector<float>(x.begin() + t0 * D, x.begin() + t1 * D);
}

// One stream's tiles: compressed blocks (stage 1 per block, stage 2 at `bits`), then the buffer.
std::vector<OracleTile> decode_tiles(const AttentionConfig& cfg, std::vector<float> kx,
                                     const std::vector<float>& vx, int64_t L, int64_t D, int bits) {
  const turbo::QuantConfig& qc = cfg.quant;
  const int64_t nb = qc.block, n_blocks = L / nb, n_buf = L % nb;
  const bool int8_buf = qc.buffer == turbo::BufferMode::kInt8;
  std::vector<OracleTile> tiles;
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t t0 = blk * nb, t1 = t0 + nb;
    OracleTile t;
    t.pos0 = t0;
    t.n = nb;
    for (int is_k = 1; is_k >= 0; --is_k) {
      std::vector<float> rows = rows_of(is_k ? kx : vx, t0, t1, D);
      if (int8_buf) {  // the buffer held per-token codes; the block is built from code * scale
        const Quantized pt = stage1(rows, nb, D, 1);
        for (size_t i = 0; i < rows.size(); ++i)
          rows[i] = static_cast<float>(pt.q[i]) * pt.s[i / static_cast<size_t>(D)];
      }
      const Quantized s1 = stage1(rows, nb, D, nb);
      const std::vector<int> codes =
          bits == 8
              ? s1.q
              : stage2_dequantized(s1.q, nb, D, bits, is_k ? qc.k_axis : qc.v_axis, qc.group_size);
      (is_k ? t.k : t.v) = codes;
      (is_k ? t.ks : t.vs) = s1.s;
    }
    t.v_one_scale = true;
    tiles.push_back(std::move(t));
  }
  if (n_buf > 0) {
    const int64_t t0 = n_blocks * nb;
    const Quantized K = stage1(rows_of(kx, t0, L, D), n_buf, D, int8_buf ? 1 : n_buf);
    const Quantized V = stage1(rows_of(vx, t0, L, D), n_buf, D, int8_buf ? 1 : n_buf);
    OracleTile t = make_tile(K, V, 0, n_buf, D, int8_buf);
    t.pos0 = t0;
    tiles.push_back(std::move(t));
  }
  return tiles;
}

// Decode of q [B, Hq, QL, D], the queries of positions L - QL .. L - 1, over the cache built from
// k, v [B, Hkv, L, D] whose first append held `prompt` tokens.
HostTensor<Half> oracle_decode(const AttentionConfig& cfg, const std::vector<int>& head_bits,
                               const HostTensor<Half>& q, const HostTensor<Half>& k,
                               const HostTensor<Half>& v, int64_t prompt) {
  const int64_t B = q.b, Hq = q.h, Hkv = k.h, QL = q.n, L = k.n, D = q.d, g = Hq / Hkv;
  const OracleSas sas(cfg.sas);
  const float tau = oracle_tau(cfg, D);
  const int S = cfg.splits;
  HostTensor<Half> out(B, Hq, QL, D);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t hk = 0; hk < Hkv; ++hk) {
      std::vector<float> kx = head_rows(k, b, hk);
      if (cfg.quant.k_smooth == turbo::KSmooth::kMean) subtract_channel_mean(kx, L, prompt, D);
      const std::vector<OracleTile> tiles =
          decode_tiles(cfg, kx, head_rows(v, b, hk), L, D, head_bits[static_cast<size_t>(hk)]);
      const int64_t T = static_cast<int64_t>(tiles.size());
      for (int64_t h = hk * g; h < (hk + 1) * g; ++h) {
        const Quantized Q =
            stage1(head_rows(q, b, h), QL, D, group_rows(cfg.quant.q_gran, cfg.quant.br, QL));
        for (int64_t i = 0; i < QL; ++i) {
          const int64_t pos = L - QL + i;
          std::vector<OracleRow> runs(static_cast<size_t>(S));
          for (int s = 0; s < S; ++s) {
            runs[static_cast<size_t>(s)].O.assign(static_cast<size_t>(D), 0.0f);
            for (int64_t t = T * s / S; t < T * (s + 1) / S; ++t)
              oracle_tile(runs[static_cast<size_t>(s)], &Q.q[static_cast<size_t>(i * D)],
                          Q.s[static_cast<size_t>(i)], pos, true, tiles[static_cast<size_t>(t)], D,
                          tau, cfg.p_quant, sas);
          }
          Half* o = &out.storage[static_cast<size_t>(((b * Hq + h) * QL + i) * D)];
          if (S == 1) {
            oracle_finish(runs[0], D, o);
            continue;
          }
          // SPEC 6 merge, in order s = 0 .. S-1 from l = 0, O = 0.
          float m = -INFINITY;
          for (const OracleRow& r : runs) m = std::max(m, r.m);
          OracleRow merged;
          merged.O.assign(static_cast<size_t>(D), 0.0f);
          for (const OracleRow& r : runs) {
            const float a =
                r.m == m
                    ? 1.0f
                    : sas(f16_round(static_cast<long double>(m) - r.m));  // -inf run: SAS(inf) = 0
            merged.l = std::fma(r.l, a, merged.l);
            for (int64_t c = 0; c < D; ++c)
              merged.O[static_cast<size_t>(c)] =
                  std::fma(r.O[static_cast<size_t>(c)], a, merged.O[static_cast<size_t>(c)]);
          }
          oracle_finish(merged, D, o);
        }
      }
    }
  }
  return out;
}

// Tokens [t0, t1) of a [B, H, N, D] host tensor as a strided view.
turbo::ConstHalfTensor token_range(const HostTensor<Half>& t, int64_t t0, int64_t t1) {
  turbo::ConstHalfTensor v = t.view();
  v.data += t0 * t.d;
  v.shape[2] = t1 - t0;
  return v;
}

struct DecodeCase {
  std::string name;
  Shape shape;  // n = cache length L
  int64_t q_len = 1;
  std::string config;
  std::vector<int> head_bits;  // empty: from kv_bits
  int64_t prompt = 0;          // first append; the rest is appended `step` tokens at a time
  int64_t step = 1;
};

void PrintTo(const DecodeCase& c, std::ostream* os) { *os << c.name; }

std::vector<DecodeCase> decode_cases() {
  std::vector<DecodeCase> v;
  auto add = [&](const std::string& name, Shape s, int64_t q_len, const std::string& cfg,
                 std::vector<int> bits = {}, int64_t prompt = 0, int64_t step = 1) {
    v.push_back({name, s, q_len, cfg, std::move(bits), prompt ? prompt : s.n - 40, step});
  };
  const Shape def{1, 2, 2, 200, 64};
  add("b8", def, 1, "kv_bits=8");
  add("b4", def, 1, "kv_bits=4");
  add("b2", def, 1, "kv_bits=2");
  add("b4_qlen4_straddle", {1, 2, 2, 130, 64}, 4, "kv_bits=4");
  add("b4_qlen8_tile_q", def, 8, "kv_bits=4,br=4");
  add("b4_q_token", def, 5, "kv_bits=4,q_gran=token");
  add("b2_q_head", def, 5, "kv_bits=2,q_gran=head");
  add("b4_token_axis", def, 1, "kv_bits=4,k_axis=token,v_axis=token,group_size=32");
  add("b2_token_axis_gs16", def, 3, "kv_bits=2,k_axis=token,v_axis=channel,group_size=16");
  add("buffer_int8_b4", def, 1, "kv_bits=4,buffer=int8");
  add("buffer_int8_b8_qlen3", def, 3, "kv_bits=8,buffer=int8");
  add("buffer_int8_one_row", {1, 2, 2, 193, 64}, 1, "kv_bits=4,buffer=int8");
  add("empty_buffer", {1, 2, 2, 192, 64}, 1, "kv_bits=4");
  add("only_buffer", {1, 2, 2, 40, 64}, 2, "kv_bits=4", {}, 30);
  add("splits_2", def, 1, "kv_bits=4,splits=2");
  add("splits_3_qlen4", def, 4, "kv_bits=4,splits=3");
  add("splits_7_more_than_tiles", def, 2, "kv_bits=2,splits=7");
  add("splits_4_block16", {1, 2, 1, 70, 32}, 3, "kv_bits=4,block=16,splits=4");
  add("mixed_heads_gqa", {1, 4, 2, 200, 64}, 2, "kv_bits=mixed", {2, 4});
  add("mixed_heads_8_2", {1, 2, 2, 150, 32}, 1, "kv_bits=mixed", {8, 2});
  add("k_smooth_mean", def, 1, "kv_bits=4,k_smooth=mean", {}, 150, 5);
  add("k_smooth_mean_int8_buffer", def, 2, "kv_bits=4,k_smooth=mean,buffer=int8", {}, 100, 7);
  add("batch2_d128", {2, 2, 1, 150, 128}, 2, "kv_bits=4");
  add("p_u8_row", def, 2, "kv_bits=4,p_quant=u8_row");
  add("p_s8_sas_fp32", def, 2, "kv_bits=4,p_quant=s8,sas_precision=fp32");
  add("n_r_4_minimax3", def, 1, "kv_bits=2,n_r=4,poly=minimax3");
  add("whole_prompt_at_once", def, 1, "kv_bits=4", {}, 200);
  return v;
}

class OracleVsRefDecode : public ::testing::TestWithParam<DecodeCase> {};

TEST_P(OracleVsRefDecode, BitExact) {
  const DecodeCase& c = GetParam();
  const AttentionConfig cfg = turbo::parse_attention_config(c.config);
  ASSERT_TRUE(cfg.validate().ok);
  const turbo::test::Inputs kv =
      turbo::test::make_inputs(c.shape, InputKind::kGaussian, seed_of("decode/" + c.name));
  const Shape qs{c.shape.b, c.shape.hq, c.shape.hkv, c.q_len, c.shape.d};
  const turbo::test::Inputs qin =
      turbo::test::make_inputs(qs, InputKind::kGaussian, seed_of("decode-q/" + c.name));
  std::vector<int> bits = c.head_bits;
  if (bits.empty())
    bits.assign(static_cast<size_t>(c.shape.hkv), turbo::kv_bits_value(cfg.quant.kv_bits));

  const HostTensor<Half> want = oracle_decode(cfg, bits, qin.q, kv.k, kv.v, c.prompt);
  ASSERT_GT(turbo::test::l2_norm(want), 0.0);
  // Self-check against FP64 softmax attention of the last q_len positions (causal).
  {
    const int64_t B = c.shape.b, Hq = c.shape.hq, g = c.shape.hq / c.shape.hkv, L = c.shape.n,
                  D = c.shape.d;
    const double tau = oracle_tau(cfg, D);
    double num = 0, den = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hq; ++h) {
        const std::vector<float> q = head_rows(qin.q, b, h), k = head_rows(kv.k, b, h / g),
                                 v = head_rows(kv.v, b, h / g);
        for (int64_t i = 0; i < c.q_len; ++i) {
          const int64_t n_keys = L - c.q_len + i + 1;
          std::vector<double> w(static_cast<size_t>(n_keys));
          double mx = -INFINITY, z = 0;
          for (int64_t j = 0; j < n_keys; ++j) {
            double a = 0;
            for (int64_t cc = 0; cc < D; ++cc)
              a += static_cast<double>(q[i * D + cc]) * k[j * D + cc];
            mx = std::max(mx, w[static_cast<size_t>(j)] = a * tau);
          }
          for (double& x : w) z += (x = std::exp(x - mx));
          for (int64_t cc = 0; cc < D; ++cc) {
            double o = 0;
            for (int64_t j = 0; j < n_keys; ++j) o += w[static_cast<size_t>(j)] * v[j * D + cc];
            o /= z;
            const double d =
                f16_value(
                    want.storage[static_cast<size_t>(((b * Hq + h) * c.q_len + i) * D + cc)]) -
                o;
            num += d * d;
            den += o * o;
          }
        }
      }
    const int min_bits = *std::min_element(bits.begin(), bits.end());
    const double tol =
        min_bits == 8 ? 0.05 : (min_bits == 4 ? 0.25 : 1.0);  // Gaussian data, low bits
    const double err = std::sqrt(num / den);
    EXPECT_LT(err, tol) << "oracle self-check vs FP64, " << c.name;
    std::printf("decode %-28s rel_l2 vs FP64 %.3e\n", c.name.c_str(), err);
  }

  auto be = backend_under_test();
  turbo::KvCacheSpec spec;
  spec.config = cfg;
  spec.batch = static_cast<int>(c.shape.b);
  spec.kv_heads = static_cast<int>(c.shape.hkv);
  spec.head_dim = static_cast<int>(c.shape.d);
  spec.head_bits = c.head_bits;
  auto cache = be->create_cache(spec);
  be->cache_append(*cache, token_range(kv.k, 0, c.prompt), token_range(kv.v, 0, c.prompt));
  for (int64_t t = c.prompt; t < c.shape.n; t += c.step) {
    const int64_t t1 = std::min(c.shape.n, t + c.step);
    be->cache_append(*cache, token_range(kv.k, t, t1), token_range(kv.v, t, t1));
  }
  ASSERT_EQ(cache->length(), c.shape.n);
  HostTensor<Half> got(c.shape.b, c.shape.hq, c.q_len, c.shape.d);
  for (Half& h : got.storage) h = Half{0x7e00};  // poisoned: NaN
  be->attention_decode(cfg, qin.q.view(), *cache, got.view(), nullptr);
  EXPECT_EQ(turbo::test::first_difference(got, want), "")
      << backend_name() << ", " << c.name << " (" << turbo::test::shape_string(c.shape)
      << ", q_len=" << c.q_len << ", " << cfg.to_string() << ")";
}

INSTANTIATE_TEST_SUITE_P(Decode, OracleVsRefDecode, ::testing::ValuesIn(decode_cases()),
                         [](const ::testing::TestParamInfo<DecodeCase>& i) {
                           return i.param.name;
                         });

// ---- the backend's primitives against the same oracle ------------------------------------

// The comparisons below run on the backend named by TURBO_ORACLE_BACKEND (default "ref").
TEST(OracleVsRefPrimitives, BackendUnderTest) {
  const auto be = backend_under_test();
  EXPECT_EQ(be->name(), backend_name());
  std::printf("backend under test: %s\n", be->name().c_str());
}

// SPEC 4 through Backend::sas: every FP16 x in [0, n_r + 1) and +inf, every polynomial, both
// precisions, n_r = 3 .. 10.
TEST(OracleVsRefPrimitives, SasExhaustive) {
  auto be = backend_under_test();
  std::vector<Half> xs;
  for (uint32_t b = 0; b <= 0x7c00u; ++b)
    if (f16_value(static_cast<uint16_t>(b)) < 11.0f || b == 0x7c00u)
      xs.push_back(Half{static_cast<uint16_t>(b)});
  std::vector<float> out(xs.size());
  int64_t compared = 0;
  for (int pi = 0; pi < turbo::kNumPolys; ++pi) {
    for (const char* prec : {"fp16", "fp32"}) {
      for (int n_r = 3; n_r <= 10; ++n_r) {
        const AttentionConfig cfg =
            turbo::parse_attention_config("poly=" + turbo::enum_name(static_cast<turbo::Poly>(pi)) +
                                          ",sas_precision=" + prec + ",n_r=" + std::to_string(n_r));
        const OracleSas sas(cfg.sas);
        std::fill(out.begin(), out.end(), NAN);
        be->sas(xs.data(), static_cast<int64_t>(xs.size()), cfg.sas, out.data());
        for (size_t i = 0; i < xs.size(); ++i) {
          const float want = sas(f16_value(xs[i]));
          ASSERT_EQ(std::memcmp(&out[i], &want, 4), 0)
              << cfg.to_string() << " x=" << f16_value(xs[i]) << " got " << out[i] << " want "
              << want;
          ++compared;
        }
      }
    }
  }
  EXPECT_GT(compared, 2000000);
}

// SPEC 1 through Backend::quantize_stage1, groups of 1, 7, 64 and all rows, including an
// all-zero group and a group with one nonzero value.
TEST(OracleVsRefPrimitives, Stage1) {
  auto be = backend_under_test();
  std::mt19937_64 rng(31);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int64_t n : {1, 7, 64, 130}) {
    for (int d : {16, 64}) {
      std::vector<Half> x(static_cast<size_t>(n * d));
      std::vector<float> xf(x.size());
      for (size_t i = 0; i < x.size(); ++i) {
        const int64_t row = static_cast<int64_t>(i) / d;
        float v = nd(rng) * std::ldexp(1.0f, static_cast<int>(row % 9) - 4);
        if (row == 2) v = 0.0f;                          // a zero row
        if (row == 5) v = (i % d == 3) ? -0.75f : 0.0f;  // one nonzero value
        if (row == 6) v = -0.0f;  // negative zeros: |-0| = +0, so the scale is +0 (SPEC 1)
        x[i] = turbo::test::to_f16(v);
        xf[i] = f16_value(x[i]);
      }
      for (int64_t g : {int64_t{1}, int64_t{7}, int64_t{64}, n}) {
        const int64_t n_groups = (n + g - 1) / g;
        std::vector<int8_t> codes(x.size(), 99);
        std::vector<float> scales(static_cast<size_t>(n_groups), NAN);
        be->quantize_stage1(x.data(), n, d, g, codes.data(), scales.data());
        const Quantized want = stage1(xf, n, d, g);
        for (size_t i = 0; i < x.size(); ++i)
          ASSERT_EQ(codes[i], want.q[i]) << "n=" << n << " d=" << d << " g=" << g << " i=" << i;
        for (int64_t gi = 0; gi < n_groups; ++gi) {  // bit for bit: +0 and -0 differ
          uint32_t got_bits, want_bits;
          std::memcpy(&got_bits, &scales[static_cast<size_t>(gi)], 4);
          std::memcpy(&want_bits, &want.s[static_cast<size_t>(gi * g)], 4);
          ASSERT_EQ(got_bits, want_bits)
              << "n=" << n << " d=" << d << " g=" << g << " group " << gi;
        }
      }
    }
  }
}

// SPEC 2 + the block layout of core/kv_layout.h's comment, through Backend::compress_block and
// decompress_block: [codes, token-major, 8/b per byte, first in the low bits | s2 (uint8) per
// group | z (int8) per group | stage-1 scale (4 bytes, left as is)].
TEST(OracleVsRefPrimitives, Stage2Blocks) {
  auto be = backend_under_test();
  std::mt19937_64 rng(32);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  struct Geo {
    int n_b, d, gs;
  };
  for (const Geo geo :
       {Geo{64, 64, 32}, Geo{16, 32, 16}, Geo{64, 128, 32}, Geo{5, 16, 16}, Geo{1, 48, 16}}) {
    for (int bits : {4, 2}) {
      for (int axis : {0, 1}) {
        // Stage-1 codes of Gaussian rows with an outlier channel, plus a constant channel.
        std::vector<float> xf(static_cast<size_t>(geo.n_b * geo.d));
        for (size_t i = 0; i < xf.size(); ++i) {
          const int c = static_cast<int>(i % geo.d);
          xf[i] = f16_round(c == 1 ? 0.5f : nd(rng) * (c == 3 ? 8.0f : 1.0f));
        }
        const Quantized q1 = stage1(xf, geo.n_b, geo.d, geo.n_b);
        std::vector<int8_t> q(q1.q.begin(), q1.q.end());

        const int levels = (1 << bits) - 1;
        const int64_t groups = axis == 0 ? geo.d : static_cast<int64_t>(geo.n_b) * (geo.d / geo.gs);
        auto group_of = [&](int t, int c) -> int64_t {
          return axis == 0 ? c : static_cast<int64_t>(t) * (geo.d / geo.gs) + c / geo.gs;
        };
        std::vector<int> lo(static_cast<size_t>(groups), 1000),
            hi(static_cast<size_t>(groups), -1000);
        for (int t = 0; t < geo.n_b; ++t)
          for (int c = 0; c < geo.d; ++c) {
            const int64_t gi = group_of(t, c);
            lo[gi] = std::min(lo[gi], static_cast<int>(q[t * geo.d + c]));
            hi[gi] = std::max(hi[gi], static_cast<int>(q[t * geo.d + c]));
          }
        const int64_t elems = static_cast<int64_t>(geo.n_b) * geo.d;
        const int64_t code_bytes = (elems * bits + 7) / 8;
        std::vector<uint8_t> want(static_cast<size_t>(code_bytes + 2 * groups + 4), 0);
        std::vector<int> deq(static_cast<size_t>(elems));
        for (int64_t gi = 0; gi < groups; ++gi) {
          const int s2 = std::max(1, (hi[gi] - lo[gi] + levels - 1) / levels);
          want[static_cast<size_t>(code_bytes + gi)] = static_cast<uint8_t>(s2);
          want[static_cast<size_t>(code_bytes + groups + gi)] =
              static_cast<uint8_t>(static_cast<int8_t>(lo[gi]));
        }
        for (int t = 0; t < geo.n_b; ++t)
          for (int c = 0; c < geo.d; ++c) {
            const int64_t i = static_cast<int64_t>(t) * geo.d + c, gi = group_of(t, c);
            const int s2 = want[static_cast<size_t>(code_bytes + gi)], z = lo[gi];
            // nearest grid point z + c * s2, ties to the larger code (round half up)
            int code = 0;
            for (int cc = 1; cc <= levels; ++cc)
              if (std::abs(cc * s2 + z - q[i]) <= std::abs(code * s2 + z - q[i])) code = cc;
            want[static_cast<size_t>(i * bits / 8)] |=
                static_cast<uint8_t>(code << ((i * bits) % 8));
            deq[static_cast<size_t>(i)] = std::max(-127, std::min(127, code * s2 + z));
          }
        const turbo::BlockLayout layout{geo.n_b, geo.d, bits, axis, geo.gs};
        ASSERT_EQ(layout.bytes(), static_cast<int64_t>(want.size()));
        ASSERT_EQ(layout.metadata_bytes(), 2 * groups + 4);
        std::vector<uint8_t> block(want.size(), 0xa5);
        be->compress_block(q.data(), layout, block.data());
        for (size_t j = 0; j + 4 < block.size(); ++j)
          ASSERT_EQ(block[j], want[j]) << "byte " << j << " n_b=" << geo.n_b << " d=" << geo.d
                                       << " b=" << bits << " axis=" << axis;
        for (size_t j = block.size() - 4; j < block.size(); ++j)
          EXPECT_EQ(block[j], 0xa5) << "scale slot written";
        std::vector<int8_t> back(static_cast<size_t>(elems), 99);
        be->decompress_block(block.data(), layout, back.data());
        int64_t changed = 0;
        for (int64_t i = 0; i < elems; ++i) {
          ASSERT_EQ(back[static_cast<size_t>(i)], deq[static_cast<size_t>(i)]) << i;
          changed += back[static_cast<size_t>(i)] != q[static_cast<size_t>(i)];
        }
        if (geo.n_b > 4) {
          EXPECT_GT(changed, 0);  // the comparison is not of an identity
        }
      }
    }
  }
}

// SPEC 3 through Backend::quantize_asym. Reading: codes use the stored (storage-rounded) s and z,
// so that dequant fma(c, s, z) is consistent with them.
TEST(OracleVsRefPrimitives, DirectAsym) {
  auto be = backend_under_test();
  std::mt19937_64 rng(33);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const char* storage : {"fp16", "fp32"}) {
    const bool h = std::string(storage) == "fp16";
    for (int bits : {2, 3, 4, 8}) {
      for (int len : {1, 5, 32, 128}) {
        const int n_groups = 40;
        std::vector<Half> x(static_cast<size_t>(n_groups * len));
        for (size_t i = 0; i < x.size(); ++i) {
          const int g = static_cast<int>(i / len);
          const float v =
              g == 0 ? 1.25f : nd(rng) * std::ldexp(1.0f, g % 11 - 5) + (g % 3 == 1 ? 4.0f : 0.0f);
          x[i] = turbo::test::to_f16(v);
        }
        std::vector<uint8_t> codes(x.size(), 0xee);
        std::vector<float> scales(n_groups, NAN), zeros(n_groups, NAN);
        be->quantize_asym(x.data(), n_groups, len, bits,
                          h ? turbo::ScaleStorage::kFp16 : turbo::ScaleStorage::kFp32, codes.data(),
                          scales.data(), zeros.data());
        const int levels = (1 << bits) - 1;
        for (int g = 0; g < n_groups; ++g) {
          float mn = INFINITY, mx = -INFINITY;
          for (int i = 0; i < len; ++i) {
            mn = std::min(mn, f16_value(x[static_cast<size_t>(g * len + i)]));
            mx = std::max(mx, f16_value(x[static_cast<size_t>(g * len + i)]));
          }
          float s = (mx - mn) / static_cast<float>(levels), z = mn;
          if (h) {
            s = f16_round(s);
            z = f16_round(z);
          }
          ASSERT_EQ(scales[g], s) << storage << " b" << bits << " g" << g;
          ASSERT_EQ(zeros[g], z);
          const float inv = s == 0.0f ? 0.0f : 1.0f / s;
          for (int i = 0; i < len; ++i) {
            const float v = (f16_value(x[static_cast<size_t>(g * len + i)]) - z) * inv;
            const long c = std::max(
                0L, std::min(static_cast<long>(levels), std::lrint(static_cast<double>(v))));
            ASSERT_EQ(codes[static_cast<size_t>(g * len + i)], c)
                << storage << " b" << bits << " g" << g << " i" << i;
          }
        }
      }
    }
  }
}

// ---- readings of SPEC the oracle pins down ------------------------------------------------

// SPEC Conventions: "tau = 1 / sqrt(D) as FP32". Read as the FP32 number nearest to 1 / sqrt(D);
// AttentionConfig::tau_for computes 1.0f / sqrtf(D), two FP32 roundings, which is one ulp off
// for D = 96 and D = 112 (0x1.a20bd6p-4 vs 0x1.a20bd8p-4, 0x1.83092p-4 vs 0x1.83091ep-4).
TEST(SpecReading, TauIsTheFp32NearestToInvSqrtD) {
  const AttentionConfig cfg;
  for (int d = 16; d <= 256; d += 16) {
    EXPECT_EQ(cfg.tau_for(d), oracle_tau(cfg, d))
        << "D=" << d << std::hexfloat << ": tau_for " << cfg.tau_for(d) << ", nearest FP32 "
        << oracle_tau(cfg, d);
  }
}

// ---- the oracle's own checks -------------------------------------------------------------

// SPEC 4 by hand: SAS(0) = fp16(LUT[0] * c0) = fp16(c0); SAS(1) = fp16(fp16(e^-1) * POLY(0)).
TEST(OracleSelf, SasHandValues) {
  turbo::SasConfig sc;
  const OracleSas sas(sc);
  EXPECT_EQ(sas(0.0f), f16_round(0.9996373981566391L));
  EXPECT_EQ(sas(1.0f), f16_round(static_cast<long double>(f16_round(std::exp(-1.0L))) * sas.c[0]));
  EXPECT_EQ(sas(6.0f), 0.0f);
  EXPECT_EQ(sas(INFINITY), 0.0f);
  EXPECT_GT(sas(5.99609375f), 0.0f);
}

// Q = 0: every score is 0, every P = SAS(0), so the output is the P-weighted mean of the
// dequantized V: with one tile, sum_j P8 V8_j * s_V / (n * P8 * s_P) * s_P = mean of V8 * s_V.
TEST(OracleSelf, ZeroQueryAveragesV) {
  const Shape s{1, 1, 1, 40, 16};
  turbo::test::Inputs in = turbo::test::make_inputs(s, InputKind::kGaussian, 7);
  for (Half& h : in.q.storage) h = Half{0};
  AttentionConfig cfg = turbo::parse_attention_config("causal=0");
  const HostTensor<Half> o = oracle_prefill(cfg, in);
  const std::vector<float> v = head_rows(in.v, 0, 0);
  const Quantized V = stage1(v, 40, 16, 64);
  for (int64_t i = 0; i < 40; ++i)
    for (int64_t c = 0; c < 16; ++c) {
      double mean = 0;
      for (int64_t j = 0; j < 40; ++j) mean += V.q[static_cast<size_t>(j * 16 + c)];
      mean = mean / 40 * V.s[0];
      EXPECT_NEAR(f16_value(o.storage[static_cast<size_t>(i * 16 + c)]), mean,
                  2e-3 + std::fabs(mean) * 2e-3);
    }
}

// Causal row 0 sees only key 0: the output is the dequantized V row 0 (P8 cancels).
TEST(OracleSelf, CausalFirstRowIsFirstValue) {
  const Shape s{1, 1, 1, 10, 16};
  const turbo::test::Inputs in = turbo::test::make_inputs(s, InputKind::kGaussian, 8);
  const HostTensor<Half> o = oracle_prefill(AttentionConfig(), in);
  const Quantized V = stage1(head_rows(in.v, 0, 0), 10, 16, 64);
  for (int64_t c = 0; c < 16; ++c)
    EXPECT_NEAR(f16_value(o.storage[static_cast<size_t>(c)]), V.q[static_cast<size_t>(c)] * V.s[0],
                1e-3 * (1 + std::fabs(V.q[static_cast<size_t>(c)] * V.s[0])));
}

}  // namespace

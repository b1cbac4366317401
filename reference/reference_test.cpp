// Property tests of the reference attention (prefill, decode, split-K, accounting). The
// element-by-element oracle of SPEC 5 lives in oracle_test.cpp; SAS and the quantizers are
// tested exhaustively in core/.
#include "reference/reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "reference/flashq.h"
#include "reference/test_inputs.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace turbo {
namespace ref {
namespace {

struct Errors {
  double rel_l2 = 0, max_abs = 0;
};

Errors compare(const HostTensor<Half>& o, const std::vector<double>& truth) {
  double num = 0, den = 0, mx = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    const double d = half_to_float(o.storage[i]) - truth[i];
    num += d * d;
    den += truth[i] * truth[i];
    mx = std::max(mx, std::abs(d));
  }
  EXPECT_GT(den, 0.0) << "vacuous comparison: zero reference";
  return {std::sqrt(num / den), mx};
}

// Poisoned output so an unwritten element can never pass.
HostTensor<Half> poisoned_like(const HostTensor<Half>& q) {
  HostTensor<Half> o(q.b, q.h, q.n, q.d);
  for (auto& x : o.storage) x.bits = 0x7e00;  // NaN
  return o;
}

std::vector<double> truth_prefill(const QkvInputs& in, bool causal, float tau = 0.0f) {
  std::vector<double> t(static_cast<size_t>(in.q.numel()));
  attention_fp64(in.q.view(), in.k.view(), in.v.view(), causal, tau, t.data());
  return t;
}

HostTensor<Half> run_prefill(Backend& be, const AttentionConfig& c, const QkvInputs& in,
                             std::vector<AttentionStats>* stats = nullptr) {
  HostTensor<Half> o = poisoned_like(in.q);
  if (stats) stats->assign(static_cast<size_t>(in.q.b * in.q.h), AttentionStats{});
  be.attention_prefill(c, in.q.view(), in.k.view(), in.v.view(), o.view(),
                       stats ? stats->data() : nullptr);
  return o;
}

bool same_bytes(const HostTensor<Half>& a, const HostTensor<Half>& b) {
  return a.storage.size() == b.storage.size() &&
         std::memcmp(a.storage.data(), b.storage.data(), a.storage.size() * sizeof(Half)) == 0;
}

// Slices rows [t0, t1) of every head.
HostTensor<Half> slice_tokens(const HostTensor<Half>& x, int64_t t0, int64_t t1) {
  HostTensor<Half> r(x.b, x.h, t1 - t0, x.d);
  for (int64_t b = 0; b < x.b; ++b)
    for (int64_t h = 0; h < x.h; ++h)
      for (int64_t t = t0; t < t1; ++t)
        std::memcpy(r.view().row(b, h, t - t0), x.view().row(b, h, t),
                    static_cast<size_t>(x.d) * sizeof(Half));
  return r;
}

HostTensor<Half> slice_head(const HostTensor<Half>& x, int64_t h) {
  HostTensor<Half> r(x.b, 1, x.n, x.d);
  for (int64_t b = 0; b < x.b; ++b)
    for (int64_t t = 0; t < x.n; ++t)
      std::memcpy(r.view().row(b, 0, t), x.view().row(b, h, t),
                  static_cast<size_t>(x.d) * sizeof(Half));
  return r;
}

class ReferenceAttention : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_reference_backend();
};

TEST_F(ReferenceAttention, FloorIsCloseToFp64) {
  const QkvInputs in = make_inputs({1, 2, 2, 200, 64}, InputKind::kGaussian, 1);
  AttentionConfig c;
  c.method = Method::kFp16;
  const Errors e = compare(run_prefill(*be, c, in), truth_prefill(in, true));
  EXPECT_LT(e.rel_l2, 2e-3);  // FP16 output rounding (2^-11 relative) dominates
}

// Stage 1 only, exact exp and unquantized P: the remaining error is INT8 Q/K/V plus the FP16
// score. With per-token groups the INT8 step is amax/127 per row; for outlier channels K mean
// smoothing removes the offset that would otherwise set amax (without it the error is ~4%).
TEST_F(ReferenceAttention, ExactModeApproachesFp64) {
  for (InputKind kind : {InputKind::kGaussian, InputKind::kOutlierChannel, InputKind::kSink}) {
    const QkvInputs in = make_inputs({1, 2, 2, 256, 64}, kind, 2);
    AttentionConfig c;
    c.sas.exp_mode = ExpMode::kExact;
    c.p_quant = PQuant::kFp16;
    c.quant.q_gran = Granularity::kToken;
    c.quant.kv_gran = Granularity::kToken;
    if (kind == InputKind::kOutlierChannel) c.quant.k_smooth = KSmooth::kMean;
    const Errors e = compare(run_prefill(*be, c, in), truth_prefill(in, true));
    std::printf("kind %d: rel_l2 %.4g\n", static_cast<int>(kind), e.rel_l2);
    AttentionConfig f;
    f.method = Method::kFp16;
    const Errors floor = compare(run_prefill(*be, f, in), truth_prefill(in, true));
    EXPECT_LT(e.rel_l2, 0.02) << "kind " << static_cast<int>(kind);
    EXPECT_GT(e.rel_l2, floor.rel_l2) << "quantized attention cannot beat the FP16 floor";
  }
}

// Default FlashQ (tile INT8, SAS n_r = 6, u8 P). Bound: a few percent relative L2, the level the
// paper reports for INT8 + SAS; printed for the record.
TEST_F(ReferenceAttention, DefaultWithinBound) {
  struct Case {
    InputKind kind;
    double bound;
  };
  for (const Case& cs : {Case{InputKind::kGaussian, 0.06}, Case{InputKind::kOutlierChannel, 0.10},
                         Case{InputKind::kSink, 0.06}}) {
    const QkvInputs in = make_inputs({1, 3, 1, 320, 64}, cs.kind, 3);
    AttentionConfig c;
    std::vector<AttentionStats> st;
    const Errors e = compare(run_prefill(*be, c, in, &st), truth_prefill(in, true));
    std::printf("kind %d: rel_l2 %.4g max_abs %.4g sparsity %.3f dropped %.2e\n",
                static_cast<int>(cs.kind), e.rel_l2, e.max_abs, st[0].sparsity(),
                st[0].mean_dropped_mass());
    EXPECT_LT(e.rel_l2, cs.bound);
    EXPECT_EQ(st[0].rows, 320);
    EXPECT_EQ(st[0].scored, 320 * 321 / 2);
  }
}

TEST_F(ReferenceAttention, KSmoothingHelpsOutlierChannels) {
  const QkvInputs in = make_inputs({1, 2, 2, 256, 64}, InputKind::kOutlierChannel, 4);
  AttentionConfig c;
  c.sas.exp_mode = ExpMode::kExact;
  c.p_quant = PQuant::kFp16;
  const double plain = compare(run_prefill(*be, c, in), truth_prefill(in, true)).rel_l2;
  c.quant.k_smooth = KSmooth::kMean;
  const double smooth = compare(run_prefill(*be, c, in), truth_prefill(in, true)).rel_l2;
  EXPECT_LT(smooth, plain);
}

TEST_F(ReferenceAttention, SparsityGrowsAsNrShrinks) {
  const QkvInputs in = make_inputs({1, 1, 1, 256, 64}, InputKind::kGaussian, 5, 2.0f);
  double last = -1.0;
  for (int n_r : {10, 8, 6, 4, 3}) {
    AttentionConfig c;
    c.sas.n_r = n_r;
    std::vector<AttentionStats> st;
    run_prefill(*be, c, in, &st);
    EXPECT_GE(st[0].sparsity(), last) << "n_r " << n_r;
    last = st[0].sparsity();
  }
  EXPECT_GT(last, 0.0);
}

TEST_F(ReferenceAttention, ThreadCountDoesNotChangeBytes) {
#if defined(_OPENMP)
  const QkvInputs in = make_inputs({2, 4, 2, 150, 64}, InputKind::kSink, 6);
  AttentionConfig c;
  c.quant.kv_gran = Granularity::kToken;  // also covers the per-token V path
  std::vector<AttentionStats> s1, s2;
  omp_set_num_threads(1);
  const HostTensor<Half> o1 = run_prefill(*be, c, in, &s1);
  omp_set_num_threads(2);
  const HostTensor<Half> o2 = run_prefill(*be, c, in, &s2);
  EXPECT_TRUE(same_bytes(o1, o2));
  for (size_t i = 0; i < s1.size(); ++i) {
    EXPECT_EQ(s1[i].zeroed, s2[i].zeroed);
    EXPECT_EQ(s1[i].dropped_mass, s2[i].dropped_mass);
  }
  // decode with split-K
  c.splits = 3;
  KvCacheSpec spec{c, 2, 2, 64, {}};
  HostTensor<Half> d1, d2;
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    auto cache = be->create_cache(spec);
    be->cache_append(*cache, in.k.view(), in.v.view());
    const HostTensor<Half> q = slice_tokens(in.q, 146, 150);
    HostTensor<Half> o = poisoned_like(q);
    be->attention_decode(c, q.view(), *cache, o.view(), nullptr);
    (threads == 1 ? d1 : d2) = o;
  }
  EXPECT_TRUE(same_bytes(d1, d2));
#else
  GTEST_SKIP() << "built without OpenMP: one thread only";
#endif
}

TEST_F(ReferenceAttention, GqaMapsQueryHeadToKvHead) {
  const QkvInputs in = make_inputs({1, 6, 2, 100, 32}, InputKind::kGaussian, 7);
  AttentionConfig c;
  const HostTensor<Half> full = run_prefill(*be, c, in);
  for (int64_t h = 0; h < 6; ++h) {
    QkvInputs one{slice_head(in.q, h), slice_head(in.k, h / 3), slice_head(in.v, h / 3)};
    const HostTensor<Half> o = run_prefill(*be, c, one);
    EXPECT_EQ(
        0, std::memcmp(o.storage.data(), full.view().row(0, h, 0), o.storage.size() * sizeof(Half)))
        << "head " << h;
  }
}

TEST_F(ReferenceAttention, CausalMaskIgnoresLaterTiles) {
  QkvInputs in = make_inputs({1, 2, 1, 192, 64}, InputKind::kGaussian, 8);
  AttentionConfig c;  // Bc = 64
  const HostTensor<Half> a = run_prefill(*be, c, in);
  // Change K/V from token 128 on: rows 0..127 live in tiles 0-1, whose scales are unchanged.
  for (int64_t t = 128; t < 192; ++t)
    for (int64_t d = 0; d < 64; ++d) {
      in.k.view().row(0, 0, t)[d] = float_to_half(3.0f);
      in.v.view().row(0, 0, t)[d] = float_to_half(-5.0f);
    }
  const HostTensor<Half> b = run_prefill(*be, c, in);
  for (int64_t h = 0; h < 2; ++h) {
    EXPECT_EQ(0,
              std::memcmp(a.view().row(0, h, 0), b.view().row(0, h, 0), 128 * 64 * sizeof(Half)));
    EXPECT_NE(
        0, std::memcmp(a.view().row(0, h, 128), b.view().row(0, h, 128), 64 * 64 * sizeof(Half)));
  }
  c.causal = false;  // without the mask the early rows see the change
  const HostTensor<Half> nc = run_prefill(*be, c, in);
  EXPECT_NE(0, std::memcmp(nc.view().row(0, 0, 0), b.view().row(0, 0, 0), 64 * sizeof(Half)));
}

TEST_F(ReferenceAttention, OddShapes) {
  for (int64_t n : {1, 17, 63, 65, 130})
    for (int64_t d : {16, 48, 80, 256}) {
      const QkvInputs in =
          make_inputs({1, 2, 1, n, d}, InputKind::kGaussian, static_cast<uint64_t>(n * 1000 + d));
      for (bool causal : {true, false}) {
        AttentionConfig c;
        c.causal = causal;
        const Errors e = compare(run_prefill(*be, c, in), truth_prefill(in, causal));
        EXPECT_LT(e.rel_l2, 0.08) << "n " << n << " d " << d << " causal " << causal;
      }
    }
}

TEST_F(ReferenceAttention, RejectsNonFiniteNamingTheTensor) {
  QkvInputs in = make_inputs({1, 2, 2, 32, 64}, InputKind::kGaussian, 9);
  in.k.view().row(0, 1, 5)[7].bits = 0x7c00;  // +inf
  AttentionConfig c;
  HostTensor<Half> o = poisoned_like(in.q);
  try {
    be->attention_prefill(c, in.q.view(), in.k.view(), in.v.view(), o.view(), nullptr);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("K"), std::string::npos) << m;
    EXPECT_NE(m.find("head 1"), std::string::npos) << m;
    EXPECT_NE(m.find("token 5"), std::string::npos) << m;
  }
}

// SPEC 6: with q_gran = token, 8-bit blocks and t + 1 a multiple of n_b, decode row t equals
// prefill row t exactly.
TEST(ReferenceDecode, DecodeEqualsPrefill) {
  auto be = make_reference_backend();
  for (KSmooth smooth : {KSmooth::kNone, KSmooth::kMean}) {
    const QkvInputs in = make_inputs({1, 4, 2, 256, 64}, InputKind::kOutlierChannel, 10);
    AttentionConfig c;
    c.quant.q_gran = Granularity::kToken;
    c.quant.kv_bits = KvBits::k8;
    c.quant.k_smooth = smooth;
    for (int64_t len : {64, 128, 256}) {
      const QkvInputs pre{slice_tokens(in.q, 0, len), slice_tokens(in.k, 0, len),
                          slice_tokens(in.v, 0, len)};
      const HostTensor<Half> po = run_prefill(*be, c, pre);
      auto cache = be->create_cache({c, 1, 2, 64, {}});
      be->cache_append(*cache, pre.k.view(), pre.v.view());
      ASSERT_EQ(cache->length(), len);
      for (int64_t ql : {1, 3}) {
        const HostTensor<Half> q = slice_tokens(pre.q, len - ql, len);
        HostTensor<Half> o = poisoned_like(q);
        be->attention_decode(c, q.view(), *cache, o.view(), nullptr);
        for (int64_t h = 0; h < 4; ++h)
          EXPECT_EQ(0, std::memcmp(o.view().row(0, h, 0), po.view().row(0, h, len - ql),
                                   static_cast<size_t>(ql * 64) * sizeof(Half)))
              << "len " << len << " q_len " << ql << " head " << h << " smooth "
              << static_cast<int>(smooth);
      }
    }
  }
}

// Appending token by token or in one call builds the same cache (a pure function of its rows).
TEST(ReferenceDecode, CacheIsPureFunctionOfRows) {
  auto be = make_reference_backend();
  const QkvInputs in = make_inputs({1, 2, 2, 150, 64}, InputKind::kGaussian, 11);
  for (BufferMode buf : {BufferMode::kFp16, BufferMode::kInt8}) {
    AttentionConfig c;
    c.quant.buffer = buf;
    auto one = be->create_cache({c, 1, 2, 64, {}});
    auto many = be->create_cache({c, 1, 2, 64, {}});
    be->cache_append(*one, in.k.view(), in.v.view());
    for (int64_t t = 0; t < 150; t += 7) {
      const int64_t t1 = std::min<int64_t>(150, t + 7);
      be->cache_append(*many, slice_tokens(in.k, t, t1).view(), slice_tokens(in.v, t, t1).view());
    }
    const HostTensor<Half> q = slice_tokens(in.q, 149, 150);
    HostTensor<Half> a = poisoned_like(q), b = poisoned_like(q);
    be->attention_decode(c, q.view(), *one, a.view(), nullptr);
    be->attention_decode(c, q.view(), *many, b.view(), nullptr);
    EXPECT_TRUE(same_bytes(a, b));
    EXPECT_EQ(one->bytes().total(), many->bytes().total());
  }
}

// Split-K: the kernel-visible result must follow SPEC 6's merge rule exactly. The runs are
// recomputed here tile by tile and merged by the rule as written.
TEST(ReferenceDecode, SplitKFollowsMergeRule) {
  auto be = make_reference_backend();
  const int64_t L = 5 * 64 + 20, D = 64;
  const QkvInputs in = make_inputs({1, 1, 1, L, D}, InputKind::kSink, 12, 1.5f);
  AttentionConfig c;
  c.quant.kv_bits = KvBits::k8;
  c.quant.q_gran = Granularity::kToken;
  const SasParams sas = c.sas.params();
  const float tau = c.tau_for(static_cast<int>(D));
  // tiles: 5 blocks (stage 1 per block) + the 20-row buffer (stage 1 as one tile)
  std::vector<std::vector<int8_t>> kc(6), vc(6);
  std::vector<float> ks(6), vs(6);
  for (int t = 0; t < 6; ++t) {
    const int64_t t0 = t * 64, t1 = std::min<int64_t>(L, t0 + 64), n = t1 - t0;
    std::vector<float> kr(static_cast<size_t>(n * D)), vr(kr.size());
    for (int64_t r = 0; r < n; ++r)
      for (int64_t d = 0; d < D; ++d) {
        kr[static_cast<size_t>(r * D + d)] = half_to_float(in.k.view().row(0, 0, t0 + r)[d]);
        vr[static_cast<size_t>(r * D + d)] = half_to_float(in.v.view().row(0, 0, t0 + r)[d]);
      }
    kc[t].resize(kr.size());
    vc[t].resize(vr.size());
    stage1_rows(kr.data(), n, static_cast<int>(D), n, kc[t].data(), &ks[t]);
    stage1_rows(vr.data(), n, static_cast<int>(D), n, vc[t].data(), &vs[t]);
  }
  std::vector<int8_t> q8(static_cast<size_t>(D));
  float qs = 0;
  std::vector<float> qr(static_cast<size_t>(D));
  for (int64_t d = 0; d < D; ++d)
    qr[static_cast<size_t>(d)] = half_to_float(in.q.view().row(0, 0, L - 1)[d]);
  stage1_rows(qr.data(), 1, static_cast<int>(D), 1, q8.data(), &qs);

  auto cache = be->create_cache({c, 1, 1, static_cast<int>(D), {}});
  be->cache_append(*cache, in.k.view(), in.v.view());
  const HostTensor<Half> q = slice_tokens(in.q, L - 1, L);
  for (int S : {1, 2, 3, 4, 6}) {
    c.splits = S;
    HostTensor<Half> o = poisoned_like(q);
    be->attention_decode(c, q.view(), *cache, o.view(), nullptr);
    // runs
    std::vector<RowState> runs;
    TileScratch sc;
    RowParams rp;
    rp.q = q8.data();
    rp.q_scale = qs;
    rp.pos = L - 1;
    rp.tau = tau;
    rp.d = static_cast<int>(D);
    for (int s = 0; s < S; ++s) {
      RowState st(static_cast<int>(D));
      for (int t = 6 * s / S; t < 6 * (s + 1) / S; ++t) {
        KvTileView tv;
        tv.k = kc[t].data();
        tv.v = vc[t].data();
        tv.k_scale = &ks[t];
        tv.v_scale = &vs[t];
        tv.pos0 = t * 64;
        tv.n = static_cast<int>(std::min<int64_t>(L, t * 64 + 64) - t * 64);
        process_tile(st, rp, tv, sas, sc);
      }
      runs.push_back(st);
    }
    // SPEC 6 merge, written out
    float m = -INFINITY;
    for (const RowState& r : runs) m = std::max(m, r.m);
    float l = 0.0f;
    std::vector<float> acc(static_cast<size_t>(D), 0.0f);
    for (const RowState& r : runs) {
      const float a = r.m == m ? 1.0f : sas_eval(sub16(m, r.m), sas);
      l = std::fma(r.l, a, l);
      for (int64_t d = 0; d < D; ++d)
        acc[static_cast<size_t>(d)] =
            std::fma(r.o[static_cast<size_t>(d)], a, acc[static_cast<size_t>(d)]);
    }
    for (int64_t d = 0; d < D; ++d)
      ASSERT_EQ(o.storage[static_cast<size_t>(d)].bits,
                float_to_half(acc[static_cast<size_t>(d)] / l).bits)
          << "S " << S << " d " << d;
  }
}

TEST(ReferenceDecode, MixedHeadBitsOrderError) {
  auto be = make_reference_backend();
  const QkvInputs in = make_inputs({1, 2, 2, 512, 64}, InputKind::kGaussian, 13);
  std::vector<double> truth(static_cast<size_t>(2 * 64));
  const HostTensor<Half> q = slice_tokens(in.q, 511, 512);
  attention_fp64_decode(q.view(), in.k.view(), in.v.view(), 0.0f, truth.data());
  double last = 0.0;
  for (KvBits bits : {KvBits::k8, KvBits::k4, KvBits::k2}) {
    AttentionConfig c;
    c.quant.kv_bits = bits;
    auto cache = be->create_cache({c, 1, 2, 64, {}});
    be->cache_append(*cache, in.k.view(), in.v.view());
    HostTensor<Half> o = poisoned_like(q);
    be->attention_decode(c, q.view(), *cache, o.view(), nullptr);
    const double e = compare(o, truth).rel_l2;
    EXPECT_GT(e, last) << "bits " << kv_bits_value(bits);
    last = e;
  }
  // a per-head map: each head's output equals that head's uniform-bits output
  AttentionConfig c;
  c.quant.kv_bits = KvBits::kMixed;
  EXPECT_THROW(be->create_cache({c, 1, 2, 64, {}}), Error);
  auto mixed = be->create_cache({c, 1, 2, 64, {2, 4}});
  be->cache_append(*mixed, in.k.view(), in.v.view());
  HostTensor<Half> om = poisoned_like(q);
  be->attention_decode(c, q.view(), *mixed, om.view(), nullptr);
  for (int h = 0; h < 2; ++h) {
    AttentionConfig u;
    u.quant.kv_bits = h == 0 ? KvBits::k2 : KvBits::k4;
    auto cache = be->create_cache({u, 1, 2, 64, {}});
    be->cache_append(*cache, in.k.view(), in.v.view());
    HostTensor<Half> o = poisoned_like(q);
    be->attention_decode(u, q.view(), *cache, o.view(), nullptr);
    EXPECT_EQ(0, std::memcmp(o.view().row(0, h, 0), om.view().row(0, h, 0), 64 * sizeof(Half)))
        << "head " << h;
  }
}

// SPEC 8 accounting against a hand count.
TEST(ReferenceCache, ByteAccountingMatchesHandCount) {
  auto be = make_reference_backend();
  const QkvInputs in = make_inputs({1, 2, 2, 150, 64}, InputKind::kGaussian, 14);
  struct Case {
    KvBits bits;
    Stage2Axis axis;
    BufferMode buf;
    KSmooth smooth;
    int64_t expect;  // bytes, derived by hand below
  };
  // 150 tokens = 2 blocks of 64 + 22 buffer rows; 2 streams (kv heads) x 2 tensors (K, V).
  // 4-bit channel axis block: codes 64*64/2 = 2048, s2+z 2*64 = 128, scale 4 -> 2180
  // 2-bit token axis (group 32): codes 64*64/4 = 1024, groups 64*2 = 128 -> s2+z 256, scale 4 ->
  // 1284 8-bit block: codes 4096 + scale 4 = 4100 fp16 buffer: 22*64*2 = 2816; int8 buffer: 22*64 +
  // 22*4 = 1496; K mean: 64*4 = 256 per stream
  const std::vector<Case> cases = {
      {KvBits::k4, Stage2Axis::kChannel, BufferMode::kFp16, KSmooth::kNone,
       2 * 2 * (2 * 2180 + 2816)},
      {KvBits::k2, Stage2Axis::kToken, BufferMode::kFp16, KSmooth::kNone,
       2 * 2 * (2 * 1284 + 2816)},
      {KvBits::k8, Stage2Axis::kChannel, BufferMode::kInt8, KSmooth::kNone,
       2 * 2 * (2 * 4100 + 1496)},
      {KvBits::k4, Stage2Axis::kChannel, BufferMode::kFp16, KSmooth::kMean,
       2 * 2 * (2 * 2180 + 2816) + 2 * 256},
  };
  for (const Case& cs : cases) {
    AttentionConfig c;
    c.quant.kv_bits = cs.bits;
    c.quant.k_axis = c.quant.v_axis = cs.axis;
    c.quant.buffer = cs.buf;
    c.quant.k_smooth = cs.smooth;
    auto cache = be->create_cache({c, 1, 2, 64, {}});
    be->cache_append(*cache, in.k.view(), in.v.view());
    EXPECT_EQ(cache->bytes().total(), cs.expect) << c.to_string();
    EXPECT_EQ(cache->bytes().tokens, 300);
  }
}

// kv_scale = token (per-token stage-1 scales in the blocks and the buffer tile) and sink = n_b
// (the first block kept FP16, quantized per token at attention) leave the tiles where prefill has
// them, with the same per-token codes: at 8 bits decode equals prefill with kv_gran = token at any
// length, not only at block boundaries.
TEST(ReferenceDecode, PerTokenScalesAndSinkMatchTokenPrefill) {
  auto be = make_reference_backend();
  const QkvInputs in = make_inputs({1, 4, 2, 230, 64}, InputKind::kSink, 31);
  for (const char* extra : {"", ",sink=64", ",k_smooth=mean"}) {
    const std::string knobs = std::string("q_gran=token,kv_bits=8") + extra;
    AttentionConfig pc = parse_attention_config(knobs + ",kv_gran=token");
    AttentionConfig dc = parse_attention_config(knobs + ",kv_scale=token");
    for (int64_t len : {65, 100, 129, 230}) {
      const QkvInputs pre{slice_tokens(in.q, 0, len), slice_tokens(in.k, 0, len),
                          slice_tokens(in.v, 0, len)};
      const HostTensor<Half> po = run_prefill(*be, pc, pre);
      auto cache = be->create_cache({dc, 1, 2, 64, {}});
      be->cache_append(*cache, pre.k.view(), pre.v.view());
      const HostTensor<Half> q = slice_tokens(pre.q, len - 1, len);
      HostTensor<Half> o = poisoned_like(q);
      be->attention_decode(dc, q.view(), *cache, o.view(), nullptr);
      for (int64_t h = 0; h < 4; ++h)
        ASSERT_EQ(
            0, std::memcmp(o.view().row(0, h, 0), po.view().row(0, h, len - 1), 64 * sizeof(Half)))
            << knobs << " len " << len << " head " << h;
    }
  }
}

// sink and window: which rows stay FP16 (bytes by hand), purity under any append batching, and
// that keeping FP16 rows only lowers the error on real-shaped (attention-sink) inputs.
TEST(ReferenceDecode, SinkAndWindowKeepFp16Rows) {
  auto be = make_reference_backend();
  const int64_t L = 300, D = 64;
  const QkvInputs in = make_inputs({1, 4, 2, L, D}, InputKind::kSink, 32);
  struct Case {
    const char* knobs;
    int64_t sink, window;
  };
  // 4-bit channel-axis block: 2048 codes + 128 s2/z + 4 scale = 2180 bytes; FP16 row 128 bytes.
  for (const Case& cs :
       {Case{"kv_bits=4,sink=1", 1, 0}, Case{"kv_bits=4,window=32", 0, 32},
        Case{"kv_bits=4,sink=4,window=100", 4, 100}, Case{"kv_bits=4,window=400", 0, 400}}) {
    const AttentionConfig c = parse_attention_config(cs.knobs);
    auto one = be->create_cache({c, 1, 2, D, {}});
    auto many = be->create_cache({c, 1, 2, D, {}});
    be->cache_append(*one, in.k.view(), in.v.view());
    for (int64_t t = 0; t < L; t += 13) {
      const int64_t t1 = std::min<int64_t>(L, t + 13);
      be->cache_append(*many, slice_tokens(in.k, t, t1).view(), slice_tokens(in.v, t, t1).view());
    }
    const int64_t rest = L - cs.sink;
    const int64_t blocks = rest >= cs.window ? (rest - cs.window) / 64 : 0;
    const int64_t fp16_rows = L - blocks * 64;
    EXPECT_EQ(one->bytes().total(), 2 * 2 * (blocks * 2180 + fp16_rows * 128)) << cs.knobs;
    EXPECT_EQ(one->bytes().total(), many->bytes().total()) << cs.knobs;
    const HostTensor<Half> q = slice_tokens(in.q, L - 1, L);
    HostTensor<Half> a = poisoned_like(q), b = poisoned_like(q);
    be->attention_decode(c, q.view(), *one, a.view(), nullptr);
    be->attention_decode(c, q.view(), *many, b.view(), nullptr);
    EXPECT_TRUE(same_bytes(a, b)) << cs.knobs;
  }
}

TEST(ReferenceDecode, FractionalStepAndTokenScalesLowerTheError) {
  auto be = make_reference_backend();
  const int64_t L = 256, D = 64;
  const QkvInputs in = make_inputs({1, 4, 2, L, D}, InputKind::kOutlierChannel, 33);
  auto error_of = [&](const std::string& knobs) {
    const AttentionConfig c = parse_attention_config(knobs);
    double num = 0, den = 0;
    for (int64_t len = L - 31; len <= L; ++len) {
      auto cache = be->create_cache({c, 1, 2, D, {}});
      be->cache_append(*cache, slice_tokens(in.k, 0, len).view(),
                       slice_tokens(in.v, 0, len).view());
      const HostTensor<Half> q = slice_tokens(in.q, len - 1, len);
      HostTensor<Half> o = poisoned_like(q);
      be->attention_decode(c, q.view(), *cache, o.view(), nullptr);
      std::vector<double> gt(static_cast<size_t>(4 * D));
      attention_fp64_decode(q.view(), slice_tokens(in.k, 0, len).view(),
                            slice_tokens(in.v, 0, len).view(), 0.0f, gt.data());
      for (size_t i = 0; i < gt.size(); ++i) {
        const double e = half_to_float(o.storage[i]) - gt[i];
        num += e * e;
        den += gt[i] * gt[i];
      }
    }
    return std::sqrt(num / den);
  };
  for (const char* bits : {"kv_bits=4,exp_mode=exact", "kv_bits=2,exp_mode=exact"}) {
    const std::string b = bits;
    const double base = error_of(b);
    EXPECT_LT(error_of(b + ",s2_step=float"), base) << bits;
    EXPECT_LT(error_of(b + ",kv_scale=token"), base) << bits;
    EXPECT_LT(error_of(b + ",window=64"), base) << bits;
  }
}

TEST(ReferenceOps, CompressDecompressFollowStage2) {
  auto be = make_reference_backend();
  std::vector<int8_t> q(64 * 48);
  for (size_t i = 0; i < q.size(); ++i)
    q[i] = static_cast<int8_t>(static_cast<int>((i * 37 + 11) % 255) - 127);
  for (int frac : {0, 1})
    for (int bits : {4, 2})
      for (int axis : {0, 1}) {
        BlockLayout L{64, 48, bits, axis, 16};
        L.frac_step = frac;
        std::vector<uint8_t> block(static_cast<size_t>(L.bytes()), 0xAB);
        be->compress_block(q.data(), L, block.data());
        std::vector<int8_t> back(q.size(), 0);
        be->decompress_block(block.data(), L, back.data());
        for (int t = 0; t < 64; ++t)
          for (int c = 0; c < 48; ++c) {
            // recompute the group's range independently
            int lo = 127, hi = -127;
            for (int t2 = 0; t2 < 64; ++t2)
              for (int c2 = 0; c2 < 48; ++c2)
                if (L.group_of(t2, c2) == L.group_of(t, c)) {
                  lo = std::min<int>(lo, q[t2 * 48 + c2]);
                  hi = std::max<int>(hi, q[t2 * 48 + c2]);
                }
            const int levels = (1 << bits) - 1;
            if (frac) {  // round half up of the real (q - lo) L / r, then of lo + c r / L
              const int r = hi - lo, qv = q[t * 48 + c];
              const int code =
                  r == 0 ? 0 : static_cast<int>(std::floor((qv - lo) * levels / double(r) + 0.5));
              const int expect = lo + static_cast<int>(std::floor(code * r / double(levels) + 0.5));
              ASSERT_EQ(back[t * 48 + c], expect) << "frac bits " << bits << " axis " << axis;
              ASSERT_LE(std::abs(back[t * 48 + c] - qv), r / (2.0 * levels) + 0.5);
              continue;
            }
            const Stage2Params p = stage2_params(lo, hi, bits);
            const int8_t expect = stage2_dequant(stage2_code(q[t * 48 + c], p, bits), p);
            ASSERT_EQ(back[t * 48 + c], expect) << "bits " << bits << " axis " << axis;
            ASSERT_LE(std::abs(back[t * 48 + c] - q[t * 48 + c]), p.s2) << "bits " << bits;
            (void)levels;
          }
      }
}

TEST(ReferenceCalibration, PriorityAndBits) {
  const QkvInputs in = make_inputs({1, 4, 4, 64, 32}, InputKind::kGaussian, 15);
  HostTensor<Half> k = in.k;
  // head 2: 3x spread -> highest gap and std
  for (int64_t t = 0; t < 64; ++t)
    for (int64_t d = 0; d < 32; ++d) {
      Half& x = k.view().row(0, 2, t)[d];
      x = float_to_half(half_to_float(x) * 3.0f);
    }
  const auto prio = head_priorities(k.view(), in.v.view(), PrioTensors::kK, PrioMetric::kGapStd, 0);
  for (int h : {0, 1, 3}) EXPECT_GT(prio[2], prio[static_cast<size_t>(h)] * 4.0);
  const auto bits = assign_head_bits(prio, 0.5f);
  EXPECT_EQ(bits[2], 4);
  EXPECT_EQ(std::count(bits.begin(), bits.end(), 2), 2);
  EXPECT_EQ(assign_head_bits(prio, 0.0f), std::vector<int>(4, 4));
  EXPECT_EQ(assign_head_bits(prio, 1.0f), std::vector<int>(4, 2));
}

}  // namespace
}  // namespace ref
}  // namespace turbo

#include "datasets/llama_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "datasets/activations.h"
#include "datasets/model_path.h"
#include "reference/reference.h"

namespace turbo {
namespace data {
namespace {

const std::string kEval = std::string(TURBO_DATASETS_DIR) + "/data/smollm2_eval.h5";

// |got - exact| within one FP32 ulp of the exact value: `got` is the FP64 result of another
// summation order (relative difference ~1e-15), rounded once to FP32.
void expect_within_one_float_ulp(const std::vector<float>& got, const std::vector<double>& exact) {
  ASSERT_EQ(got.size(), exact.size());
  double norm = 0;
  int64_t equal = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = exact[i];
    const double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(e)) - 23);
    ASSERT_LE(std::fabs(got[i] - e), ulp) << "element " << i << ": " << got[i] << " vs " << e;
    norm += e * e;
    equal += got[i] == static_cast<float>(e);
  }
  EXPECT_GT(norm, 0.0);
  EXPECT_GT(static_cast<double>(equal) / static_cast<double>(got.size()), 0.99);
}

// exact_attention (Eigen, FP64) against the ground truth of reference/ on real activations.
TEST(ExactAttention, MatchesReferenceGroundTruthOnRealActivations) {
  const ActivationReader r(kEval);
  for (int layer : {0, 14, 29}) {
    const HostTensor<Half> q = r.read(layer, 'q', 0, 200), k = r.read(layer, 'k', 0, 200),
                           v = r.read(layer, 'v', 0, 200);
    std::vector<double> truth(static_cast<size_t>(q.numel()));
    ref::attention_fp64(q.view(), k.view(), v.view(), true, 0.0f, truth.data());
    std::vector<float> o(truth.size());
    exact_attention(q.view(), k.view(), v.view(), 0.0f, o.data());
    // o is token-major [n, Hq * D]; truth is [Hq, n, D].
    std::vector<float> o_hnd(o.size());
    for (int64_t h = 0; h < q.h; ++h)
      for (int64_t t = 0; t < q.n; ++t)
        for (int64_t c = 0; c < q.d; ++c)
          o_hnd[(h * q.n + t) * q.d + c] = o[(t * q.h + h) * q.d + c];
    SCOPED_TRACE("layer " + std::to_string(layer));
    expect_within_one_float_ulp(o_hnd, truth);
  }
}

// Chunked calls (decode) see the whole history: equal to the decode ground truth of reference/.
TEST(ExactAttention, ChunkedHookMatchesDecodeGroundTruth) {
  const ActivationReader r(kEval);
  const int layer = 7;
  ExactAttentionHook hook(30);
  int64_t pos = 0;
  for (int64_t len : {1, 16, 47, 64}) {
    const HostTensor<Half> q = r.read(layer, 'q', pos, pos + len),
                           k = r.read(layer, 'k', pos, pos + len),
                           v = r.read(layer, 'v', pos, pos + len);
    std::vector<float> o(static_cast<size_t>(q.numel()));
    hook.attend(layer, pos, 0, q, k, v, o.data());
    const HostTensor<Half> kall = r.read(layer, 'k', 0, pos + len),
                           vall = r.read(layer, 'v', 0, pos + len);
    std::vector<double> truth(o.size());
    ref::attention_fp64_decode(q.view(), kall.view(), vall.view(), 0.0f, truth.data());
    std::vector<float> o_hnd(o.size());
    for (int64_t h = 0; h < q.h; ++h)
      for (int64_t t = 0; t < q.n; ++t)
        for (int64_t c = 0; c < q.d; ++c)
          o_hnd[(h * q.n + t) * q.d + c] = o[(t * q.h + h) * q.d + c];
    SCOPED_TRACE("chunk at " + std::to_string(pos));
    expect_within_one_float_ulp(o_hnd, truth);
    pos += len;
  }
  EXPECT_THROW(hook.attend(layer, pos + 1, 0, r.read(layer, 'q', 0, 1), r.read(layer, 'k', 0, 1),
                           r.read(layer, 'v', 0, 1), std::vector<float>(576).data()),
               Error);  // a gap in the positions
}

// A sliding window (Gemma 3): the query at p sees keys (p - W, p] only. Checked per query against
// the decode ground truth of reference/ on exactly those keys, in one call and in chunks.
TEST(ExactAttention, SlidingWindowSeesOnlyTheLastWindowKeys) {
  const ActivationReader r(kEval);
  const int layer = 3;
  const int64_t n = 96, window = 32;
  const HostTensor<Half> q = r.read(layer, 'q', 0, n), k = r.read(layer, 'k', 0, n),
                         v = r.read(layer, 'v', 0, n);
  const int64_t H = q.h, D = q.d;
  std::vector<float> whole(static_cast<size_t>(q.numel())), chunked(whole.size());
  ExactAttentionHook a(30), b(30);
  a.attend(layer, 0, window, q, k, v, whole.data());
  for (int64_t p0 = 0; p0 < n; p0 += 24)  // chunks that straddle the window's edge
    b.attend(layer, p0, window, r.read(layer, 'q', p0, p0 + 24), r.read(layer, 'k', p0, p0 + 24),
             r.read(layer, 'v', p0, p0 + 24), chunked.data() + p0 * H * D);
  EXPECT_EQ(whole, chunked);
  for (int64_t p : {0L, 17L, 31L, 32L, 50L, 95L}) {
    const int64_t k0 = std::max<int64_t>(0, p - window + 1);
    const HostTensor<Half> qp = r.read(layer, 'q', p, p + 1), kw = r.read(layer, 'k', k0, p + 1),
                           vw = r.read(layer, 'v', k0, p + 1);
    std::vector<double> truth(static_cast<size_t>(H * D));
    ref::attention_fp64_decode(qp.view(), kw.view(), vw.view(), 0.0f, truth.data());
    SCOPED_TRACE("query " + std::to_string(p));
    expect_within_one_float_ulp(
        std::vector<float>(whole.begin() + p * H * D, whole.begin() + (p + 1) * H * D), truth);
  }
  // The window binds from query 32 on: the result is not full causal attention.
  std::vector<float> full(whole.size());
  ExactAttentionHook c(30);
  c.attend(layer, 0, 0, q, k, v, full.data());
  EXPECT_TRUE(std::equal(full.begin(), full.begin() + window * H * D, whole.begin()));
  EXPECT_FALSE(
      std::equal(full.begin() + window * H * D, full.end(), whole.begin() + window * H * D));
}

// The backend hooks cannot drop keys: a window that binds is an error naming layer and window; one
// that does not bind (context <= window) runs as full causal attention.
TEST(AttentionHooks, BackendsRefuseABindingWindow) {
  const ActivationReader r(kEval);
  const HostTensor<Half> q = r.read(2, 'q', 0, 40), k = r.read(2, 'k', 0, 40),
                         v = r.read(2, 'v', 0, 40);
  std::vector<float> o(static_cast<size_t>(q.numel()));
  ref::register_reference_backend();
  std::unique_ptr<Backend> backend = make_backend("ref");
  AttentionConfig cfg;
  BackendPrefillHook prefill(*backend, cfg, 30, 9);
  BackendDecodeHook decode(*backend, cfg, 30, 9, 3, 64);
  for (AttentionHook* h : std::vector<AttentionHook*>{&prefill, &decode}) {
    try {
      h->attend(2, 0, 32, q, k, v, o.data());
      FAIL() << "expected an error";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("layer 2 attends over a sliding window of 32 keys"), std::string::npos) << m;
    }
  }
  BackendPrefillHook fits(*backend, cfg, 30, 9);
  EXPECT_NO_THROW(fits.attend(2, 0, 40, q, k, v, o.data()));
}

TEST(AttentionHooks, RejectNonFiniteNamingLayerAndHead) {
  const ActivationReader r(kEval);
  HostTensor<Half> q = r.read(4, 'q', 0, 8), k = r.read(4, 'k', 0, 8), v = r.read(4, 'v', 0, 8);
  k.view().row(0, 2, 5)[7] = to_half(INFINITY);
  std::vector<float> o(static_cast<size_t>(q.numel()));
  ExactAttentionHook exact(30);
  ref::register_reference_backend();
  std::unique_ptr<Backend> backend = make_backend("ref");
  AttentionConfig cfg;
  BackendPrefillHook prefill(*backend, cfg, 30, 9);
  BackendDecodeHook decode(*backend, cfg, 30, 9, 3, 64);
  for (AttentionHook* h : std::vector<AttentionHook*>{&exact, &prefill, &decode}) {
    try {
      h->attend(4, 0, 0, q, k, v, o.data());
      FAIL() << "expected an error";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("K (layer 4)"), std::string::npos) << m;
      EXPECT_NE(m.find("head 2"), std::string::npos) << m;
    }
  }
}

class ModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = std::make_unique<LlamaModel>(default_model_path()); }
  static void TearDownTestSuite() { model_.reset(); }
  static std::unique_ptr<LlamaModel> model_;
};
std::unique_ptr<LlamaModel> ModelTest::model_;

TEST_F(ModelTest, ConfigFromMetadata) {
  const LlamaConfig& c = model_->config();
  EXPECT_EQ(c.n_layers, 30);
  EXPECT_EQ(c.n_heads, 9);
  EXPECT_EQ(c.n_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.d_ff, 1536);
  EXPECT_EQ(c.vocab, 49152);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_EQ(model_->sha256(), kDefaultModelSha256);
}

// The forward's Q/K/V of the embedded window are the stored ones, bit for bit (the file was made
// by this forward; see CaptureTest for the whole-file reproduction).
TEST_F(ModelTest, ForwardReproducesEmbeddedActivations) {
  const ActivationReader r(kEval);
  const std::vector<int32_t> tokens = r.tokens();
  struct Check : AttentionHook {
    const ActivationReader& r;
    ExactAttentionHook exact{30};
    int64_t checked = 0;
    explicit Check(const ActivationReader& rr) : r(rr) {}
    void attend(int layer, int64_t pos0, int64_t window, const HostTensor<Half>& q,
                const HostTensor<Half>& k, const HostTensor<Half>& v, float* o) override {
      const HostTensor<Half>* mine[3] = {&q, &k, &v};
      const char names[3] = {'q', 'k', 'v'};
      for (int i = 0; i < 3; ++i) {
        const HostTensor<Half> stored = r.read(layer, names[i]);
        for (size_t e = 0; e < stored.storage.size(); ++e)
          ASSERT_EQ(mine[i]->storage[e].bits, stored.storage[e].bits)
              << names[i] << " layer " << layer << " element " << e;
        checked += static_cast<int64_t>(stored.storage.size());
      }
      exact.attend(layer, pos0, window, q, k, v, o);
    }
  } check(r);
  model_->forward(tokens.data(), static_cast<int64_t>(tokens.size()), 0, check, nullptr);
  EXPECT_EQ(check.checked, 30LL * (9 + 3 + 3) * 512 * 64);
}

TEST_F(ModelTest, ForwardIsDeterministicAndThreadCountIndependent) {
  const ActivationReader r(kEval);
  std::vector<int32_t> tokens = r.tokens();
  tokens.resize(48);
  std::vector<float> a, b;
  {
    ExactAttentionHook h(30);
    model_->forward(tokens.data(), 48, 0, h, &a);
  }
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
  omp_set_num_threads(threads == 1 ? 3 : 1);
#endif
  {
    ExactAttentionHook h(30);
    model_->forward(tokens.data(), 48, 0, h, &b);
  }
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
  ASSERT_EQ(a.size(), 48u * 49152u);
  EXPECT_TRUE(a == b);
}

// Teacher-forced chunks give the logits of one whole-window pass, up to FP32 matmul blocking.
TEST_F(ModelTest, ChunkedForwardMatchesWholeWindow) {
  const ActivationReader r(kEval);
  std::vector<int32_t> tokens = r.tokens();
  tokens.resize(40);
  std::vector<float> whole, part, chunked;
  ExactAttentionHook h1(30), h2(30);
  model_->forward(tokens.data(), 40, 0, h1, &whole, -1, 8);  // rows 8..39
  for (int64_t p0 = 0; p0 < 40; p0 += 16) {
    const int64_t n = std::min<int64_t>(16, 40 - p0);
    model_->forward(tokens.data() + p0, n, p0, h2, &part, -1, std::max<int64_t>(0, 8 - p0));
    chunked.insert(chunked.end(), part.begin(), part.end());
  }
  ASSERT_EQ(whole.size(), chunked.size());
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < whole.size(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(whole[i] - chunked[i])));
    max_abs = std::max(max_abs, static_cast<double>(std::fabs(whole[i])));
  }
  EXPECT_GT(max_abs, 1.0);
  EXPECT_LT(max_diff, 1e-3 * max_abs);
}

TEST_F(ModelTest, RejectsBadTokens) {
  ExactAttentionHook h(30);
  const int32_t bad[2] = {5, 49152};
  std::vector<float> logits;
  EXPECT_THROW(model_->forward(bad, 2, 0, h, &logits), Error);
}

TEST(LlamaModelErrors, NonLlamaOrCorruptFiles) {
  EXPECT_THROW(LlamaModel("/nonexistent.gguf"), Error);
  const std::string junk = ::testing::TempDir() + "/junk.gguf";
  FILE* f = std::fopen(junk.c_str(), "wb");
  std::fputs("GGUF but not really", f);
  std::fclose(f);
  EXPECT_THROW(LlamaModel m(junk), Error);
}

}  // namespace
}  // namespace data
}  // namespace turbo

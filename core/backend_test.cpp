// The Backend front (core/backend.h): every public entry point checks its input once and calls
// the backend's implementation only with checked input. A recording backend counts the calls
// that reach it: a bad input must raise turbo::Error naming the problem and reach no
// implementation; a good one must reach exactly one.
#include "core/backend.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

namespace turbo {
namespace {

class Cache final : public KvCache {
 public:
  explicit Cache(const KvCacheSpec& s) : spec_(s) {}
  const KvCacheSpec& spec() const override { return spec_; }
  int64_t length() const override { return length_; }
  KvBytes bytes() const override { return {}; }
  KvCacheSpec spec_;
  int64_t length_ = 0;
};

// Declines splits > 4, to show that supports() adds a backend's limits to validate().
class Recording final : public Backend {
 public:
  std::string name() const override { return "recording"; }
  int calls = 0;

 private:
  Status supports_impl(const AttentionConfig& c) const override {
    return c.splits > 4 ? Status::Fail("recording runs splits <= 4") : Status::Ok();
  }
  void quantize_stage1_impl(const Half*, int64_t, int, int64_t, int8_t*, float*) override {
    ++calls;
  }
  void compress_block_impl(const int8_t*, const BlockLayout&, uint8_t*) override { ++calls; }
  void decompress_block_impl(const uint8_t*, const BlockLayout&, int8_t*) override { ++calls; }
  void quantize_asym_impl(const Half*, int64_t, int, int, ScaleStorage, uint8_t*, float*,
                          float*) override {
    ++calls;
  }
  void sas_impl(const Half*, int64_t, const SasConfig&, float*) override { ++calls; }
  void attention_prefill_impl(const AttentionConfig&, const ConstHalfTensor&,
                              const ConstHalfTensor&, const ConstHalfTensor&, const HalfTensor&,
                              AttentionStats*) override {
    ++calls;
  }
  std::unique_ptr<KvCache> create_cache_impl(const KvCacheSpec& spec) override {
    ++calls;
    return std::make_unique<Cache>(spec);
  }
  void cache_append_impl(KvCache& cache, const ConstHalfTensor& k,
                         const ConstHalfTensor&) override {
    ++calls;
    static_cast<Cache&>(cache).length_ += k.tokens();
  }
  void attention_decode_impl(const AttentionConfig&, const ConstHalfTensor&, const KvCache&,
                             const HalfTensor&, AttentionStats*) override {
    ++calls;
  }
};

using Tensor = HostTensor<Half>;
constexpr Half kInf{0x7c00};
constexpr Half kNan{0x7e00};

// The error text of f ("" when it does not throw) and whether it reached an implementation.
struct Outcome {
  std::string error;
  int calls = 0;
};
Outcome run(Recording& be, const std::function<void()>& f) {
  const int before = be.calls;
  Outcome r;
  try {
    f();
  } catch (const Error& e) {
    r.error = e.what();
  }
  r.calls = be.calls - before;
  return r;
}

// Rejected with a message holding `fragment`, before any implementation ran.
void expect_rejected(const Outcome& r, const std::string& fragment) {
  EXPECT_NE(r.error.find(fragment), std::string::npos) << "error: '" << r.error << "'";
  EXPECT_EQ(r.calls, 0) << fragment;
}
void expect_accepted(const Outcome& r) {
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.calls, 1);
}

TEST(BackendFront, SupportsIsValidateThenTheBackendsLimits) {
  Recording be;
  AttentionConfig c;
  EXPECT_TRUE(be.supports(c).ok);
  c.splits = 0;
  EXPECT_NE(be.supports(c).message.find("splits must be >= 1"), std::string::npos);
  c.splits = 5;
  EXPECT_EQ(be.supports(c).message, "recording runs splits <= 4");
}

TEST(BackendFront, QuantizersCheckShapesAndFiniteness) {
  Recording be;
  std::vector<Half> x(4 * 16, Half{0x3c00});
  std::vector<int8_t> codes(x.size());
  std::vector<uint8_t> ucodes(x.size());
  std::vector<float> s(4), z(4);
  expect_accepted(run(be, [&] { be.quantize_stage1(x.data(), 4, 16, 2, codes.data(), s.data()); }));
  expect_rejected(run(be, [&] { be.quantize_stage1(x.data(), 4, 16, 0, codes.data(), s.data()); }),
                  "bad shape");
  expect_accepted(run(be, [&] {
    be.quantize_asym(x.data(), 4, 16, 4, ScaleStorage::kFp16, ucodes.data(), s.data(), z.data());
  }));
  expect_rejected(run(be,
                      [&] {
                        be.quantize_asym(x.data(), 4, 16, 9, ScaleStorage::kFp16, ucodes.data(),
                                         s.data(), z.data());
                      }),
                  "bits must be in [1, 8]");
  x[37] = kNan;
  expect_rejected(run(be, [&] { be.quantize_stage1(x.data(), 4, 16, 2, codes.data(), s.data()); }),
                  "non-finite value in quantize_stage1 input at row 2, channel 5");
  expect_rejected(run(be,
                      [&] {
                        be.quantize_asym(x.data(), 4, 16, 4, ScaleStorage::kFp16, ucodes.data(),
                                         s.data(), z.data());
                      }),
                  "group 2, element 5");

  BlockLayout L{64, 64, 4, 0, 32};
  std::vector<uint8_t> block(static_cast<size_t>(L.bytes()));
  std::vector<int8_t> q(static_cast<size_t>(L.elements()));
  expect_accepted(run(be, [&] { be.compress_block(q.data(), L, block.data()); }));
  L.bits = 3;
  expect_rejected(run(be, [&] { be.compress_block(q.data(), L, block.data()); }),
                  "block bits must be 8, 4 or 2");
  expect_rejected(run(be, [&] { be.decompress_block(block.data(), L, q.data()); }),
                  "block bits must be 8, 4 or 2");

  std::vector<Half> d = {Half{0x0000}, Half{0x4000}};
  std::vector<float> out(2);
  SasConfig sc;
  expect_accepted(run(be, [&] { be.sas(d.data(), 2, sc, out.data()); }));
  sc.n_r = 0;
  expect_rejected(run(be, [&] { be.sas(d.data(), 2, sc, out.data()); }), "n_r must be in [1, 15]");
  sc.n_r = 6;
  d[1] = Half{0xc000};  // -2
  expect_rejected(run(be, [&] { be.sas(d.data(), 2, sc, out.data()); }), "SAS input must be >= 0");
}

TEST(BackendFront, PrefillChecksConfigShapesAndFiniteness) {
  Recording be;
  AttentionConfig c;
  Tensor q(1, 4, 8, 64), k(1, 2, 8, 64), v(1, 2, 8, 64), o(1, 4, 8, 64);
  auto prefill = [&](const AttentionConfig& cfg, const Tensor& kk) {
    return run(
        be, [&] { be.attention_prefill(cfg, q.view(), kk.view(), v.view(), o.view(), nullptr); });
  };
  expect_accepted(prefill(c, k));
  AttentionConfig bad = c;
  bad.splits = 5;
  expect_rejected(prefill(bad, k), "recording runs splits <= 4");
  bad = c;
  bad.sas.n_r = 16;
  expect_rejected(prefill(bad, k), "n_r must be in [1, 15]");
  Tensor k7(1, 2, 7, 64), v7(1, 2, 7, 64);
  expect_rejected(
      run(be, [&] { be.attention_prefill(c, q.view(), k7.view(), v7.view(), o.view(), nullptr); }),
      "prefill needs as many query rows as keys (Q 8, K 7)");
  Tensor k3(1, 3, 8, 64), v3(1, 3, 8, 64);
  expect_rejected(
      run(be, [&] { be.attention_prefill(c, q.view(), k3.view(), v3.view(), o.view(), nullptr); }),
      "query heads (4) must be a multiple of kv heads (3)");
  k.storage[k.storage.size() - 1] = kInf;
  expect_rejected(prefill(c, k), "non-finite value in K at batch 0, head 1, token 7, channel 63");
}

TEST(BackendFront, CacheAppendAndDecodeAreChecked) {
  Recording be;
  AttentionConfig c;
  KvCacheSpec spec{c, 1, 2, 64, {}};
  for (const auto& bad : {KvCacheSpec{c, 0, 2, 64, {}}, KvCacheSpec{c, 1, 2, 72, {}},
                          KvCacheSpec{c, 1, 2, 64, {4}}, KvCacheSpec{c, 1, 2, 64, {4, 3}}}) {
    const Outcome r = run(be, [&] { be.create_cache(bad); });
    EXPECT_NE(r.error, "");
    EXPECT_EQ(r.calls, 0);
  }
  expect_rejected(run(be,
                      [&] {
                        be.create_cache({c, 1, 2, 64, {4}});
                      }),
                  "head_bits has 1 entries for 2 kv heads");
  AttentionConfig split5 = c;
  split5.splits = 5;
  expect_rejected(run(be,
                      [&] {
                        be.create_cache({split5, 1, 2, 64, {}});
                      }),
                  "recording runs splits <= 4");
  std::unique_ptr<KvCache> cache;
  expect_accepted(run(be, [&] { cache = be.create_cache(spec); }));

  Tensor k(1, 2, 5, 64), v(1, 2, 5, 64), k1(1, 1, 5, 64);
  expect_accepted(run(be, [&] { be.cache_append(*cache, k.view(), v.view()); }));
  expect_rejected(run(be, [&] { be.cache_append(*cache, k1.view(), v.view()); }),
                  "the cache expects [1, 2, t, 64]");
  expect_rejected(run(be, [&] { be.cache_append(*cache, k.view(), k1.view()); }),
                  "V rows must have K's shape");
  v.storage[64] = kNan;
  expect_rejected(run(be, [&] { be.cache_append(*cache, k.view(), v.view()); }),
                  "non-finite value in V (cache append) at batch 0, head 0, token 1, channel 0");
  ASSERT_EQ(cache->length(), 5);

  Tensor q(1, 4, 2, 64), o(1, 4, 2, 64), q6(1, 4, 6, 64), o6(1, 4, 6, 64), q3(1, 3, 2, 64),
      o3(1, 3, 2, 64);
  auto decode = [&](const AttentionConfig& cfg, const Tensor& qq, Tensor& oo) {
    return run(be, [&] { be.attention_decode(cfg, qq.view(), *cache, oo.view(), nullptr); });
  };
  expect_accepted(decode(c, q, o));
  expect_rejected(decode(c, q6, o6), "q_len 6 must be in [1, cache length 5]");
  expect_rejected(decode(c, q3, o3), "query heads (3) must be a multiple of kv heads (2)");
  expect_rejected(decode(c, q, o6), "output shape must equal Q's shape");
  AttentionConfig kivi = c;
  kivi.method = Method::kKivi;
  expect_rejected(decode(kivi, q, o), "decode with method 'kivi' over a cache built for 'flashq'");
  q.storage[3] = kInf;
  expect_rejected(decode(c, q, o), "non-finite value in Q (decode)");
}

}  // namespace
}  // namespace turbo

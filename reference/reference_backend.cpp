// The "ref" backend: dispatches each Backend op to the reference implementations.
#include <mutex>

#include "core/kv_cache.h"
#include "reference/baselines.h"
#include "reference/flashq.h"
#include "reference/reference.h"

namespace turbo {
namespace ref {
namespace {

// Cache of the FP16 floor: keeps the FP16 rows themselves.
class Fp16Cache final : public KvCache {
 public:
  explicit Fp16Cache(const KvCacheSpec& s)
      : spec_(s), k_(s.batch * s.kv_heads), v_(s.batch * s.kv_heads) {}
  const KvCacheSpec& spec() const override { return spec_; }
  int64_t length() const override { return length_; }
  KvBytes bytes() const override {
    KvBytes r;
    r.buffer = 2 * 2 * length_ * spec_.head_dim * spec_.batch * spec_.kv_heads;
    r.tokens = length_ * spec_.batch * spec_.kv_heads;
    return r;
  }
  KvCacheSpec spec_;
  std::vector<std::vector<Half>> k_, v_;
  int64_t length_ = 0;
};

class ReferenceBackend final : public Backend {
 public:
  std::string name() const override { return "ref"; }

 private:
  Status supports_impl(const AttentionConfig&) const override { return Status::Ok(); }

  void quantize_stage1_impl(const Half* x, int64_t n, int d, int64_t group_rows, int8_t* codes,
                            float* scales) override {
    std::vector<float> rows(static_cast<size_t>(n * d));
    for (int64_t i = 0; i < n * d; ++i) rows[static_cast<size_t>(i)] = half_to_float(x[i]);
    stage1_rows(rows.data(), n, d, group_rows, codes, scales);
  }

  void compress_block_impl(const int8_t* q, const BlockLayout& layout, uint8_t* block) override {
    compress_block_ref(q, layout, block);
  }

  void decompress_block_impl(const uint8_t* block, const BlockLayout& layout, int8_t* q) override {
    decompress_block_ref(block, layout, q);
  }

  void quantize_asym_impl(const Half* x, int64_t n_groups, int group_len, int bits,
                          ScaleStorage storage, uint8_t* codes, float* scales,
                          float* zeros) override {
    for (int64_t g = 0; g < n_groups; ++g) {
      const Half* xg = x + g * group_len;
      float mn = INFINITY, mx = -INFINITY;
      for (int i = 0; i < group_len; ++i) {
        const float e = half_to_float(xg[i]);
        mn = minf(mn, e);
        mx = maxf(mx, e);
      }
      const AsymParams p = asym_params(mn, mx, bits, storage);
      scales[g] = p.scale;
      zeros[g] = p.zero;
      for (int i = 0; i < group_len; ++i)
        codes[g * group_len + i] = asym_code(half_to_float(xg[i]), p, bits);
    }
  }

  void sas_impl(const Half* x, int64_t n, const SasConfig& config, float* out) override {
    const SasParams p = config.params();
    for (int64_t i = 0; i < n; ++i) out[i] = sas_eval(half_to_float(x[i]), p);
  }

  void attention_prefill_impl(const AttentionConfig& config, const ConstHalfTensor& q,
                              const ConstHalfTensor& k, const ConstHalfTensor& v,
                              const HalfTensor& o, AttentionStats* stats) override {
    switch (config.method) {
      case Method::kFlashQ:
        flashq_prefill(config, q, k, v, o, stats);
        return;
      case Method::kFp16:
        attention_fp16_floor(q, k, v, config.causal, config.tau, o);
        count_dense(q, k.tokens(), config.causal, stats);
        return;
      default:
        baseline_prefill(config, q, k, v, o, stats);
    }
  }

  std::unique_ptr<KvCache> create_cache_impl(const KvCacheSpec& spec) override {
    switch (spec.config.method) {
      case Method::kFlashQ:
        return flashq_create_cache(spec);
      case Method::kFp16:
        return std::make_unique<Fp16Cache>(spec);
      default:
        return baseline_create_cache(spec);
    }
  }

  void cache_append_impl(KvCache& cache, const ConstHalfTensor& k,
                         const ConstHalfTensor& v) override {
    switch (cache.spec().config.method) {
      case Method::kFlashQ:
        flashq_cache_append(cache, k, v);
        return;
      case Method::kFp16: {
        auto& c = dynamic_cast<Fp16Cache&>(cache);
        for (int64_t i = 0; i < k.batch() * k.heads(); ++i)
          for (int64_t t = 0; t < k.tokens(); ++t) {
            const Half* kr = k.row(i / k.heads(), i % k.heads(), t);
            const Half* vr = v.row(i / k.heads(), i % k.heads(), t);
            c.k_[static_cast<size_t>(i)].insert(c.k_[static_cast<size_t>(i)].end(), kr,
                                                kr + k.dim());
            c.v_[static_cast<size_t>(i)].insert(c.v_[static_cast<size_t>(i)].end(), vr,
                                                vr + k.dim());
          }
        c.length_ += k.tokens();
        return;
      }
      default:
        baseline_cache_append(cache, k, v);
    }
  }

  void attention_decode_impl(const AttentionConfig& config, const ConstHalfTensor& q,
                             const KvCache& cache, const HalfTensor& o,
                             AttentionStats* stats) override {
    switch (config.method) {
      case Method::kFlashQ:
        flashq_decode(config, q, cache, o, stats);
        return;
      case Method::kFp16: {
        const auto& c = dynamic_cast<const Fp16Cache&>(cache);
        const int64_t B = c.spec_.batch, H = c.spec_.kv_heads, L = c.length_, D = c.spec_.head_dim;
        std::vector<Half> kk(static_cast<size_t>(B * H * L * D)), vv(kk.size());
        for (int64_t i = 0; i < B * H; ++i) {
          std::copy(c.k_[static_cast<size_t>(i)].begin(), c.k_[static_cast<size_t>(i)].end(),
                    kk.begin() + i * L * D);
          std::copy(c.v_[static_cast<size_t>(i)].begin(), c.v_[static_cast<size_t>(i)].end(),
                    vv.begin() + i * L * D);
        }
        const auto kt = ConstHalfTensor::contiguous(kk.data(), B, H, L, D);
        const auto vt = ConstHalfTensor::contiguous(vv.data(), B, H, L, D);
        attention_fp16_floor(q, kt, vt, true, config.tau, o);
        count_dense(q, L, true, stats);
        return;
      }
      default:
        baseline_decode(config, q, cache, o, stats);
    }
  }

  // Dense methods zero nothing: rows and scored entries only.
  static void count_dense(const ConstHalfTensor& q, int64_t n_keys, bool causal,
                          AttentionStats* stats) {
    if (!stats) return;
    const int64_t N = q.tokens();
    for (int64_t bh = 0; bh < q.batch() * q.heads(); ++bh)
      for (int64_t i = 0; i < N; ++i) {
        stats[bh].rows += 1;
        stats[bh].scored += causal ? n_keys - N + i + 1 : n_keys;
      }
  }
};

}  // namespace

std::unique_ptr<Backend> make_reference_backend() { return std::make_unique<ReferenceBackend>(); }

void register_reference_backend() {
  static std::once_flag once;
  std::call_once(once, [] { register_backend("ref", [] { return make_reference_backend(); }); });
}

}  // namespace ref
}  // namespace turbo

// The "ref" backend: dispatches each Backend op to the reference implementations.
#include <mutex>

#include "core/kv_cache.h"
#include "reference/baselines.h"
#include "reference/flashq.h"
#include "reference/reference.h"

namespace turbo {
namespace ref {
namespace {

// How the reference runs each method of the method table (core/method.h), in Method order: the
// stream one kv head of its cache keeps (reference/kv_cache.h), prefill, and decode over a cache.
struct RefMethod {
  Method method;
  std::unique_ptr<KvStream> (*make_stream)(const KvCacheSpec& spec, int bits);
  void (*prefill)(const AttentionConfig& config, const ConstHalfTensor& q, const ConstHalfTensor& k,
                  const ConstHalfTensor& v, const HalfTensor& o, AttentionStats* stats);
  void (*decode)(const AttentionConfig& config, const ConstHalfTensor& q, const KvCache& cache,
                 const HalfTensor& o, AttentionStats* stats);
};

const RefMethod& ref_method(Method m) {
  static const RefMethod kRows[] = {
      {Method::kFlashQ, flashq_make_stream, flashq_prefill, flashq_decode},
      {Method::kFp16, baseline_make_stream, baseline_prefill, baseline_decode},
      {Method::kKivi, baseline_make_stream, baseline_prefill, baseline_decode},
      {Method::kInt8Kv, baseline_make_stream, baseline_prefill, baseline_decode},
      {Method::kSage, baseline_make_stream, baseline_prefill, baseline_decode},
      {Method::kFp8, baseline_make_stream, baseline_prefill, baseline_decode},
  };
  const size_t i = static_cast<size_t>(m);
  TURBO_CHECK(i < sizeof(kRows) / sizeof(kRows[0]) && kRows[i].method == m,
              "the ref backend has no implementation of method '" << enum_name(m) << "'");
  return kRows[i];
}

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
    ref_method(config.method).prefill(config, q, k, v, o, stats);
  }

  std::unique_ptr<KvCache> create_cache_impl(const KvCacheSpec& spec) override {
    return std::make_unique<RefKvCache>(spec, ref_method(spec.config.method).make_stream);
  }

  void cache_append_impl(KvCache& cache, const ConstHalfTensor& k,
                         const ConstHalfTensor& v) override {
    as_ref_cache(cache).append(k, v);
  }

  void attention_decode_impl(const AttentionConfig& config, const ConstHalfTensor& q,
                             const KvCache& cache, const HalfTensor& o,
                             AttentionStats* stats) override {
    ref_method(config.method).decode(config, q, cache, o, stats);
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

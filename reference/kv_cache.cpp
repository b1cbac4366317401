// The reference KV cache (reference/kv_cache.h).
#include "reference/kv_cache.h"

namespace turbo {
namespace ref {

RefKvCache::RefKvCache(const KvCacheSpec& spec, const StreamFactory& make_stream) : spec_(spec) {
  for (int h = 0; h < spec.kv_heads; ++h)
    bits_.push_back(method_stored_bits(spec.config, spec.head_bits, h));
  for (int64_t i = 0; i < static_cast<int64_t>(spec.batch) * spec.kv_heads; ++i)
    streams_.push_back(make_stream(spec, bits_[static_cast<size_t>(i % spec.kv_heads)]));
}

KvBytes RefKvCache::bytes() const {
  KvBytes total;
  for (const auto& s : streams_) total += s->bytes();
  return total;
}

void RefKvCache::append(const ConstHalfTensor& k, const ConstHalfTensor& v) {
  const int64_t n = static_cast<int64_t>(streams_.size());
#pragma omp parallel for schedule(dynamic) if (n > 1)
  for (int64_t i = 0; i < n; ++i)
    streams_[static_cast<size_t>(i)]->append(k, v, i / spec_.kv_heads, i % spec_.kv_heads);
  length_ += k.tokens();
}

const RefKvCache& as_ref_cache(const KvCache& cache) {
  const auto* c = dynamic_cast<const RefKvCache*>(&cache);
  TURBO_CHECK(c != nullptr, "this KV cache was not created by the ref backend (method '"
                                << enum_name(cache.spec().config.method) << "')");
  return *c;
}

RefKvCache& as_ref_cache(KvCache& cache) {
  return const_cast<RefKvCache&>(as_ref_cache(static_cast<const KvCache&>(cache)));
}

}  // namespace ref
}  // namespace turbo

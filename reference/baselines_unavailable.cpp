// Temporary: linked only while reference/baselines.cpp does not exist yet.
#include "reference/baselines.h"

namespace turbo {
namespace ref {
bool is_baseline(Method m) { return m == Method::kKivi || m == Method::kInt8Kv || m == Method::kSage || m == Method::kFp8; }
void baseline_prefill(const AttentionConfig& c, const ConstHalfTensor&, const ConstHalfTensor&, const ConstHalfTensor&, const HalfTensor&, AttentionStats*) {
  throw Error("method " + enum_name(c.method) + " is not built into this ref backend");
}
std::unique_ptr<KvCache> baseline_create_cache(const KvCacheSpec& s) {
  throw Error("method " + enum_name(s.config.method) + " is not built into this ref backend");
}
void baseline_cache_append(KvCache&, const ConstHalfTensor&, const ConstHalfTensor&) { throw Error("baselines not built"); }
void baseline_decode(const AttentionConfig&, const ConstHalfTensor&, const KvCache&, const HalfTensor&, AttentionStats*) { throw Error("baselines not built"); }
}  // namespace ref
}  // namespace turbo

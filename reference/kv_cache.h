// The reference's one KV-cache design, the same shape for FlashQ and every baseline (SPEC 6, 8).
//
// A cache of one layer is batch x kv_heads streams, one per (batch, kv head). A stream stores
// exactly what the method's cache stores (so bytes() counts real storage) and is a pure function
// of the FP16 rows appended to it, in any batching of appends (FlashQ with k_smooth = mean: of
// those rows and the mean fixed by its first append). The method's attention reads its own
// stream type back from the cache. What a kv head stores, at which bits, is asked of the cache
// (head_bits) and counted by it (bytes), never worked out elsewhere.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/backend.h"

namespace turbo {
namespace ref {

class KvStream {
 public:
  virtual ~KvStream() = default;
  // Appends the rows of (batch b, kv head h) of k, v [B, Hkv, t, D], in token order.
  virtual void append(const ConstHalfTensor& k, const ConstHalfTensor& v, int64_t b, int64_t h) = 0;
  // SPEC 8: bytes stored now; `tokens` is the stream's length.
  virtual KvBytes bytes() const = 0;
};

// Makes the stream of one kv head stored at `bits` (the cache's head_bits of that head).
using StreamFactory = std::function<std::unique_ptr<KvStream>(const KvCacheSpec&, int bits)>;

class RefKvCache final : public KvCache {
 public:
  // `spec` checked by the Backend front.
  RefKvCache(const KvCacheSpec& spec, const StreamFactory& make_stream);

  const KvCacheSpec& spec() const override { return spec_; }
  int64_t length() const override { return length_; }
  KvBytes bytes() const override;
  int head_bits(int kv_head) const override { return bits_.at(static_cast<size_t>(kv_head)); }

  // k, v [B, Hkv, t, D] checked by the Backend front; streams append in parallel.
  void append(const ConstHalfTensor& k, const ConstHalfTensor& v);

  // The stream of (b, h) as the method's own type (the cache's factory made it).
  template <typename S>
  const S& stream(int64_t b, int64_t h) const {
    return static_cast<const S&>(*streams_[static_cast<size_t>(b * spec_.kv_heads + h)]);
  }

 private:
  KvCacheSpec spec_;
  std::vector<int> bits_;
  std::vector<std::unique_ptr<KvStream>> streams_;
  int64_t length_ = 0;
};

// `cache` as a reference cache; an error names a cache some other backend made.
const RefKvCache& as_ref_cache(const KvCache& cache);
RefKvCache& as_ref_cache(KvCache& cache);

}  // namespace ref
}  // namespace turbo

// The one interface every backend implements ("ref" = reference/, "cuda" = cuda/), and the
// registry that maps names to backends, so that one harness drives them all.
//
// All pointers and tensor views are HOST memory; a device backend stages data itself. Shapes
// follow SPEC: Q [B, Hq, N, D], K/V [B, Hkv, N, D], Hq a multiple of Hkv (query head h reads kv
// head h / (Hq / Hkv)). Every method throws turbo::Error on bad input (non-finite values, shape
// mismatch, unsupported knob), naming the tensor and what is valid.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "core/kv_layout.h"
#include "core/method.h"
#include "core/tensor.h"

namespace turbo {

// Per (batch, query head) counters that an attention call may fill (pass nullptr to skip).
struct AttentionStats {
  int64_t rows = 0;         // query rows processed
  int64_t scored = 0;       // unmasked score entries
  int64_t zeroed = 0;       // entries SAS returned 0 for (x >= n_r), the sparsity
  double dropped_mass = 0;  // sum over rows of the probability mass of the zeroed entries,
                            // under the exact softmax (FP64) of the method's own scores S
  void merge(const AttentionStats& o) {
    rows += o.rows;
    scored += o.scored;
    zeroed += o.zeroed;
    dropped_mass += o.dropped_mass;
  }
  double sparsity() const { return scored ? static_cast<double>(zeroed) / scored : 0.0; }
  double mean_dropped_mass() const { return rows ? dropped_mass / rows : 0.0; }
};

// Bytes a KV cache stores (SPEC 8), counted from what is stored.
struct KvBytes {
  int64_t codes = 0;     // packed K/V codes
  int64_t metadata = 0;  // stage-2 s2/z, stage-1 scales, K mean, baseline scales/zeros
  int64_t buffer = 0;    // residual buffer rows
  int64_t tokens = 0;    // tokens held (summed over batch and kv heads: token-heads)
  int64_t total() const { return codes + metadata + buffer; }
};

struct KvCacheSpec {
  AttentionConfig config;
  int batch = 1;
  int kv_heads = 1;
  int head_dim = 64;
  std::vector<int> head_bits;  // per kv head: 8, 4 or 2; empty = from config.quant.kv_bits
};

// Opaque compressed KV cache of one layer: batch x kv_heads streams of equal length.
class KvCache {
 public:
  virtual ~KvCache() = default;
  virtual const KvCacheSpec& spec() const = 0;
  virtual int64_t length() const = 0;  // tokens per stream
  virtual KvBytes bytes() const = 0;
};

// Decode with `config` over `cache`: the cache's method; queries q [B, Hq, q_len, D] with the
// cache's batch and head_dim, Hq a multiple of its kv heads, q_len in [1, length]; o shaped as q.
inline void check_decode_shapes(const AttentionConfig& config, const KvCache& cache,
                                const ConstHalfTensor& q, const HalfTensor& o) {
  const KvCacheSpec& spec = cache.spec();
  TURBO_CHECK(config.method == spec.config.method,
              "decode with method '" << enum_name(config.method) << "' over a cache built for '"
                                     << enum_name(spec.config.method) << "'");
  TURBO_CHECK(q.batch() == spec.batch && q.dim() == spec.head_dim,
              "Q is [" << q.batch() << ", " << q.heads() << ", " << q.tokens() << ", " << q.dim()
                       << "]; the cache has batch " << spec.batch << ", head_dim "
                       << spec.head_dim);
  TURBO_CHECK(
      q.heads() > 0 && q.heads() % spec.kv_heads == 0,
      "query heads (" << q.heads() << ") must be a multiple of kv heads (" << spec.kv_heads << ")");
  TURBO_CHECK(o.batch() == q.batch() && o.heads() == q.heads() && o.tokens() == q.tokens() &&
                  o.dim() == q.dim(),
              "output shape must equal Q's shape");
  TURBO_CHECK(q.tokens() >= 1 && q.tokens() <= cache.length(),
              "q_len " << q.tokens() << " must be in [1, cache length " << cache.length() << "]");
}

// The checks every backend shares, written once: the Backend front below calls them before a
// backend's own implementation runs, and device entry points that take raw pointers (no finiteness
// check there) call the shape checks on views of their pointers.

// Prefill: Q [B, Hq, N, D], K/V [B, Hkv, N, D], O shaped as Q; Hq a multiple of Hkv; D a multiple
// of 16 in [16, 256].
inline void check_block_layout(const BlockLayout& L) {
  TURBO_CHECK(L.bits == 8 || L.bits == 4 || L.bits == 2,
              "block bits must be 8, 4 or 2, got " << L.bits);
  TURBO_CHECK(L.n_b >= 1 && L.d >= 1, "block shape must be positive");
  TURBO_CHECK(L.axis == 0 || (L.group_size >= 1 && L.d % L.group_size == 0),
              "group_size " << L.group_size << " must divide the channel count " << L.d);
}

inline void check_attention_shapes(const ConstHalfTensor& q, const ConstHalfTensor& k,
                                   const ConstHalfTensor& v, const HalfTensor& o) {
  TURBO_CHECK(q.dim() == k.dim() && k.dim() == v.dim(),
              "head_dim mismatch: Q " << q.dim() << ", K " << k.dim() << ", V " << v.dim());
  TURBO_CHECK(q.batch() == k.batch() && k.batch() == v.batch(), "batch mismatch between Q, K, V");
  TURBO_CHECK(k.heads() == v.heads() && k.tokens() == v.tokens(), "K and V shapes differ");
  TURBO_CHECK(
      k.heads() > 0 && q.heads() % k.heads() == 0,
      "query heads (" << q.heads() << ") must be a multiple of kv heads (" << k.heads() << ")");
  TURBO_CHECK(o.batch() == q.batch() && o.heads() == q.heads() && o.tokens() == q.tokens() &&
                  o.dim() == q.dim(),
              "output shape must equal Q's shape");
  TURBO_CHECK(q.dim() % 16 == 0 && q.dim() <= 256 && q.dim() > 0,
              "head_dim must be a multiple of 16 in [16, 256], got " << q.dim());
}

inline void check_prefill_shapes(const ConstHalfTensor& q, const ConstHalfTensor& k,
                                 const ConstHalfTensor& v, const HalfTensor& o) {
  check_attention_shapes(q, k, v, o);
  TURBO_CHECK(q.tokens() == k.tokens(), "prefill needs as many query rows as keys (Q "
                                            << q.tokens() << ", K " << k.tokens() << ")");
}

// A cache's shape: batch, kv heads, head_dim, and a per-kv-head bit map (one entry per kv head)
// exactly when the method takes one (the method table).
inline void check_cache_spec(const KvCacheSpec& spec) {
  TURBO_CHECK(spec.batch > 0 && spec.kv_heads > 0, "cache needs batch > 0 and kv_heads > 0");
  TURBO_CHECK(spec.head_dim > 0 && spec.head_dim % 16 == 0 && spec.head_dim <= 256,
              "head_dim must be a multiple of 16 in [16, 256], got " << spec.head_dim);
  TURBO_CHECK(
      spec.head_bits.empty() || static_cast<int>(spec.head_bits.size()) == spec.kv_heads,
      "head_bits has " << spec.head_bits.size() << " entries for " << spec.kv_heads << " kv heads");
  const Status s = method_supports_bit_map(spec.config, spec.head_bits);
  TURBO_CHECK(s.ok, s.message);
}

// Appended rows k, v [B, Hkv, t, D] against the cache's spec.
inline void check_append_shapes(const KvCacheSpec& spec, const ConstHalfTensor& k,
                                const ConstHalfTensor& v) {
  TURBO_CHECK(k.batch() == spec.batch && k.heads() == spec.kv_heads && k.dim() == spec.head_dim,
              "K rows have shape [" << k.batch() << ", " << k.heads() << ", " << k.tokens() << ", "
                                    << k.dim() << "], the cache expects [" << spec.batch << ", "
                                    << spec.kv_heads << ", t, " << spec.head_dim << "]");
  TURBO_CHECK(v.batch() == k.batch() && v.heads() == k.heads() && v.tokens() == k.tokens() &&
                  v.dim() == k.dim(),
              "V rows must have K's shape");
}

// Every backend derives from Backend and implements the protected *_impl functions. The public
// entry points are not virtual: each checks its input once (shapes, finiteness, the config and
// what this backend supports), then calls the implementation, so an implementation may assume
// valid input (as ggml-backend's public wrappers do before calling a buffer's interface).
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Whether this backend runs `config` (AttentionConfig::validate, the method table's limits,
  // then the backend's own); the message says why not.
  Status supports(const AttentionConfig& config) const {
    Status s = config.validate();
    if (s.ok) s = method_supports(config);
    return s.ok ? supports_impl(config) : s;
  }

  // SPEC 1. x [n, d] FP16 row-major, grouped by `group_rows` consecutive rows starting at row 0
  // (tile: Br or Bc, token: 1, head: n). codes [n, d]; scales [ceil(n / group_rows)].
  void quantize_stage1(const Half* x, int64_t n, int d, int64_t group_rows, int8_t* codes,
                       float* scales) {
    TURBO_CHECK(n >= 0 && d > 0 && group_rows >= 1, "quantize_stage1: bad shape (n "
                                                        << n << ", d " << d << ", group_rows "
                                                        << group_rows << ")");
    for (int64_t i = 0; i < n * d; ++i)
      TURBO_CHECK(is_finite_half(x[i]), "non-finite value in quantize_stage1 input at row "
                                            << i / d << ", channel " << i % d);
    quantize_stage1_impl(x, n, d, group_rows, codes, scales);
  }

  // SPEC 2 on one block: q [n_b, d] INT8 codes -> `layout.bytes()` bytes at `block` (codes,
  // s2, z; the stage-1 scale slot is left as is). layout.bits 8 copies the codes.
  void compress_block(const int8_t* q, const BlockLayout& layout, uint8_t* block) {
    check_block_layout(layout);
    compress_block_impl(q, layout, block);
  }
  // Inverse of compress_block: the dequantized INT8 codes q' [n_b, d].
  void decompress_block(const uint8_t* block, const BlockLayout& layout, int8_t* q) {
    check_block_layout(layout);
    decompress_block_impl(block, layout, q);
  }

  // SPEC 3 on `n_groups` contiguous groups of `group_len` FP16 values: codes [n_groups *
  // group_len] (one per byte), scales and zeros [n_groups] as stored (rounded per storage).
  void quantize_asym(const Half* x, int64_t n_groups, int group_len, int bits, ScaleStorage storage,
                     uint8_t* codes, float* scales, float* zeros) {
    TURBO_CHECK(bits >= 1 && bits <= 8, "quantize_asym: bits must be in [1, 8], got " << bits);
    TURBO_CHECK(group_len >= 1 && n_groups >= 0,
                "quantize_asym: group_len must be >= 1 and n_groups >= 0");
    for (int64_t i = 0; i < n_groups * group_len; ++i)
      TURBO_CHECK(is_finite_half(x[i]), "non-finite value in quantize_asym input, group "
                                            << i / group_len << ", element " << i % group_len);
    quantize_asym_impl(x, n_groups, group_len, bits, storage, codes, scales, zeros);
  }

  // SPEC 4: out[i] = SAS(x[i]) (or expf(-x) for exp_mode = exact). x holds FP16 values >= 0.
  void sas(const Half* x, int64_t n, const SasConfig& config, float* out) {
    TURBO_CHECK(config.n_r >= 1 && config.n_r < kMaxNr,
                "n_r must be in [1, " << kMaxNr - 1 << "], got " << config.n_r);
    for (int64_t i = 0; i < n; ++i) {
      const float v = half_to_float(x[i]);
      TURBO_CHECK(v >= 0.0f,
                  "SAS input must be >= 0 (a distance from the row max), got " << v << " at " << i);
    }
    sas_impl(x, n, config, out);
  }

  // Prefill attention over the whole window: o [B, Hq, N, D]. `stats`, when not null, has
  // B * Hq entries (index b * Hq + h) that are added to.
  void attention_prefill(const AttentionConfig& config, const ConstHalfTensor& q,
                         const ConstHalfTensor& k, const ConstHalfTensor& v, const HalfTensor& o,
                         AttentionStats* stats) {
    require(config);
    const Status s = method_supports(config, Phase::kPrefill);
    TURBO_CHECK(s.ok, s.message);
    check_prefill_shapes(q, k, v, o);
    check_finite(q, "Q");
    check_finite(k, "K");
    check_finite(v, "V");
    attention_prefill_impl(config, q, k, v, o, stats);
  }

  // A compressed KV cache for `spec` (SPEC 6), empty.
  std::unique_ptr<KvCache> create_cache(const KvCacheSpec& spec) {
    require(spec.config);
    check_cache_spec(spec);
    return create_cache_impl(spec);
  }
  // Appends t new tokens: k, v [B, Hkv, t, D]. Blocks compress as the buffer fills.
  void cache_append(KvCache& cache, const ConstHalfTensor& k, const ConstHalfTensor& v) {
    check_append_shapes(cache.spec(), k, v);
    check_finite(k, "K (cache append)");
    check_finite(v, "V (cache append)");
    cache_append_impl(cache, k, v);
  }
  // Decode attention: q [B, Hq, q_len, D] are the queries of the last q_len cached positions
  // (causal among themselves); o [B, Hq, q_len, D]. Split-K per config.splits.
  void attention_decode(const AttentionConfig& config, const ConstHalfTensor& q,
                        const KvCache& cache, const HalfTensor& o, AttentionStats* stats) {
    require(config);
    check_decode_shapes(config, cache, q, o);
    check_finite(q, "Q (decode)");
    attention_decode_impl(config, q, cache, o, stats);
  }

 protected:
  // What this backend adds to AttentionConfig::validate (for example methods it does not run).
  virtual Status supports_impl(const AttentionConfig& config) const = 0;
  // The implementations: called by the entry points above with checked input only.
  virtual void quantize_stage1_impl(const Half* x, int64_t n, int d, int64_t group_rows,
                                    int8_t* codes, float* scales) = 0;
  virtual void compress_block_impl(const int8_t* q, const BlockLayout& layout, uint8_t* block) = 0;
  virtual void decompress_block_impl(const uint8_t* block, const BlockLayout& layout,
                                     int8_t* q) = 0;
  virtual void quantize_asym_impl(const Half* x, int64_t n_groups, int group_len, int bits,
                                  ScaleStorage storage, uint8_t* codes, float* scales,
                                  float* zeros) = 0;
  virtual void sas_impl(const Half* x, int64_t n, const SasConfig& config, float* out) = 0;
  virtual void attention_prefill_impl(const AttentionConfig& config, const ConstHalfTensor& q,
                                      const ConstHalfTensor& k, const ConstHalfTensor& v,
                                      const HalfTensor& o, AttentionStats* stats) = 0;
  virtual std::unique_ptr<KvCache> create_cache_impl(const KvCacheSpec& spec) = 0;
  virtual void cache_append_impl(KvCache& cache, const ConstHalfTensor& k,
                                 const ConstHalfTensor& v) = 0;
  virtual void attention_decode_impl(const AttentionConfig& config, const ConstHalfTensor& q,
                                     const KvCache& cache, const HalfTensor& o,
                                     AttentionStats* stats) = 0;

 private:
  void require(const AttentionConfig& config) const {
    const Status s = supports(config);
    TURBO_CHECK(s.ok, s.message);
  }
};

// ---- registry ----------------------------------------------------------------------------------

using BackendFactory = std::function<std::unique_ptr<Backend>()>;

inline std::map<std::string, BackendFactory>& backend_registry() {
  static std::map<std::string, BackendFactory> registry;
  return registry;
}

inline void register_backend(const std::string& name, BackendFactory factory) {
  backend_registry()[name] = std::move(factory);
}

inline std::vector<std::string> backend_names() {
  std::vector<std::string> names;
  for (const auto& kv : backend_registry()) names.push_back(kv.first);
  return names;
}

inline std::unique_ptr<Backend> make_backend(const std::string& name) {
  auto it = backend_registry().find(name);
  if (it == backend_registry().end())
    throw Error("unknown backend '" + name + "'; available: " + join_names(backend_names()));
  return it->second();
}

}  // namespace turbo

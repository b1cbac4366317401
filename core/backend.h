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

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Whether this backend runs `config`; the message says why not.
  virtual Status supports(const AttentionConfig& config) const = 0;

  // SPEC 1. x [n, d] FP16 row-major, grouped by `group_rows` consecutive rows starting at row 0
  // (tile: Br or Bc, token: 1, head: n). codes [n, d]; scales [ceil(n / group_rows)].
  virtual void quantize_stage1(const Half* x, int64_t n, int d, int64_t group_rows, int8_t* codes,
                               float* scales) = 0;

  // SPEC 2 on one block: q [n_b, d] INT8 codes -> `layout.bytes()` bytes at `block` (codes,
  // s2, z; the stage-1 scale slot is left as is). layout.bits must be 4 or 2.
  virtual void compress_block(const int8_t* q, const BlockLayout& layout, uint8_t* block) = 0;
  // Inverse of compress_block: the dequantized INT8 codes q' [n_b, d].
  virtual void decompress_block(const uint8_t* block, const BlockLayout& layout, int8_t* q) = 0;

  // SPEC 3 on `n_groups` contiguous groups of `group_len` FP16 values: codes [n_groups *
  // group_len] (one per byte), scales and zeros [n_groups] as stored (rounded per storage).
  virtual void quantize_asym(const Half* x, int64_t n_groups, int group_len, int bits,
                             ScaleStorage storage, uint8_t* codes, float* scales, float* zeros) = 0;

  // SPEC 4: out[i] = SAS(x[i]) (or expf(-x) for exp_mode = exact). x holds FP16 values >= 0.
  virtual void sas(const Half* x, int64_t n, const SasConfig& config, float* out) = 0;

  // Prefill attention over the whole window: o [B, Hq, N, D]. `stats`, when not null, has
  // B * Hq entries (index b * Hq + h) that are added to.
  virtual void attention_prefill(const AttentionConfig& config, const ConstHalfTensor& q,
                                 const ConstHalfTensor& k, const ConstHalfTensor& v,
                                 const HalfTensor& o, AttentionStats* stats) = 0;

  // A compressed KV cache for `spec` (SPEC 6), empty.
  virtual std::unique_ptr<KvCache> create_cache(const KvCacheSpec& spec) = 0;
  // Appends t new tokens: k, v [B, Hkv, t, D]. Blocks compress as the buffer fills.
  virtual void cache_append(KvCache& cache, const ConstHalfTensor& k, const ConstHalfTensor& v) = 0;
  // Decode attention: q [B, Hq, q_len, D] are the queries of the last q_len cached positions
  // (causal among themselves); o [B, Hq, q_len, D]. Split-K per config.splits.
  virtual void attention_decode(const AttentionConfig& config, const ConstHalfTensor& q,
                                const KvCache& cache, const HalfTensor& o,
                                AttentionStats* stats) = 0;
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

// Checks shared by every backend's attention entry points.
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

}  // namespace turbo

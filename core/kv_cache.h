// What every backend's FlashQ KV cache (SPEC 6) shares: the per-kv-head bit widths, the block
// layout of a head, and the SPEC 8 byte count. Host-only.
#pragma once

#include <vector>

#include "core/backend.h"
#include "core/kv_layout.h"

namespace turbo {

// A token-axis stage 2 needs group_size to divide head_dim.
inline void check_stage2_groups(const KvCacheSpec& spec) {
  const QuantConfig& qc = spec.config.quant;
  for (Stage2Axis ax : {qc.k_axis, qc.v_axis})
    if (ax == Stage2Axis::kToken)
      TURBO_CHECK(spec.head_dim % qc.group_size == 0,
                  "group_size " << qc.group_size << " must divide head_dim " << spec.head_dim);
}

// The bits of each kv head of a FlashQ cache whose spec the Backend front has checked:
// spec.head_bits, or kv_bits for every head.
inline std::vector<int> resolve_head_bits(const KvCacheSpec& spec) {
  check_stage2_groups(spec);
  std::vector<int> bits(static_cast<size_t>(spec.kv_heads));
  for (int h = 0; h < spec.kv_heads; ++h)
    bits[static_cast<size_t>(h)] = method_stored_bits(spec.config, spec.head_bits, h);
  return bits;
}

// The block layout of K (is_k) or V for a kv head stored at `bits`.
inline BlockLayout cache_block_layout(const KvCacheSpec& spec, int bits, bool is_k) {
  const QuantConfig& qc = spec.config.quant;
  BlockLayout L;
  L.n_b = qc.block;
  L.d = spec.head_dim;
  L.bits = bits;
  L.axis = static_cast<int>(is_k ? qc.k_axis : qc.v_axis);
  L.group_size = qc.group_size;
  L.frac_step = qc.s2_step == S2Step::kFloat ? 1 : 0;
  L.token_scales = qc.kv_scale == KvScale::kToken ? 1 : 0;
  return L;
}

// SPEC 8 for one FlashQ stream (one batch entry, one kv head stored at `bits`) holding `blocks`
// compressed blocks, `buffer_rows` buffer rows, `sink_rows` FP16 sink rows and `length` tokens:
// codes, stage-2 s2/z and the FP32 stage-1 scale(s) per block, buffer rows (FP16: 2 bytes per
// element; int8: 1 byte per element + an FP32 scale per row), the sink rows (2 bytes per element),
// and the FP32 K mean per channel when k_smooth = mean has fixed one.
inline KvBytes flashq_stream_bytes(const KvCacheSpec& spec, int bits, int64_t blocks,
                                   int64_t buffer_rows, bool has_k_mean, int64_t length,
                                   int64_t sink_rows = 0) {
  KvBytes r;
  const int64_t d = spec.head_dim;
  for (bool is_k : {true, false}) {
    const BlockLayout L = cache_block_layout(spec, bits, is_k);
    r.codes += blocks * L.code_bytes();
    r.metadata += blocks * L.metadata_bytes();
    if (spec.config.quant.buffer == BufferMode::kInt8) {
      r.buffer += buffer_rows * d;
      r.metadata += buffer_rows * 4;
    } else {
      r.buffer += buffer_rows * d * 2;
    }
    r.buffer += sink_rows * d * 2;
  }
  if (has_k_mean) r.metadata += d * 4;
  r.tokens = length;
  return r;
}

// The same summed over a cache whose batch x kv_heads streams all hold `blocks` blocks,
// `buffer_rows` buffer rows and `sink_rows` sink rows.
inline KvBytes flashq_cache_bytes(const KvCacheSpec& spec, const std::vector<int>& bits,
                                  int64_t blocks, int64_t buffer_rows, bool has_k_mean,
                                  int64_t length, int64_t sink_rows = 0) {
  KvBytes r;
  for (int64_t i = 0; i < static_cast<int64_t>(spec.batch) * spec.kv_heads; ++i)
    r += flashq_stream_bytes(spec, bits[static_cast<size_t>(i % spec.kv_heads)], blocks,
                             buffer_rows, has_k_mean, length, sink_rows);
  return r;
}

}  // namespace turbo

// Baseline attention methods of the "ref" backend (issue 4), selected by AttentionConfig::method:
//   kivi   KIVI-style: K per-channel / V per-token direct asymmetric quantization (SPEC 3) in
//          groups of group_size, 2/4 bits, the newest `residual` tokens kept in FP16.
//   int8kv INT8 per-token symmetric K/V (SPEC 1 with token groups), FP32 attention.
//   sage   SageAttention-style: K mean smoothing, INT8 Q/K per block, FP32 softmax, FP16 P and V.
//   fp8    FP8 E4M3 Q/K/V/P with per-block scales, emulated exactly on the CPU.
//   fp16   the FP16 noise floor (SPEC 9) over an FP16 cache.
// Prefill treats the whole window as cached (quantize-dequantize K/V as the cache would hold
// them, then attend); decode attends over a cache built by append. Outputs are FP16.
#pragma once

#include <memory>

#include "core/backend.h"
#include "reference/kv_cache.h"

namespace turbo {
namespace ref {

void baseline_prefill(const AttentionConfig& config, const ConstHalfTensor& q,
                      const ConstHalfTensor& k, const ConstHalfTensor& v, const HalfTensor& o,
                      AttentionStats* stats);

// The stream of one kv head of a baseline's (or the FP16 floor's) cache, stored at `bits`.
std::unique_ptr<KvStream> baseline_make_stream(const KvCacheSpec& spec, int bits);
// Decode over a reference cache made with baseline_make_stream.
void baseline_decode(const AttentionConfig& config, const ConstHalfTensor& q, const KvCache& cache,
                     const HalfTensor& o, AttentionStats* stats);

}  // namespace ref
}  // namespace turbo

// Baseline attention methods of the "ref" backend (issue 4), selected by AttentionConfig::method:
//   kivi   KIVI: K per-channel / V per-token asymmetric quantization in groups of group_size,
//          2/4 bits, recent tokens in FP16; kivi_impl=authors follows its authors' code (prefill
//          unquantized, quantize after attending, FP16 scale arithmetic), legacy the earlier
//          reading (SPEC 3 quantizer, prefill through the cache).
//   int8kv INT8 per-token symmetric K/V (SPEC 1 with token groups), FP32 attention.
//   sage   SageAttention: K mean smoothing, INT8 Q/K, FP32 softmax, P.V in FP16 or FP8;
//          sage_impl=authors follows its authors' code (128-row Q blocks or its per-thread
//          groups, FP16 K mean, base-2 softmax, sage_pv = fp32 / fp16 / fp8 as its sm80 / sm86 /
//          sm90 paths), legacy the earlier reading (stage-1 tiles of br x bc).
//   fp8    FP8 E4M3 Q/K/V/P with per-block scales, emulated exactly on the CPU.
//   fp16   the FP16 noise floor (SPEC 9) over an FP16 cache.
// Prefill treats the whole window as cached (quantize-dequantize K/V as the cache would hold
// them, then attend); decode attends over a cache built by append. Outputs are FP16.
#pragma once

#include <memory>
#include <vector>

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

// What one (batch b, kv head h) stream of a kivi cache holds now, for tests that compare it with an
// independent implementation: k_quant / v_quant quantized tokens (the oldest), their codes
// unpacked [n, D] token-major, scales and zeros as stored (K [k_quant / G, D], V [v_quant, D / G]),
// and the FP16 rows of the newer tokens ([length - k_quant, D] and [length - v_quant, D]).
struct KiviStreamState {
  int64_t k_quant = 0, v_quant = 0;
  std::vector<uint8_t> k_codes, v_codes;
  std::vector<float> k_scale, k_zero, v_scale, v_zero;
  std::vector<Half> k_fp16, v_fp16;
};
KiviStreamState kivi_stream_state(const KvCache& cache, int b, int h);

// The INT8 codes sage (sage_impl = authors) computes for nq query rows q and nk key tokens k of
// one head (row-major FP16, d channels; q rows count from the first row of the call), for tests
// that compare them with an independent implementation: codes [n, D], the scale of each row's /
// token's group [n], and the K mean it subtracted (FP16 values; zeros with k_smooth = none).
struct SageCodes {
  std::vector<int8_t> q8, k8;
  std::vector<float> q_scale, k_scale;
  std::vector<float> k_mean;
};
SageCodes sage_codes(const AttentionConfig& config, const Half* q, int64_t nq, const Half* k,
                     int64_t nk, int d);

}  // namespace ref
}  // namespace turbo

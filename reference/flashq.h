// FlashQ building blocks of the reference backend, shared by prefill, decode and split-K.
//
// A query row walks KV tiles in order (SPEC 5). Each tile carries INT8 K/V codes and their
// stage-1 scales, either one per tile (tile/head granularity, or a compressed block) or one per
// token (token granularity, or the int8 residual buffer).
#pragma once

#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/sas_stats.h"
#include "reference/kv_cache.h"

namespace turbo {
namespace ref {

struct KvTileView {
  const int8_t* k = nullptr;       // [n, D]
  const int8_t* v = nullptr;       // [n, D]
  const float* k_scale = nullptr;  // [1] or [n]
  const float* v_scale = nullptr;  // [1] or [n]
  bool k_per_token = false;
  bool v_per_token = false;
  int64_t pos0 = 0;  // absolute position of the tile's first token
  int n = 0;
};

// Online-softmax state of one query row (SPEC 5): running max m (an FP16 value), row sum l and
// the unnormalised output O (FP32), plus the bookkeeping behind AttentionStats.
struct RowState {
  float m = -INFINITY;
  float l = 0.0f;
  std::vector<float> o;
  SasRunStats stats;  // filled when RowParams::want_stats

  explicit RowState(int d = 0) : o(static_cast<size_t>(d), 0.0f) {}
};

struct RowParams {
  const int8_t* q = nullptr;  // [D] INT8 codes of the row
  float q_scale = 0.0f;
  int64_t pos = 0;  // absolute position (for the causal mask)
  bool causal = true;
  float tau = 0.0f;
  int d = 0;
  PQuant p_quant = PQuant::kU8;
  bool want_stats = false;
};

// Per-thread work space of process_tile (grown on demand).
struct TileScratch {
  std::vector<float> s, p, pv;
  std::vector<int32_t> p8, acc;
};

// Runs SPEC 5 steps 1-5 of one row over one tile, updating st.
void process_tile(RowState& st, const RowParams& rp, const KvTileView& tile, const SasParams& sas,
                  TileScratch& scratch);

// SPEC 6 split-K merge of runs s = 0 .. S-1 into an FP16 output row.
void merge_runs(const std::vector<RowState>& runs, const SasParams& sas, int d, Half* out,
                AttentionStats* stats);

// Output of a single run: fp16(O[d] / l); adds the row's counters to stats.
void finalize_row(const RowState& st, int d, Half* out, AttentionStats* stats);

// Stage 1 on FP32 input rows x [n, d], groups of group_rows rows (the shared worker behind
// quantize_stage1 and the k_smooth path).
void stage1_rows(const float* x, int64_t n, int d, int64_t group_rows, int8_t* codes,
                 float* scales);

// Per-channel K mean of SPEC 1 (k_smooth = mean): exact int64 sum of k * 2^24.
void channel_mean(const ConstHalfTensor& k, int64_t b, int64_t h, int64_t t0, int64_t t1,
                  float* mean);

// Stage 2 of one block (compress) and back (decompress); bits 8 copies the codes.
void compress_block_ref(const int8_t* q, const BlockLayout& layout, uint8_t* block);
void decompress_block_ref(const uint8_t* block, const BlockLayout& layout, int8_t* q);

void flashq_prefill(const AttentionConfig& config, const ConstHalfTensor& q,
                    const ConstHalfTensor& k, const ConstHalfTensor& v, const HalfTensor& o,
                    AttentionStats* stats);

// The stream of one kv head of a FlashQ cache (reference/kv_cache.h), stored at `bits`.
std::unique_ptr<KvStream> flashq_make_stream(const KvCacheSpec& spec, int bits);
// Decode over a reference cache made with flashq_make_stream.
void flashq_decode(const AttentionConfig& config, const ConstHalfTensor& q, const KvCache& cache,
                   const HalfTensor& o, AttentionStats* stats);

}  // namespace ref
}  // namespace turbo

// The "rows" FlashQ kernel: one warp per query row, KV tiles staged in shared memory, and the
// split-K merge (SPEC 5, 6). It mirrors reference/flashq.cpp process_tile line for line and
// covers every knob: tile/token/head K/V scales (per-token V accumulates in token order with
// fmaf), p_quant fp16, exp_mode exact, the compressed-cache tiles of decode (the FP16 sink rows,
// blocks with one or per-token stage-1 scales and either stage-2 step, the buffer ring) and the
// AttentionStats bookkeeping. The fast paths are flashq_mma.cu (prefill) and flashq_decode.cu
// (decode); the per-row steps below carry process_tile's step names (score, softmax, stats, pv).
//
// Parallel sums here are integer sums (exact in any order) or max reductions of values; every
// float step of a row runs on one lane, or per channel on the lane that owns the channel, in the
// reference's order.
#include <algorithm>

#include "core/flashq.h"
#include "core/fp16.h"
#include "core/quant.h"
#include "core/sas.h"
#include "core/sas_stats.h"
#include "cuda/cuda_common.cuh"
#include "cuda/sas_table.cuh"
#include "cuda/warp.cuh"

namespace turbo {
namespace cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kMaxDynamicSmem = static_cast<int>(kRowsMaxSmem);

// sum_k a.u8[k] * b.s8[k] + c (PTX dp4a with an unsigned first operand).
__device__ __forceinline__ int dp4a_u8s8(uint32_t a, uint32_t b, int c) {
  int d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

struct SmemLayout {
  size_t k, v, vt, ks, vs, q, qs, pos, o, m, l, st, s, p, p8, p8b, red, total;
  int kstride;
  int tcap4;     // tile_cap rounded up to 4 tokens
  int vtstride;  // bytes per channel row of V^T
};

__host__ __device__ inline size_t align16(size_t x) { return (x + 15) & ~size_t{15}; }

__host__ __device__ inline SmemLayout smem_layout(int tile_cap, int dp, int rows, bool stats) {
  SmemLayout L;
  L.kstride = dp + 4;  // an odd word stride: lanes reading different keys hit different banks
  size_t off = 0;
  auto take = [&](size_t bytes) {
    const size_t at = off;
    off = align16(off + bytes);
    return at;
  };
  L.k = take(static_cast<size_t>(tile_cap) * L.kstride);
  L.v = take(static_cast<size_t>(tile_cap) * L.kstride);
  L.tcap4 = (tile_cap + 3) / 4 * 4;
  L.vtstride = L.tcap4 + 4;  // an odd word stride when tcap4 / 4 is even
  L.vt = take(static_cast<size_t>(dp) * L.vtstride);
  L.ks = take(sizeof(float) * tile_cap);
  L.vs = take(sizeof(float) * tile_cap);
  L.q = take(static_cast<size_t>(rows) * dp);
  L.qs = take(sizeof(float) * rows);
  L.pos = take(sizeof(long long) * rows);
  L.o = take(sizeof(float) * rows * dp);
  L.m = take(sizeof(float) * rows);
  L.l = take(sizeof(float) * rows);
  L.st = take(stats ? sizeof(SasRunStats) * rows : 0);
  L.s = take(sizeof(float) * kWarps * tile_cap);
  L.p = take(sizeof(float) * kWarps * tile_cap);
  L.p8 = take(sizeof(int) * kWarps * tile_cap);
  L.p8b = take(static_cast<size_t>(kWarps) * L.tcap4);
  L.red = take(sizeof(float) * 64);
  L.total = off;
  return L;
}

__device__ __forceinline__ float read_f32(const uint8_t* p) {
  uint32_t u = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
               (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
  return __uint_as_float(u);
}

// Decompresses one cache block into shared memory codes [n_b][kstride] (channels past d are 0)
// and its stage-1 scale(s) (one, or n_b with token_scales). Each thread takes one 32-bit word of
// packed codes: 4 (8-bit), 8 (4-bit) or 16 (2-bit) codes of one token row (d is a multiple of
// 16), unpacked by the core unpack_code and BlockLayout::dequant (integer or fractional step).
__device__ void load_block(const uint8_t* blk, const BlockLayout& L, int8_t* dst, int kstride,
                           int dp, float* scale) {
  const uint8_t* s2 = blk + L.s2_offset();
  const int8_t* z = reinterpret_cast<const int8_t*>(blk + L.z_offset());
  const int d = L.d, n_b = L.n_b;
  const int per_word = 32 / L.bits;  // codes per 32-bit word
  const int words = n_b * d / per_word;
  const uint32_t* w32 = reinterpret_cast<const uint32_t*>(blk);  // blocks start 16-byte aligned
  for (int w = threadIdx.x; w < words; w += blockDim.x) {
    const uint32_t word = w32[w];
    const uint8_t* wb = reinterpret_cast<const uint8_t*>(&word);
    const int i0 = w * per_word;
    const int t = i0 / d, c0 = i0 - t * d;
    int8_t* out = dst + t * kstride + c0;
    if (L.bits == 8) {
      *reinterpret_cast<uint32_t*>(out) = word;
    } else if (L.bits == 4) {
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const int64_t g = L.group_of(t, c0 + k);
        out[k] = L.dequant(unpack_code(wb, k, 4), Stage2Params{s2[g], z[g]});
      }
    } else {
#pragma unroll
      for (int k = 0; k < 16; ++k) {
        const int64_t g = L.group_of(t, c0 + k);
        out[k] = L.dequant(unpack_code(wb, k, 2), Stage2Params{s2[g], z[g]});
      }
    }
  }
  if (dp > d)
    for (int e = threadIdx.x; e < n_b * (dp - d); e += blockDim.x) {
      const int t = e / (dp - d), c = d + e % (dp - d);
      dst[t * kstride + c] = 0;
    }
  const int n_scales = L.token_scales ? n_b : 1;
  for (int j = threadIdx.x; j < n_scales; j += blockDim.x)
    scale[j] = read_f32(blk + L.scale_offset() + 4 * j);
}

// Rows of a cache tile held as FP16 or int8 rows: row j of the tile at slot (head + j) % cap of
// the stream's storage (the buffer ring; the sink rows are a ring that never wraps).
struct RingRows {
  int head, cap;
  __device__ __forceinline__ int slot(int j) const {
    const int r = head + j;
    return r < cap ? r : r - cap;
  }
};

// Stage 1 of n FP16 rows (the fp16 buffer or the sink rows) as one tile (SPEC 6), K with the mean
// subtracted: one scale for the tile.
__device__ void load_fp16_rows(const Half* buf, RingRows ring, const float* mean, int n, int d,
                               int dp, int8_t* dst, int kstride, float* scale, float* red) {
  float amax = 0.0f;
  for (int e = threadIdx.x; e < n * d; e += blockDim.x) {
    const int t = e / d, c = e - t * d;
    const float x = half_to_float(buf[ring.slot(t) * d + c]);
    amax = maxf(amax, absf(mean ? x - mean[c] : x));
  }
  amax = warp_max(amax);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) red[warp] = amax;
  __syncthreads();
  amax = red[0];
  for (int w = 1; w < kWarps; ++w) amax = maxf(amax, red[w]);
  const Stage1Scale s = stage1_scale(amax);
  for (int e = threadIdx.x; e < n * dp; e += blockDim.x) {
    const int t = e / dp, c = e % dp;
    int8_t q = 0;
    if (c < d) {
      const float x = half_to_float(buf[ring.slot(t) * d + c]);
      q = stage1_code(mean ? x - mean[c] : x, s.inv);
    }
    dst[t * kstride + c] = q;
  }
  if (threadIdx.x == 0) *scale = s.scale;
  __syncthreads();  // red is reused by the next call
}

// The same with one stage-1 scale per row (the sink tile, the buffer tile with kv_scale = token or
// window > 0): one warp per row, scales[j] for row j.
__device__ void load_fp16_rows_per_token(const Half* buf, RingRows ring, const float* mean, int n,
                                         int d, int dp, int8_t* dst, int kstride, float* scales) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int t = warp; t < n; t += kWarps) {
    const Half* row = buf + ring.slot(t) * d;
    float amax = 0.0f;
    for (int c = lane; c < d; c += 32) {
      const float x = half_to_float(row[c]);
      amax = maxf(amax, absf(mean ? x - mean[c] : x));
    }
    const Stage1Scale s = stage1_scale(warp_max(amax));
    for (int c = lane; c < dp; c += 32) {
      int8_t q = 0;
      if (c < d) {
        const float x = half_to_float(row[c]);
        q = stage1_code(mean ? x - mean[c] : x, s.inv);
      }
      dst[t * kstride + c] = q;
    }
    if (lane == 0) scales[t] = s.scale;
  }
}

// ---- the steps of one query row over one tile, named as reference/flashq.cpp process_tile's ----
// Each runs on one warp; every float step of the row runs on one lane (or per channel on the lane
// that owns the channel) in the reference's order.

// The K/V tile in shared memory: codes [token][kstride], V^T [channel][vtstride] (for the 4-token
// dp4a; tokens past the tile are 0), and the stage-1 scales (one, or per token).
struct TileView {
  const int8_t* k;
  const int8_t* v;
  const int8_t* vt;
  const float* ks;
  const float* vs;
  int kstride, vtstride, dp, d;
  bool k_pt, v_pt;
};

// Step "score" (SPEC 5.1): S = fp16(clamp((float)(Q8 . K8) * ((s_Q * s_K) * tau))) into s_w;
// returns the tile's max score (every lane).
__device__ __forceinline__ float score_row(const TileView& t, const int8_t* q, float q_scale,
                                           float tau, int n, float* s_w) {
  const int lane = threadIdx.x & 31;
  const int* qw = reinterpret_cast<const int*>(q);
  float m_tile = -INFINITY;
  for (int j = lane; j < n; j += 32) {
    const int* kw = reinterpret_cast<const int*>(t.k + j * t.kstride);
    int acc = 0;
    for (int w = 0; w < t.dp / 4; ++w) acc = __dp4a(qw[w], kw[w], acc);
    const float sk = t.k_pt ? t.ks[j] : t.ks[0];
    const float sj = score_fp16(acc, score_scale(q_scale, sk, tau));
    s_w[j] = sj;
    m_tile = maxf(m_tile, sj);
  }
  return warp_max(m_tile);
}

struct SoftmaxRow {
  float m_new, p_max, alpha;
};

// Step "softmax" (SPEC 5.2-5.3): m_new, P = SAS(fp16(m_new - S)) into p_w (exp_mode exact: FP32
// expf of the FP32 difference), the row's P max and alpha.
__device__ __forceinline__ SoftmaxRow softmax_row(const float* s_w, int n, float m_old,
                                                  float m_tile, bool exact, const uint16_t* table,
                                                  int count, const SasParams& sas, float* p_w) {
  const int lane = threadIdx.x & 31;
  SoftmaxRow r;
  r.m_new = maxf(m_old, m_tile);
  float p_max = 0.0f;
  for (int j = lane; j < n; j += 32) {
    const float x = exact ? r.m_new - s_w[j] : sub16(r.m_new, s_w[j]);
    const float pj = table ? sas_lookup(x, table, count) : sas_eval(x, sas);
    p_w[j] = pj;
    p_max = maxf(p_max, pj);
  }
  r.p_max = warp_max(p_max);
  r.alpha = sas_rescale(m_old, r.m_new, sas);
  return r;
}

// Step "stats" (AttentionStats, lane 0): the core bookkeeping of core/sas_stats.h in tile order.
__device__ __forceinline__ void stats_row(SasRunStats& st, const float* s_w, const float* p_w,
                                          int n, float m_tile, float m_old, float alpha,
                                          bool exact) {
  const double tile_max = sas_stats_tile_begin(st, m_tile, m_old, alpha);
  for (int j = 0; j < n; ++j) sas_stats_entry(st, s_w[j], tile_max, !exact && p_w[j] == 0.0f);
}

// Step "pv", p_quant = fp16 (tolerance-checked): l = fma(l, alpha, sum P) with the FP32 sum in
// token order on lane 0; O[c] = fma(O[c], alpha, sum_j fma(P_j, V8 * s_V)). Returns the new l.
__device__ __forceinline__ float pv_fp16_row(const TileView& t, const float* p_w, int n,
                                             float alpha, float l, float* o_row) {
  const int lane = threadIdx.x & 31;
  float psum = 0.0f;
  if (lane == 0)
    for (int j = 0; j < n; ++j) psum += p_w[j];
  psum = __shfl_sync(0xffffffffu, psum, 0);
  const float l_new = fmaf_rn(l, alpha, psum);
  for (int c = lane; c < t.d; c += 32) {
    float pv = 0.0f;
    for (int j = 0; j < n; ++j) {
      const float sv = t.v_pt ? t.vs[j] : t.vs[0];
      pv = fmaf_rn(p_w[j], static_cast<float>(t.v[j * t.kstride + c]) * sv, pv);
    }
    o_row[c] = fmaf_rn(o_row[c], alpha, pv);
  }
  return l_new;
}

// Step "pv" with P codes (SPEC 5.4-5.5): P8 = p_code(P), l = update_rowsum(integer sum of P8);
// O[c] = update_output(integer P8 . V8) over the 4-token dp4a on V^T, or, for per-token V scales,
// the token-ordered fmaf of the reference. Returns the new l.
__device__ __forceinline__ float pv_codes_row(const TileView& t, const float* p_w, int n,
                                              const SoftmaxRow& sr, PQuant pq, float l, int* p8_w,
                                              uint8_t* p8b_w, float* o_row) {
  const int lane = threadIdx.x & 31;
  const PScale ps = p_scale(pq, sr.p_max);
  int p8_sum = 0;
  const int n4 = (n + 3) / 4 * 4;
  for (int j = lane; j < n4; j += 32) {
    const int c8 = j < n ? p_code(p_w[j], ps) : 0;
    if (j < n) p8_w[j] = c8;
    p8b_w[j] = static_cast<uint8_t>(c8);
    p8_sum += c8;
  }
  p8_sum = warp_sum(p8_sum);
  __syncwarp();
  const float l_new = update_rowsum(l, sr.alpha, p8_sum, ps.s_p);
  if (!t.v_pt) {
    const float s_pv = ps.s_p * t.vs[0];
    const uint32_t* pw = reinterpret_cast<const uint32_t*>(p8b_w);
    for (int c = lane; c < t.d; c += 32) {
      const uint32_t* vw = reinterpret_cast<const uint32_t*>(t.vt + c * t.vtstride);
      int acc = 0;  // exact int32 sum of P8[j] * V8[j][c], 4 tokens per dp4a
      for (int w = 0; w < n4 / 4; ++w) acc = dp4a_u8s8(pw[w], vw[w], acc);
      o_row[c] = update_output(o_row[c], sr.alpha, acc, s_pv);
    }
  } else {
    for (int c = lane; c < t.d; c += 32) {
      float pv = 0.0f;
      for (int j = 0; j < n; ++j)
        pv = fmaf_rn(static_cast<float>(p8_w[j] * static_cast<int>(t.v[j * t.kstride + c])),
                     t.vs[j], pv);
      o_row[c] = fmaf_rn(o_row[c], sr.alpha, pv * ps.s_p);
    }
  }
  return l_new;
}

__global__ void __launch_bounds__(kThreads) RowsKernel(RowsParams P) {
  extern __shared__ __align__(16) unsigned char smem[];
  // SAS tables are indexed at run time: read them from shared memory, not the parameter space
  // (which the compiler would copy to local memory).
  __shared__ SasParams sas;
  if (threadIdx.x == 0) sas = P.sas;
  const int rows_total = P.group * static_cast<int>(P.q_len);
  const int r0 = blockIdx.z * P.rows_per_cta;
  const int nrows = min(P.rows_per_cta, rows_total - r0);
  if (nrows <= 0) return;
  const SmemLayout L = smem_layout(P.tile_cap, P.dp, P.rows_per_cta, P.want_stats);
  int8_t* k_s = reinterpret_cast<int8_t*>(smem + L.k);
  int8_t* v_s = reinterpret_cast<int8_t*>(smem + L.v);
  float* ks = reinterpret_cast<float*>(smem + L.ks);
  float* vs = reinterpret_cast<float*>(smem + L.vs);
  int8_t* q_s = reinterpret_cast<int8_t*>(smem + L.q);
  float* q_sc = reinterpret_cast<float*>(smem + L.qs);
  long long* row_pos = reinterpret_cast<long long*>(smem + L.pos);
  float* o_s = reinterpret_cast<float*>(smem + L.o);
  float* m_s = reinterpret_cast<float*>(smem + L.m);
  float* l_s = reinterpret_cast<float*>(smem + L.l);
  SasRunStats* st_s = reinterpret_cast<SasRunStats*>(smem + L.st);
  float* red = reinterpret_cast<float*>(smem + L.red);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* s_w = reinterpret_cast<float*>(smem + L.s) + warp * P.tile_cap;
  float* p_w = reinterpret_cast<float*>(smem + L.p) + warp * P.tile_cap;
  int* p8_w = reinterpret_cast<int*>(smem + L.p8) + warp * P.tile_cap;
  uint8_t* p8b_w = reinterpret_cast<uint8_t*>(smem + L.p8b) + warp * L.tcap4;
  int8_t* vt_s = reinterpret_cast<int8_t*>(smem + L.vt);
  const bool int_pv = P.p_quant != PQuant::kFp16;

  const int bkv = blockIdx.x;  // b * Hkv + kv head
  const int b = bkv / P.hkv, hk = bkv % P.hkv;
  const int split = blockIdx.y;
  const int dp = P.dp, d = P.d, kstride = L.kstride;

  // Query rows of this CTA: r = hh * q_len + i, query head hk * group + hh.
  long long max_pos = -1;
  for (int lr = 0; lr < nrows; ++lr) {
    const int r = r0 + lr;
    const long long i = r % P.q_len;
    max_pos = max(max_pos, P.pos_offset + i);
  }
  for (int e = threadIdx.x; e < nrows * dp; e += blockDim.x) {
    const int lr = e / dp, c = e % dp, r = r0 + lr;
    const int64_t bhq = static_cast<int64_t>(b) * P.hq + hk * P.group + r / P.q_len;
    q_s[e] = P.q_codes[(bhq * P.q_len + r % P.q_len) * dp + c];
    o_s[e] = 0.0f;
  }
  for (int lr = threadIdx.x; lr < nrows; lr += blockDim.x) {
    const int r = r0 + lr;
    const int64_t bhq = static_cast<int64_t>(b) * P.hq + hk * P.group + r / P.q_len;
    q_sc[lr] = P.q_scale[bhq * P.q_len + r % P.q_len];
    row_pos[lr] = P.pos_offset + r % P.q_len;
    m_s[lr] = -INFINITY;
    l_s[lr] = 0.0f;
    if (P.want_stats) st_s[lr] = sas_stats_init();
  }

  const int t_begin = static_cast<int>(static_cast<int64_t>(P.n_tiles) * split / P.splits);
  const int t_end = static_cast<int>(static_cast<int64_t>(P.n_tiles) * (split + 1) / P.splits);
  const bool exact = P.sas.exp_mode == ExpMode::kExact;
  const int sink_tiles = P.source == TileSource::kCache && P.n_sink > 0 ? 1 : 0;
  __syncthreads();  // sas

  for (int t = t_begin; t < t_end; ++t) {
    long long pos0;
    int nt;
    bool k_pt = false, v_pt = false;
    if (P.source == TileSource::kPrefill) {
      pos0 = static_cast<long long>(t) * P.bc;
      nt = static_cast<int>(min(static_cast<long long>(P.n_keys), pos0 + P.bc) - pos0);
      k_pt = P.k_token && nt > 1;
      v_pt = P.v_token && nt > 1;
    } else if (t < sink_tiles) {  // the FP16 sink rows: stage 1 per token
      pos0 = 0;
      nt = P.n_sink;
      k_pt = v_pt = nt > 1;
    } else if (t - sink_tiles < P.n_blocks) {
      pos0 = P.n_sink + static_cast<long long>(t - sink_tiles) * P.n_b;
      nt = P.n_b;
      k_pt = v_pt = P.token_scales && nt > 1;
    } else {  // the buffer
      pos0 = P.n_sink + static_cast<long long>(P.n_blocks) * P.n_b;
      nt = P.n_buf;
      k_pt = v_pt = (P.buf_int8 || P.buf_per_token) && nt > 1;
    }
    if (P.causal && pos0 > max_pos) break;  // tiles only move right: every row is masked
    __syncthreads();                        // the previous tile is no longer read
    if (P.source == TileSource::kPrefill) {
      const int64_t base = static_cast<int64_t>(bkv) * P.n_keys + pos0;
      for (int e = threadIdx.x; e < nt * dp; e += blockDim.x) {
        const int j = e / dp, c = e % dp;
        k_s[j * kstride + c] = P.k_codes[(base + j) * dp + c];
        v_s[j * kstride + c] = P.v_codes[(base + j) * dp + c];
      }
      for (int j = threadIdx.x; j < nt; j += blockDim.x) {
        ks[j] = P.k_scale[base + j];
        vs[j] = P.v_scale[base + j];
      }
    } else if (t < sink_tiles) {
      const int64_t base = static_cast<int64_t>(bkv) * P.sink_cap * d;
      const RingRows rows{0, P.sink_cap};
      load_fp16_rows_per_token(P.k_sink + base, rows,
                               P.k_mean ? P.k_mean + static_cast<int64_t>(bkv) * d : nullptr, nt, d,
                               dp, k_s, kstride, ks);
      load_fp16_rows_per_token(P.v_sink + base, rows, nullptr, nt, d, dp, v_s, kstride, vs);
    } else if (t - sink_tiles < P.n_blocks) {
      BlockLayout bl;
      bl.n_b = P.n_b;
      bl.d = d;
      bl.bits = P.head_bits[hk];
      bl.group_size = P.group_size;
      bl.frac_step = P.frac_step;
      bl.token_scales = P.token_scales;
      const int64_t off =
          (static_cast<int64_t>(bkv) * P.block_cap + (t - sink_tiles)) * P.block_stride;
      bl.axis = P.k_axis;
      load_block(P.k_blocks + off, bl, k_s, kstride, dp, ks);
      bl.axis = P.v_axis;
      load_block(P.v_blocks + off, bl, v_s, kstride, dp, vs);
    } else if (P.buf_int8) {
      const int64_t base = static_cast<int64_t>(bkv) * P.buf_cap;
      const RingRows ring{P.buf_head, P.buf_cap};
      for (int e = threadIdx.x; e < nt * dp; e += blockDim.x) {
        const int j = e / dp, c = e % dp;
        const int64_t row = base + ring.slot(j);
        k_s[j * kstride + c] = c < d ? P.k_buf8[row * d + c] : int8_t{0};
        v_s[j * kstride + c] = c < d ? P.v_buf8[row * d + c] : int8_t{0};
      }
      for (int j = threadIdx.x; j < nt; j += blockDim.x) {
        ks[j] = P.k_buf_s[base + ring.slot(j)];
        vs[j] = P.v_buf_s[base + ring.slot(j)];
      }
    } else {
      const int64_t base = static_cast<int64_t>(bkv) * P.buf_cap * d;
      const RingRows ring{P.buf_head, P.buf_cap};
      const float* mean = P.k_mean ? P.k_mean + static_cast<int64_t>(bkv) * d : nullptr;
      if (P.buf_per_token) {
        load_fp16_rows_per_token(P.k_buf + base, ring, mean, nt, d, dp, k_s, kstride, ks);
        load_fp16_rows_per_token(P.v_buf + base, ring, nullptr, nt, d, dp, v_s, kstride, vs);
      } else {
        load_fp16_rows(P.k_buf + base, ring, mean, nt, d, dp, k_s, kstride, ks, red);
        load_fp16_rows(P.v_buf + base, ring, nullptr, nt, d, dp, v_s, kstride, vs, red);
      }
    }
    __syncthreads();
    if (int_pv && !v_pt) {  // V^T for the 4-token dp4a of step 5 (tokens past the tile are 0)
      const int n4 = (nt + 3) / 4 * 4;
      for (int e = threadIdx.x; e < d * n4; e += blockDim.x) {
        const int c = e / n4, j = e - c * n4;
        vt_s[c * L.vtstride + j] = j < nt ? v_s[j * kstride + c] : int8_t{0};
      }
      __syncthreads();
    }

    for (int lr = warp; lr < nrows; lr += kWarps) {
      int n = nt;
      if (P.causal) {
        const long long visible = row_pos[lr] - pos0 + 1;
        if (visible <= 0) continue;  // fully masked: skipped, not given a value
        if (visible < n) n = static_cast<int>(visible);
      }
      const TileView tv{k_s, v_s, vt_s, ks, vs, kstride, L.vtstride, dp, d, k_pt, v_pt};
      const float m_tile = score_row(tv, q_s + lr * dp, q_sc[lr], P.tau, n, s_w);
      const float m_old = m_s[lr];
      const SoftmaxRow sr =
          softmax_row(s_w, n, m_old, m_tile, exact, P.sas_table, P.sas_table_count, sas, p_w);
      __syncwarp();
      if (P.want_stats && lane == 0)
        stats_row(st_s[lr], s_w, p_w, n, m_tile, m_old, sr.alpha, exact);
      float l_new;
      if (P.p_quant == PQuant::kFp16)
        l_new = pv_fp16_row(tv, p_w, n, sr.alpha, l_s[lr], o_s + lr * dp);
      else
        l_new = pv_codes_row(tv, p_w, n, sr, P.p_quant, l_s[lr], p8_w, p8b_w, o_s + lr * dp);
      __syncwarp();
      if (lane == 0) {
        l_s[lr] = l_new;
        m_s[lr] = sr.m_new;
      }
      __syncwarp();
    }
  }
  __syncthreads();

  // Outputs: the final row (one run) or the run's state for the merge.
  for (int lr = warp; lr < nrows; lr += kWarps) {
    const int r = r0 + lr;
    const int64_t bhq = static_cast<int64_t>(b) * P.hq + hk * P.group + r / P.q_len;
    const int64_t row = bhq * P.q_len + r % P.q_len;
    const float* o_row = o_s + lr * dp;
    if (P.splits == 1) {
      for (int c = lane; c < d; c += 32)
        P.out[row * d + c] = float_to_half(finalize_output(o_row[c], l_s[lr]));
      if (P.want_stats && lane == 0) {
        const SasRunStats& st = st_s[lr];
        P.row_stats[row] = RowStats{sas_stats_dropped_fraction(st.alive_mass, st.dropped_mass),
                                    st.scored, st.zeroed};
      }
    } else {
      const int64_t run = row * P.splits + split;
      for (int c = lane; c < dp; c += 32) P.run_o[run * dp + c] = o_row[c];
      if (lane == 0) {
        P.run_ml[run * 2] = m_s[lr];
        P.run_ml[run * 2 + 1] = l_s[lr];
        if (P.want_stats) P.run_stats[run] = st_s[lr];
      }
    }
  }
}

// SPEC 6 merge, one warp per row: runs s = 0 .. S-1 in order from l = 0, O = 0. The factors
// a_s = merge_factor(m_s, m) are computed once per run (lanes in parallel) into shared memory;
// then l (lane 0) and each O[d] (the lane owning channel d) accumulate in run order.
constexpr int kMergeWarps = 4;
constexpr int kMaxMergeSplits = 1024;

__global__ void MergeKernel(RowsParams P, int64_t rows) {
  __shared__ SasParams sas;
  __shared__ float factor[kMergeWarps][kMaxMergeSplits];
  if (threadIdx.x == 0) sas = P.sas;
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t row = blockIdx.x * static_cast<int64_t>(kMergeWarps) + warp;
  if (row >= rows) return;
  const int S = P.splits, dp = P.dp, d = P.d;
  const float* ml = P.run_ml + row * S * 2;
  float m = -INFINITY;
  for (int s = lane; s < S; s += 32) m = maxf(m, ml[s * 2]);
  m = warp_max(m);
  float* a = factor[warp];
  for (int s = lane; s < S; s += 32) a[s] = merge_factor(ml[s * 2], m, sas);
  __syncwarp();
  float l = 0.0f;
  for (int s = 0; s < S; ++s) l = fmaf_rn(ml[s * 2 + 1], a[s], l);
  const float* ro = P.run_o + row * S * dp;
  for (int c = lane; c < d; c += 32) {
    float o = 0.0f;
    for (int s = 0; s < S; ++s) o = fmaf_rn(ro[static_cast<int64_t>(s) * dp + c], a[s], o);
    P.out[row * d + c] = float_to_half(finalize_output(o, l));
  }
  if (P.want_stats && lane == 0) {
    double smax = -INFINITY;
    for (int s = 0; s < S; ++s) smax = fmax(smax, P.run_stats[row * S + s].stat_max);
    SasStatsTotal total;
    for (int s = 0; s < S; ++s) sas_stats_merge_run(total, P.run_stats[row * S + s], smax, a[s]);
    P.row_stats[row] = RowStats{sas_stats_dropped_fraction(total.alive, total.dropped),
                                total.scored, total.zeroed};
  }
}

}  // namespace

size_t rows_kernel_smem(const RowsParams& p) {
  return smem_layout(p.tile_cap, p.dp, p.rows_per_cta, p.want_stats).total;
}

void launch_rows_kernel(const RowsParams& p, cudaStream_t stream) {
  const int rows_total = p.group * static_cast<int>(p.q_len);
  const int chunks = (rows_total + p.rows_per_cta - 1) / p.rows_per_cta;
  const size_t smem = rows_kernel_smem(p);
  TURBO_CHECK(smem <= kMaxDynamicSmem, "rows kernel: tile of "
                                           << p.tile_cap << " tokens x " << p.dp
                                           << " channels does not fit in shared memory");
  static const bool attr_set = [] {
    TURBO_CUDA_CHECK(cudaFuncSetAttribute(RowsKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          kMaxDynamicSmem));
    return true;
  }();
  (void)attr_set;
  const dim3 grid(static_cast<unsigned>(p.batch * p.hkv), static_cast<unsigned>(p.splits),
                  static_cast<unsigned>(chunks));
  RowsKernel<<<grid, kThreads, smem, stream>>>(p);
  TURBO_CUDA_LAUNCH_CHECK();
}

void launch_merge_kernel(const RowsParams& p, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(p.batch) * p.hq * p.q_len;
  TURBO_CHECK(p.splits <= kMaxMergeSplits,
              "splits must be <= " << kMaxMergeSplits << " on the cuda backend, got " << p.splits);
  MergeKernel<<<static_cast<unsigned>((rows + kMergeWarps - 1) / kMergeWarps), kMergeWarps * 32, 0,
                stream>>>(p, rows);
  TURBO_CUDA_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace turbo

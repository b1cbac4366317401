// The decode kernel (SPEC 5, 6 over the compressed cache): one CTA per (batch, kv head, split run)
// holding every query row of the GQA group (up to kMaxRows), so the K/V codes of a block are read
// from memory once and serve all of them. Per block of kTile tokens:
//   load:   whole compressed blocks (codes, s2/z, scale) stream into a kStages-deep ring in
//           shared memory by cp.async, kStages - 1 blocks ahead of the math;
//   unpack: stage-2 dequantization on packed half2 pairs (core stage2_dequant_fp16, proven equal
//           to the integer recipe), K to [token][channel], V straight to V^T [channel][token];
//           each thread builds the (s2, z) pairs of its octets from the block's bytes itself;
//   score / softmax / pv: the same named steps as reference/flashq.cpp process_tile, on the same
//           core functions: integer dot products (dp4a, exact in any order), then per row on one
//           warp in the reference's per-element order.
// The split-K merge runs in the last CTA of each (batch, kv head) to finish (an atomic counter),
// with the same factor and fmaf order as MergeKernel. For q_len = 1 the query rows are quantized
// here too (stage 1 of a one-row group), so a decode step is a single launch.
//
// What it covers (decode_kernel_supports): d in {64, 128}, n_b = 64, channel-axis stage-2 groups
// for K and V, p_quant u8 / s8 / u8_row, the SAS memo table (fp16 precision, exp_mode sas), no
// AttentionStats, group * q_len <= 16 (an instance for <= 8 rows, whose padding mma rows are not
// computed, beside the 16-row one); the residual buffer tile (fp16 or int8) included. Anything
// else runs on the rows kernel (flashq_rows.cu).
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/flashq.h"
#include "core/fp16.h"
#include "core/quant.h"
#include "core/sas.h"
#include "cuda/cuda_common.cuh"
#include "cuda/ptx.cuh"
#include "cuda/sas_table.cuh"
#include "cuda/warp.cuh"

namespace turbo {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kTile = 64;                      // tokens per cache block (n_b)
constexpr int kMaxRows = 16;                   // query rows per CTA (group * q_len)
constexpr int kMaxFactors = kMaxRows * kTile;  // fused merge: rows * splits factors in s_tile
constexpr int kStages = 3;                     // blocks in the cp.async ring
constexpr int kMaxDynamicSmem = 160 * 1024;    // the ring: kStages x (K, V) x block_stride

template <int D>
struct Traits {
  static_assert(D == 64 || D == 128, "decode kernel: d must be 64 or 128");
  // Bytes per K row: a word stride of 4 mod 32, so the mma B-fragment loads (8 tokens x 4 words)
  // and the 8-byte unpack stores hit distinct banks.
  static constexpr int kKStride = D + 16;
  static constexpr int kP8Stride = 20;    // words per P-code row (conflict-free A fragments)
  static constexpr int kKSteps = D / 32;  // mma k-steps of Q . K^T
  static constexpr int kOTiles = D / 8 / kWarps;      // 8-channel mma n-tiles of P . V per warp
  static constexpr int kOctets = D / 8;               // channel octets per token
  static constexpr int kUnits = kTile / 4 * kOctets;  // (token quad, octet) units per tensor
  static constexpr int kUnitsPerThread = 2 * kUnits / kThreads;  // K and V units of one thread
  static_assert(2 * kUnits % kThreads == 0, "units must divide evenly");
};

template <int D>
struct Smem {
  int8_t k[kTile * Traits<D>::kKStride];         // K codes [token][channel]
  uint32_t vt[D * kTile / 4];                    // V codes transposed [channel][token], vt_word()
  int8_t q[kMaxRows * D];                        // Q codes [row][channel] (rows past `rows`: 0)
  float s[kMaxRows * kTile];                     // scores of the tile (fused merge: factors)
  uint32_t p8[kMaxRows * Traits<D>::kP8Stride];  // P codes (u8, 4 per word) [row][token]
  float ks[kTile], vs[kTile];  // buffer tile's K / V stage-1 scales (blocks: read from the ring)
  float qs[kMaxRows], m[kMaxRows], l[kMaxRows], alpha[kMaxRows], sp[kMaxRows];
  float red[kWarps];
  SasParams sas;
  int last;
};

// Stage-2 dequantization of one packed half2 pair of codes (the low half is channel c, the high
// half channel c + 4), core stage2_dequant_fp16 on both lanes: returns the 32 bits of the two
// FP16 results, whose bytes 0 and 2 are the int8 codes.
__device__ __forceinline__ __half2 as_half2(uint32_t u) {
  return *reinterpret_cast<const __half2*>(&u);
}
__device__ __forceinline__ uint32_t half2_bits(__half2 h) {
  return *reinterpret_cast<const uint32_t*>(&h);
}
__device__ __forceinline__ uint32_t dequant_pair(uint32_t codes_0x6400, uint32_t s2, uint32_t z) {
  const __half2 bias = __floats2half2_rn(1024.0f, 1024.0f);
  const __half2 top = __floats2half2_rn(kStage2Fp16Bias + 127.0f, kStage2Fp16Bias + 127.0f);
  const __half2 c = __hsub2(as_half2(codes_0x6400), bias);
  __half2 v = __hfma2(c, as_half2(s2), as_half2(z));
  v = __hmin2(v, top);
  return half2_bits(v);
}

// (a & mask) | bits and (a & mask) ^ bits, each in one LOP3 (the second constant in a register
// rather than a second immediate, which LOP3 does not take).
__device__ __forceinline__ uint32_t and_or(uint32_t a, uint32_t mask, uint32_t bits) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(d) : "r"(a), "r"(mask), "r"(bits));
  return d;
}
__device__ __forceinline__ uint32_t and_xor(uint32_t a, uint32_t mask, uint32_t bits) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0x6a;" : "=r"(d) : "r"(a), "r"(mask), "r"(bits));
  return d;
}

// The stage-2 half2 pairs of one channel octet (pair k: channels k and k + 4) from the block's
// s2 (u8) and z (s8) bytes of the octet, w0 = channels 0-3, w1 = 4-7: the exact FP16 values
// half2(s2[c], s2[c + 4]) and half2(z[c] + kStage2Fp16Bias, z[c + 4] + kStage2Fp16Bias) built from
// the bits (0x6400 | b is 1024 + b; 0x6580 + (z ^ 0x80) is 1408 + z + 128 = 1536 + z, both
// exact FP16 integers below 2048), as the conversions of the reference's integers would give.
// BITS == 4 (unpack_octet<4>): pairs 1 and 3 hold s2 / 16 instead, built the same way from
// 0x5400 | b = 64 + b / 16 (ulp 1/16 in [64, 128)), exact.
template <int BITS>
__device__ __forceinline__ void stage2_pairs(uint2 s2w, uint2 zw, uint32_t (&s2)[4],
                                             uint32_t (&z)[4]) {
  static_assert(kStage2Fp16Bias == 1536.0f, "stage2_pairs builds z + 1536 from the bits");
  const __half2 bias = __floats2half2_rn(1024.0f, 1024.0f);
  const __half2 bias16 = __floats2half2_rn(64.0f, 64.0f);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const uint32_t sel = static_cast<uint32_t>(k | ((k + 4) << 8));  // bytes k of w0, w1
    const bool sixteenth = BITS == 4 && (k & 1);
    const uint32_t sp =
        and_or(__byte_perm(s2w.x, s2w.y, sel), 0x00ff00ffu, sixteenth ? 0x54005400u : 0x64006400u);
    s2[k] = half2_bits(__hsub2(as_half2(sp), sixteenth ? bias16 : bias));
    z[k] = and_xor(__byte_perm(zw.x, zw.y, sel), 0x00ff00ffu, 0x00800080u) + 0x65806580u;
  }
}

// The 8 int8 codes of one token octet (lo: channels 0-3, hi: 4-7) from its packed codes. For
// BITS == 4, s2[1] and s2[3] hold s2 / 16 (stage2_pairs<4>).
template <int BITS>
__device__ __forceinline__ void unpack_octet(uint2 raw, const uint32_t* s2, const uint32_t* z,
                                             uint32_t& lo, uint32_t& hi) {
  if (BITS == 8) {
    lo = raw.x;
    hi = raw.y;
    return;
  }
  uint32_t u = raw.x;  // BITS == 4: code k at bits 4k; BITS == 2: code k at bits 2k
  if (BITS == 2) u = (u & 0xffu) | ((u & 0xff00u) << 8);  // codes 4-7 to bits 16-23
  uint32_t r[4];
  if (BITS == 4) {
    // Pairs 1 and 3 stay at bits 4-7 of each half: 0x6400 | 16 c, i.e. 16 c after the bias, with
    // s2 / 16 (stage2_pairs<4>): the FMA's exact product 16 c * (s2 / 16) = c * s2, so the one
    // rounding and the result are those of stage2_dequant_fp16. One shift per token, not three.
    const uint32_t u8 = u >> 8;
    r[0] = dequant_pair(and_or(u, 0x000f000fu, 0x64006400u), s2[0], z[0]);
    r[1] = dequant_pair(and_or(u, 0x00f000f0u, 0x64006400u), s2[1], z[1]);
    r[2] = dequant_pair(and_or(u8, 0x000f000fu, 0x64006400u), s2[2], z[2]);
    r[3] = dequant_pair(and_or(u8, 0x00f000f0u, 0x64006400u), s2[3], z[3]);
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k)
      r[k] = dequant_pair(((u >> (2 * k)) & 0x00030003u) | 0x64006400u, s2[k], z[k]);
  }
  const uint32_t t01 = __byte_perm(r[0], r[1], 0x6240);  // q0 q1 q4 q5
  const uint32_t t23 = __byte_perm(r[2], r[3], 0x6240);  // q2 q3 q6 q7
  lo = __byte_perm(t01, t23, 0x5410);
  hi = __byte_perm(t01, t23, 0x7632);
}

// 4 x 4 byte transpose: out[j] byte i = in[i] byte j.
__device__ __forceinline__ void transpose4(const uint32_t (&in)[4], uint32_t (&out)[4]) {
  const uint32_t a = __byte_perm(in[0], in[1], 0x5140), b = __byte_perm(in[2], in[3], 0x5140);
  const uint32_t c = __byte_perm(in[0], in[1], 0x7362), d = __byte_perm(in[2], in[3], 0x7362);
  out[0] = __byte_perm(a, b, 0x5410);
  out[1] = __byte_perm(a, b, 0x7632);
  out[2] = __byte_perm(c, d, 0x5410);
  out[3] = __byte_perm(c, d, 0x7632);
}

// V^T word w (tokens 4w..4w+3) of channel c: 16 words per channel, XOR-swizzled so that both
// the unpack stores (16 octets x 2 token quads) and the mma B-fragment loads (8 channels x 4
// words) spread over the banks.
__device__ __forceinline__ int vt_word(int c, int w) {
  return c * (kTile / 4) + (w ^ (((((c >> 1) & 3) << 2) ^ (c >> 3)) & 15));
}
__device__ __forceinline__ int8_t& vt_byte(uint32_t* vt, int c, int t) {
  return reinterpret_cast<int8_t*>(vt + vt_word(c, t >> 2))[t & 3];
}

// The packed codes of one unit (token quad tq, octet oc) of a block in the shared-memory ring:
// 8, 4 or 2 bytes per token. The unit's first byte once (an octet is BITS bytes), the 4 tokens at
// constant offsets from it: immediate offsets of the shared-memory loads, so no per-token address
// is kept across the loop (v10a kept them and spilled them: 8 of its 10 LDL per block).
template <int D, int BITS>
__device__ __forceinline__ void load_unit(const uint8_t* blk, int tq, int oc, uint2 (&raw)[4]) {
  constexpr int kTokenBytes = D * BITS / 8;
  const uint8_t* base = blk + tq * (4 * kTokenBytes) + oc * BITS;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint8_t* a = base + i * kTokenBytes;
    if (BITS == 8)
      raw[i] = *reinterpret_cast<const uint2*>(a);
    else if (BITS == 4)
      raw[i].x = *reinterpret_cast<const unsigned int*>(a);
    else
      raw[i].x = *reinterpret_cast<const unsigned short*>(a);
  }
}

// Unpacks one unit of block `blk` (the ring slot) into K or V^T; the octet's stage-2 pairs are
// built here from the block's s2 / z bytes (no separate metadata phase, no barrier for it). The
// channel-axis layout (BlockLayout, axis 0): codes, then s2 and z, one byte per channel.
template <int D, int BITS>
__device__ __forceinline__ void unpack_unit(Smem<D>& sm, bool is_v, int tq, int oc,
                                            const uint2 (&raw)[4], const uint8_t* blk) {
  using T = Traits<D>;
  constexpr int kS2Off = kTile * D * BITS / 8, kZOff = kS2Off + D;
  uint32_t s2[4] = {0u, 0u, 0u, 0u}, z[4] = {0u, 0u, 0u, 0u};
  if (BITS != 8)
    stage2_pairs<BITS>(*reinterpret_cast<const uint2*>(blk + kS2Off + 8 * oc),
                       *reinterpret_cast<const uint2*>(blk + kZOff + 8 * oc), s2, z);
  uint32_t lo[4], hi[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) unpack_octet<BITS>(raw[i], s2, z, lo[i], hi[i]);
  if (!is_v) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
      *reinterpret_cast<uint2*>(sm.k + (4 * tq + i) * T::kKStride + 8 * oc) =
          make_uint2(lo[i], hi[i]);
  } else {
    uint32_t tl[4], th[4];
    transpose4(lo, tl);
    transpose4(hi, th);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      sm.vt[vt_word(8 * oc + j, tq)] = tl[j];
      sm.vt[vt_word(8 * oc + 4 + j, tq)] = th[j];
    }
  }
}

// Stage 1 of the fp16 residual buffer as one tile (SPEC 6), K with its mean subtracted: the
// same steps as the rows kernel's load_fp16_buffer. Writes K [token][channel] or V^T.
template <int D>
__device__ void stage1_buffer_tile(Smem<D>& sm, const Half* buf, const float* mean, int n,
                                   bool is_v) {
  using T = Traits<D>;
  float amax = 0.0f;
  for (int e = threadIdx.x; e < n * D; e += kThreads) {
    const float x = half_to_float(buf[e]);
    amax = maxf(amax, absf(mean ? x - mean[e % D] : x));
  }
  amax = warp_max(amax);
  if ((threadIdx.x & 31) == 0) sm.red[threadIdx.x >> 5] = amax;
  __syncthreads();
  amax = sm.red[0];
  for (int w = 1; w < kWarps; ++w) amax = maxf(amax, sm.red[w]);
  const Stage1Scale s = stage1_scale(amax);
  for (int e = threadIdx.x; e < kTile * D; e += kThreads) {
    const int t = e / D, c = e % D;
    int8_t q = 0;
    if (t < n) {
      const float x = half_to_float(buf[e]);
      q = stage1_code(mean ? x - mean[c] : x, s.inv);
    }
    if (is_v)
      vt_byte(sm.vt, c, t) = q;
    else
      sm.k[t * T::kKStride + c] = q;
  }
  if (threadIdx.x == 0) (is_v ? sm.vs : sm.ks)[0] = s.scale;
  __syncthreads();  // red is reused by the next call
}

template <int D>
__device__ void load_buffer_tile(Smem<D>& sm, const RowsParams& P, int bkv, int n) {
  using T = Traits<D>;
  if (!P.buf_int8) {
    const int64_t base = static_cast<int64_t>(bkv) * kTile * D;
    stage1_buffer_tile<D>(sm, P.k_buf + base, P.k_mean ? P.k_mean + int64_t{bkv} * D : nullptr, n,
                          false);
    stage1_buffer_tile<D>(sm, P.v_buf + base, nullptr, n, true);
    return;
  }
  const int64_t base = static_cast<int64_t>(bkv) * kTile;
  for (int e = threadIdx.x; e < kTile * D; e += kThreads) {
    const int t = e / D, c = e % D;
    sm.k[t * T::kKStride + c] = t < n ? P.k_buf8[(base + t) * D + c] : int8_t{0};
    vt_byte(sm.vt, c, t) = t < n ? P.v_buf8[(base + t) * D + c] : int8_t{0};
  }
  for (int t = threadIdx.x; t < n; t += kThreads) {
    sm.ks[t] = P.k_buf_s[base + t];
    sm.vs[t] = P.v_buf_s[base + t];
  }
}

// Step "score" (SPEC 5.1): S = fp16(clamp((float)(Q8 . K8) * ((s_Q * s_K) * tau))). Warp w takes
// tokens 8w..8w+7 on the INT8 tensor cores (query rows padded to 16: exact integer
// sums). kRows <= 8: the C-fragment rows g + 8 are padding, their epilogue is not compiled.
// vis: visible tokens of this lane's rows g, g + 8; ks0: the block's K scale.
template <int D, int kRows>
__device__ __forceinline__ void score_step(Smem<D>& sm, const uint32_t (&qa)[Traits<D>::kKSteps][4],
                                           const int (&vis)[2], bool k_pt, float ks0, float tau) {
  using T = Traits<D>;
  constexpr int kHalves = kRows > 8 ? 2 : 1;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
  // For one K scale, the score scale of this lane's rows (not read for rows with vis 0).
  float c_row[2];
#pragma unroll
  for (int h = 0; h < kHalves; ++h)
    c_row[h] = vis[h] ? score_scale(sm.qs[g + h * 8], ks0, tau) : 0.0f;
#pragma unroll
  for (int i = 0; i < kTile / 8 / kWarps; ++i) {
    const int n0 = (warp + i * kWarps) * 8;
    int acc[4] = {0, 0, 0, 0};
    const uint32_t* kr = reinterpret_cast<const uint32_t*>(sm.k + (n0 + g) * T::kKStride) + q;
#pragma unroll
    for (int ks = 0; ks < T::kKSteps; ++ks) mma_s8s8(acc, qa[ks], kr[ks * 8], kr[ks * 8 + 4]);
#pragma unroll
    for (int h = 0; h < 2 * kHalves; ++h) {
      const int r = g + (h >> 1) * 8, j = n0 + 2 * q + (h & 1);
      if (j < vis[h >> 1])
        sm.s[r * kTile + j] =
            score_fp16(acc[h], k_pt ? score_scale(sm.qs[r], sm.ks[j], tau) : c_row[h >> 1]);
    }
  }
}

// Step "softmax" (SPEC 5.2-5.5 row part): m_new, P = SAS(fp16(m_new - S)) through the memo
// table, alpha, the P codes and the row sum l. One warp per row; lanes hold tokens j, j + 32.
// vis_of(r): the visible tokens of row r. p_codes (p_quant u8 / s8, core p_code_table_applies):
// the P-code table in shared memory instead, one lookup per score for SAS, the scaling and the
// rint (core's exhaustive test checks table[p_code_table_index(bits(x), count)] against
// p_code(sas_eval(x), p_scale(mode, .)), the codes the memo-table path gives); `table` then points
// at it.
template <int D, typename Vis>
__device__ __forceinline__ void softmax_step(Smem<D>& sm, int rows, PQuant pq,
                                             const uint16_t* table, bool p_codes, int count,
                                             Vis vis_of) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  uint8_t* p8b = reinterpret_cast<uint8_t*>(sm.p8);
  const uint8_t* code_table = reinterpret_cast<const uint8_t*>(table);
  constexpr int kRowBytes = Traits<D>::kP8Stride * 4;
  for (int r = warp; r < rows; r += kWarps) {
    const int n = vis_of(r);
    if (n == 0) continue;  // fully masked: skipped, not given a value
    float s_j[2];
    float m_tile = -INFINITY;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int j = lane + 32 * h;
      s_j[h] = j < n ? sm.s[r * kTile + j] : -INFINITY;
      if (j < n) m_tile = maxf(m_tile, s_j[h]);
    }
    m_tile = warp_max(m_tile);
    const float m_old = sm.m[r];
    const float m_new = maxf(m_old, m_tile);
    const float alpha = sas_rescale(m_old, m_new, sm.sas);
    int c8[2];
    PScale ps;
    if (p_codes) {             // uniform
      ps = p_scale(pq, 0.0f);  // u8 / s8: row-independent
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int j = lane + 32 * h;
        c8[h] =
            j < n ? code_table[p_code_table_index(float_to_half(sub16(m_new, s_j[h])).bits, count)]
                  : 0;
      }
    } else {
      float p_j[2], p_max = 0.0f;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int j = lane + 32 * h;
        p_j[h] = j < n ? sas_lookup_shared(sub16(m_new, s_j[h]), table, count) : 0.0f;
        p_max = maxf(p_max, p_j[h]);
      }
      // The row's P max is read only by p_scale of u8_row: the other modes skip its reduction
      // (one 5-step shuffle chain off the softmax warps' path; pq is uniform).
      if (pq == PQuant::kU8Row) p_max = warp_max(p_max);
      ps = p_scale(pq, p_max);
#pragma unroll
      for (int h = 0; h < 2; ++h) c8[h] = lane + 32 * h < n ? p_code(p_j[h], ps) : 0;
    }
    int sum = 0;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      p8b[r * kRowBytes + lane + 32 * h] = static_cast<uint8_t>(c8[h]);
      sum += c8[h];
    }
    sum = warp_sum(sum);
    __syncwarp();  // every lane has read m[r] before lane 0 updates it
    if (lane == 0) {
      sm.l[r] = update_rowsum(sm.l[r], alpha, sum, ps.s_p);
      sm.m[r] = m_new;
      sm.alpha[r] = alpha;
      sm.sp[r] = ps.s_p;
    }
  }
}

// Step "pv" (SPEC 5.5 output part): P8 . V8 on the tensor cores (u8 x s8, exact), then
// O = fma(O, alpha, acc * (s_P * s_V)) per element; O lives in registers in the mma C layout
// (warp w owns channels [w * D / 8, (w + 1) * D / 8)). For per-token V scales (an int8 buffer
// tile of > 1 token) the owner of O[r][c] runs the reference's token-ordered fmaf instead.
// vis: visible tokens of this lane's rows g, g + 8 (0: padding or skipped); vs0: the V scale.
template <int D, int kRows>
__device__ __forceinline__ void pv_step(Smem<D>& sm, float (&o)[Traits<D>::kOTiles][4],
                                        const int (&vis)[2], bool v_pt, float vs0) {
  using T = Traits<D>;
  constexpr int kHalves = kRows > 8 ? 2 : 1;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
  uint32_t pa[2][4];
#pragma unroll
  for (int ks = 0; ks < 2; ++ks) {
    pa[ks][0] = sm.p8[g * T::kP8Stride + ks * 8 + q];
    pa[ks][1] = kRows > 8 ? sm.p8[(g + 8) * T::kP8Stride + ks * 8 + q] : 0u;
    pa[ks][2] = sm.p8[g * T::kP8Stride + ks * 8 + 4 + q];
    pa[ks][3] = kRows > 8 ? sm.p8[(g + 8) * T::kP8Stride + ks * 8 + 4 + q] : 0u;
  }
  // This lane's rows g and g + 8: alpha, s_P * s_V (not read when the row is not given a value).
  float alpha[2], spv[2];
#pragma unroll
  for (int h = 0; h < kHalves; ++h) {
    const int r = g + h * 8;
    alpha[h] = vis[h] ? sm.alpha[r] : 0.0f;
    spv[h] = vis[h] ? sm.sp[r] * vs0 : 0.0f;
  }
#pragma unroll
  for (int i = 0; i < T::kOTiles; ++i) {
    const int c0 = (warp * T::kOTiles + i) * 8;
    int acc[4] = {0, 0, 0, 0};
    if (!v_pt) {
#pragma unroll
      for (int ks = 0; ks < 2; ++ks)
        mma_u8s8(acc, pa[ks], sm.vt[vt_word(c0 + g, ks * 8 + q)],
                 sm.vt[vt_word(c0 + g, ks * 8 + 4 + q)]);
    }
#pragma unroll
    for (int h = 0; h < 2 * kHalves; ++h) {
      const int r = g + (h >> 1) * 8, c = c0 + 2 * q + (h & 1);
      if (vis[h >> 1] == 0) continue;  // padding row, or skipped: not given a value
      if (!v_pt) {
        o[i][h] = update_output(o[i][h], alpha[h >> 1], acc[h], spv[h >> 1]);
      } else {
        const uint8_t* p8b = reinterpret_cast<const uint8_t*>(sm.p8 + r * T::kP8Stride);
        float pv = 0.0f;
        for (int j = 0; j < vis[h >> 1]; ++j)
          pv = fmaf_rn(
              static_cast<float>(static_cast<int>(p8b[j]) * static_cast<int>(vt_byte(sm.vt, c, j))),
              sm.vs[j], pv);
        o[i][h] = fmaf_rn(o[i][h], sm.alpha[r], pv * sm.sp[r]);
      }
    }
  }
}

// kRows: a compile-time bound on the query rows (8 or kMaxRows); at <= 8 the mma rows g + 8 are
// padding and their fragments and epilogues are not compiled.
template <int D, int kMinBlocks, int kRows>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    DecodeKernel(RowsParams P, const uint8_t* p_codes) {
  using T = Traits<D>;
  static_assert(kRows == 8 || kRows == kMaxRows, "decode kernel: 8 or kMaxRows rows");
  constexpr int kHalves = kRows > 8 ? 2 : 1;
  __shared__ Smem<D> sm;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int bkv = blockIdx.x, split = blockIdx.y;
  const int b = bkv / P.hkv, hk = bkv % P.hkv;
  const int rows = P.group * static_cast<int>(P.q_len);
  const int bits = P.head_bits[hk];
  if (tid == 0) sm.sas = P.sas;

  // Query rows r = hh * q_len + i (query head hk * group + hh, position pos_offset + i).
  if (P.q_half) {  // q_len == 1: stage 1 of each one-row group here (SPEC 1), one warp per row
    for (int r = warp; r < rows; r += kWarps) {
      const Half* x = P.q_half + (static_cast<int64_t>(b) * P.hq + hk * P.group + r) * D;
      float amax = 0.0f;
      for (int c = lane; c < D; c += 32) amax = maxf(amax, absf(half_to_float(x[c])));
      const Stage1Scale s = stage1_scale(warp_max(amax));
      for (int c = lane; c < D; c += 32) sm.q[r * D + c] = stage1_code(half_to_float(x[c]), s.inv);
      if (lane == 0) sm.qs[r] = s.scale;
    }
  } else {
    for (int e = tid; e < rows * D; e += kThreads) {
      const int r = e / D, c = e % D;
      const int64_t bhq = static_cast<int64_t>(b) * P.hq + hk * P.group + r / P.q_len;
      sm.q[e] = P.q_codes[(bhq * P.q_len + r % P.q_len) * D + c];
    }
    for (int r = tid; r < rows; r += kThreads) {
      const int64_t bhq = static_cast<int64_t>(b) * P.hq + hk * P.group + r / P.q_len;
      sm.qs[r] = P.q_scale[bhq * P.q_len + r % P.q_len];
    }
  }
  for (int e = rows * D + tid; e < kMaxRows * D; e += kThreads) sm.q[e] = 0;  // padding rows
  for (int e = tid; e < kMaxRows * T::kP8Stride; e += kThreads) sm.p8[e] = 0u;
  float o[T::kOTiles][4];
#pragma unroll
  for (int i = 0; i < T::kOTiles; ++i)
#pragma unroll
    for (int h = 0; h < 4; ++h) o[i][h] = 0.0f;
  for (int r = tid; r < rows; r += kThreads) {
    sm.m[r] = -INFINITY;
    sm.l[r] = 0.0f;
  }

  const int n_tiles = P.n_blocks + (P.n_buf > 0 ? 1 : 0);
  const int t_begin = static_cast<int>(static_cast<int64_t>(n_tiles) * split / P.splits);
  const int t_end = static_cast<int>(static_cast<int64_t>(n_tiles) * (split + 1) / P.splits);

  // Block t of this stream, K (0) or V (1), in global memory and in the ring.
  extern __shared__ __align__(16) uint8_t ring[];
  const BlockLayout L = BlockLayout::channel_axis(kTile, D, bits);
  // Layout offsets once (their 64-bit divisions stay out of the loop).
  const int chunks = static_cast<int>((L.bytes() + 15) / 16);  // 16-byte pieces of one block
  const int scale_off = static_cast<int>(L.scale_offset());
  auto block_ptr = [&](int t, int is_v) {
    return (is_v ? P.v_blocks : P.k_blocks) +
           (static_cast<int64_t>(bkv) * P.block_cap + t) * P.block_stride;
  };
  auto ring_ptr = [&](int t, int is_v) {
    return ring + (static_cast<int64_t>(t % kStages) * 2 + is_v) * P.block_stride;
  };
  // The SAS memo table (u16, count entries) or, for p_quant u8 / s8, the P-code table (u8,
  // count + 1 entries) joins the first copy group: shared-memory lookups in the softmax step.
  uint16_t* table =
      reinterpret_cast<uint16_t*>(ring + static_cast<int64_t>(kStages) * 2 * P.block_stride);
  {
    const int bytes = p_codes ? P.sas_table_count + 1 : 2 * P.sas_table_count;
    const uint8_t* src = p_codes ? p_codes : reinterpret_cast<const uint8_t*>(P.sas_table);
    for (int off = tid * 16; off < bytes; off += kThreads * 16)
      cp_async16(reinterpret_cast<uint8_t*>(table) + off, src + off, min(16, bytes - off));
  }
  // One commit group per ring slot, empty past the run's blocks. Piece e of 2 * chunks: K's
  // chunks, then V's; the block's four addresses (global / ring, K / V) once per block, one
  // select per piece (v10a built both 64-bit addresses per piece: ~22 instructions each).
  auto issue = [&](int t) {
    if (t < t_end && t < P.n_blocks) {
      const uint8_t* const kg = block_ptr(t, 0);
      const uint8_t* const vg = block_ptr(t, 1);
      uint8_t* const ks = ring_ptr(t, 0);
      uint8_t* const vs = ring_ptr(t, 1);
      for (int e = tid; e < 2 * chunks; e += kThreads) {
        const bool is_v = e >= chunks;
        const int off = 16 * (is_v ? e - chunks : e);
        cp_async16((is_v ? vs : ks) + off, (is_v ? vg : kg) + off);
      }
    }
    cp_async_commit();
  };
  for (int i = 0; i < kStages - 1; ++i) issue(t_begin + i);

  __syncthreads();             // sas, q, m, l
  uint32_t qa[T::kKSteps][4];  // Q A-fragments, fixed for the run
  {
    const int g = lane >> 2, q = lane & 3;
    const uint32_t* q0 = reinterpret_cast<const uint32_t*>(sm.q + g * D) + q;
    const uint32_t* q1 = reinterpret_cast<const uint32_t*>(sm.q + (g + 8) * D) + q;
#pragma unroll
    for (int ks = 0; ks < T::kKSteps; ++ks) {
      qa[ks][0] = q0[ks * 8];
      qa[ks][1] = kRows > 8 ? q1[ks * 8] : 0u;
      qa[ks][2] = q0[ks * 8 + 4];
      qa[ks][3] = kRows > 8 ? q1[ks * 8 + 4] : 0u;
    }
  }
  // Visible tokens of query row r in the tile at pos0: (pos_offset - pos0) + (r % q_len + 1),
  // clamped to [0, nt] (0: the row skips the tile), computed where needed (no shared array, no
  // barrier). The row part once: this lane's mma rows g, g + 8 (score / pv) and this warp's
  // softmax rows; a padding row gets a part that never sees a token. The tile part is clamped to
  // [-kTile, kTile] first (int arithmetic; row parts are 1..kMaxRows, nt <= kTile, so the clamp
  // changes no result).
  auto row_part = [&](int r) { return r < rows ? r % static_cast<int>(P.q_len) + 1 : -4 * kTile; };
  auto visible = [](int tile_part, int row, int nt) {
    const int v = tile_part + row;
    return v <= 0 ? 0 : (v < nt ? v : nt);
  };
  const int lane_row[2] = {row_part(lane >> 2), row_part((lane >> 2) + 8)};
  const int warp_row0 = row_part(warp), warp_row1 = row_part(warp + kWarps);  // softmax rows

  // Unit ui (token quad, octet) of block t's K (is_v 0) or V (1), from the ring slot, at the
  // cache's bit width.
  auto unpack_one = [&](int t, int is_v, int ui) {
    const int tq = ui / T::kOctets, oc = ui % T::kOctets;
    const uint8_t* blk = ring_ptr(t, is_v);
    uint2 raw[4];
    if (bits == 4) {
      load_unit<D, 4>(blk, tq, oc, raw);
      unpack_unit<D, 4>(sm, is_v, tq, oc, raw, blk);
    } else if (bits == 2) {
      load_unit<D, 2>(blk, tq, oc, raw);
      unpack_unit<D, 2>(sm, is_v, tq, oc, raw, blk);
    } else {
      load_unit<D, 8>(blk, tq, oc, raw);
      unpack_unit<D, 8>(sm, is_v, tq, oc, raw, blk);
    }
  };
  // Warps with a softmax row (softmax_step: warp w takes rows w, w + kWarps). When some warp has
  // none (rows < kWarps), the blocks' V is unpacked by those warps during the softmax (v_late)
  // rather than by all warps before the score, so the softmax warps' share of the unpack leaves
  // the path to the barrier after the softmax (ncu of v10a at GQA 4: warps 4-7 waiting there
  // held 13% of the kernel's stall samples, the V unpack 11%).
  // (The 16-row instance runs 9..16 rows: no warp is free there, and v_late is not compiled.)
  const int soft_warps = rows < kWarps ? rows : kWarps;
  const bool v_late_ok = kRows <= 8 && soft_warps < kWarps;

  for (int t = t_begin; t < t_end; ++t) {
    const long long pos0 = static_cast<long long>(t) * kTile;
    const bool is_block = t < P.n_blocks;
    const int nt = is_block ? kTile : P.n_buf;
    const bool per_token = !is_block && P.buf_int8 && nt > 1;  // k_pt = v_pt (SPEC 6 buffer)
    const long long rel = P.pos_offset - pos0;
    const int tile_part = rel < -kTile ? -kTile : (rel > kTile ? kTile : static_cast<int>(rel));
    // load: block t is in the ring, the next copy issued
    cp_async_wait<kStages - 2>();
    __syncthreads();  // block t visible to all; the previous tile's score / pv reads are done
    issue(t + kStages - 1);  // into the slot of block t - 1, consumed before the barrier above
    // unpack (each unit's stage-2 pairs from the ring bytes of its octet): K here; V here too
    // unless some warp holds no softmax row (v_late: V on those warps during the softmax).
    const bool v_late = is_block && v_late_ok;
    if (is_block) {
#pragma unroll
      for (int k = 0; k < T::kUnitsPerThread; ++k) {
        const int u = tid + k * kThreads;
        const int is_v = u >= T::kUnits, ui = is_v ? u - T::kUnits : u;
        if (v_late && is_v) continue;  // warp-uniform: kUnits is a multiple of 32
        unpack_one(t, is_v, ui);
      }
    } else {
      load_buffer_tile<D>(sm, P, bkv, nt);
    }
    int vis[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) vis[h] = visible(tile_part, lane_row[h], nt);
    __syncthreads();
    // The blocks' stage-1 scales straight from the ring slot (valid through this iteration: the
    // slot is refilled only after the next iteration's first barrier); the buffer's from sm
    // (written before the barrier above).
    const float ks0 =
        is_block ? *reinterpret_cast<const float*>(ring_ptr(t, 0) + scale_off) : sm.ks[0];
    const float vs0 =
        is_block ? *reinterpret_cast<const float*>(ring_ptr(t, 1) + scale_off) : sm.vs[0];
    score_step<D, kRows>(sm, qa, vis, per_token, ks0, P.tau);
    __syncthreads();
    softmax_step<D>(sm, rows, P.p_quant, table, p_codes != nullptr, P.sas_table_count, [&](int r) {
      return visible(tile_part, r < warp + kWarps ? warp_row0 : warp_row1, nt);
    });
    // v_late: V of block t on the warps without a softmax row, beside the softmax. Shared phases:
    // sm.vt is written here and read by pv_step after the barrier below; its previous reader,
    // pv_step of tile t - 1, finished before this iteration's first barrier; the buffer tile
    // (its only other writer) fills it before the second barrier and is never late. The softmax
    // reads s / m / l and writes p8 / m / l / alpha / sp, all disjoint from vt. The ring slot of
    // block t is read here and refilled only by issue(t + kStages) after the next iteration's
    // first barrier.
    if (v_late && warp >= soft_warps) {
#pragma unroll 1
      for (int ui = tid - soft_warps * 32; ui < T::kUnits; ui += (kWarps - soft_warps) * 32)
        unpack_one(t, 1, ui);
    }
    __syncthreads();
    pv_step<D, kRows>(sm, o, vis, per_token, vs0);
  }
  cp_async_wait<0>();  // no copy outlives the kernel (the ring slots past the run are empty)
  // O at the end of the run (fused merge: the runs' l values) over the ring and the SAS table,
  // idle now (the barrier below orders their last reads before these writes).
  float* const sm_o = reinterpret_cast<float*>(ring);

  // Outputs: the final rows (one run), or this run's state and, in the last run to finish, the
  // SPEC 6 merge in run order.
  __syncthreads();
  {  // O from the mma C layout to shared memory
    const int g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int i = 0; i < T::kOTiles; ++i)
#pragma unroll
      for (int h = 0; h < 2 * kHalves; ++h) {
        const int r = g + (h >> 1) * 8, c = (warp * T::kOTiles + i) * 8 + 2 * q + (h & 1);
        if (r < rows) sm_o[r * D + c] = o[i][h];
      }
  }
  __syncthreads();
  auto out_row = [&](int r) {
    const int64_t bhq = static_cast<int64_t>(b) * P.hq + hk * P.group + r / P.q_len;
    return bhq * P.q_len + r % P.q_len;
  };
  if (P.splits == 1) {
    for (int e = tid; e < rows * D; e += kThreads) {
      const int r = e / D, c = e % D;
      P.out[out_row(r) * D + c] = float_to_half(finalize_output(sm_o[e], sm.l[r]));
    }
    return;
  }
  const int S = P.splits;
  for (int e = tid; e < rows * D; e += kThreads) {
    const int r = e / D, c = e % D;
    P.run_o[(out_row(r) * S + split) * D + c] = sm_o[e];
  }
  for (int r = tid; r < rows; r += kThreads) {
    P.run_ml[(out_row(r) * S + split) * 2] = sm.m[r];
    P.run_ml[(out_row(r) * S + split) * 2 + 1] = sm.l[r];
  }
  if (!P.fused_merge) return;
  __threadfence();
  __syncthreads();
  if (tid == 0) sm.last = atomicAdd(P.counters + bkv, 1) == S - 1;
  __syncthreads();
  if (!sm.last) return;
  __threadfence();
  // Factors a_s and l_s of every run in shared memory (loaded in parallel), then the sums in
  // run order: l on one lane per row, O[r][c] on one thread each.
  float* factor = sm.s;  // rows * S <= kMaxFactors
  float* l_run = sm_o;   // rows * S <= kMaxRows * D
  for (int r = warp; r < rows; r += kWarps) {
    const float* ml = P.run_ml + out_row(r) * S * 2;
    float m = -INFINITY;
    for (int s = lane; s < S; s += 32) m = maxf(m, __ldcg(ml + s * 2));
    m = warp_max(m);
    for (int s = lane; s < S; s += 32) {
      factor[r * S + s] = merge_factor(__ldcg(ml + s * 2), m, sm.sas);
      l_run[r * S + s] = __ldcg(ml + s * 2 + 1);
    }
    __syncwarp();
    if (lane == 0) {
      float l = 0.0f;
      for (int s = 0; s < S; ++s) l = fmaf_rn(l_run[r * S + s], factor[r * S + s], l);
      sm.l[r] = l;
    }
  }
  __syncthreads();
  for (int e = tid; e < rows * D; e += kThreads) {
    const int r = e / D, c = e % D;
    const float* ro = P.run_o + out_row(r) * S * D + c;
    float acc = 0.0f;
    for (int s0 = 0; s0 < S; s0 += 8) {  // 8 loads in flight, then the fmaf chain in order
      float v[8];
#pragma unroll
      for (int k = 0; k < 8; ++k)
        v[k] = s0 + k < S ? __ldcg(ro + static_cast<int64_t>(s0 + k) * D) : 0.0f;
#pragma unroll
      for (int k = 0; k < 8; ++k)
        if (s0 + k < S) acc = fmaf_rn(v[k], factor[r * S + s0 + k], acc);
    }
    P.out[out_row(r) * D + c] = float_to_half(finalize_output(acc, sm.l[r]));
  }
  if (tid == 0) P.counters[bkv] = 0;  // ready for the next call (and graph replays)
}

}  // namespace

bool decode_kernel_supports(const RowsParams& p) {
  static const bool disabled = [] {
    const char* e = std::getenv("TURBO_DECODE_KERNEL");
    return e != nullptr && std::strcmp(e, "rows") == 0;
  }();
  return !disabled && !p.want_stats && (p.d == 64 || p.d == 128) && p.n_b == kTile &&
         p.k_axis == 0 && p.v_axis == 0 && p.p_quant != PQuant::kFp16 && p.sas_table != nullptr &&
         p.group * p.q_len <= kMaxRows && p.splits >= 1 && p.splits <= 1024 && !p.general_cache;
}

bool decode_merge_fusable(const RowsParams& p) {
  return p.group * p.q_len * p.splits <= kMaxFactors;
}

void launch_decode_kernel(const RowsParams& p, cudaStream_t stream) {
  TURBO_CHECK(decode_kernel_supports(p), "decode kernel: unsupported configuration");
  TURBO_CHECK(!p.fused_merge || decode_merge_fusable(p), "decode kernel: merge not fusable");
  // Register budget: 2 CTAs per SM (128 registers) by default, or 3 (80 registers, a few spills)
  // with TURBO_DECODE_CTAS=3 (tuning; slower on the H200, cuda/TUNING.md).
  static const int min_blocks = [] {
    const char* e = std::getenv("TURBO_DECODE_CTAS");
    return e != nullptr && std::atoi(e) == 3 ? 3 : 2;
  }();
  // The P-code table where it applies (u8 / s8), else the SAS memo table in the softmax.
  const uint8_t* p_codes = p_code_table_applies(p.sas, p.p_quant)
                               ? cached_p_code_table(p.sas, p.p_quant, stream)
                               : nullptr;
  const size_t table_bytes = p_codes ? static_cast<size_t>(p.sas_table_count) + 1
                                     : 2 * static_cast<size_t>(p.sas_table_count);
  // Dynamic shared memory: the ring, then the table; after the loop, O over both.
  const size_t ring = std::max<size_t>(
      static_cast<size_t>(kStages) * 2 * p.block_stride + (table_bytes + 15) / 16 * 16,
      sizeof(float) * kMaxRows * p.d);
  TURBO_CHECK(ring <= kMaxDynamicSmem, "decode kernel: block stride "
                                           << p.block_stride << " and a SAS table of "
                                           << p.sas_table_count << " entries exceed shared memory");
  static const bool attr_set = [] {
    for (auto* k :
         {DecodeKernel<64, 2, 8>, DecodeKernel<64, 3, 8>, DecodeKernel<128, 2, 8>,
          DecodeKernel<128, 3, 8>, DecodeKernel<64, 2, kMaxRows>, DecodeKernel<64, 3, kMaxRows>,
          DecodeKernel<128, 2, kMaxRows>, DecodeKernel<128, 3, kMaxRows>})
      TURBO_CUDA_CHECK(
          cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxDynamicSmem));
    return true;
  }();
  (void)attr_set;
  const dim3 grid(static_cast<unsigned>(p.batch * p.hkv), static_cast<unsigned>(p.splits));
  // The query rows' compile-time bound: 8 (GQA up to 8 at q_len 1) or kMaxRows.
  const bool small = p.group * p.q_len <= 8;
  auto* kernel =
      p.d == 64
          ? (min_blocks == 3 ? (small ? DecodeKernel<64, 3, 8> : DecodeKernel<64, 3, kMaxRows>)
                             : (small ? DecodeKernel<64, 2, 8> : DecodeKernel<64, 2, kMaxRows>))
          : (min_blocks == 3 ? (small ? DecodeKernel<128, 3, 8> : DecodeKernel<128, 3, kMaxRows>)
                             : (small ? DecodeKernel<128, 2, 8> : DecodeKernel<128, 2, kMaxRows>));
  kernel<<<grid, kThreads, ring, stream>>>(p, p_codes);
  TURBO_CUDA_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace turbo

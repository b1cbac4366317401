// The "mma" FlashQ prefill kernel (SPEC 5): INT8 tensor-core tiles, bit-exact with the reference.
//
// CTA = 4 warps = Br 64 query rows of one query head; each warp owns 16 rows. K/V tiles of the
// config's Bc (<= 64) tokens stream through a 2-stage cp.async pipeline into shared memory:
//   S_acc = Q8 . K8^T   mma.sync m16n8k32 s8.s8 -> s32   (exact integer sums, any order)
//   per element, per row, in the reference's order: score_fp16, row max, sub16, then the P code:
//     p_quant u8 / s8: one lookup in the P-code table (core/flashq.h: the code is a function of
//     the 16 bits of x = fp16(m - s); filled on the host by the core functions, proven equal to
//     sas_eval + p_scale + p_code on every FP16 x by core's exhaustive test), in shared memory;
//     p_quant u8_row: sas_eval (the SAS memo table), the row's max P, p_scale, p_code;
//   sas_rescale, the integer row sum (dp4a), update_rowsum
//   acc  = P8 . V8      mma.sync m16n8k32 u8.s8 -> s32   (P8 fragments built in registers)
//   O    = update_output(O, alpha, acc, s_P * s_V)       per element, once per tile
// Two scores of a row share one packed FP16 step (packed_steps.cuh: convert, max, subtract,
// index), each lane rounded as the scalar step; integer tile sums become floats by the exact
// magic-number conversion (small_int_to_float). Fragments come from shared memory by ldmatrix.
// Every float step of an output element is the same core/ call in the same tile order as
// reference/flashq.cpp process_tile, so the result is identical bit for bit.
//
// Covered: D <= 128 (padded to 64 or 128), any N, causal or not, GQA, q_gran any, kv_gran tile or
// head (one K and one V scale per tile), k_smooth none/mean, Bc <= 64, p_quant u8/s8/u8_row, any
// n_r and poly at sas_precision fp16 (P comes from the SAS memo table, sas_table.cuh). Everything
// else (D > 128, kv_gran token, p_quant fp16, sas_precision fp32, exp_mode exact, stats) runs on
// the rows kernel.
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/flashq.h"
#include "core/fp16.h"
#include "core/quant.h"
#include "core/sas.h"
#include "cuda/cuda_common.cuh"
#include "cuda/packed_steps.cuh"
#include "cuda/ptx.cuh"
#include "cuda/sas_table.cuh"

namespace turbo {
namespace cuda {
namespace {

constexpr int kBr = 64;    // query rows per CTA
constexpr int kTile = 64;  // KV tokens per shared-memory tile (the config's Bc <= 64 of them used)
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
// Bytes of the P-code table in shared memory: count + 1 entries, count <= bits(fp16(15)).
constexpr int kPTableBytes = 0x4B80 + 16;

// Leave-one-stage-out variants for the tuning notes (TURBO_MMA_VARIANT; wrong results, timing
// only): no_qk skips the Q.K^T products, no_softmax builds P from the raw scores, no_pv skips the
// P.V products and the O update, quant_only stops after the quantization and the V^T transpose.
// Exact variants: cast_convert (int -> float by the conversion instruction instead of the magic
// number), two_ctas (2 CTAs per SM: up to 255 registers, no spills, 8 warps per SM).
enum Variant : int {
  kFull = 0,
  kNoQk = 1,
  kNoSoftmax = 2,
  kNoPv = 3,
  kQuantOnly = 4,
  kCastConvert = 5,
  kTwoCtas = 6
};

template <int DP>
struct MmaTraits {
  static_assert(DP == 64 || DP == 128, "mma kernel instances: padded head_dim 64 or 128");
  static constexpr int kKStride = DP + 16;     // bytes per K row in smem (conflict-free ldmatrix)
  static constexpr int kVStride = kTile + 16;  // bytes per V^T row (one channel)
  static constexpr int kQkSteps = DP / 32;     // k-steps of Q K^T
  static constexpr int kSTiles = kTile / 8;    // n-tiles of S
  static constexpr int kOTiles = DP / 8;       // n-tiles of O
  static constexpr int kKBytes = kTile * kKStride;
  static constexpr int kVBytes = DP * kVStride;
  static constexpr int kQBytes = kBr * kKStride;
  static constexpr int kSmem = 2 * kKBytes + 2 * kVBytes + kQBytes;  // + the P-code table
  // Tile sums the magic-number conversion takes exactly.
  static_assert(127 * 127 * DP <= kSmallIntLimit, "Q.K sum range");
  static_assert(255 * 127 * kTile <= kSmallIntLimit, "P.V sum range");
};

__device__ __forceinline__ void cp_async_wait_1() { cp_async_wait<1>(); }

// Register budget: CTAs per SM the compiler must fit (4 CTAs = 128 registers for DP 64, 3 = 168
// registers for DP 128).
template <int DP>
constexpr int kMinBlocks = DP == 64 ? 4 : 3;

// Key order inside each 32-key chunk of a tile, shared by the P fragments and V^T: A-fragment
// byte position p (m16n8k32, a row's bytes 4q..4q+3 and 16+4q..16+4q+3 for lane q = lane % 4)
// holds key (2 (p / 16) + (p % 4) / 2) * 8 + 2 ((p % 16) / 4) + p % 2, i.e. the keys of the S
// accumulator registers that lane already holds. Sums over keys are integer sums (order-free).
__host__ __device__ constexpr int key_of_position(int p) {
  return (2 * (p / 16) + (p % 4) / 2) * 8 + 2 * ((p % 16) / 4) + p % 2;
}

// The softmax is compiled twice, with and without the per-element visibility tests: tiles that
// every row of the warp sees whole take the test-free copy. kTable: p_quant u8 / s8 through the
// P-code table in shared memory; otherwise u8_row through the SAS memo table.
template <int DP, bool kTable, int kVariant>
__global__ void __launch_bounds__(kThreads, kVariant == kTwoCtas ? 2 : kMinBlocks<DP>)
    MmaPrefillKernel(MmaParams P, const int8_t* __restrict__ vt, int n_tiles,
                     const uint8_t* __restrict__ p_table) {
  using T = MmaTraits<DP>;
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ SasParams sas;
  uint8_t* k_s = smem;
  uint8_t* v_s = smem + 2 * T::kKBytes;
  uint8_t* q_s = smem + 2 * T::kKBytes + 2 * T::kVBytes;
  uint8_t* tab_s = q_s + T::kQBytes;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t4 = lane & 3;
  if (threadIdx.x == 0) sas = P.sas;  // dynamic LUT/coefficient indexing reads shared memory

  const int q_blk = gridDim.x - 1 - blockIdx.x;  // causal: the longest rows start first
  const int64_t bhq = blockIdx.y;
  const int b = static_cast<int>(bhq / P.hq), h = static_cast<int>(bhq % P.hq);
  const int64_t bkv = static_cast<int64_t>(b) * P.hkv + h / P.group;
  const int64_t N = P.n;
  const int64_t q0 = static_cast<int64_t>(q_blk) * kBr;
  const int64_t row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};

  // The Q tile stays in shared memory; its A fragments are re-read per KV tile (ldmatrix), which
  // keeps 4 * DP / 32 registers free for occupancy.
  {
    const int8_t* qb = P.q_codes + (bhq * N + q0) * DP;
    for (int idx = threadIdx.x; idx < kBr * (DP / 16); idx += kThreads) {
      const int r = idx / (DP / 16), ch = idx % (DP / 16);
      const uint4 val =
          q0 + r < N ? *reinterpret_cast<const uint4*>(qb + static_cast<int64_t>(r) * DP + ch * 16)
                     : make_uint4(0, 0, 0, 0);
      *reinterpret_cast<uint4*>(q_s + r * T::kKStride + ch * 16) = val;
    }
  }
  const int count = P.sas_table_count;
  if (kTable) {  // the P-code table (count + 1 bytes, rounded up to 16 on the device)
    for (int idx = threadIdx.x * 16; idx <= count; idx += kThreads * 16)
      cp_async16(tab_s + idx, p_table + idx, 16);
  }
  // ldmatrix row addresses: Q rows warp * 16 + (lane % 16), bytes 16 (lane / 16) of each k-step;
  // K rows (tokens) nt * 8 + lane % 8, bytes 16 (lane / 8) of each pair of k-steps; V^T rows
  // (channels) i * 8 + lane % 8, bytes 16 (lane / 8) (the two k-steps of the 64-key tile).
  const uint8_t* q_lm = q_s + (warp * 16 + (lane & 15)) * T::kKStride + (lane >> 4) * 16;
  const int k_lm = (lane & 7) * T::kKStride + (lane >> 3) * 16;
  const int v_lm = (lane & 7) * T::kVStride + (lane >> 3) * 16;
  float q_sc[2], m[2], l[2];
  for (int hr = 0; hr < 2; ++hr) {
    q_sc[hr] = row[hr] < N ? P.q_scale[bhq * N + row[hr]] : 0.0f;
    m[hr] = -INFINITY;
    l[hr] = 0.0f;
  }
  float o[T::kOTiles][4];
#pragma unroll
  for (int i = 0; i < T::kOTiles; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[i][e] = 0.0f;

  const int bc = P.bc;
  const int64_t q_last = min(q0 + kBr, N) - 1;
  const int last =
      P.causal ? static_cast<int>(min(static_cast<int64_t>(n_tiles), q_last / bc + 1)) : n_tiles;

  auto prefetch = [&](int t, int stage) {
    const int64_t t0 = static_cast<int64_t>(t) * bc;
    const int n = static_cast<int>(min(static_cast<int64_t>(bc), N - t0));
    const int8_t* kg = P.k_codes + (bkv * N + t0) * DP;
    uint8_t* kd = k_s + stage * T::kKBytes;
    for (int idx = threadIdx.x; idx < kTile * (DP / 16); idx += kThreads) {
      const int r = idx / (DP / 16), ch = idx % (DP / 16);
      const bool ok = r < n;
      cp_async16(kd + r * T::kKStride + ch * 16, ok ? kg + r * DP + ch * 16 : P.k_codes,
                 ok ? 16 : 0);
    }
    const int8_t* vg = vt + ((bkv * n_tiles + t) * DP) * kTile;
    uint8_t* vd = v_s + stage * T::kVBytes;
    for (int idx = threadIdx.x; idx < DP * (kTile / 16); idx += kThreads) {
      const int c = idx / (kTile / 16), ch = idx % (kTile / 16);
      cp_async16(vd + c * T::kVStride + ch * 16, vg + c * kTile + ch * 16, 16);
    }
  };

  if (last > 0) prefetch(0, 0);
  cp_async_commit();
  __syncthreads();  // sas is visible

  float k_scale_next = last > 0 ? P.k_scale[bkv * N] : 0.0f;
  float v_scale_next = last > 0 ? P.v_scale[bkv * N] : 0.0f;
  const uint16_t* __restrict__ table = P.sas_table;
  const __half2 nr2 = __half2half2(__ushort_as_half(static_cast<unsigned short>(count)));
  const PScale ps_fixed = p_scale(P.p_quant, 0.0f);  // kTable: u8 / s8, row-independent
  for (int t = 0; t < last; ++t) {
    if (t + 1 < last) prefetch(t + 1, (t + 1) & 1);
    cp_async_commit();
    cp_async_wait_1();
    __syncthreads();
    const uint8_t* kd = k_s + (t & 1) * T::kKBytes;
    const uint8_t* vd = v_s + (t & 1) * T::kVBytes;
    const int64_t t0 = static_cast<int64_t>(t) * bc;
    const int n = static_cast<int>(min(static_cast<int64_t>(bc), N - t0));
    // This tile's K and V scales were loaded one tile ahead (their latency off the score path).
    const float k_scale = k_scale_next, v_scale = v_scale_next;
    if (t + 1 < last) {
      k_scale_next = P.k_scale[bkv * N + t0 + bc];
      v_scale_next = P.v_scale[bkv * N + t0 + bc];
    }

    // 1. S = Q8 . K8^T (exact int32)
    int sacc[T::kSTiles][4];
#pragma unroll
    for (int nt = 0; nt < T::kSTiles; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) sacc[nt][e] = kVariant == kNoQk ? (nt * 37 + e + lane) & 127 : 0;
    if (kVariant != kNoQk) {
#pragma unroll
      for (int kp = 0; kp < T::kQkSteps; kp += 2) {  // pairs of k-steps
        uint32_t qa[2][4];
        ldmatrix_x4(qa[0], q_lm + kp * 32);
        ldmatrix_x4(qa[1], q_lm + kp * 32 + 32);
#pragma unroll
        for (int nt = 0; nt < T::kSTiles; ++nt) {
          uint32_t kb[4];  // b0, b1 of k-step kp, then of kp + 1
          ldmatrix_x4(kb, kd + nt * 8 * T::kKStride + kp * 32 + k_lm);
          mma_s8s8(sacc[nt], qa[0], kb[0], kb[1]);
          mma_s8s8(sacc[nt], qa[1], kb[2], kb[3]);
        }
      }
    }

    // 2-4 per row (hr = 0: row g, hr = 1: row g + 8 of this warp's 16); lane t4 holds keys
    // nt * 8 + 2 t4 + {0, 1} of both rows. The P codes go straight into the A fragments of P.V:
    // pa[kk][hr + 2 half] = row hr's codes of key chunk kk, positions 16 half + 4 t4 .. + 3.
    uint32_t pa[2][4];
    float alpha[2], s_pv[2];
    bool active[2];
    auto softmax_rows = [&](auto masked_tag) {
      constexpr bool kMasked = decltype(masked_tag)::value;
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const float m_old = m[hr];
        int visible = kTile;
        if (kMasked) {
          visible = n;
          if (P.causal)
            visible = static_cast<int>(
                max(static_cast<int64_t>(0), min(static_cast<int64_t>(n), row[hr] - t0 + 1)));
        }
        const float c = score_scale(q_sc[hr], k_scale, P.tau);
        __half2 s2[T::kSTiles];
        __half2 mx = __float2half2_rn(-INFINITY);
#pragma unroll
        for (int nt = 0; nt < T::kSTiles; ++nt) {
          __half2 v =
              kVariant == kCastConvert
                  ? __floats2half2_rn(score_clamped(static_cast<float>(sacc[nt][2 * hr]), c),
                                      score_clamped(static_cast<float>(sacc[nt][2 * hr + 1]), c))
                  : score_fp16x2(sacc[nt][2 * hr], sacc[nt][2 * hr + 1], c);
          if (kMasked) {
            const int j = nt * 8 + t4 * 2;
            const __half ninf = __ushort_as_half(0xfc00);
            v = __halves2half2(j < visible ? __low2half(v) : ninf,
                               j + 1 < visible ? __high2half(v) : ninf);
          }
          s2[nt] = v;
          mx = __hmax2(mx, v);
        }
        float m_tile = maxf(__low2float(mx), __high2float(mx));
        m_tile = maxf(m_tile, __shfl_xor_sync(0xffffffffu, m_tile, 1));
        m_tile = maxf(m_tile, __shfl_xor_sync(0xffffffffu, m_tile, 2));
        const float m_new = maxf(m_old, m_tile);
        const __half2 m2 = __float2half2_rn(m_new);
        uint32_t code[T::kSTiles];  // code[nt] = keys 2 t4 (byte 0) and 2 t4 + 1 (byte 1)
        PScale ps = ps_fixed;
        if (kVariant == kNoSoftmax) {
#pragma unroll
          for (int nt = 0; nt < T::kSTiles; ++nt) code[nt] = half2_bits(s2[nt]) & 0x7f7fu;
        } else if (kTable) {
#pragma unroll
          for (int nt = 0; nt < T::kSTiles; ++nt) {
            const uint32_t idx = p_code_index_x2(__hsub2(m2, s2[nt]), nr2);
            code[nt] = tab_s[idx & 0xffffu] | (static_cast<uint32_t>(tab_s[idx >> 16]) << 8);
          }
        } else {  // u8_row: P = SAS(x) from the memo table, the row's max P, then the codes
          float p[T::kSTiles][2];
          float p_max = 0.0f;
#pragma unroll
          for (int nt = 0; nt < T::kSTiles; ++nt) {
            const __half2 x = __hsub2(m2, s2[nt]);  // masked lanes: +inf (or NaN) -> P = 0
            p[nt][0] = sas_lookup(__low2float(x), table, count);
            p[nt][1] = sas_lookup(__high2float(x), table, count);
            p_max = maxf(maxf(p_max, p[nt][0]), p[nt][1]);
          }
          p_max = maxf(p_max, __shfl_xor_sync(0xffffffffu, p_max, 1));
          p_max = maxf(p_max, __shfl_xor_sync(0xffffffffu, p_max, 2));
          ps = p_scale(P.p_quant, p_max);
#pragma unroll
          for (int nt = 0; nt < T::kSTiles; ++nt)
            code[nt] = static_cast<uint32_t>(p_code(p[nt][0], ps)) |
                       (static_cast<uint32_t>(p_code(p[nt][1], ps)) << 8);
        }
        uint32_t p8_sum = 0;
#pragma unroll
        for (int kk = 0; kk < 2; ++kk)
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const uint32_t w = code[kk * 4 + half * 2] | (code[kk * 4 + half * 2 + 1] << 16);
            pa[kk][hr + 2 * half] = w;
            p8_sum = __dp4a(w, 0x01010101u, p8_sum);
          }
        p8_sum += __shfl_xor_sync(0xffffffffu, p8_sum, 1);
        p8_sum += __shfl_xor_sync(0xffffffffu, p8_sum, 2);
        const bool act = visible > 0;  // a fully masked row skips the tile (no state change)
        const float a = sas_rescale(m_old, m_new, sas);
        alpha[hr] = a;
        s_pv[hr] = ps.s_p * v_scale;
        active[hr] = act;
        if (act) {
          l[hr] = update_rowsum(l[hr], a, static_cast<int32_t>(p8_sum), ps.s_p);
          m[hr] = m_new;
        }
      }
    };
    // 5. acc = P8 . V8 (exact int32), O = fma(O, alpha, acc * (s_P * s_V)); in a whole tile
    // every row is active (compiled without the test).
    auto pv_step = [&](auto masked_tag) {
      constexpr bool kMasked = decltype(masked_tag)::value;
      if (kVariant == kNoPv) {
        o[0][0] += static_cast<float>(pa[0][0] ^ pa[1][3]);  // keeps the softmax live
        return;
      }
#pragma unroll
      for (int i = 0; i < T::kOTiles; ++i) {
        uint32_t vb[4];  // b0, b1 of key chunk 0, then of chunk 1
        ldmatrix_x4(vb, vd + i * 8 * T::kVStride + v_lm);
        int acc[4] = {0, 0, 0, 0};
        mma_u8s8(acc, pa[0], vb[0], vb[1]);
        mma_u8s8(acc, pa[1], vb[2], vb[3]);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int hr = e >> 1;
          if (!kMasked || active[hr])
            o[i][e] =
                kVariant == kCastConvert
                    ? update_output(o[i][e], alpha[hr], acc[e], s_pv[hr])
                    : update_output_f(o[i][e], alpha[hr], small_int_to_float(acc[e]), s_pv[hr]);
        }
      }
    };
    const bool full = n == kTile && (!P.causal || t0 + kTile - 1 <= q0 + warp * 16);
    if (full) {
      softmax_rows(std::integral_constant<bool, false>{});
      pv_step(std::integral_constant<bool, false>{});
    } else {
      softmax_rows(std::integral_constant<bool, true>{});
      pv_step(std::integral_constant<bool, true>{});
    }
    __syncthreads();  // the stage read here is refilled by the next iteration's prefetch
  }

  // 6. O / l
#pragma unroll
  for (int i = 0; i < T::kOTiles; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int hr = e >> 1;
      const int col = i * 8 + t4 * 2 + (e & 1);
      if (row[hr] < N && col < P.d)
        P.out[(bhq * N + row[hr]) * P.d + col] = float_to_half(finalize_output(o[i][e], l[hr]));
    }
}

// V codes [bkv, N, dp] -> per tile V^T [bkv, tile, dp, 64] (tokens past the tile are 0), the keys
// of each 32-key chunk in the P fragments' order (key_of_position).
__global__ void TransposeVKernel(const int8_t* v, int64_t N, int dp, int bc, int n_tiles,
                                 int8_t* vt) {
  constexpr int kStride = 128 + 16;
  __shared__ __align__(16) int8_t tile[kTile * kStride];
  const int t = blockIdx.x;
  const int64_t bkv = blockIdx.y;
  const int64_t t0 = static_cast<int64_t>(t) * bc;
  const int n = static_cast<int>(min(static_cast<int64_t>(bc), N - t0));
  const int c16 = dp / 16;
  const int8_t* src = v + (bkv * N + t0) * dp;
  for (int e = threadIdx.x; e < kTile * c16; e += blockDim.x) {
    const int j = e / c16, c = (e - j * c16) * 16;
    const uint4 val = j < n
                          ? *reinterpret_cast<const uint4*>(src + static_cast<int64_t>(j) * dp + c)
                          : make_uint4(0, 0, 0, 0);
    *reinterpret_cast<uint4*>(tile + j * kStride + c) = val;
  }
  __syncthreads();
  int8_t* out = vt + (bkv * n_tiles + t) * dp * kTile;
  for (int e = threadIdx.x; e < dp * (kTile / 16); e += blockDim.x) {
    const int c = e / (kTile / 16), p0 = (e % (kTile / 16)) * 16;
    uint4 val;
    int8_t* vb = reinterpret_cast<int8_t*>(&val);
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      const int pos = p0 + k;
      vb[k] = tile[((pos & ~31) + key_of_position(pos & 31)) * kStride + c];
    }
    *reinterpret_cast<uint4*>(out + c * kTile + p0) = val;
  }
}

template <int DP, bool kTable, int kVariant>
void launch_kernel(const MmaParams& p, const int8_t* vt, int n_tiles, const uint8_t* p_table,
                   cudaStream_t stream) {
  const int smem = MmaTraits<DP>::kSmem + (kTable ? kPTableBytes : 0);
  static const bool attr_set = [smem] {
    TURBO_CUDA_CHECK(cudaFuncSetAttribute(MmaPrefillKernel<DP, kTable, kVariant>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    return true;
  }();
  (void)attr_set;
  const dim3 grid(static_cast<unsigned>((p.n + kBr - 1) / kBr),
                  static_cast<unsigned>(p.batch * p.hq));
  MmaPrefillKernel<DP, kTable, kVariant><<<grid, kThreads, smem, stream>>>(p, vt, n_tiles, p_table);
  TURBO_CUDA_LAUNCH_CHECK();
}

// TURBO_MMA_VARIANT=no_qk | no_softmax | no_pv | quant_only | cast_convert | two_ctas (Variant).
int variant() {
  static const int v = [] {
    const char* e = std::getenv("TURBO_MMA_VARIANT");
    if (!e || !*e || !std::strcmp(e, "full")) return static_cast<int>(kFull);
    if (!std::strcmp(e, "no_qk")) return static_cast<int>(kNoQk);
    if (!std::strcmp(e, "no_softmax")) return static_cast<int>(kNoSoftmax);
    if (!std::strcmp(e, "no_pv")) return static_cast<int>(kNoPv);
    if (!std::strcmp(e, "quant_only")) return static_cast<int>(kQuantOnly);
    if (!std::strcmp(e, "cast_convert")) return static_cast<int>(kCastConvert);
    if (!std::strcmp(e, "two_ctas")) return static_cast<int>(kTwoCtas);
    TURBO_CHECK(false, std::string("TURBO_MMA_VARIANT: unknown value ") + e +
                           " (full, no_qk, no_softmax, no_pv, quant_only, cast_convert, two_ctas)");
    return 0;
  }();
  return v;
}

template <int DP>
void launch_dp(const MmaParams& p, const int8_t* vt, int n_tiles, const uint8_t* p_table,
               cudaStream_t stream) {
  if (!p_table) return launch_kernel<DP, false, kFull>(p, vt, n_tiles, p_table, stream);
  if (DP != 128) return launch_kernel<DP, true, kFull>(p, vt, n_tiles, p_table, stream);
  switch (variant()) {  // the variants are compiled for D = 128 only
    case kNoQk:
      return launch_kernel<128, true, kNoQk>(p, vt, n_tiles, p_table, stream);
    case kNoSoftmax:
      return launch_kernel<128, true, kNoSoftmax>(p, vt, n_tiles, p_table, stream);
    case kNoPv:
      return launch_kernel<128, true, kNoPv>(p, vt, n_tiles, p_table, stream);
    case kCastConvert:
      return launch_kernel<128, true, kCastConvert>(p, vt, n_tiles, p_table, stream);
    case kTwoCtas:
      return launch_kernel<128, true, kTwoCtas>(p, vt, n_tiles, p_table, stream);
    default:
      return launch_kernel<DP, true, kFull>(p, vt, n_tiles, p_table, stream);
  }
}

DeviceBuffer& vt_buffer() {
  thread_local DeviceBuffer buf;
  return buf;
}

}  // namespace

// Filled on the host by core's fill_p_code_table (the function core's exhaustive test checks)
// and copied to the device.
const uint8_t* cached_p_code_table(const SasParams& sas, PQuant mode, cudaStream_t stream) {
  thread_local DeviceBuffer buf;
  thread_local SasParams key_sas{};
  thread_local PQuant key_mode = PQuant::kFp16;
  if (key_mode != mode || std::memcmp(&key_sas, &sas, sizeof sas) != 0) {
    const int count = p_code_table_count(sas);
    std::vector<uint8_t> host(static_cast<size_t>((count + 1 + 15) / 16 * 16), 0);
    fill_p_code_table(sas, mode, host.data());
    buf.reserve(host.size());
    TURBO_CUDA_CHECK(
        cudaMemcpyAsync(buf.as<void>(), host.data(), host.size(), cudaMemcpyHostToDevice, stream));
    TURBO_CUDA_CHECK(cudaStreamSynchronize(stream));  // `host` dies here; later calls may use
                                                      // other streams
    key_sas = sas;
    key_mode = mode;
  }
  return buf.as<uint8_t>();
}

bool mma_supports(const AttentionConfig& c, int d, bool want_stats) {
  return c.method == Method::kFlashQ && !want_stats && d <= 128 &&
         c.quant.kv_gran != Granularity::kToken && c.p_quant != PQuant::kFp16 && c.quant.bc >= 1 &&
         c.quant.bc <= kTile && c.sas.precision == SasPrecision::kFp16 &&
         c.sas.exp_mode == ExpMode::kSas;
}

void launch_mma_prefill(const MmaParams& p, cudaStream_t stream) {
  TURBO_CHECK(p.dp == 64 || p.dp == 128, "mma prefill: padded head_dim must be 64 or 128");
  TURBO_CHECK(p.sas_table_count > 0 && p.sas_table_count <= kPTableBytes - 16,
              "mma prefill: the SAS tables need sas_precision fp16 and exp_mode sas");
  const int n_tiles = static_cast<int>((p.n + p.bc - 1) / p.bc);
  DeviceBuffer& vt = vt_buffer();
  vt.reserve(static_cast<size_t>(p.batch) * p.hkv * n_tiles * p.dp * kTile);
  TransposeVKernel<<<dim3(static_cast<unsigned>(n_tiles), static_cast<unsigned>(p.batch * p.hkv)),
                     256, 0, stream>>>(p.v_codes, p.n, p.dp, p.bc, n_tiles, vt.as<int8_t>());
  TURBO_CUDA_LAUNCH_CHECK();
  if (variant() == kQuantOnly) return;
  const uint8_t* p_table = p_code_table_applies(p.sas, p.p_quant)
                               ? cached_p_code_table(p.sas, p.p_quant, stream)
                               : nullptr;
  if (p.dp == 64)
    launch_dp<64>(p, vt.as<int8_t>(), n_tiles, p_table, stream);
  else
    launch_dp<128>(p, vt.as<int8_t>(), n_tiles, p_table, stream);
}

}  // namespace cuda
}  // namespace turbo

// The "mma" FlashQ prefill kernel (SPEC 5): INT8 tensor-core tiles, bit-exact with the reference.
//
// CTA = 4 warps = Br 64 query rows of one query head; each warp owns 16 rows. K/V tiles of the
// config's Bc (<= 64) tokens stream through a 2-stage cp.async pipeline into shared memory:
//   S_acc = Q8 . K8^T   mma.sync m16n8k32 s8.s8 -> s32   (exact integer sums, any order)
//   per element, per row, in the reference's order: score_fp16, row max, sub16, sas_eval,
//   sas_rescale, p_scale, p_code, the integer row sum, update_rowsum
//   acc  = P8 . V8      mma.sync m16n8k32 u8.s8 -> s32   (P8 staged through shared memory)
//   O    = update_output(O, alpha, acc, s_P * s_V)       per element, once per tile
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
#include <type_traits>

#include "core/flashq.h"
#include "core/fp16.h"
#include "core/quant.h"
#include "core/sas.h"
#include "cuda/cuda_common.cuh"
#include "cuda/ptx.cuh"
#include "cuda/sas_table.cuh"

namespace turbo {
namespace cuda {
namespace {

constexpr int kBr = 64;    // query rows per CTA
constexpr int kTile = 64;  // KV tokens per shared-memory tile (the config's Bc <= 64 of them used)
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;

template <int DP>
struct MmaTraits {
  static_assert(DP == 64 || DP == 128, "mma kernel instances: padded head_dim 64 or 128");
  static constexpr int kKStride = DP + 16;     // bytes per K row in smem (conflict-free B loads)
  static constexpr int kVStride = kTile + 16;  // bytes per V^T row (one channel)
  static constexpr int kPStride = kTile + 16;  // bytes per P8 row
  static constexpr int kQkSteps = DP / 32;     // k-steps of Q K^T
  static constexpr int kSTiles = kTile / 8;    // n-tiles of S
  static constexpr int kOTiles = DP / 8;       // n-tiles of O
  static constexpr int kOChunk = 4;            // O n-tiles per PV pass (bounds live registers)
  static constexpr int kKBytes = kTile * kKStride;
  static constexpr int kVBytes = DP * kVStride;
  static constexpr int kPBytes = 16 * kPStride;
  static constexpr int kQBytes = kBr * kKStride;
  static constexpr int kSmem = 2 * kKBytes + 2 * kVBytes + kWarps * kPBytes + kQBytes;
  static_assert(kOTiles % kOChunk == 0, "O chunking");
};

__device__ __forceinline__ void cp_async_wait_1() { cp_async_wait<1>(); }

__device__ __forceinline__ uint32_t ld32(const uint8_t* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

// Register budget: CTAs per SM the compiler must fit (4 CTAs = 128 registers suits DP 64 best,
// 3 = 168 registers DP 128; measured on H100, cuda/RESULTS.md).
template <int DP>
constexpr int kMinBlocks = DP == 64 ? 4 : 3;

// The softmax is compiled twice, with and without the per-element visibility tests: tiles that
// every row of the warp sees whole take the test-free copy (measured 1.5x faster than one copy
// with tests). kUnrollRows: unroll the loop over a thread's two rows (more ILP, larger code).
template <int DP, bool kUnrollRows>
__global__ void __launch_bounds__(kThreads, kMinBlocks<DP>)
    MmaPrefillKernel(MmaParams P, const int8_t* __restrict__ vt, int n_tiles) {
  using T = MmaTraits<DP>;
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ SasParams sas;
  uint8_t* k_s = smem;
  uint8_t* v_s = smem + 2 * T::kKBytes;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  uint8_t* p_s = smem + 2 * T::kKBytes + 2 * T::kVBytes + warp * T::kPBytes;
  const int g = lane >> 2, t4 = lane & 3;
  if (threadIdx.x == 0) sas = P.sas;  // dynamic LUT/coefficient indexing reads shared memory

  const int q_blk = gridDim.x - 1 - blockIdx.x;  // causal: the longest rows start first
  const int64_t bhq = blockIdx.y;
  const int b = static_cast<int>(bhq / P.hq), h = static_cast<int>(bhq % P.hq);
  const int64_t bkv = static_cast<int64_t>(b) * P.hkv + h / P.group;
  const int64_t N = P.n;
  const int64_t q0 = static_cast<int64_t>(q_blk) * kBr;
  const int64_t row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};

  // The Q tile stays in shared memory; its A fragments (row-major 16 x 32 per k-step) are
  // re-read per KV tile, which keeps 4 * DP / 32 registers free for occupancy.
  uint8_t* q_s = smem + 2 * T::kKBytes + 2 * T::kVBytes + kWarps * T::kPBytes;
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
  const uint8_t* q_warp = q_s + (warp * 16 + g) * T::kKStride + t4 * 4;
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

  const uint16_t* __restrict__ table = P.sas_table;
  const int table_count = P.sas_table_count;
  for (int t = 0; t < last; ++t) {
    if (t + 1 < last) prefetch(t + 1, (t + 1) & 1);
    cp_async_commit();
    cp_async_wait_1();
    __syncthreads();
    const uint8_t* kd = k_s + (t & 1) * T::kKBytes;
    const uint8_t* vd = v_s + (t & 1) * T::kVBytes;
    const int64_t t0 = static_cast<int64_t>(t) * bc;
    const int n = static_cast<int>(min(static_cast<int64_t>(bc), N - t0));
    const float k_scale = P.k_scale[bkv * N + t0];
    const float v_scale = P.v_scale[bkv * N + t0];

    // 1. S = Q8 . K8^T (exact int32)
    int sacc[T::kSTiles][4];
#pragma unroll
    for (int nt = 0; nt < T::kSTiles; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) sacc[nt][e] = 0;
#pragma unroll
    for (int ks = 0; ks < T::kQkSteps; ++ks) {
      uint32_t qa[4];
#pragma unroll
      for (int r = 0; r < 4; ++r)
        qa[r] = ld32(q_warp + (r & 1) * 8 * T::kKStride + ks * 32 + (r >> 1) * 16);
#pragma unroll
      for (int nt = 0; nt < T::kSTiles; ++nt) {
        const uint8_t* kr = kd + (nt * 8 + g) * T::kKStride + ks * 32 + t4 * 4;
        mma_s8s8(sacc[nt], qa, ld32(kr), ld32(kr + 16));
      }
    }

    // 2-5 per row (hr = 0: row g, hr = 1: row g + 8 of this warp's 16).
    // A tile every row of this warp sees whole (the common case) runs without the per-element
    // visibility tests: kMasked = false makes `visible` the constant kTile.
    float alpha[2], s_pv[2];
    bool active[2];
    auto softmax_rows = [&](auto masked_tag) {
      constexpr bool kMasked = decltype(masked_tag)::value;
      // One copy of the per-element code for both rows (smaller code, fewer instruction-cache
      // misses); the row's scalars are picked with selects so that nothing is indexed at run time.
#pragma unroll(kUnrollRows ? 2 : 1)
      for (int hr = 0; hr < 2; ++hr) {
        const bool hi = hr != 0;
        const float m_old = hi ? m[1] : m[0];
        int visible = kTile;
        if (kMasked) {
          visible = n;
          if (P.causal) {
            const int64_t rr = hi ? row[1] : row[0];
            visible = static_cast<int>(
                max(static_cast<int64_t>(0), min(static_cast<int64_t>(n), rr - t0 + 1)));
          }
        }
        const float c = score_scale(hi ? q_sc[1] : q_sc[0], k_scale, P.tau);
        float s[T::kSTiles][2];
        float m_tile = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < T::kSTiles; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int j = nt * 8 + t4 * 2 + e;
            const int acc = hi ? sacc[nt][2 + e] : sacc[nt][e];
            s[nt][e] = j < visible ? score_fp16(acc, c) : -INFINITY;
            m_tile = maxf(m_tile, s[nt][e]);
          }
        m_tile = maxf(m_tile, __shfl_xor_sync(0xffffffffu, m_tile, 1));
        m_tile = maxf(m_tile, __shfl_xor_sync(0xffffffffu, m_tile, 2));
        const float m_new = maxf(m_old, m_tile);
        float p_max = 0.0f;
#pragma unroll
        for (int nt = 0; nt < T::kSTiles; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int j = nt * 8 + t4 * 2 + e;
            const float p =
                j < visible ? sas_lookup(sub16(m_new, s[nt][e]), table, table_count) : 0.0f;
            s[nt][e] = p;
            p_max = maxf(p_max, p);
          }
        p_max = maxf(p_max, __shfl_xor_sync(0xffffffffu, p_max, 1));
        p_max = maxf(p_max, __shfl_xor_sync(0xffffffffu, p_max, 2));
        const float a = sas_rescale(m_old, m_new, sas);
        const PScale ps = p_scale(P.p_quant, p_max);
        int p8_sum = 0;
        uint8_t* p_row = p_s + (g + hr * 8) * T::kPStride;
#pragma unroll
        for (int nt = 0; nt < T::kSTiles; ++nt) {
          const int j = nt * 8 + t4 * 2;
          const int c0 = j < visible ? p_code(s[nt][0], ps) : 0;
          const int c1 = j + 1 < visible ? p_code(s[nt][1], ps) : 0;
          p8_sum += c0 + c1;
          *reinterpret_cast<uint16_t*>(p_row + j) = static_cast<uint16_t>(c0 | (c1 << 8));
        }
        p8_sum += __shfl_xor_sync(0xffffffffu, p8_sum, 1);
        p8_sum += __shfl_xor_sync(0xffffffffu, p8_sum, 2);
        const bool act = visible > 0;  // a fully masked row skips the tile (no state change)
        const float l_new =
            act ? update_rowsum(hi ? l[1] : l[0], a, p8_sum, ps.s_p) : (hi ? l[1] : l[0]);
        const float m_next = act ? m_new : m_old;
        const float spv = ps.s_p * v_scale;
        if (hi) {
          alpha[1] = a, s_pv[1] = spv, active[1] = act, l[1] = l_new, m[1] = m_next;
        } else {
          alpha[0] = a, s_pv[0] = spv, active[0] = act, l[0] = l_new, m[0] = m_next;
        }
      }
    };
    const bool full = n == kTile && (!P.causal || t0 + kTile - 1 <= q0 + warp * 16);
    if (full)
      softmax_rows(std::integral_constant<bool, false>{});
    else
      softmax_rows(std::integral_constant<bool, true>{});
    __syncwarp();

    // 5. acc = P8 . V8 (exact int32), O = fma(O, alpha, acc * (s_P * s_V))
    uint32_t pa[2][4];
#pragma unroll
    for (int kk = 0; kk < 2; ++kk)
#pragma unroll
      for (int r = 0; r < 4; ++r)
        pa[kk][r] = ld32(p_s + (g + (r & 1) * 8) * T::kPStride + kk * 32 + (r >> 1) * 16 + t4 * 4);
#pragma unroll
    for (int ch = 0; ch < T::kOTiles; ch += T::kOChunk) {
      int acc[T::kOChunk][4];
#pragma unroll
      for (int i = 0; i < T::kOChunk; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][e] = 0;
#pragma unroll
      for (int kk = 0; kk < 2; ++kk)
#pragma unroll
        for (int i = 0; i < T::kOChunk; ++i) {
          const uint8_t* vr = vd + ((ch + i) * 8 + g) * T::kVStride + kk * 32 + t4 * 4;
          mma_u8s8(acc[i], pa[kk], ld32(vr), ld32(vr + 16));
        }
#pragma unroll
      for (int i = 0; i < T::kOChunk; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int hr = e >> 1;
          if (active[hr])
            o[ch + i][e] = update_output(o[ch + i][e], alpha[hr], acc[i][e], s_pv[hr]);
        }
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

// V codes [bkv, N, dp] -> per tile V^T [bkv, tile, dp, 64] (tokens past the tile are 0).
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
    const int c = e / (kTile / 16), j0 = (e % (kTile / 16)) * 16;
    uint4 val;
    int8_t* vb = reinterpret_cast<int8_t*>(&val);
#pragma unroll
    for (int k = 0; k < 16; ++k) vb[k] = tile[(j0 + k) * kStride + c];
    *reinterpret_cast<uint4*>(out + c * kTile + j0) = val;
  }
}

template <int DP, bool kUnrollRows>
void launch_dp(const MmaParams& p, const int8_t* vt, int n_tiles, cudaStream_t stream) {
  using T = MmaTraits<DP>;
  static const bool attr_set = [] {
    TURBO_CUDA_CHECK(cudaFuncSetAttribute(MmaPrefillKernel<DP, kUnrollRows>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmem));
    return true;
  }();
  (void)attr_set;
  const dim3 grid(static_cast<unsigned>((p.n + kBr - 1) / kBr),
                  static_cast<unsigned>(p.batch * p.hq));
  MmaPrefillKernel<DP, kUnrollRows><<<grid, kThreads, T::kSmem, stream>>>(p, vt, n_tiles);
  TURBO_CUDA_LAUNCH_CHECK();
}

// TURBO_MMA_UNROLL_ROWS=0/1 picks the kernel variant for tuning runs (default: kDefaultUnrollRows).
constexpr bool kDefaultUnrollRows = true;  // measured 6-10% faster on H100, cuda/RESULTS.md
bool unroll_rows() {
  static const bool v = [] {
    const char* e = std::getenv("TURBO_MMA_UNROLL_ROWS");
    return e ? std::atoi(e) != 0 : kDefaultUnrollRows;
  }();
  return v;
}

DeviceBuffer& vt_buffer() {
  thread_local DeviceBuffer buf;
  return buf;
}

}  // namespace

bool mma_supports(const AttentionConfig& c, int d, bool want_stats) {
  return c.method == Method::kFlashQ && !want_stats && d <= 128 &&
         c.quant.kv_gran != Granularity::kToken && c.p_quant != PQuant::kFp16 && c.quant.bc >= 1 &&
         c.quant.bc <= kTile && c.sas.precision == SasPrecision::kFp16 &&
         c.sas.exp_mode == ExpMode::kSas;
}

void launch_mma_prefill(const MmaParams& p, cudaStream_t stream) {
  TURBO_CHECK(p.dp == 64 || p.dp == 128, "mma prefill: padded head_dim must be 64 or 128");
  const int n_tiles = static_cast<int>((p.n + p.bc - 1) / p.bc);
  DeviceBuffer& vt = vt_buffer();
  vt.reserve(static_cast<size_t>(p.batch) * p.hkv * n_tiles * p.dp * kTile);
  TransposeVKernel<<<dim3(static_cast<unsigned>(n_tiles), static_cast<unsigned>(p.batch * p.hkv)),
                     256, 0, stream>>>(p.v_codes, p.n, p.dp, p.bc, n_tiles, vt.as<int8_t>());
  TURBO_CUDA_LAUNCH_CHECK();
  const bool sm = unroll_rows();
  if (p.dp == 64)
    sm ? launch_dp<64, true>(p, vt.as<int8_t>(), n_tiles, stream)
       : launch_dp<64, false>(p, vt.as<int8_t>(), n_tiles, stream);
  else
    sm ? launch_dp<128, true>(p, vt.as<int8_t>(), n_tiles, stream)
       : launch_dp<128, false>(p, vt.as<int8_t>(), n_tiles, stream);
}

}  // namespace cuda
}  // namespace turbo

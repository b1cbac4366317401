// SPEC 2 compression of one KV block for the common layout (channel axis, integer step, one
// stage-1 scale per block), two kernels' worth of device code, chosen per launch by
// stage2_path(): the compress op and the cache append call them; every other layout takes the
// general path (stage2.cuh compress_block_dev). Launchers check the shape with channel_scan_rows
// (column scan) or channel_tile_vectors (register path). By default the compress op takes the
// column scan and the cache append the register path (the faster of the two for each, measured).
//
// Column scan (the compress op's default; kChannelTileThreads threads, every one calls it), from
// the block's INT8 codes staged in shared memory (the launchers stream their blocks in with 16-byte
// asynchronous copies: a ring of two blocks, 2-4 for the compress op by TURBO_STAGE2_RING, the
// next block's copies in flight while this one is computed): thread t takes the 4 channels of word
// column w = t % (d / 4) over kR rows g, g + G,
// ... (g = t / (d / 4), G = threads / (d / 4)): one 4-byte shared load per row (a warp reads whole
// rows: no bank conflict), the codes biased to unsigned (q + 128) and spread to 16-bit pairs, min /
// max two channels per instruction (min/max.u16x2, native on sm_90), then the G partials of each
// channel combined by one thread per channel; codes by one multiply-add whose top bits are the code
// (core/quant.h stage2_top: M from a compile-time table, the bias folded in, no clamp) from the
// values already in registers, packed by one funnel shift each, 4 codes per row stored (2 bytes at
// 4 bits, 1 at 2 bits).
//
// Register path (the cache append's default), from codes the CTA holds in registers (one CTA per
// block, 16-byte loads): thread t holds kV vectors of kC consecutive channels [c0, c0 + kC), c0 =
// (t % tpr) * kC, of the rows r0 + v * (threads / tpr), r0 = t / tpr, tpr = d / kC threads per row.
// Each channel's scan is split over the kV rows of a thread, the lanes of its warp with the same c0
// (shuffles) and the 8 warps (shared memory), on biased 16-bit pairs as the column scan's; the
// codes by the same multiply-add and funnel shift, packed in registers, one store per vector.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "core/kv_layout.h"
#include "core/quant.h"
#include "cuda/cuda_common.cuh"
#include "cuda/ptx.cuh"
#include "cuda/stage2.cuh"

namespace turbo {
namespace cuda {

constexpr int kChannelTileThreads = 256;
constexpr int kChannelTileWarps = kChannelTileThreads / 32;

// The stage-2 path of the common layout, from TURBO_STAGE2_PATH (read at every launch, so that a
// tuning run can switch it between calls): "scan" the column scan, "register" the register path,
// "general" the general path for every block (the A/B timings of cuda/TUNING.md). Unset: each
// op's faster one on the H200 (cuda/TUNING.md, run of 502f6bf), the column scan for the compress
// op (0.039-0.040 ms against 0.091-0.093, 8,192 blocks of 64 x 128), the register path for the
// cache append (4-bit 0.051-0.052 ms against 0.074-0.077, 8-bit 0.041-0.043 against 0.064-0.066:
// 2,048 blocks of K and of V).
enum class Stage2Path { kScan, kRegister, kGeneral };

inline Stage2Path stage2_path(Stage2Path unset) {
  const char* e = std::getenv("TURBO_STAGE2_PATH");
  if (e == nullptr) return unset;
  if (std::strcmp(e, "scan") == 0) return Stage2Path::kScan;
  if (std::strcmp(e, "register") == 0) return Stage2Path::kRegister;
  if (std::strcmp(e, "general") == 0) return Stage2Path::kGeneral;
  TURBO_CHECK(false, "TURBO_STAGE2_PATH=" << e << ": expected scan, register or general");
  return unset;
}

// The column scan's ring depth of the compress op, from TURBO_STAGE2_RING (2, 3 or 4 blocks;
// default 2): a tuning knob for cuda/TUNING.md, read at every launch.
inline int stage2_ring_depth() {
  const char* e = std::getenv("TURBO_STAGE2_RING");
  if (e == nullptr) return 2;
  TURBO_CHECK((!std::strcmp(e, "2") || !std::strcmp(e, "3") || !std::strcmp(e, "4")),
              "TURBO_STAGE2_RING=" << e << ": expected 2, 3 or 4");
  return e[0] - '0';
}

// CTAs for a grid-stride kernel: every block when they fit in one wave, else one full wave. The
// occupancy of each (device, kernel, shared memory) is asked once and kept: an append calls this
// for every launch, and the query is host work on the path of every call.
template <typename Kernel>
inline unsigned one_wave(Kernel kernel, int threads, size_t smem, int64_t work) {
  static std::mutex mu;
  static std::map<std::pair<int, std::pair<const void*, size_t>>, int64_t> waves;
  int dev = 0;
  TURBO_CUDA_CHECK(cudaGetDevice(&dev));
  const auto key = std::make_pair(dev, std::make_pair(reinterpret_cast<const void*>(kernel), smem));
  int64_t wave = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    const auto it = waves.find(key);
    if (it != waves.end()) wave = it->second;
  }
  if (wave == 0) {
    int sms = 0, per_sm = 0;
    TURBO_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    TURBO_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
    wave = static_cast<int64_t>(sms) * std::max(per_sm, 1);
    std::lock_guard<std::mutex> lock(mu);
    waves[key] = wave;
  }
  return static_cast<unsigned>(std::min(work, wave));
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Vectors per thread (kV) of the register path for a block of n_b x d with kC channels per
// vector, or 0 when the layout or shape is not the register path's: channel axis, integer step,
// one stage-1 scale, d / kC threads per row a power of two <= 32, d <= kMaxChannelGroups, and
// n_b a multiple of the rows one pass of the CTA covers with 1, 2, 4 or 8 passes.
inline int channel_tile_vectors(const BlockLayout& L, int kC) {
  if (L.axis != 0 || L.frac_step || L.token_scales) return 0;
  if (L.d % kC != 0 || L.d > kMaxChannelGroups) return 0;
  const int tpr = L.d / kC;
  if (tpr > 32 || (tpr & (tpr - 1)) != 0) return 0;
  const int rows_per_pass = kChannelTileThreads / tpr;
  if (L.n_b % rows_per_pass != 0) return 0;
  const int v = L.n_b / rows_per_pass;
  return (v == 1 || v == 2 || v == 4 || v == 8) ? v : 0;
}

// Rows per thread (kR) of the column scan for a block of n_b x d, or 0 when the layout or shape
// is not the scan's: channel axis, integer step, one stage-1 scale, d a power of two in
// [16, kMaxChannelGroups], n_b a multiple of G = threads / (d / 4) with kR = n_b / G in
// {1, 2, 4, 8, 16}.
inline int channel_scan_rows(const BlockLayout& L) {
  if (L.axis != 0 || L.frac_step || L.token_scales) return 0;
  if (L.d < 16 || L.d > kMaxChannelGroups || (L.d & (L.d - 1)) != 0) return 0;
  const int groups = kChannelTileThreads / (L.d / 4);
  if (L.n_b % groups != 0) return 0;
  const int r = L.n_b / groups;
  return (r == 1 || r == 2 || r == 4 || r == 8 || r == 16) ? r : 0;
}

struct ChannelScanSmem {
  uint8_t lo[kChannelTileThreads * 4];  // [G][d] biased (q + 128) partial minima
  uint8_t hi[kChannelTileThreads * 4];  // [G][d] partial maxima
  Stage2Top top[kMaxChannelGroups];
};

// Per 16-bit lane min / max of two pairs of unsigned 16-bit values.
__device__ __forceinline__ uint32_t min_u16x2(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint32_t r;
  asm("min.u16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
#else
  return __vminu2(a, b);
#endif
}
__device__ __forceinline__ uint32_t max_u16x2(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint32_t r;
  asm("max.u16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
#else
  return __vmaxu2(a, b);
#endif
}

// stage2_recip (core/quant.h) of every s2 at 4 and 2 bits, built at compile time, in global
// memory read through the read-only cache: one load per channel where a division was. Not
// __constant__: the threads of a warp index different entries, which the constant cache would
// serialize.
__device__ const Stage2RecipTable kStage2Recip4 = stage2_recip_table(4);
__device__ const Stage2RecipTable kStage2Recip2 = stage2_recip_table(2);

template <int kBits>
__device__ __forceinline__ Stage2Top stage2_top_of(Stage2Params p) {
  static_assert(kBits == 4 || kBits == 2, "stage 2 at 4 or 2 bits");
  const Stage2RecipTable& t = kBits == 4 ? kStage2Recip4 : kStage2Recip2;
  return stage2_top(p, __ldg(&t.M[p.s2]));
}

// codes: the block's n_b x d INT8 codes in shared memory (16-byte aligned), n_b = kR * G. Writes
// the codes and s2/z of `blk` (not the stage-1 scale slot); blk 16-byte aligned. Ends after a
// barrier: the caller may overwrite `codes` and `sm` right after. d = 4 cols with cols a power of
// two, so G cols = kChannelTileThreads: thread t's word of row g + r G is word t + r
// kChannelTileThreads of the block (g cols + w = t), its packed codes sit at the same index in
// units of 4 codes, and the block holds n_b d = 1024 kR codes: every offset but the column's is a
// compile-time constant.
template <int kBits, int kR>
__device__ void channel_scan_compress(const int8_t* codes, int d, uint8_t* blk,
                                      ChannelScanSmem& sm) {
  constexpr int kT = kChannelTileThreads;
  static_assert(kT * 4 == 1024, "G cols = kChannelTileThreads words per pass of kR");
  if constexpr (kBits == 8) {  // the block holds the INT8 codes themselves
    for (int i = threadIdx.x; i < kR * kT / 4; i += kT)
      reinterpret_cast<uint4*>(blk)[i] = reinterpret_cast<const uint4*>(codes)[i];
    __syncthreads();
    return;
  } else {
    const int log_cols = __ffs(d) - 3;  // d = 4 << log_cols
    const int w = threadIdx.x & ((1 << log_cols) - 1);
    // x[r]: channels 4w .. 4w + 3 of row g + r G, biased to unsigned (q + 128), one per byte.
    uint32_t x[kR];
#pragma unroll
    for (int r = 0; r < kR; ++r)
      x[r] = reinterpret_cast<const uint32_t*>(codes)[threadIdx.x + r * kT] ^ 0x80808080u;
    // Spread to 16-bit pairs: [0] channels 4w, 4w + 1, [1] 4w + 2, 4w + 3.
    uint32_t lo[2], hi[2];
    lo[0] = hi[0] = __byte_perm(x[0], 0, 0x7170);
    lo[1] = hi[1] = __byte_perm(x[0], 0, 0x7372);
#pragma unroll
    for (int r = 1; r < kR; ++r) {
      const uint32_t p0 = __byte_perm(x[r], 0, 0x7170), p1 = __byte_perm(x[r], 0, 0x7372);
      lo[0] = min_u16x2(lo[0], p0);
      hi[0] = max_u16x2(hi[0], p0);
      lo[1] = min_u16x2(lo[1], p1);
      hi[1] = max_u16x2(hi[1], p1);
    }
    // The four channels' partials as bytes at [g][4w .. 4w + 3] = word t.
    reinterpret_cast<uint32_t*>(sm.lo)[threadIdx.x] = __byte_perm(lo[0], lo[1], 0x6420);
    reinterpret_cast<uint32_t*>(sm.hi)[threadIdx.x] = __byte_perm(hi[0], hi[1], 0x6420);
    __syncthreads();
    uint8_t* s2 = blk + kR * 1024 * kBits / 8;  // BlockLayout::s2_offset
    int8_t* z = reinterpret_cast<int8_t*>(s2 + d);
    if (threadIdx.x < d) {  // d <= kMaxChannelGroups = kT
      const int c = threadIdx.x;
      const int groups = kT >> log_cols;  // >= 4 (d <= 256), a power of two
      int l = 127 + 128, h = -127 + 128;  // the reference's initial values, biased
      for (int k = 0; k < groups; k += 4)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          l = min(l, static_cast<int>(sm.lo[(k + i) * d + c]));
          h = max(h, static_cast<int>(sm.hi[(k + i) * d + c]));
        }
      const Stage2Params p = stage2_params(l - 128, h - 128, kBits);
      s2[c] = p.s2;
      z[c] = p.z;
      sm.top[c] = stage2_top_of<kBits>(p);
    }
    __syncthreads();
    Stage2Top m[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) m[k] = sm.top[4 * w + k];
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      // Every code lies in its channel's [l, h]: the code is the top kBits bits of v (stage2_top),
      // packed by one funnel shift each, the last code first so that the first ends lowest.
      uint32_t packed = 0;
#pragma unroll
      for (int k = 3; k >= 0; --k)
        packed = __funnelshift_l(stage2_top_value(__byte_perm(x[r], 0, 0x4440 + k), m[k]), packed,
                                 kBits);  // byte k of x[r], zero-extended: one PRMT
      if constexpr (kBits == 4)
        reinterpret_cast<uint16_t*>(blk)[threadIdx.x + r * kT] = static_cast<uint16_t>(packed);
      else
        blk[threadIdx.x + r * kT] = static_cast<uint8_t>(packed);
    }
    __syncthreads();
  }
}

template <int kR>
__device__ void channel_scan_compress_bits(int bits, const int8_t* codes, int d, uint8_t* blk,
                                           ChannelScanSmem& sm) {
  if (bits == 4)
    channel_scan_compress<4, kR>(codes, d, blk, sm);
  else if (bits == 2)
    channel_scan_compress<2, kR>(codes, d, blk, sm);
  else
    channel_scan_compress<8, kR>(codes, d, blk, sm);
}

// ---- the register path ----

struct ChannelTileSmem {
  // Biased (q + 128) partial minima / maxima, 4 channels per word (the first in the low byte),
  // per warp.
  uint32_t lo[kChannelTileWarps][kMaxChannelGroups / 4];
  uint32_t hi[kChannelTileWarps][kMaxChannelGroups / 4];
  Stage2Top top[kMaxChannelGroups];
};

// The byte size of a vector's packed codes and its store.
template <int kBytes>
__device__ __forceinline__ void store_packed(uint8_t* dst, uint64_t v) {
  if constexpr (kBytes == 8) {
    *reinterpret_cast<uint2*>(dst) =
        make_uint2(static_cast<uint32_t>(v), static_cast<uint32_t>(v >> 32));
  } else if constexpr (kBytes == 4) {
    *reinterpret_cast<uint32_t*>(dst) = static_cast<uint32_t>(v);
  } else {
    static_assert(kBytes == 2, "packed vector of 2, 4 or 8 bytes");
    *reinterpret_cast<uint16_t*>(dst) = static_cast<uint16_t>(v);
  }
}

__device__ __forceinline__ int code_byte(uint32_t w, int k) {
  return static_cast<int>(static_cast<int8_t>(w >> (8 * k)));
}

// w[v][i]: codes of channels c0 + 4 i .. c0 + 4 i + 3 (the first in the low byte) of the thread's
// row v. Writes the codes and s2/z of `blk` (not the stage-1 scale slot). blk 16-byte aligned.
// tpr = d / kC is a power of two and (kChannelTileThreads / tpr) d = kChannelTileThreads kC, so
// the thread's vector v starts at element kC (t + kChannelTileThreads v) of the block (r0 d + c0 =
// kC t) and the block holds kV kChannelTileThreads kC codes: compile-time offsets but the
// thread's. The scan as the column scan's: codes biased to unsigned and spread to 16-bit pairs,
// min / max two channels per instruction (no per-byte SIMD emulation), the codes by stage2_top.
template <int kBits, int kC, int kV>
__device__ void channel_tile_compress(const uint32_t (&w)[kV][kC / 4], int d, uint8_t* blk,
                                      ChannelTileSmem& sm) {
  constexpr int kT = kChannelTileThreads;
  const int log_tpr = __ffs(static_cast<unsigned>(d) / kC) - 1;
  const int c0 = (threadIdx.x & ((1 << log_tpr) - 1)) * kC;
  if constexpr (kBits == 8) {  // the block holds the INT8 codes themselves
#pragma unroll
    for (int v = 0; v < kV; ++v) {
      uint8_t* dst = blk + kC * (threadIdx.x + kT * v);
      if constexpr (kC == 16)
        *reinterpret_cast<uint4*>(dst) = make_uint4(w[v][0], w[v][1], w[v][2], w[v][3]);
      else
        *reinterpret_cast<uint2*>(dst) = make_uint2(w[v][0], w[v][1]);
    }
    return;
  } else {
    const int tpr = 1 << log_tpr;
    uint32_t x[kV][kC / 4];  // biased: q + 128 per byte
#pragma unroll
    for (int v = 0; v < kV; ++v)
#pragma unroll
      for (int i = 0; i < kC / 4; ++i) x[v][i] = w[v][i] ^ 0x80808080u;
    // [i][0]: channels c0 + 4 i, + 1 as 16-bit pairs; [i][1]: c0 + 4 i + 2, + 3.
    uint32_t lo[kC / 4][2], hi[kC / 4][2];
#pragma unroll
    for (int i = 0; i < kC / 4; ++i) {
      lo[i][0] = hi[i][0] = __byte_perm(x[0][i], 0, 0x7170);
      lo[i][1] = hi[i][1] = __byte_perm(x[0][i], 0, 0x7372);
#pragma unroll
      for (int v = 1; v < kV; ++v) {
        const uint32_t p0 = __byte_perm(x[v][i], 0, 0x7170), p1 = __byte_perm(x[v][i], 0, 0x7372);
        lo[i][0] = min_u16x2(lo[i][0], p0);
        hi[i][0] = max_u16x2(hi[i][0], p0);
        lo[i][1] = min_u16x2(lo[i][1], p1);
        hi[i][1] = max_u16x2(hi[i][1], p1);
      }
    }
    // Lanes of one warp with the same channels: lane ^ tpr, lane ^ 2 tpr, ...
    for (int o = tpr; o < 32; o <<= 1) {
#pragma unroll
      for (int i = 0; i < kC / 4; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          lo[i][h] = min_u16x2(lo[i][h], __shfl_xor_sync(0xffffffffu, lo[i][h], o));
          hi[i][h] = max_u16x2(hi[i][h], __shfl_xor_sync(0xffffffffu, hi[i][h], o));
        }
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane < tpr) {
#pragma unroll
      for (int i = 0; i < kC / 4; ++i) {
        sm.lo[warp][c0 / 4 + i] = __byte_perm(lo[i][0], lo[i][1], 0x6420);
        sm.hi[warp][c0 / 4 + i] = __byte_perm(hi[i][0], hi[i][1], 0x6420);
      }
    }
    __syncthreads();
    uint8_t* s2 = blk + kV * kT * kC * kBits / 8;  // BlockLayout::s2_offset
    int8_t* z = reinterpret_cast<int8_t*>(s2 + d);
    if (threadIdx.x < d / 4) {
      const int wi = threadIdx.x;
      // The reference's initial values 127 / -127, biased, as pairs.
      uint32_t l[2] = {0x00ff00ffu, 0x00ff00ffu}, h[2] = {0x00010001u, 0x00010001u};
#pragma unroll
      for (int k = 0; k < kChannelTileWarps; ++k) {
        const uint32_t a = sm.lo[k][wi], b = sm.hi[k][wi];
        l[0] = min_u16x2(l[0], __byte_perm(a, 0, 0x7170));
        l[1] = min_u16x2(l[1], __byte_perm(a, 0, 0x7372));
        h[0] = max_u16x2(h[0], __byte_perm(b, 0, 0x7170));
        h[1] = max_u16x2(h[1], __byte_perm(b, 0, 0x7372));
      }
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int c = 4 * wi + k;
        const int lk = static_cast<int>((l[k / 2] >> (16 * (k % 2))) & 0xffffu) - 128;
        const int hk = static_cast<int>((h[k / 2] >> (16 * (k % 2))) & 0xffffu) - 128;
        const Stage2Params p = stage2_params(lk, hk, kBits);
        s2[c] = p.s2;
        z[c] = p.z;
        sm.top[c] = stage2_top_of<kBits>(p);
      }
    }
    __syncthreads();
    // Every code lies in its channel's [l, h]: the code is the top kBits bits of v (stage2_top),
    // packed by one funnel shift each into 32-bit words of 32 / kBits codes, the last code of a
    // word first so that its first ends lowest.
    constexpr int kPer = 32 / kBits;
    constexpr int kWords = (kC + kPer - 1) / kPer;
    uint32_t acc[kV][kWords];
#pragma unroll
    for (int v = 0; v < kV; ++v)
#pragma unroll
      for (int j = 0; j < kWords; ++j) acc[v][j] = 0;
#pragma unroll
    for (int k = kC - 1; k >= 0; --k) {
      const Stage2Top m = sm.top[c0 + k];
#pragma unroll
      for (int v = 0; v < kV; ++v)
        acc[v][k / kPer] =
            __funnelshift_l(stage2_top_value(__byte_perm(x[v][k / 4], 0, 0x4440 + k % 4), m),
                            acc[v][k / kPer], kBits);
    }
    constexpr int kBytes = kC * kBits / 8;
#pragma unroll
    for (int v = 0; v < kV; ++v) {
      const uint64_t packed =
          kWords > 1 ? (acc[v][0] | static_cast<uint64_t>(acc[v][kWords - 1]) << 32) : acc[v][0];
      store_packed<kBytes>(blk + kC * (threadIdx.x + kT * v) * kBits / 8, packed);
    }
  }
}

// The bits of a head, dispatched to the register path's instantiations.
template <int kC, int kV>
__device__ void channel_tile_compress_bits(int bits, const uint32_t (&w)[kV][kC / 4], int d,
                                           uint8_t* blk, ChannelTileSmem& sm) {
  if (bits == 4)
    channel_tile_compress<4, kC, kV>(w, d, blk, sm);
  else if (bits == 2)
    channel_tile_compress<2, kC, kV>(w, d, blk, sm);
  else
    channel_tile_compress<8, kC, kV>(w, d, blk, sm);
}

}  // namespace cuda
}  // namespace turbo

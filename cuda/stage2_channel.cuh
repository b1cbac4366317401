// SPEC 2 compression of one KV block for the common layout (channel axis, integer step, one
// stage-1 scale per block), from INT8 codes the CTA holds in registers: the compress op and the
// cache append stage their blocks with 16-byte loads and call it. Every other layout takes the
// general path (stage2.cuh compress_block_dev); kernels choose with channel_tile_fits.
//
// Thread mapping (kChannelTileThreads threads, every one calls it): thread t holds kV vectors of
// kC consecutive channels [c0, c0 + kC), c0 = (t % tpr) * kC, of the rows r0 + v * (threads /
// tpr), r0 = t / tpr, tpr = d / kC threads per row. Each channel's 64-token scan is split over
// the kV rows of a thread, the lanes of its warp with the same c0 (shuffles) and the 8 warps
// (shared memory), on four channels at a time (per-byte SIMD min / max). Codes: one multiply-add
// and a shift per code (core/quant.h stage2_mul), packed in registers, one store per vector.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/kv_layout.h"
#include "core/quant.h"
#include "cuda/stage2.cuh"

namespace turbo {
namespace cuda {

constexpr int kChannelTileThreads = 256;
constexpr int kChannelTileWarps = kChannelTileThreads / 32;

// TURBO_STAGE2_PATH=general sends every block through the general path (tuning: the A/B of
// cuda/TUNING.md); the register path otherwise.
inline bool channel_tile_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("TURBO_STAGE2_PATH");
    return e == nullptr || std::strcmp(e, "general") != 0;
  }();
  return on;
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Vectors per thread (kV) of the register path for a block of n_b x d with kC channels per
// vector, or 0 when the layout or shape is not the register path's: channel axis, integer step,
// one stage-1 scale, d / kC threads per row a power of two <= 32, d <= kMaxChannelGroups, and
// n_b a multiple of the rows one pass of the CTA covers with 1, 2, 4 or 8 passes (and not
// switched off by TURBO_STAGE2_PATH=general).
inline int channel_tile_vectors(const BlockLayout& L, int kC) {
  if (!channel_tile_enabled()) return 0;
  if (L.axis != 0 || L.frac_step || L.token_scales) return 0;
  if (L.d % kC != 0 || L.d > kMaxChannelGroups) return 0;
  const int tpr = L.d / kC;
  if (tpr > 32 || (tpr & (tpr - 1)) != 0) return 0;
  const int rows_per_pass = kChannelTileThreads / tpr;
  if (L.n_b % rows_per_pass != 0) return 0;
  const int v = L.n_b / rows_per_pass;
  return (v == 1 || v == 2 || v == 4 || v == 8) ? v : 0;
}

struct ChannelTileSmem {
  uint32_t lo[kChannelTileWarps][kMaxChannelGroups / 4];  // 4 channels per word, per warp
  uint32_t hi[kChannelTileWarps][kMaxChannelGroups / 4];
  Stage2Mul mul[kMaxChannelGroups];
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
template <int kBits, int kC, int kV>
__device__ void channel_tile_compress(const uint32_t (&w)[kV][kC / 4], int d, uint8_t* blk,
                                      ChannelTileSmem& sm) {
  const int tpr = d / kC;
  const int c0 = (threadIdx.x % tpr) * kC;
  const int r0 = threadIdx.x / tpr;
  const int rows_per_pass = kChannelTileThreads / tpr;
  if constexpr (kBits == 8) {  // the block holds the INT8 codes themselves
#pragma unroll
    for (int v = 0; v < kV; ++v) {
      uint8_t* dst = blk + (r0 + v * rows_per_pass) * d + c0;
      if constexpr (kC == 16)
        *reinterpret_cast<uint4*>(dst) = make_uint4(w[v][0], w[v][1], w[v][2], w[v][3]);
      else
        *reinterpret_cast<uint2*>(dst) = make_uint2(w[v][0], w[v][1]);
    }
    return;
  } else {
    const int n_b = kV * rows_per_pass;
    uint32_t lo[kC / 4], hi[kC / 4];
#pragma unroll
    for (int i = 0; i < kC / 4; ++i) {
      lo[i] = hi[i] = w[0][i];
#pragma unroll
      for (int v = 1; v < kV; ++v) {
        lo[i] = __vmins4(lo[i], w[v][i]);
        hi[i] = __vmaxs4(hi[i], w[v][i]);
      }
    }
    // Lanes of one warp with the same channels: lane ^ tpr, lane ^ 2 tpr, ...
    for (int o = tpr; o < 32; o <<= 1) {
#pragma unroll
      for (int i = 0; i < kC / 4; ++i) {
        lo[i] = __vmins4(lo[i], __shfl_xor_sync(0xffffffffu, lo[i], o));
        hi[i] = __vmaxs4(hi[i], __shfl_xor_sync(0xffffffffu, hi[i], o));
      }
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane < tpr) {
#pragma unroll
      for (int i = 0; i < kC / 4; ++i) {
        sm.lo[warp][c0 / 4 + i] = lo[i];
        sm.hi[warp][c0 / 4 + i] = hi[i];
      }
    }
    __syncthreads();
    uint8_t* s2 = blk + static_cast<int64_t>(n_b) * d * kBits / 8;  // BlockLayout::s2_offset
    int8_t* z = reinterpret_cast<int8_t*>(s2 + d);
    if (threadIdx.x < d / 4) {
      const int wi = threadIdx.x;
      uint32_t l = 0x7f7f7f7fu, h = 0x81818181u;  // the reference's initial values, 127 / -127
#pragma unroll
      for (int k = 0; k < kChannelTileWarps; ++k) {
        l = __vmins4(l, sm.lo[k][wi]);
        h = __vmaxs4(h, sm.hi[k][wi]);
      }
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int c = 4 * wi + k;
        const Stage2Params p = stage2_params(code_byte(l, k), code_byte(h, k), kBits);
        s2[c] = p.s2;
        z[c] = p.z;
        sm.mul[c] = stage2_mul(p);
      }
    }
    __syncthreads();
    constexpr int kBytes = kC * kBits / 8;
    uint64_t packed[kV];
#pragma unroll
    for (int v = 0; v < kV; ++v) packed[v] = 0;
#pragma unroll
    for (int k = 0; k < kC; ++k) {
      const Stage2Mul m = sm.mul[c0 + k];
#pragma unroll
      for (int v = 0; v < kV; ++v)
        packed[v] |= static_cast<uint64_t>(stage2_code_mul(code_byte(w[v][k / 4], k % 4), m, kBits))
                     << (k * kBits);
    }
#pragma unroll
    for (int v = 0; v < kV; ++v)
      store_packed<kBytes>(blk + ((r0 + v * rows_per_pass) * d + c0) * kBits / 8, packed[v]);
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

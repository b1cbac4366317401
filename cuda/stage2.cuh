// Block-cooperative SPEC 2 compression of one KV block, shared by the compress_block op and the
// cache append. All threads of the CTA must call it.
#pragma once

#include <cstdint>

#include "core/kv_layout.h"
#include "core/quant.h"

namespace turbo {
namespace cuda {

constexpr int kMaxChannelGroups = 256;  // channels of the shared-memory path (head_dim <= 256)
constexpr int kStageBytes = 64 * 256;   // the largest block staged in shared memory

// q [n_b, d] INT8 codes -> codes, s2 and z of `blk` (the stage-1 scale slot is not written).
// s2/z go to blk first; the packing pass reads them back after a barrier.
template <bool kStage = false>
__device__ inline void compress_block_dev(const int8_t* q, const BlockLayout& L, uint8_t* blk) {
  if (L.bits == 8) {
    for (int64_t i = threadIdx.x; i < L.elements(); i += blockDim.x)
      blk[i] = static_cast<uint8_t>(q[i]);
    __syncthreads();
    return;
  }
  uint8_t* s2 = blk + L.s2_offset();
  int8_t* z = reinterpret_cast<int8_t*>(blk + L.z_offset());
  const int per = codes_per_byte(L.bits);
  if (L.axis == 0 && L.d <= kMaxChannelGroups && L.d % per == 0) {
    // Channel axis (the cache's): group = channel. kStage: the block is first copied into shared
    // memory with 16-byte loads (the compress op; the cache passes a block already there). The
    // channel scans are split over blockDim / d threads per channel (min and max: any order),
    // s2/z of every channel stay in shared memory, and each output byte's codes are consecutive
    // channels of one token: one 32-bit remainder per byte, no 64-bit division per code.
    __shared__ uint8_t s2_s[kMaxChannelGroups];
    __shared__ int8_t z_s[kMaxChannelGroups];
    __shared__ int8_t lo_s[1024], hi_s[1024];  // partial min / max per (part, channel)
    const int d = L.d, n_b = L.n_b, n = n_b * d;
    const int8_t* qs = q;
    if (kStage) {
      __shared__ __align__(16) int8_t q_s[kStageBytes];
      if (n <= kStageBytes && n % 16 == 0 && reinterpret_cast<uintptr_t>(q) % 16 == 0) {
        for (int i = threadIdx.x * 16; i < n; i += blockDim.x * 16)
          *reinterpret_cast<uint4*>(q_s + i) = *reinterpret_cast<const uint4*>(q + i);
        __syncthreads();
        qs = q_s;
      }
    }
    const int parts = max(1, min(static_cast<int>(blockDim.x) / d, 1024 / d));
    for (int e = threadIdx.x; e < parts * d; e += blockDim.x) {
      const int c = e % d, part = e / d;
      const int t0 = n_b * part / parts, t1 = n_b * (part + 1) / parts;
      int lo = 127, hi = -127;  // the reference's initial values
      for (int t = t0; t < t1; ++t) {
        const int v = qs[t * d + c];
        lo = min(lo, v);
        hi = max(hi, v);
      }
      lo_s[e] = static_cast<int8_t>(lo);
      hi_s[e] = static_cast<int8_t>(hi);
    }
    __syncthreads();
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
      int lo = lo_s[c], hi = hi_s[c];
      for (int part = 1; part < parts; ++part) {
        lo = min(lo, static_cast<int>(lo_s[part * d + c]));
        hi = max(hi, static_cast<int>(hi_s[part * d + c]));
      }
      const Stage2Params p = stage2_params(lo, hi, L.bits);
      s2[c] = s2_s[c] = p.s2;
      z[c] = z_s[c] = p.z;
    }
    __syncthreads();
    const int nbytes = static_cast<int>(L.code_bytes());
    for (int bi = threadIdx.x; bi < nbytes; bi += blockDim.x) {
      const int i0 = bi * per, c0 = i0 % d;
      unsigned byte = 0;  // the first code in the low bits
      for (int k = 0; k < per; ++k)
        byte |= static_cast<unsigned>(
                    stage2_code(qs[i0 + k], Stage2Params{s2_s[c0 + k], z_s[c0 + k]}, L.bits))
                << (k * L.bits);
      blk[bi] = static_cast<uint8_t>(byte);
    }
    __syncthreads();
    return;
  }
  const int64_t groups = L.groups();
  for (int64_t g = threadIdx.x; g < groups; g += blockDim.x) {
    int lo = 127, hi = -127;  // the reference's initial values
    if (L.axis == 0) {
      for (int t = 0; t < L.n_b; ++t) {
        const int v = q[static_cast<int64_t>(t) * L.d + g];
        lo = min(lo, v);
        hi = max(hi, v);
      }
    } else {
      const int per_row = L.d / L.group_size;
      const int64_t t = g / per_row;
      const int c0 = static_cast<int>(g % per_row) * L.group_size;
      for (int c = c0; c < c0 + L.group_size; ++c) {
        const int v = q[t * L.d + c];
        lo = min(lo, v);
        hi = max(hi, v);
      }
    }
    const Stage2Params p = stage2_params(lo, hi, L.bits);
    s2[g] = p.s2;
    z[g] = p.z;
  }
  __syncthreads();
  const int64_t nbytes = L.code_bytes();
  for (int64_t bi = threadIdx.x; bi < nbytes; bi += blockDim.x) {
    unsigned byte = 0;  // the first code in the low bits; a partial last byte keeps 0 high bits
    for (int k = 0; k < per; ++k) {
      const int64_t i = bi * per + k;
      if (i >= L.elements()) break;
      const int64_t g = L.group_of(static_cast<int>(i / L.d), static_cast<int>(i % L.d));
      byte |= static_cast<unsigned>(stage2_code(q[i], Stage2Params{s2[g], z[g]}, L.bits))
              << (k * L.bits);
    }
    blk[bi] = static_cast<uint8_t>(byte);
  }
  __syncthreads();
}

}  // namespace cuda
}  // namespace turbo

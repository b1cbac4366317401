// Block-cooperative SPEC 2 compression of one KV block, shared by the compress_block op and the
// cache append. All threads of the CTA must call it.
#pragma once

#include "core/kv_layout.h"
#include "core/quant.h"

namespace turbo {
namespace cuda {

constexpr int kMaxChannelGroups = 256;  // channels of the shared-memory path (head_dim <= 256)

// q [n_b, d] INT8 codes -> codes, s2 and z of `blk` (the stage-1 scale slot is not written), with
// the layout's stage-2 step (BlockLayout::params / code: integer, or fractional with frac_step).
// s2/z go to blk first; the packing pass reads them back after a barrier.
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
    // Channel axis (the cache's): group = channel. s2/z of every channel also kept in shared
    // memory, and each output byte's codes are per consecutive channels of one token, so the
    // packing pass needs one 32-bit remainder per byte instead of a 64-bit division per code.
    __shared__ uint8_t s2_s[kMaxChannelGroups];
    __shared__ int8_t z_s[kMaxChannelGroups];
    const int d = L.d, n_b = L.n_b;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
      int lo = 127, hi = -127;  // the reference's initial values
      for (int t = 0; t < n_b; ++t) {
        const int v = q[t * d + c];
        lo = min(lo, v);
        hi = max(hi, v);
      }
      const Stage2Params p = L.params(lo, hi);
      s2[c] = s2_s[c] = p.s2;
      z[c] = z_s[c] = p.z;
    }
    __syncthreads();
    const int nbytes = static_cast<int>(L.code_bytes());
    for (int bi = threadIdx.x; bi < nbytes; bi += blockDim.x) {
      const int i0 = bi * per, c0 = i0 % d;
      unsigned byte = 0;  // the first code in the low bits
      for (int k = 0; k < per; ++k)
        byte |= static_cast<unsigned>(L.code(q[i0 + k], Stage2Params{s2_s[c0 + k], z_s[c0 + k]}))
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
    const Stage2Params p = L.params(lo, hi);
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
      byte |= static_cast<unsigned>(L.code(q[i], Stage2Params{s2[g], z[g]})) << (k * L.bits);
    }
    blk[bi] = static_cast<uint8_t>(byte);
  }
  __syncthreads();
}

}  // namespace cuda
}  // namespace turbo

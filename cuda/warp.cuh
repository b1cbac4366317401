// Warp and block reductions shared by the kernels. Max reductions are exact in any order; the
// integer sums are exact in any order.
#pragma once

#include "core/quant.h"

namespace turbo {
namespace cuda {

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = maxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ int warp_sum(int v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Max over the block (every thread gets it); `red` holds one float per warp in shared memory.
__device__ __forceinline__ float block_max(float v, float* red) {
  v = warp_max(v);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float r = red[0];
  for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w) r = maxf(r, red[w]);
  return r;
}

}  // namespace cuda
}  // namespace turbo

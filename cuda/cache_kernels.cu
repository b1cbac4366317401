// KV cache append (SPEC 6): rows go to the residual buffer; a full buffer becomes one compressed
// block per stream (stage 1 over the block's FP32 rows, then stage 2 at the head's bits).
#include "core/fp16.h"
#include "core/quant.h"
#include "cuda/cuda_common.cuh"
#include "cuda/stage2.cuh"
#include "cuda/warp.cuh"

namespace turbo {
namespace cuda {
namespace {

// grid (streams, rows), block 64: warp 0 takes the K row, warp 1 the V row.
__global__ void AppendKernel(CacheAppendParams P) {
  const int64_t s = blockIdx.x;
  const int j = blockIdx.y;  // row of this append chunk
  const int lane = threadIdx.x & 31;
  const bool is_k = threadIdx.x < 32;
  const Half* src = (is_k ? P.k_in : P.v_in) + (s * P.t_in + P.t0 + j) * P.d;
  int r = P.buf_head + P.n_buf + j;  // the buffer ring
  if (r >= P.buf_cap) r -= P.buf_cap;
  const int64_t slot = s * P.buf_cap + r;
  if (!P.buf_int8) {
    Half* dst = (is_k ? P.k_buf : P.v_buf) + slot * P.d;
    for (int c = lane; c < P.d; c += 32) dst[c] = src[c];
    return;
  }
  // int8 buffer: per-token stage 1 (K after the mean subtraction).
  const float* mean = (is_k && P.k_mean) ? P.k_mean + s * P.d : nullptr;
  float amax = 0.0f;
  for (int c = lane; c < P.d; c += 32) {
    const float x = half_to_float(src[c]);
    amax = maxf(amax, absf(mean ? x - mean[c] : x));
  }
  amax = warp_max(amax);
  const Stage1Scale sc = stage1_scale(amax);
  int8_t* dst = (is_k ? P.k_buf8 : P.v_buf8) + slot * P.d;
  for (int c = lane; c < P.d; c += 32) {
    const float x = half_to_float(src[c]);
    dst[c] = stage1_code(mean ? x - mean[c] : x, sc.inv);
  }
  if (lane == 0) (is_k ? P.k_buf_s : P.v_buf_s)[slot] = sc.scale;
}

// Writes the FP32 stage-1 scale `v` at byte `at` of a block (scale slots need not be 4-aligned).
__device__ __forceinline__ void store_scale(uint8_t* at, float v) {
  const uint32_t u = __float_as_uint(v);
  for (int b = 0; b < 4; ++b) at[b] = static_cast<uint8_t>(u >> (8 * b));
}

// grid (streams, 2): y = 0 compresses K, y = 1 V: the buffer ring's oldest n_b rows. Stage 1 over
// the block's FP32 rows (one scale, or one per row with kv_scale = token), then stage 2 at the
// head's bits. Dynamic shared memory: n_b * d codes.
__global__ void CompressBufferKernel(CacheAppendParams P) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ float red[32];
  int8_t* codes = reinterpret_cast<int8_t*>(smem);
  const int64_t s = blockIdx.x;
  const bool is_k = blockIdx.y == 0;
  const int hk = static_cast<int>(s % P.hkv);
  const int n = P.n_b, d = P.d;
  const float* mean = (is_k && P.k_mean && !P.buf_int8) ? P.k_mean + s * d : nullptr;
  auto slot = [&](int t) -> int64_t {  // ring slot of block row t
    const int r = P.buf_head + t;
    return s * P.buf_cap + (r < P.buf_cap ? r : r - P.buf_cap);
  };
  auto row_value = [&](int t, int c) -> float {
    if (P.buf_int8) {
      const int64_t sl = slot(t);
      return static_cast<float>((is_k ? P.k_buf8 : P.v_buf8)[sl * d + c]) *
             (is_k ? P.k_buf_s : P.v_buf_s)[sl];
    }
    const float x = half_to_float((is_k ? P.k_buf : P.v_buf)[slot(t) * d + c]);
    return mean ? x - mean[c] : x;
  };
  BlockLayout L;
  L.n_b = n;
  L.d = d;
  L.bits = P.head_bits[hk];
  L.axis = is_k ? P.k_axis : P.v_axis;
  L.group_size = P.group_size;
  L.frac_step = P.frac_step;
  L.token_scales = P.token_scales;
  uint8_t* blk =
      (is_k ? P.k_blocks : P.v_blocks) + (s * P.block_cap + P.block_index) * P.block_stride;
  if (L.token_scales) {  // one warp per row
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    for (int t = warp; t < n; t += warps) {
      float amax = 0.0f;
      for (int c = lane; c < d; c += 32) amax = maxf(amax, absf(row_value(t, c)));
      const Stage1Scale sc = stage1_scale(warp_max(amax));
      for (int c = lane; c < d; c += 32) codes[t * d + c] = stage1_code(row_value(t, c), sc.inv);
      if (lane == 0) store_scale(blk + L.scale_offset() + 4 * t, sc.scale);
    }
    __syncthreads();
    compress_block_dev(codes, L, blk);
    return;
  }
  float amax = 0.0f;
  for (int e = threadIdx.x; e < n * d; e += blockDim.x)
    amax = maxf(amax, absf(row_value(e / d, e % d)));
  amax = block_max(amax, red);
  const Stage1Scale sc = stage1_scale(amax);
  for (int e = threadIdx.x; e < n * d; e += blockDim.x)
    codes[e] = stage1_code(row_value(e / d, e % d), sc.inv);
  __syncthreads();
  compress_block_dev(codes, L, blk);
  if (threadIdx.x == 0) store_scale(blk + L.scale_offset(), sc.scale);
}

}  // namespace

void launch_cache_append(const CacheAppendParams& p, int rows, cudaStream_t stream) {
  if (rows == 0 || p.streams == 0) return;
  AppendKernel<<<dim3(static_cast<unsigned>(p.streams), static_cast<unsigned>(rows)), 64, 0,
                 stream>>>(p);
  TURBO_CUDA_LAUNCH_CHECK();
}

void launch_cache_compress(const CacheAppendParams& p, cudaStream_t stream) {
  const size_t smem = static_cast<size_t>(p.n_b) * p.d;
  TURBO_CHECK(smem <= 200 * 1024,
              "cache block of " << p.n_b << " x " << p.d << " codes does not fit in shared memory");
  TURBO_CUDA_CHECK(cudaFuncSetAttribute(
      CompressBufferKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  CompressBufferKernel<<<dim3(static_cast<unsigned>(p.streams), 2), 256, smem, stream>>>(p);
  TURBO_CUDA_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace turbo

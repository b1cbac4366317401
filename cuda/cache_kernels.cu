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
  const int64_t slot = s * P.n_b + P.n_buf + j;
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

// grid (streams, 2): y = 0 compresses K, y = 1 V. Dynamic shared memory: n_b * d codes.
__global__ void CompressBufferKernel(CacheAppendParams P) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ float red[32];
  int8_t* codes = reinterpret_cast<int8_t*>(smem);
  const int64_t s = blockIdx.x;
  const bool is_k = blockIdx.y == 0;
  const int hk = static_cast<int>(s % P.hkv);
  const int n = P.n_b, d = P.d;
  const float* mean = (is_k && P.k_mean && !P.buf_int8) ? P.k_mean + s * d : nullptr;
  auto row_value = [&](int e) -> float {
    if (P.buf_int8) {
      const int8_t* c8 = (is_k ? P.k_buf8 : P.v_buf8) + s * n * d;
      const float* sc = (is_k ? P.k_buf_s : P.v_buf_s) + s * n;
      return static_cast<float>(c8[e]) * sc[e / d];
    }
    const float x = half_to_float((is_k ? P.k_buf : P.v_buf)[s * n * d + e]);
    return mean ? x - mean[e % d] : x;
  };
  float amax = 0.0f;
  for (int e = threadIdx.x; e < n * d; e += blockDim.x) amax = maxf(amax, absf(row_value(e)));
  amax = block_max(amax, red);
  const Stage1Scale sc = stage1_scale(amax);
  for (int e = threadIdx.x; e < n * d; e += blockDim.x)
    codes[e] = stage1_code(row_value(e), sc.inv);
  __syncthreads();
  BlockLayout L;
  L.n_b = n;
  L.d = d;
  L.bits = P.head_bits[hk];
  L.axis = is_k ? P.k_axis : P.v_axis;
  L.group_size = P.group_size;
  uint8_t* blk =
      (is_k ? P.k_blocks : P.v_blocks) + (s * P.block_cap + P.block_index) * P.block_stride;
  compress_block_dev(codes, L, blk);
  if (threadIdx.x < 4) {
    const uint32_t u = __float_as_uint(sc.scale);
    blk[L.scale_offset() + threadIdx.x] = static_cast<uint8_t>(u >> (8 * threadIdx.x));
  }
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

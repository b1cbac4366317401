// KV cache append (SPEC 6): an append's full blocks are compressed in one launch (stage 1 over
// each block's FP32 rows, then stage 2 at the head's bits), straight from the input rows and, for
// the blocks that start in the buffer, from the buffer's rows; the rows left over go to the
// residual buffer, a ring of n_b + window rows (a block leaves it once `window` newer rows follow
// it). The sink rows (the first `sink` tokens) never come here: the driver copies them aside.
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

// grid (n_full * streams, 2): x = j + n_full * s, y = 0 compresses K, y = 1 V. Block j of stream s
// holds the rows [j * n_b, (j + 1) * n_b) of the buffer's n_buf rows followed by the input rows
// from t0 (CacheAppendParams). Stage 1 over the block's FP32 rows (one scale, or one per row with
// kv_scale = token), then stage 2 at the head's bits (integer or fractional step). Dynamic shared
// memory: n_b * d codes, then (int8 buffer) the per-token stage-1 scale and inverse of the block's
// input rows. The general path: every layout.
__global__ void CompressChunkKernel(CacheAppendParams P) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ float red[32];
  const int n = P.n_b, d = P.d;
  int8_t* codes = reinterpret_cast<int8_t*>(smem);
  float* tok = reinterpret_cast<float*>(smem + (static_cast<size_t>(n) * d + 15) / 16 * 16);
  const int64_t s = blockIdx.x / P.n_full, j = blockIdx.x % P.n_full;
  const bool is_k = blockIdx.y == 0;
  // Row t of the block: an input row (>= 0: t0 + it), or (< 0) buffer row j * n + t.
  auto input_token = [&](int t) -> int64_t { return j * n - P.n_buf + t; };
  auto buffer_slot = [&](int t) -> int64_t {  // ring slot of buffer row j * n + t
    const int64_t r = P.buf_head + j * n + t;
    return s * P.buf_cap + (r < P.buf_cap ? r : r - P.buf_cap);
  };
  const int hk = static_cast<int>(s % P.hkv);
  const float* mean = (is_k && P.k_mean) ? P.k_mean + s * d : nullptr;
  const Half* in = (is_k ? P.k_in : P.v_in) + (s * P.t_in + P.t0) * d;
  // The int8 buffer's rows are stage 1 per token (AppendKernel): the input rows of this block get
  // the same per-token codes and scale here first.
  if (P.buf_int8) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int t = warp; t < n; t += blockDim.x >> 5) {
      const int64_t it = input_token(t);
      if (it < 0) continue;
      float amax = 0.0f;
      for (int c = lane; c < d; c += 32) {
        const float x = half_to_float(in[it * d + c]);
        amax = maxf(amax, absf(mean ? x - mean[c] : x));
      }
      amax = warp_max(amax);
      const Stage1Scale sc = stage1_scale(amax);
      if (lane == 0) {
        tok[2 * t] = sc.scale;
        tok[2 * t + 1] = sc.inv;
      }
    }
    __syncthreads();
  }
  auto row_value = [&](int t, int c) -> float {
    const int64_t it = input_token(t);
    if (P.buf_int8) {
      if (it < 0) {
        const int64_t sl = buffer_slot(t);
        return static_cast<float>((is_k ? P.k_buf8 : P.v_buf8)[sl * d + c]) *
               (is_k ? P.k_buf_s : P.v_buf_s)[sl];
      }
      const float x = half_to_float(in[it * d + c]);
      return static_cast<float>(stage1_code(mean ? x - mean[c] : x, tok[2 * t + 1])) * tok[2 * t];
    }
    const float x =
        half_to_float(it < 0 ? (is_k ? P.k_buf : P.v_buf)[buffer_slot(t) * d + c] : in[it * d + c]);
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
      (is_k ? P.k_blocks : P.v_blocks) + (s * P.block_cap + P.block_index + j) * P.block_stride;
  if (L.token_scales) {  // one scale per row: one warp per row
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int t = warp; t < n; t += blockDim.x >> 5) {
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

void launch_cache_compress(const CacheAppendParams& p, const BlockLayout layouts[2],
                           cudaStream_t stream) {
  if (p.n_full == 0 || p.streams == 0) return;
  (void)layouts;
  const size_t codes = (static_cast<size_t>(p.n_b) * p.d + 15) / 16 * 16;
  const size_t smem = codes + (p.buf_int8 ? 8 * static_cast<size_t>(p.n_b) : 0);
  TURBO_CHECK(smem <= 200 * 1024,
              "cache block of " << p.n_b << " x " << p.d << " codes does not fit in shared memory");
  TURBO_CHECK(p.n_full * p.streams <= 0x7fffffff,
              "an append of " << p.n_full << " blocks x " << p.streams << " streams is too large");
  TURBO_CUDA_CHECK(cudaFuncSetAttribute(
      CompressChunkKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  CompressChunkKernel<<<dim3(static_cast<unsigned>(p.n_full * p.streams), 2), 256, smem, stream>>>(
      p);
  TURBO_CUDA_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace turbo

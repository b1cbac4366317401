// KV cache append (SPEC 6): an append's full blocks are compressed in one launch (stage 1 over
// each block's FP32 rows, then stage 2 at the head's bits), straight from the input rows and, for
// the blocks that start in the buffer, from the buffer's rows; the rows left over go to the
// residual buffer, a ring of n_b + window rows (a block leaves it once `window` newer rows follow
// it). The sink rows (the first `sink` tokens) never come here: the driver copies them aside.
#include "core/fp16.h"
#include "core/quant.h"
#include "cuda/cuda_common.cuh"
#include "cuda/ptx.cuh"
#include "cuda/stage2.cuh"
#include "cuda/stage2_channel.cuh"
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

// store_scale spread over threads 0-3, one byte each (the stage-2 append kernels' form), for the
// channel-axis block of n x d codes at `bits`.
__device__ __forceinline__ void store_scale_by_4(uint8_t* blk, int n, int d, int bits, float v) {
  if (threadIdx.x < 4) {
    const uint32_t u = __float_as_uint(v);
    blk[BlockLayout::channel_axis(n, d, bits).scale_offset() + threadIdx.x] =
        static_cast<uint8_t>(u >> (8 * threadIdx.x));
  }
}

// grid (n_full * streams, kv_count): x = j + n_full * s, y + kv0 = 0 compresses K, 1 V. Block j of
// stream s
// holds the rows [j * n_b, (j + 1) * n_b) of the buffer's n_buf rows followed by the input rows
// from t0 (CacheAppendParams). Stage 1 over the block's FP32 rows (one scale, or one per row with
// kv_scale = token), then stage 2 at the head's bits (integer or fractional step). Dynamic shared
// memory: n_b * d codes, then (int8 buffer) the per-token stage-1 scale and inverse of the block's
// input rows. The general path: every layout.
__global__ void CompressChunkKernel(CacheAppendParams P, int kv0) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ float red[32];
  const int n = P.n_b, d = P.d;
  int8_t* codes = reinterpret_cast<int8_t*>(smem);
  float* tok = reinterpret_cast<float*>(smem + (static_cast<size_t>(n) * d + 15) / 16 * 16);
  const int64_t s = blockIdx.x / P.n_full, j = blockIdx.x % P.n_full;
  const bool is_k = blockIdx.y + kv0 == 0;
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

// The column-scan path of CompressChunkKernel for the common layout (stage2_channel.cuh,
// TURBO_STAGE2_PATH=scan: slower than the register path on the H200, kept for the A/B of
// cuda/TUNING.md): grid (x, kv_count), y + kv0 = 0 compresses K, 1 V; CTA x takes the blocks x, x +
// gridDim.x, ... of the n_full * streams (block i: stream i / n_full, block j = i % n_full of the
// call, its tokens as CompressChunkKernel's). The FP16 rows of the next block (input rows, or the
// fp16 buffer's) stream into a two-block ring with 16-byte asynchronous copies while this one is
// compressed; an int8 buffer's rows are read directly. Stage 1 in registers: thread t holds kV
// vectors of 8 channels [c0, c0 + 8) of the rows r0 + v * rows_per_pass (the per-token scale of an
// int8 buffer over the tpr lanes of a row); the codes go to shared memory for
// channel_scan_compress. Dynamic shared memory: the ring (2 x n_b x d FP16), then the codes (n_b x
// d). kV = 8 (16,384 codes: 80 KB of it) fits at most 2 CTAs per SM, so it gets the registers of 2
// (no spill).
template <int kV>
__global__ void __launch_bounds__(kChannelTileThreads, kV >= 8 ? 2 : 3)
    CompressChunkChannelKernel(CacheAppendParams P, int kv0) {
  constexpr int kC = 8;
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ ChannelScanSmem sm;
  __shared__ float red[kChannelTileWarps];
  const int n = P.n_b, d = P.d;
  const int row_bytes = 2 * d, blk_bytes = n * row_bytes;
  int8_t* codes = reinterpret_cast<int8_t*>(smem + 2 * blk_bytes);
  const bool is_k = blockIdx.y + kv0 == 0;
  const int64_t total = P.n_full * P.streams;
  const Half* in_all = is_k ? P.k_in : P.v_in;
  const Half* buf_all = is_k ? P.k_buf : P.v_buf;
  const int chunks = d / 8;  // 16-byte pieces per row
  auto issue = [&](int64_t i, int slot) {
    const int64_t s = i / P.n_full, j = i % P.n_full;
    for (int e = threadIdx.x; e < n * chunks; e += kChannelTileThreads) {
      const int t = e / chunks, c = (e % chunks) * 8;
      const int64_t it = j * n - P.n_buf + t;  // >= 0: input row t0 + it; < 0: buffer slot t
      if (it < 0 && P.buf_int8) continue;      // read directly below
      const Half* src =
          it < 0 ? buf_all + (s * n + t) * d + c : in_all + (s * P.t_in + P.t0 + it) * d + c;
      cp_async16(smem + slot * blk_bytes + t * row_bytes + 2 * c, src);
    }
  };
  const int tpr = d / kC;
  const int c0 = (threadIdx.x % tpr) * kC;
  const int r0 = threadIdx.x / tpr;
  const int rows_per_pass = kChannelTileThreads / tpr;
  int64_t i = blockIdx.x;
  int slot = 0;
  if (i < total) issue(i, 0);
  cp_async_commit();
  for (; i < total; i += gridDim.x) {
    if (i + gridDim.x < total) issue(i + gridDim.x, slot ^ 1);
    cp_async_commit();
    cp_async_wait<1>();  // this thread's copies of block i have landed
    __syncthreads();     // and every thread's
    const int64_t s = i / P.n_full, j = i % P.n_full;
    const bool has_mean = is_k && P.k_mean;
    const unsigned char* rows = smem + slot * blk_bytes;
    // The stage-1 input of vector v: x - mean of an FP16 row (ring), or code * row scale of an
    // int8 buffer's row (then true: its values are final). Computed twice (block amax, codes)
    // instead of held: registers.
    auto base_values = [&](int v, float(&xv)[kC]) -> bool {
      const int t = r0 + v * rows_per_pass;
      if (j * n - P.n_buf + t < 0 && P.buf_int8) {
        const uint2 c8 =
            *reinterpret_cast<const uint2*>((is_k ? P.k_buf8 : P.v_buf8) + (s * n + t) * d + c0);
        const float sc = (is_k ? P.k_buf_s : P.v_buf_s)[s * n + t];
#pragma unroll
        for (int k = 0; k < kC; ++k)
          xv[k] =
              static_cast<float>(static_cast<int8_t>((k < 4 ? c8.x : c8.y) >> (8 * (k % 4)))) * sc;
        return true;
      }
      const uint4 raw = *reinterpret_cast<const uint4*>(rows + t * row_bytes + 2 * c0);
      const uint32_t h[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
      for (int k = 0; k < kC; ++k) {
        const float f = half_to_float(Half{static_cast<uint16_t>(h[k / 2] >> (16 * (k % 2)))});
        xv[k] = has_mean ? f - P.k_mean[s * d + c0 + k] : f;
      }
      return false;
    };
    // int8 buffer: an input row gets the per-token stage 1 of AppendKernel (scale over the tpr
    // lanes of the row) before the block's.
    float tok_scale[kV], tok_inv[kV];
    auto requant = [&](int v, float(&xv)[kC]) {
#pragma unroll
      for (int k = 0; k < kC; ++k)
        xv[k] = static_cast<float>(stage1_code(xv[k], tok_inv[v])) * tok_scale[v];
    };
    float amax = 0.0f;
#pragma unroll
    for (int v = 0; v < kV; ++v) {
      float xv[kC];
      const bool final = base_values(v, xv);
      if (P.buf_int8) {
        float ta = 0.0f;
#pragma unroll
        for (int k = 0; k < kC; ++k) ta = maxf(ta, absf(xv[k]));
        for (int o = 1; o < tpr; o <<= 1) ta = maxf(ta, __shfl_xor_sync(0xffffffffu, ta, o));
        const Stage1Scale ts = stage1_scale(ta);
        tok_scale[v] = ts.scale;
        tok_inv[v] = ts.inv;
        if (!final) requant(v, xv);
      }
#pragma unroll
      for (int k = 0; k < kC; ++k) amax = maxf(amax, absf(xv[k]));
    }
    const Stage1Scale sc = stage1_scale(block_max(amax, red));
#pragma unroll
    for (int v = 0; v < kV; ++v) {
      float xv[kC];
      const bool final = base_values(v, xv);
      if (P.buf_int8 && !final) requant(v, xv);
      uint32_t w[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        w[h] = 0;
#pragma unroll
        for (int k = 0; k < 4; ++k)
          w[h] |= static_cast<uint32_t>(static_cast<uint8_t>(stage1_code(xv[4 * h + k], sc.inv)))
                  << (8 * k);
      }
      *reinterpret_cast<uint2*>(codes + (r0 + v * rows_per_pass) * d + c0) = make_uint2(w[0], w[1]);
    }
    __syncthreads();
    const int hk = static_cast<int>(s % P.hkv);
    const int bits = P.head_bits[hk];
    uint8_t* blk =
        (is_k ? P.k_blocks : P.v_blocks) + (s * P.block_cap + P.block_index + j) * P.block_stride;
    channel_scan_compress_bits<2 * kV>(bits, codes, d, blk, sm);
    store_scale_by_4(blk, n, d, bits, sc.scale);
    slot ^= 1;
  }
  cp_async_wait<0>();
}

// The register path of CompressChunkKernel for the common layout (stage2_channel.cuh; the
// default: 1.5x faster than the column scan on the H200, cuda/TUNING.md): grid
// (n_full * streams, kv_count), y + kv0 = 0 compresses K, 1 V; blocks as CompressChunkKernel's
// (the buffer's rows from slot 0: no window ring). Thread t holds kV vectors of 8 channels [c0, c0
// + 8) of the rows r0 + v * rows_per_pass, loaded with 16-byte loads (8 FP16 values; an int8
// buffer row: 8 codes and the row's scale), stage 1 over the block in registers, then
// channel_tile_compress on the codes.
template <int kV>
__global__ void __launch_bounds__(kChannelTileThreads)
    CompressChunkRegisterKernel(CacheAppendParams P, int kv0) {
  constexpr int kC = 8;
  __shared__ ChannelTileSmem sm;
  __shared__ float red[kChannelTileWarps];
  const int n = P.n_b, d = P.d;
  // 32-bit: the launcher checks n_full * streams < 2^31.
  const uint32_t n_full = static_cast<uint32_t>(P.n_full);
  const int64_t s = blockIdx.x / n_full, j = blockIdx.x % n_full;
  const bool is_k = blockIdx.y + kv0 == 0;
  const int log_tpr = __ffs(static_cast<unsigned>(d) / kC) - 1;  // tpr = d / kC: a power of two
  const int tpr = 1 << log_tpr;
  const int c0 = (threadIdx.x & (tpr - 1)) * kC;
  const int r0 = threadIdx.x >> log_tpr;
  const int rows_per_pass = kChannelTileThreads >> log_tpr;
  const bool has_mean = is_k && P.k_mean;
  float mu[kC];
#pragma unroll
  for (int k = 0; k < kC; ++k) mu[k] = has_mean ? P.k_mean[s * d + c0 + k] : 0.0f;
  const Half* in = (is_k ? P.k_in : P.v_in) + (s * P.t_in + P.t0) * d + c0;
  // Every FP16 row's 16-byte load first (predicated, no branch between them), then the values.
  const Half* buf = (is_k ? P.k_buf : P.v_buf) + s * n * d + c0;
  uint4 raw[kV];
#pragma unroll
  for (int v = 0; v < kV; ++v) {
    const int t = r0 + v * rows_per_pass;
    const int64_t it = j * n - P.n_buf + t;  // < 0: buffer slot t
    raw[v] = it < 0 && P.buf_int8
                 ? make_uint4(0, 0, 0, 0)
                 : *reinterpret_cast<const uint4*>(it < 0 ? buf + t * d : in + it * d);
  }
  float x[kV][kC];
#pragma unroll
  for (int v = 0; v < kV; ++v) {
    const int t = r0 + v * rows_per_pass;
    const int64_t it = j * n - P.n_buf + t;
    if (it < 0 && P.buf_int8) {  // stage 1 per token already done: value = code * row scale
      const uint2 c8 =
          *reinterpret_cast<const uint2*>((is_k ? P.k_buf8 : P.v_buf8) + (s * n + t) * d + c0);
      const float sc = (is_k ? P.k_buf_s : P.v_buf_s)[s * n + t];
#pragma unroll
      for (int k = 0; k < kC; ++k)
        x[v][k] = static_cast<float>(code_byte(k < 4 ? c8.x : c8.y, k % 4)) * sc;
      continue;
    }
    const uint32_t h[4] = {raw[v].x, raw[v].y, raw[v].z, raw[v].w};
#pragma unroll
    for (int k = 0; k < kC; ++k) {
      const float f = half_to_float(Half{static_cast<uint16_t>(h[k / 2] >> (16 * (k % 2)))});
      x[v][k] = has_mean ? f - mu[k] : f;
    }
  }
  if (P.buf_int8) {  // the input rows: per-token stage 1 as AppendKernel's, over tpr lanes
#pragma unroll
    for (int v = 0; v < kV; ++v) {
      const int64_t it = j * n - P.n_buf + r0 + v * rows_per_pass;
      float amax = 0.0f;
#pragma unroll
      for (int k = 0; k < kC; ++k) amax = maxf(amax, absf(x[v][k]));
      for (int o = 1; o < tpr; o <<= 1) amax = maxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
      if (it < 0) continue;
      const Stage1Scale sc = stage1_scale(amax);
#pragma unroll
      for (int k = 0; k < kC; ++k)
        x[v][k] = static_cast<float>(stage1_code(x[v][k], sc.inv)) * sc.scale;
    }
  }
  float amax = 0.0f;
#pragma unroll
  for (int v = 0; v < kV; ++v)
#pragma unroll
    for (int k = 0; k < kC; ++k) amax = maxf(amax, absf(x[v][k]));
  const Stage1Scale sc = stage1_scale(block_max(amax, red));
  uint32_t w[kV][kC / 4];
#pragma unroll
  for (int v = 0; v < kV; ++v)
#pragma unroll
    for (int i = 0; i < kC / 4; ++i) {
      uint32_t word = 0;
#pragma unroll
      for (int k = 0; k < 4; ++k)
        word |= static_cast<uint32_t>(static_cast<uint8_t>(stage1_code(x[v][4 * i + k], sc.inv)))
                << (8 * k);
      w[v][i] = word;
    }
  const int hk = static_cast<int>(s % P.hkv);
  uint8_t* blk =
      (is_k ? P.k_blocks : P.v_blocks) + (s * P.block_cap + P.block_index + j) * P.block_stride;
  channel_tile_compress_bits<kC, kV>(P.head_bits[hk], w, d, blk, sm);
  store_scale_by_4(blk, n, d, P.head_bits[hk], sc.scale);
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
  TURBO_CHECK(p.n_full * p.streams <= 0x7fffffff,
              "an append of " << p.n_full << " blocks x " << p.streams << " streams is too large");
  const unsigned grid = static_cast<unsigned>(p.n_full * p.streams);
  // The register path (or the column scan, TURBO_STAGE2_PATH=scan) per tensor (K: 0, V: 1) where
  // its layout allows it, else the general one; K and V in one launch when they take the
  // same path. Both read the buffer's rows from slot 0 on: a window's ring (buf_cap > n_b, whose
  // oldest row may sit anywhere) takes the general path.
  const Stage2Path path = stage2_path(Stage2Path::kRegister);
  const bool aligned = aligned16(p.k_in) && aligned16(p.v_in) && p.block_stride % 16 == 0;
  const bool plain_buffer = p.buf_cap == p.n_b && p.buf_head == 0;
  int vectors[2];
  for (int kv = 0; kv < 2; ++kv) {
    const int v = aligned && plain_buffer && path != Stage2Path::kGeneral
                      ? channel_tile_vectors(layouts[kv], 8)
                      : 0;
    vectors[kv] =
        v > 0 && (path == Stage2Path::kRegister || channel_scan_rows(layouts[kv]) == 2 * v) ? v : 0;
  }
  const int64_t total = p.n_full * p.streams;
  auto launch = [&](int kv0, int kv_count) {
    const size_t smem = 5 * static_cast<size_t>(p.n_b) * p.d;  // ring 2 x 2 bytes, codes 1
    auto channel = [&](auto kernel) {
      if (smem > 48 * 1024)
        TURBO_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(smem)));
      const unsigned wave = one_wave(kernel, kChannelTileThreads, smem, total * kv_count);
      const dim3 g((wave + kv_count - 1) / kv_count, static_cast<unsigned>(kv_count));
      kernel<<<g, kChannelTileThreads, smem, stream>>>(p, kv0);
    };
    const dim3 g(grid, static_cast<unsigned>(kv_count));
    switch (path == Stage2Path::kRegister ? -vectors[kv0] : vectors[kv0]) {
      case 1:
        channel(CompressChunkChannelKernel<1>);
        break;
      case 2:
        channel(CompressChunkChannelKernel<2>);
        break;
      case 4:
        channel(CompressChunkChannelKernel<4>);
        break;
      case 8:
        channel(CompressChunkChannelKernel<8>);
        break;
      case -1:
        CompressChunkRegisterKernel<1><<<g, kChannelTileThreads, 0, stream>>>(p, kv0);
        break;
      case -2:
        CompressChunkRegisterKernel<2><<<g, kChannelTileThreads, 0, stream>>>(p, kv0);
        break;
      case -4:
        CompressChunkRegisterKernel<4><<<g, kChannelTileThreads, 0, stream>>>(p, kv0);
        break;
      case -8:
        CompressChunkRegisterKernel<8><<<g, kChannelTileThreads, 0, stream>>>(p, kv0);
        break;
      default: {
        const size_t codes = (static_cast<size_t>(p.n_b) * p.d + 15) / 16 * 16;
        const size_t smem = codes + (p.buf_int8 ? 8 * static_cast<size_t>(p.n_b) : 0);
        TURBO_CHECK(smem <= 200 * 1024, "cache block of "
                                            << p.n_b << " x " << p.d
                                            << " codes does not fit in shared memory");
        TURBO_CUDA_CHECK(cudaFuncSetAttribute(CompressChunkKernel,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(smem)));
        CompressChunkKernel<<<g, 256, smem, stream>>>(p, kv0);
      }
    }
    TURBO_CUDA_LAUNCH_CHECK();
  };
  if (vectors[0] == vectors[1]) {
    launch(0, 2);
  } else {
    launch(0, 1);
    launch(1, 1);
  }
}

}  // namespace cuda
}  // namespace turbo

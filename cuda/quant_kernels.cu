// SPEC 1-4 element kernels: stage 1, the K channel mean, stage 2 compress/decompress, the direct
// asymmetric quantizer and SAS. Each calls the core/ formula the reference calls.
//
// Reductions: the stage-1 amax is a max of |x| (sign bit cleared, SPEC 1), exact in any order,
// and +0 for an all-zero group. The direct asymmetric quantizer's min/max are of signed values:
// the reference scans sequentially with minf/maxf, which return the NEW element on ties, so a
// zero extreme carries the sign of the last zero in scan order; AsymKernel reproduces that,
// because a stored zero point of -0 and +0 differ in their bits.
#include <algorithm>
#include <cfloat>
#include <cstring>

#include "core/fp16.h"
#include "core/quant.h"
#include "core/sas.h"
#include "cuda/cuda_common.cuh"
#include "cuda/ptx.cuh"
#include "cuda/sas_table.cuh"
#include "cuda/stage2.cuh"
#include "cuda/stage2_channel.cuh"
#include "cuda/warp.cuh"

namespace turbo {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// The stage-1 scale of group gi (rows [g0, g1) of `head`) from every thread's partial amax;
// written once per group (group_scales) and once per row (row_scales), where asked.
__device__ __forceinline__ Stage1Scale group_stage1_scale(float amax, float* red, int64_t head,
                                                          int64_t n, int64_t group_rows, int64_t gi,
                                                          int64_t g0, int64_t g1,
                                                          float* group_scales, float* row_scales) {
  amax = block_max(amax, red);
  const Stage1Scale s = stage1_scale(amax);
  if (threadIdx.x == 0 && group_scales)
    group_scales[head * ((n + group_rows - 1) / group_rows) + gi] = s.scale;
  if (row_scales)
    for (int64_t r = g0 + threadIdx.x; r < g1; r += blockDim.x) row_scales[head * n + r] = s.scale;
  return s;
}

__device__ __forceinline__ float load_x(const Half* x, const float* mean, int64_t row, int c,
                                        int d) {
  const float v = half_to_float(x[row * d + c]);
  return mean ? v - mean[c] : v;  // FP32 subtraction (SPEC 1 k_smooth)
}

// grid (n_groups, heads)
__global__ void Stage1Kernel(const Half* x, const float* mean, int64_t n, int d, int64_t group_rows,
                             int8_t* codes, int code_stride, float* group_scales,
                             float* row_scales) {
  __shared__ float red[kThreads / 32];
  const int64_t head = blockIdx.y, gi = blockIdx.x;
  const int64_t g0 = gi * group_rows;
  const int64_t g1 = min(n, g0 + group_rows);
  const Half* xh = x + head * n * d;
  const float* mh = mean ? mean + head * d : nullptr;
  const int64_t count = (g1 - g0) * d;
  float amax = 0.0f;
  for (int64_t e = threadIdx.x; e < count; e += blockDim.x) {
    const int64_t r = g0 + e / d;
    amax = maxf(amax, absf(load_x(xh, mh, r, static_cast<int>(e % d), d)));
  }
  const Stage1Scale s =
      group_stage1_scale(amax, red, head, n, group_rows, gi, g0, g1, group_scales, row_scales);
  const int64_t padded = (g1 - g0) * code_stride;
  for (int64_t e = threadIdx.x; e < padded; e += blockDim.x) {
    const int64_t r = g0 + e / code_stride;
    const int c = static_cast<int>(e % code_stride);
    codes[(head * n + r) * code_stride + c] =
        c < d ? stage1_code(load_x(xh, mh, r, c, d), s.inv) : int8_t{0};
  }
}

// The same stage 1 with 16-byte accesses, for d % 8 == 0 and code_stride % 8 == 0 (every
// attention call: d is a multiple of 16). Eight channels per thread step; identical math. A group
// of at most kCached chunks per thread (a 64 x 128 tile: 4) is read from memory once: its chunks
// stay in registers between the amax pass and the code pass. Indices within a group are 32-bit
// (the host checks that a group has fewer than 2^31 chunks).
constexpr int kCached = 4;

__global__ void Stage1Vec8Kernel(const Half* x, const float* mean, int64_t n, int d,
                                 int64_t group_rows, int8_t* codes, int code_stride,
                                 float* group_scales, float* row_scales) {
  __shared__ float red[kThreads / 32];
  const int64_t head = blockIdx.y, gi = blockIdx.x;
  const int64_t g0 = gi * group_rows;
  const int64_t g1 = min(n, g0 + group_rows);
  const Half* xg = x + (head * n + g0) * d;  // the group's first row
  const float* mh = mean ? mean + head * d : nullptr;
  const int d8 = d / 8;
  const int count8 = static_cast<int>((g1 - g0) * d8);
  auto to_float8 = [&](const uint4& raw, int c8, float(&v)[8]) {
    const Half* hv = reinterpret_cast<const Half*>(&raw);
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const float f = half_to_float(hv[k]);
      v[k] = mh ? f - mh[c8 * 8 + k] : f;  // FP32 subtraction (SPEC 1 k_smooth)
    }
  };
  auto load_chunk = [&](int e) {  // chunk e = row e / d8, channels 8 (e % d8) ..
    const int r = e / d8;
    return *reinterpret_cast<const uint4*>(xg + static_cast<int64_t>(r) * d + (e - r * d8) * 8);
  };
  const bool cached = count8 <= kCached * static_cast<int>(blockDim.x);
  uint4 raw[kCached];
  float amax = 0.0f;
  if (cached) {
#pragma unroll
    for (int i = 0; i < kCached; ++i) {
      const int e = threadIdx.x + i * blockDim.x;
      if (e < count8) raw[i] = load_chunk(e);
    }
#pragma unroll
    for (int i = 0; i < kCached; ++i) {
      const int e = threadIdx.x + i * blockDim.x;
      if (e >= count8) break;
      float v[8];
      to_float8(raw[i], e % d8, v);
#pragma unroll
      for (int k = 0; k < 8; ++k) amax = maxf(amax, absf(v[k]));
    }
  } else {
    for (int e = threadIdx.x; e < count8; e += blockDim.x) {
      float v[8];
      to_float8(load_chunk(e), e % d8, v);
#pragma unroll
      for (int k = 0; k < 8; ++k) amax = maxf(amax, absf(v[k]));
    }
  }
  const Stage1Scale s =
      group_stage1_scale(amax, red, head, n, group_rows, gi, g0, g1, group_scales, row_scales);
  auto codes8 = [&](const uint4& chunk, int c8) {
    float v[8];
    to_float8(chunk, c8, v);
    uint2 out;
    int8_t* ob = reinterpret_cast<int8_t*>(&out);
#pragma unroll
    for (int k = 0; k < 8; ++k) ob[k] = stage1_code(v[k], s.inv);
    return out;
  };
  int8_t* cg = codes + (head * n + g0) * code_stride;
  const int s8 = code_stride / 8;
  if (cached && s8 == d8) {  // code rows are as wide as input rows: chunk e maps to chunk e
#pragma unroll
    for (int i = 0; i < kCached; ++i) {
      const int e = threadIdx.x + i * blockDim.x;
      if (e >= count8) break;
      *reinterpret_cast<uint2*>(cg + static_cast<int64_t>(e) * 8) = codes8(raw[i], e % d8);
    }
    return;
  }
  const int padded8 = static_cast<int>((g1 - g0) * s8);
  for (int e = threadIdx.x; e < padded8; e += blockDim.x) {
    const int r = e / s8, c8 = e - r * s8;
    const uint2 out = c8 < d8 ? codes8(load_chunk(r * d8 + c8), c8) : make_uint2(0u, 0u);
    *reinterpret_cast<uint2*>(cg + static_cast<int64_t>(r) * code_stride + c8 * 8) = out;
  }
}

// grid (heads), threads over channels.
__global__ void ChannelMeanKernel(const Half* k, int64_t n_total, int64_t n, int d, float* mean) {
  const int64_t head = blockIdx.x;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    long long sum = 0;  // k * 2^24 is an integer for every FP16 k: the sum is exact
    for (int64_t t = 0; t < n; ++t)
      sum += __double2ll_rz(static_cast<double>(half_to_float(k[(head * n_total + t) * d + c])) *
                            16777216.0);
    mean[head * d + c] =
        n > 0 ? __double2float_rn(
                    __ddiv_rn(__ll2double_rn(sum) * 5.9604644775390625e-08, static_cast<double>(n)))
              : 0.0f;
  }
}

// grid (n_blocks)
__global__ void CompressKernel(const int8_t* q_all, BlockLayout L, uint8_t* blocks,
                               int64_t stride) {
  compress_block_dev(q_all + blockIdx.x * L.elements(), L, blocks + blockIdx.x * stride);
}

// The column-scan path of CompressKernel for the common layout (stage2_channel.cuh): each CTA
// takes blocks blockIdx.x, + gridDim.x, ..., the next depth - 1 ones' 16-byte asynchronous copies
// in flight while this one is compressed. Dynamic shared memory: a ring of `depth` (2-4) blocks of
// n_b * d codes.
template <int kR>
__global__ void __launch_bounds__(kChannelTileThreads)
    CompressChannelKernel(const int8_t* q_all, BlockLayout L, uint8_t* blocks, int64_t stride,
                          int64_t n_blocks, int depth) {
  extern __shared__ __align__(16) unsigned char ring[];
  __shared__ ChannelScanSmem sm;
  const int bytes = static_cast<int>(L.elements());
  auto issue = [&](int64_t b, int slot) {  // then one commit per call, empty past the end
    if (b < n_blocks)
      for (int i = threadIdx.x; i < bytes / 16; i += kChannelTileThreads)
        cp_async16(ring + slot * bytes + 16 * i, q_all + b * bytes + 16 * i);
    cp_async_commit();
  };
  for (int k = 0; k < depth - 1; ++k) issue(blockIdx.x + k * static_cast<int64_t>(gridDim.x), k);
  int slot = 0;
  for (int64_t b = blockIdx.x; b < n_blocks; b += gridDim.x) {
    // The slot computed last (the scan ends after a barrier) takes block b + (depth - 1) grid.
    issue(b + (depth - 1) * static_cast<int64_t>(gridDim.x), slot == 0 ? depth - 1 : slot - 1);
    if (depth == 2)  // this thread's copies of block b have landed
      cp_async_wait<1>();
    else if (depth == 3)
      cp_async_wait<2>();
    else
      cp_async_wait<3>();
    __syncthreads();  // and every thread's
    channel_scan_compress_bits<kR>(L.bits, reinterpret_cast<const int8_t*>(ring + slot * bytes),
                                   L.d, blocks + b * stride, sm);
    slot = slot + 1 == depth ? 0 : slot + 1;
  }
  cp_async_wait<0>();
}

// The register path of CompressKernel for the common layout (stage2_channel.cuh,
// TURBO_STAGE2_PATH=register: 2.3x slower than the column scan on the H200, kept for the A/B of
// cuda/TUNING.md): thread t holds kV vectors of 16 codes (one 16-byte load each). Grid (n_blocks).
template <int kV>
__global__ void __launch_bounds__(kChannelTileThreads)
    CompressRegisterKernel(const int8_t* q_all, BlockLayout L, uint8_t* blocks, int64_t stride) {
  constexpr int kC = 16;
  __shared__ ChannelTileSmem sm;
  const int d = L.d;
  const int tpr = d / kC;
  const int c0 = (threadIdx.x % tpr) * kC;
  const int r0 = threadIdx.x / tpr;
  const int rows_per_pass = kChannelTileThreads / tpr;
  const int8_t* q = q_all + blockIdx.x * L.elements();
  uint32_t w[kV][kC / 4];
#pragma unroll
  for (int v = 0; v < kV; ++v) {
    const uint4 x = *reinterpret_cast<const uint4*>(q + (r0 + v * rows_per_pass) * d + c0);
    w[v][0] = x.x;
    w[v][1] = x.y;
    w[v][2] = x.z;
    w[v][3] = x.w;
  }
  channel_tile_compress_bits<kC, kV>(L.bits, w, d, blocks + blockIdx.x * stride, sm);
}

__global__ void DecompressKernel(const uint8_t* blocks, BlockLayout L, int64_t stride,
                                 int8_t* q_all) {
  const uint8_t* blk = blocks + blockIdx.x * stride;
  int8_t* q = q_all + blockIdx.x * L.elements();
  const uint8_t* s2 = blk + L.s2_offset();
  const int8_t* z = reinterpret_cast<const int8_t*>(blk + L.z_offset());
  for (int64_t i = threadIdx.x; i < L.elements(); i += blockDim.x) {
    if (L.bits == 8) {
      q[i] = static_cast<int8_t>(blk[i]);
    } else {
      const int64_t g = L.group_of(static_cast<int>(i / L.d), static_cast<int>(i % L.d));
      q[i] = L.dequant(unpack_code(blk, i, L.bits), Stage2Params{s2[g], z[g]});
    }
  }
}

// grid (n_groups)
__global__ void AsymKernel(const Half* x, int group_len, int bits, ScaleStorage storage,
                           uint8_t* codes, float* scales, float* zeros) {
  __shared__ float red_mn[kThreads / 32], red_mx[kThreads / 32];
  __shared__ int red_i[2][kThreads / 32];
  const int64_t g = blockIdx.x;
  const Half* xg = x + g * group_len;
  float mn = INFINITY, mx = -INFINITY;
  int last_zero = -1;
  for (int i = threadIdx.x; i < group_len; i += blockDim.x) {
    const float e = half_to_float(xg[i]);
    mn = minf(mn, e);
    mx = maxf(mx, e);
    if (e == 0.0f) last_zero = i;
  }
  for (int o = 16; o > 0; o >>= 1) {
    mn = minf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
    mx = maxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    last_zero = max(last_zero, __shfl_xor_sync(0xffffffffu, last_zero, o));
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  if (lane == 0) {
    red_mn[warp] = mn;
    red_mx[warp] = mx;
    red_i[0][warp] = last_zero;
  }
  __syncthreads();
  mn = red_mn[0];
  mx = red_mx[0];
  last_zero = red_i[0][0];
  for (int w = 1; w < warps; ++w) {
    mn = minf(mn, red_mn[w]);
    mx = maxf(mx, red_mx[w]);
    last_zero = max(last_zero, red_i[0][w]);
  }
  // A zero extreme carries the sign of the last zero in scan order (ties keep the new element).
  if (mn == 0.0f) mn = half_to_float(xg[last_zero]);
  if (mx == 0.0f) mx = half_to_float(xg[last_zero]);
  const AsymParams p = asym_params(mn, mx, bits, storage);
  if (threadIdx.x == 0) {
    scales[g] = p.scale;
    zeros[g] = p.zero;
  }
  for (int i = threadIdx.x; i < group_len; i += blockDim.x)
    codes[g * group_len + i] = asym_code(half_to_float(xg[i]), p, bits);
}

// The sas op goes through the memo table when it applies, so that the exhaustive check of this
// op against the reference also proves the table the attention kernels use.
__global__ void SasKernel(const Half* x, int64_t n, SasParams p, const uint16_t* table, int count,
                          float* out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float v = half_to_float(x[i]);
  out[i] = table ? sas_lookup(v, table, count) : sas_eval(v, p);
}

__global__ void SasTableKernel(SasParams p, uint16_t* table, int count) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count)
    table[i] = float_to_half(sas_eval(half_to_float(Half{static_cast<uint16_t>(i)}), p)).bits;
}

}  // namespace

void launch_stage1(const Half* x, const float* mean, int64_t heads, int64_t n, int d,
                   int64_t group_rows, int8_t* codes, int code_stride, float* group_scales,
                   float* row_scales, cudaStream_t stream) {
  if (heads == 0 || n == 0) return;
  const int64_t groups = (n + group_rows - 1) / group_rows;
  TURBO_CHECK(groups < (int64_t{1} << 31) && heads < 65536, "stage 1: too many groups");
  const dim3 grid(static_cast<unsigned>(groups), static_cast<unsigned>(heads));
  TURBO_CHECK(std::min(group_rows, n) * (std::max(d, code_stride) / 8) < (int64_t{1} << 31),
              "stage 1: a group of 2^31 or more 16-byte chunks");
  if (d % 8 == 0 && code_stride % 8 == 0)
    Stage1Vec8Kernel<<<grid, kThreads, 0, stream>>>(x, mean, n, d, group_rows, codes, code_stride,
                                                    group_scales, row_scales);
  else
    Stage1Kernel<<<grid, kThreads, 0, stream>>>(x, mean, n, d, group_rows, codes, code_stride,
                                                group_scales, row_scales);
  TURBO_CUDA_LAUNCH_CHECK();
}

void launch_channel_mean(const Half* k, int64_t heads, int64_t n_total, int64_t n, int d,
                         float* mean, cudaStream_t stream) {
  if (heads == 0) return;
  ChannelMeanKernel<<<static_cast<unsigned>(heads), 256, 0, stream>>>(k, n_total, n, d, mean);
  TURBO_CUDA_LAUNCH_CHECK();
}

void launch_compress_blocks(const int8_t* q, const BlockLayout& layout, int64_t n_blocks,
                            uint8_t* blocks, int64_t block_stride, cudaStream_t stream) {
  if (n_blocks == 0) return;
  const Stage2Path path = stage2_path(Stage2Path::kScan);
  const bool aligned =
      aligned16(q) && aligned16(blocks) && (n_blocks == 1 || block_stride % 16 == 0);
  const int rows = aligned && path == Stage2Path::kScan ? channel_scan_rows(layout) : 0;
  if (rows > 0) {
    const int depth = stage2_ring_depth();
    const size_t smem = depth * static_cast<size_t>(layout.elements());
    auto launch = [&](auto kernel) {
      if (smem > 48 * 1024)
        TURBO_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(smem)));
      kernel<<<one_wave(kernel, kChannelTileThreads, smem, n_blocks), kChannelTileThreads, smem,
               stream>>>(q, layout, blocks, block_stride, n_blocks, depth);
    };
    switch (rows) {
      case 1:
        launch(CompressChannelKernel<1>);
        break;
      case 2:
        launch(CompressChannelKernel<2>);
        break;
      case 4:
        launch(CompressChannelKernel<4>);
        break;
      case 8:
        launch(CompressChannelKernel<8>);
        break;
      default:
        launch(CompressChannelKernel<16>);
    }
    TURBO_CUDA_LAUNCH_CHECK();
    return;
  }
  const int vectors =
      aligned && path == Stage2Path::kRegister ? channel_tile_vectors(layout, 16) : 0;
  if (vectors > 0) {
    const unsigned grid = static_cast<unsigned>(n_blocks);
    if (vectors == 1)
      CompressRegisterKernel<1>
          <<<grid, kChannelTileThreads, 0, stream>>>(q, layout, blocks, block_stride);
    else if (vectors == 2)
      CompressRegisterKernel<2>
          <<<grid, kChannelTileThreads, 0, stream>>>(q, layout, blocks, block_stride);
    else if (vectors == 4)
      CompressRegisterKernel<4>
          <<<grid, kChannelTileThreads, 0, stream>>>(q, layout, blocks, block_stride);
    else
      CompressRegisterKernel<8>
          <<<grid, kChannelTileThreads, 0, stream>>>(q, layout, blocks, block_stride);
    TURBO_CUDA_LAUNCH_CHECK();
    return;
  }
  CompressKernel<<<static_cast<unsigned>(n_blocks), kThreads, 0, stream>>>(q, layout, blocks,
                                                                           block_stride);
  TURBO_CUDA_LAUNCH_CHECK();
}

void launch_decompress_blocks(const uint8_t* blocks, const BlockLayout& layout, int64_t n_blocks,
                              int64_t block_stride, int8_t* q, cudaStream_t stream) {
  if (n_blocks == 0) return;
  DecompressKernel<<<static_cast<unsigned>(n_blocks), kThreads, 0, stream>>>(blocks, layout,
                                                                             block_stride, q);
  TURBO_CUDA_LAUNCH_CHECK();
}

void launch_quantize_asym(const Half* x, int64_t n_groups, int group_len, int bits,
                          ScaleStorage storage, uint8_t* codes, float* scales, float* zeros,
                          cudaStream_t stream) {
  if (n_groups == 0) return;
  const int threads = group_len >= 128 ? 128 : 32;
  AsymKernel<<<static_cast<unsigned>(n_groups), threads, 0, stream>>>(x, group_len, bits, storage,
                                                                      codes, scales, zeros);
  TURBO_CUDA_LAUNCH_CHECK();
}

void launch_sas(const Half* x, int64_t n, const SasParams& p, float* out, cudaStream_t stream) {
  if (n == 0) return;
  const uint16_t* table = cached_sas_table(p, stream);
  SasKernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, stream>>>(x, n, p, table,
                                                                        sas_table_count(p), out);
  TURBO_CUDA_LAUNCH_CHECK();
}

int sas_table_count(const SasParams& p) {
  if (p.precision != SasPrecision::kFp16 || p.exp_mode != ExpMode::kSas) return 0;
  return float_to_half(static_cast<float>(p.n_r))
      .bits;  // FP16 x >= 0: x < n_r <=> bits < bits(n_r)
}

void launch_sas_table(const SasParams& p, uint16_t* table, int count, cudaStream_t stream) {
  if (count == 0) return;
  SasTableKernel<<<static_cast<unsigned>((count + 255) / 256), 256, 0, stream>>>(p, table, count);
  TURBO_CUDA_LAUNCH_CHECK();
}

const uint16_t* cached_sas_table(const SasParams& p, cudaStream_t stream) {
  thread_local DeviceBuffer buf;
  thread_local SasParams key{};
  thread_local bool valid = false;
  const int count = sas_table_count(p);
  if (count == 0) return nullptr;
  if (!valid || std::memcmp(&key, &p, sizeof p) != 0) {
    buf.reserve(sizeof(uint16_t) * static_cast<size_t>(count));
    launch_sas_table(p, buf.as<uint16_t>(), count, stream);
    TURBO_CUDA_CHECK(cudaStreamSynchronize(stream));  // later calls may use other streams
    key = p;
    valid = true;
  }
  return buf.as<uint16_t>();
}

}  // namespace cuda
}  // namespace turbo

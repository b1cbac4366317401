// The packed FP16 steps of cuda/packed_steps.cuh against the scalar core/ steps, on the GPU,
// exhaustively (LABELS gpu; SKIPPED without a device):
//   - the packed FP32 -> FP16x2 convert against float_to_half on every FP32 bit pattern (each in
//     both lanes), and score_fp16x2 against score_fp16 on every |acc| <= 2^22 at several c;
//   - __hsub2 against sub16 and __hmax2 against maxf (as values, non-NaN inputs) on every pair of
//     FP16 bit patterns;
//   - p_code_index_x2 against p_code_table_index on every FP16 x in both lanes.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "cuda/packed_steps.cuh"

namespace turbo {
namespace cuda {
namespace {

bool have_device() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

__device__ unsigned long long g_bad;

__device__ void count_bad(bool bad) {
  if (bad) atomicAdd(&g_bad, 1ull);
}

__global__ void ConvertKernel() {  // every FP32 bit pattern (2^32) in the low and high lane
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < (1ull << 32);
       i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const float f = __uint_as_float(static_cast<uint32_t>(i));
    const float other = __uint_as_float(static_cast<uint32_t>(i * 2654435761u));
    const uint32_t v = half2_bits(__floats2half2_rn(f, other));
    const uint32_t w = half2_bits(__floats2half2_rn(other, f));
    count_bad((v & 0xffffu) != float_to_half(f).bits || (w >> 16) != float_to_half(f).bits);
  }
}

__global__ void ScoreKernel(float c) {  // every acc in [-2^22, 2^22]
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i <= 2 * static_cast<int64_t>(kSmallIntLimit);
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int32_t acc = static_cast<int32_t>(i - kSmallIntLimit);
    const int32_t other = static_cast<int32_t>((i * 7919) % kSmallIntLimit);
    const __half2 v = score_fp16x2(acc, other, c);
    const __half2 w = score_fp16x2(other, acc, c);
    count_bad(__low2float(v) != score_fp16(acc, c) || __high2float(w) != score_fp16(acc, c) ||
              half2_bits(v) >> 16 != float_to_half(score_fp16(other, c)).bits);
  }
}

__global__ void PairKernel(uint16_t count) {  // every pair (a, b) of FP16 bit patterns
  const __half2 nr2 = __half2half2(__ushort_as_half(count));
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < (1ull << 32);
       i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const uint16_t ab = static_cast<uint16_t>(i >> 16), bb = static_cast<uint16_t>(i);
    const float a = half_to_float(Half{ab}), b = half_to_float(Half{bb});
    const __half2 a2 = __halves2half2(__ushort_as_half(ab), __ushort_as_half(bb));
    const __half2 b2 = __halves2half2(__ushort_as_half(bb), __ushort_as_half(ab));
    // sub16: bits equal (NaN results compared as "both NaN")
    const __half2 d = __hsub2(a2, b2);
    const float s0 = sub16(a, b), s1 = sub16(b, a);
    const float d0 = __low2float(d), d1 = __high2float(d);
    count_bad(!(d0 == s0 || (d0 != d0 && s0 != s0)) || !(d1 == s1 || (d1 != d1 && s1 != s1)) ||
              ((s0 == s0) && (half2_bits(d) & 0xffffu) != float_to_half(s0).bits));
    if (a == a && b == b) {  // max as values
      const __half2 mx = __hmax2(a2, b2);
      count_bad(__low2float(mx) != maxf(a, b) || __high2float(mx) != maxf(b, a));
    }
    // the P-code index of x = a in the low lane and x = b in the high lane
    const uint32_t idx = p_code_index_x2(a2, nr2);
    const bool a_formed = !(a < 0.0f), b_formed = !(b < 0.0f);  // x >= 0, -0, NaN
    count_bad((a_formed && static_cast<int>(idx & 0xffffu) != p_code_table_index(ab, count)) ||
              (b_formed && static_cast<int>(idx >> 16) != p_code_table_index(bb, count)));
  }
}

unsigned long long run(void (*launch)()) {
  const unsigned long long zero = 0;
  EXPECT_EQ(cudaMemcpyToSymbol(g_bad, &zero, sizeof zero), cudaSuccess);
  launch();
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  unsigned long long bad = 0;
  EXPECT_EQ(cudaMemcpyFromSymbol(&bad, g_bad, sizeof bad), cudaSuccess);
  return bad;
}

TEST(PackedSteps, ConvertIsTheScalarConvertOnEveryFloat) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device visible";
  EXPECT_EQ(run([] { ConvertKernel<<<4096, 256>>>(); }), 0u);
}

TEST(PackedSteps, ScoreIsScoreFp16OnTheWholeAccRange) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device visible";
  EXPECT_EQ(run([] { ScoreKernel<<<4096, 256>>>(1.0f / 4096.0f); }), 0u);
  EXPECT_EQ(run([] { ScoreKernel<<<4096, 256>>>(0.0123456f); }), 0u);
  EXPECT_EQ(run([] { ScoreKernel<<<4096, 256>>>(0.5f); }), 0u);       // saturates at +-65504
  EXPECT_EQ(run([] { ScoreKernel<<<4096, 256>>>(0.015625f); }), 0u);  // rounds to 65504 or inf
  EXPECT_EQ(run([] { ScoreKernel<<<4096, 256>>>(1e38f); }), 0u);      // FP32 overflow to inf
}

TEST(PackedSteps, SubMaxAndIndexAreTheScalarStepsOnEveryPair) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device visible";
  EXPECT_EQ(run([] { PairKernel<<<8192, 256>>>(0x4600); }), 0u);  // n_r = 6
  EXPECT_EQ(run([] { PairKernel<<<8192, 256>>>(0x4b80); }), 0u);  // n_r = 15
}

}  // namespace
}  // namespace cuda
}  // namespace turbo

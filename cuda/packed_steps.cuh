// Packed FP16 steps of the prefill softmax: two scores of one row per instruction. Each lane is
// rounded exactly as the scalar core/ step (IEEE round-to-nearest-even per lane, no fused
// operations), which cuda_packed_test checks exhaustively on the GPU:
//   score_fp16x2     lane i = score_fp16(acc_i, c)      (one packed FP32 -> FP16x2 convert, the
//                    saturation on the FP16 pair)
//   __hsub2(m2, s2)  lane i = sub16(m, s_i)             (m an FP16 value carried in a float)
//   __hmax2          lane i = maxf(a_i, b_i) as a value (scores are never NaN; the sign of a zero
//                    maximum only reaches sub16, whose result the P-code index maps like +0)
//   p_code_index_x2  lane i = p_code_table_index(bits(x_i), count), count = bits(fp16(n_r))
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "core/flashq.h"

namespace turbo {
namespace cuda {

__device__ __forceinline__ uint32_t half2_bits(__half2 v) {
  return *reinterpret_cast<const uint32_t*>(&v);
}

// (score_fp16(acc0, c), score_fp16(acc1, c)) for |acc| <= kSmallIntLimit. The clamp to
// +-65504 runs after the packed convert, on both lanes at once: for a non-NaN v (acc * c with a
// finite c), fp16(clamp(v)) = clamp(fp16(v)), since a v past 65504 rounds to 65504 or to inf.
__device__ __forceinline__ __half2 score_fp16x2(int32_t acc0, int32_t acc1, float c) {
  const __half2 lim = __float2half2_rn(kHalfMax);
  const __half2 v = __floats2half2_rn(small_int_to_float(acc0) * c, small_int_to_float(acc1) * c);
  return __hmin2(__hmax2(v, __hneg2(lim)), lim);
}

// min(|x|, n_r) compared as FP16 values, which for values >= 0 is the order of their bits; a NaN
// lane gives n_r (min.f16x2 returns the non-NaN operand). nr2 = fp16(n_r) in both lanes.
__device__ __forceinline__ uint32_t p_code_index_x2(__half2 x, __half2 nr2) {
  return half2_bits(__hmin2(__habs2(x), nr2));
}

}  // namespace cuda
}  // namespace turbo

// FP8 E4M3 (OCP "E4M3FN": 1 sign, 4 exponent bits with bias 7, 3 mantissa bits, no infinities,
// NaN = S.1111.111) conversions for the fp8 baseline, host + device (CUTLASS NumericConverter
// style: the intrinsic on the device, an exact software version on the host, one function).
//
// float -> e4m3 is round-to-nearest-even with saturation to the largest finite value (the
// __NV_SATFINITE mode of __nv_cvt_float_to_fp8): |x| > 448 (including +-inf) gives +-448, NaN
// gives the canonical NaN 0x7F. Values: subnormals k * 2^-9 (k = 1..7), normals
// (1 + m/8) * 2^(e-7) for e = 1..15 (m = 0..6 at e = 15), largest 448 = 0x7E.
// e4m3 -> float is exact (every E4M3 value is a binary32 value).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/macros.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#endif

namespace turbo {

constexpr float kFp8E4M3Max = 448.0f;
constexpr uint8_t kFp8E4M3MaxCode = 0x7E;
constexpr uint8_t kFp8E4M3NaN = 0x7F;

namespace detail {

// Host version of the RN-satfinite conversion. With q = 2^(e-3) the spacing of the binade
// [2^e, 2^(e+1)) (e >= -6; below 2^-6 the subnormal spacing 2^-9 = 2^(-6-3) continues), the
// magnitude code is (e + 6) * 8 + rint(|x| / q): rint(|x| / q) lies in [8, 16] for normals and in
// [0, 8] for subnormals, and a carry to 16 (or 8) is exactly the next binade's first code. |x| / q
// is a power-of-two scaling, exact in binary32, so nearbyint (ties to even) is the only rounding.
inline uint8_t float_to_e4m3_host(float x) {
  if (std::isnan(x)) return kFp8E4M3NaN;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const float a = std::fabs(x);
  if (a >= kFp8E4M3Max) return static_cast<uint8_t>(sign | kFp8E4M3MaxCode);  // incl. inf
  int e = std::ilogb(a);  // floor(log2 a); very negative (or FP_ILOGB0) for tiny/zero a
  if (a == 0.0f || e < -6) e = -6;
  const float r = std::nearbyint(std::ldexp(a, 3 - e));
  int code = (e + 6) * 8 + static_cast<int>(r);
  if (code > kFp8E4M3MaxCode) code = kFp8E4M3MaxCode;  // 448 < |x| rounds up past 448
  return static_cast<uint8_t>(sign | code);
}

inline float e4m3_to_float_host(uint8_t c) {
  const float sign = (c & 0x80) ? -1.0f : 1.0f;
  const int mag = c & 0x7F;
  if (mag == kFp8E4M3NaN) return NAN;
  const int exp = mag >> 3;
  const int man = mag & 7;
  if (exp == 0) return sign * std::ldexp(static_cast<float>(man), -9);
  return sign * std::ldexp(static_cast<float>(8 + man), exp - 10);
}

}  // namespace detail

// RN, saturating to +-448; NaN -> 0x7F.
TURBO_HD uint8_t float_to_e4m3(float x) {
#if TURBO_ON_DEVICE
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3));
#else
  return detail::float_to_e4m3_host(x);
#endif
}

// Exact.
TURBO_HD float e4m3_to_float(uint8_t c) {
#if TURBO_ON_DEVICE
  const __half_raw h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(c), __NV_E4M3);
  return __half2float(__half(h));
#else
  return detail::e4m3_to_float_host(c);
#endif
}

// fp8(x): the E4M3 value nearest to x (RN, saturating), as a float.
TURBO_HD float round_e4m3(float x) { return e4m3_to_float(float_to_e4m3(x)); }

// Per-block FP8 scale: s = amax / 448 (FP32), inv = 1 / s (0 when amax == 0, all codes 0), and a
// value x is stored as e4m3(x * inv) (multiply by the inverse, as SPEC 1 does for INT8).
struct Fp8Scale {
  float scale;
  float inv;
};

TURBO_HD Fp8Scale fp8_scale(float amax) {
  Fp8Scale r;
  r.scale = amax / kFp8E4M3Max;
  r.inv = r.scale == 0.0f ? 0.0f : 1.0f / r.scale;
  return r;
}

}  // namespace turbo

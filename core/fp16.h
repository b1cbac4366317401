// IEEE binary16 helpers shared by host and device.
//
// Convention used throughout core/: an FP16 value travels as a `float` that holds exactly an FP16
// number. Every operation that SPEC defines "in FP16" is a function here that returns the single
// round-to-nearest-even (RN) result: on the device the native __half instruction, on the host the
// exact result computed in double (exact for the operand ranges involved, see each function) and
// rounded once by round_half(double). Rounding through float first would double-round.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/macros.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

namespace turbo {

// Storage type of an FP16 tensor element: the raw bits (layout-compatible with __half).
struct Half {
  uint16_t bits;
};
static_assert(sizeof(Half) == 2, "Half must be 2 bytes");

constexpr float kHalfMax = 65504.0f;

namespace detail {

// RN conversion of a binary32 value to binary16 bits, NaN kept quiet, overflow to +-inf.
inline uint16_t float_to_half_bits_host(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t exp = (x >> 23) & 0xffu;
  uint32_t man = x & 0x7fffffu;
  if (exp == 0xffu)
    return static_cast<uint16_t>(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0u));
  const int e = static_cast<int>(exp) - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);  // below 2^-25: rounds to 0 (a tie goes to 0)
    man |= 0x800000u;
    const int shift = 14 - e;
    uint32_t h = man >> shift;
    const uint32_t rem = man & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (static_cast<uint32_t>(e) << 10) | (man >> 13);
  const uint32_t rem = man & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry may roll into inf: correct
  return static_cast<uint16_t>(sign | h);
}

// RN conversion of a binary64 value straight to binary16 (no intermediate binary32 rounding).
inline uint16_t double_to_half_bits_host(double d) {
  uint64_t x;
  std::memcpy(&x, &d, 8);
  const uint32_t sign = static_cast<uint32_t>((x >> 48) & 0x8000u);
  const uint32_t exp = static_cast<uint32_t>((x >> 52) & 0x7ffu);
  uint64_t man = x & ((uint64_t{1} << 52) - 1);
  if (exp == 0x7ffu) return static_cast<uint16_t>(sign | 0x7c00u | (man ? 0x200u : 0u));
  const int e = static_cast<int>(exp) - 1023 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    man |= uint64_t{1} << 52;
    const int shift = 43 - e;
    uint64_t h = man >> shift;
    const uint64_t rem = man & ((uint64_t{1} << shift) - 1);
    const uint64_t halfway = uint64_t{1} << (shift - 1);
    if (rem > halfway || (rem == halfway && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint64_t h = (static_cast<uint64_t>(e) << 10) | (man >> 42);
  const uint64_t rem = man & ((uint64_t{1} << 42) - 1);
  const uint64_t halfway = uint64_t{1} << 41;
  if (rem > halfway || (rem == halfway && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

inline float half_bits_to_float_host(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1fu) {
    bits = sign | 0x7f800000u | (man << 13);
  } else if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        man <<= 1;
      } while ((man & 0x400u) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | ((man & 0x3ffu) << 13);
    }
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace detail

TURBO_HD float half_to_float(Half h) {
#if TURBO_ON_DEVICE
  return __half2float(__ushort_as_half(h.bits));
#else
  return detail::half_bits_to_float_host(h.bits);
#endif
}

TURBO_HD Half float_to_half(float f) {
#if TURBO_ON_DEVICE
  return Half{__half_as_ushort(__float2half_rn(f))};
#else
  return Half{detail::float_to_half_bits_host(f)};
#endif
}

// fp16(x): the FP16 number nearest to the float x (RN), returned as a float.
TURBO_HD float round_half(float x) { return half_to_float(float_to_half(x)); }

// Host only: fp16(x) for a double, one rounding.
inline float round_half(double x) {
  return detail::half_bits_to_float_host(detail::double_to_half_bits_host(x));
}

// fp16(a - b) for FP16 a, b: one RN rounding. On the host a - b is exact in double (both are FP16,
// the exponent span is < 40 bits), so a single rounding to FP16 follows.
TURBO_HD float sub16(float a, float b) {
#if TURBO_ON_DEVICE
  return __half2float(__hsub(__float2half_rn(a), __float2half_rn(b)));
#else
  return round_half(static_cast<double>(a) - static_cast<double>(b));
#endif
}

// fp16(a * b) for FP16 a, b: the product of two 11-bit significands is exact in double.
TURBO_HD float mul16(float a, float b) {
#if TURBO_ON_DEVICE
  return __half2float(__hmul(__float2half_rn(a), __float2half_rn(b)));
#else
  return round_half(static_cast<double>(a) * static_cast<double>(b));
#endif
}

// fma16(a, b, c) = fp16(a * b + c), one rounding. On the host (double)a*b + c is exact whenever
// the exponents of a*b and c differ by less than ~30 binades, which holds on the SAS domain
// (f in [0, 1), coefficients of magnitude 2^-6 .. 1); the exhaustive SAS test proves it there.
TURBO_HD float fma16(float a, float b, float c) {
#if TURBO_ON_DEVICE
  return __half2float(__hfma(__float2half_rn(a), __float2half_rn(b), __float2half_rn(c)));
#else
  return round_half(static_cast<double>(a) * static_cast<double>(b) + static_cast<double>(c));
#endif
}

TURBO_HD bool is_finite_half(Half h) { return (h.bits & 0x7c00u) != 0x7c00u; }

inline Half to_half(float f) { return float_to_half(f); }
inline float to_float(Half h) { return half_to_float(h); }

}  // namespace turbo

// Exhaustive tests of the E4M3 conversions in core/fp8.h against an independent oracle (a
// brute-force nearest search over the 126 finite magnitudes, ties to the even code).
#include "core/fp8.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/fp16.h"

namespace turbo {
namespace {

// Finite non-negative E4M3 magnitudes by code 0x00 .. 0x7E, from the format's definition.
std::vector<double> magnitudes() {
  std::vector<double> m;
  for (int c = 0; c <= 0x7E; ++c) {
    const int e = c >> 3, f = c & 7;
    m.push_back(e == 0 ? f * std::ldexp(1.0, -9) : (1.0 + f / 8.0) * std::ldexp(1.0, e - 7));
  }
  return m;
}

uint8_t oracle(float x) {
  static const std::vector<double> mag = magnitudes();
  if (std::isnan(x)) return 0x7F;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  const double a = std::fabs(static_cast<double>(x));
  if (a >= 448.0) return sign | 0x7E;
  int best = 0;
  for (int c = 1; c <= 0x7E; ++c) {
    const double dc = std::fabs(mag[c] - a), db = std::fabs(mag[best] - a);
    if (dc < db || (dc == db && (c & 1) == 0)) best = c;
  }
  return static_cast<uint8_t>(sign | best);
}

TEST(Fp8E4M3, DecodeMatchesDefinition) {
  const std::vector<double> mag = magnitudes();
  for (int c = 0; c < 256; ++c) {
    const float v = e4m3_to_float(static_cast<uint8_t>(c));
    if ((c & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(v)) << c;
      continue;
    }
    const double expect = (c & 0x80 ? -1.0 : 1.0) * mag[c & 0x7F];
    EXPECT_EQ(static_cast<double>(v), expect) << "code " << c;
    EXPECT_EQ(std::signbit(v), (c & 0x80) != 0) << "code " << c;
  }
  EXPECT_EQ(e4m3_to_float(0x7E), 448.0f);
  EXPECT_EQ(e4m3_to_float(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(e4m3_to_float(0x08), std::ldexp(1.0f, -6));
}

TEST(Fp8E4M3, AllCodesRoundTrip) {
  int checked = 0;
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) continue;
    EXPECT_EQ(float_to_e4m3(e4m3_to_float(static_cast<uint8_t>(c))), c) << "code " << c;
    ++checked;
  }
  EXPECT_EQ(checked, 254);
}

TEST(Fp8E4M3, TiesRoundToEven) {
  const std::vector<double> mag = magnitudes();
  for (int c = 0; c < 0x7E; ++c) {
    const double mid = 0.5 * (mag[c] + mag[c + 1]);
    const float fm = static_cast<float>(mid);
    ASSERT_EQ(static_cast<double>(fm), mid) << "midpoints are binary32 values";
    const int even = (c & 1) == 0 ? c : c + 1;
    EXPECT_EQ(float_to_e4m3(fm), even) << "tie between codes " << c << " and " << c + 1;
    EXPECT_EQ(float_to_e4m3(-fm), 0x80 | even);
    EXPECT_EQ(float_to_e4m3(std::nextafter(fm, 0.0f)), c);
    EXPECT_EQ(float_to_e4m3(std::nextafter(fm, 1e9f)), c + 1);
  }
}

TEST(Fp8E4M3, Saturation) {
  EXPECT_EQ(float_to_e4m3(448.0f), 0x7E);
  EXPECT_EQ(float_to_e4m3(449.0f), 0x7E);
  EXPECT_EQ(float_to_e4m3(464.0f), 0x7E);  // the tie with the (NaN) slot above stays finite
  EXPECT_EQ(float_to_e4m3(480.0f), 0x7E);
  EXPECT_EQ(float_to_e4m3(1e30f), 0x7E);
  EXPECT_EQ(float_to_e4m3(std::numeric_limits<float>::infinity()), 0x7E);
  EXPECT_EQ(float_to_e4m3(-std::numeric_limits<float>::infinity()), 0xFE);
  EXPECT_EQ(float_to_e4m3(-500.0f), 0xFE);
  EXPECT_EQ(float_to_e4m3(std::numeric_limits<float>::quiet_NaN()), 0x7F);
  EXPECT_EQ(float_to_e4m3(0.0f), 0x00);
  EXPECT_EQ(float_to_e4m3(-0.0f), 0x80);
  // Below half the smallest subnormal: zero; exactly half: ties to even (zero); above: 2^-9.
  EXPECT_EQ(float_to_e4m3(std::ldexp(1.0f, -11)), 0x00);
  EXPECT_EQ(float_to_e4m3(std::ldexp(1.0f, -10)), 0x00);
  EXPECT_EQ(float_to_e4m3(std::nextafter(std::ldexp(1.0f, -10), 1.0f)), 0x01);
  EXPECT_EQ(float_to_e4m3(std::numeric_limits<float>::denorm_min()), 0x00);
}

TEST(Fp8E4M3, EveryHalfValueMatchesOracle) {
  int64_t mismatches = 0;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float x = half_to_float(Half{static_cast<uint16_t>(h)});
    if (float_to_e4m3(x) != oracle(x)) ++mismatches;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Fp8E4M3, RandomFloatsMatchOracle) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<uint32_t> bits;
  int64_t mismatches = 0, n = 0;
  for (int i = 0; i < 400000; ++i) {
    uint32_t b = bits(rng);
    // Concentrate on the E4M3 range: exponents 2^-12 .. 2^10.
    b = (b & 0x807FFFFFu) | (static_cast<uint32_t>(127 - 12 + (i % 23)) << 23);
    float x;
    std::memcpy(&x, &b, 4);
    ++n;
    if (float_to_e4m3(x) != oracle(x)) ++mismatches;
  }
  EXPECT_EQ(n, 400000);
  EXPECT_EQ(mismatches, 0);
}

TEST(Fp8E4M3, BlockScale) {
  const Fp8Scale s = fp8_scale(896.0f);
  EXPECT_EQ(s.scale, 2.0f);
  EXPECT_EQ(s.inv, 0.5f);
  EXPECT_EQ(float_to_e4m3(896.0f * s.inv), 0x7E);
  const Fp8Scale z = fp8_scale(0.0f);
  EXPECT_EQ(z.scale, 0.0f);
  EXPECT_EQ(z.inv, 0.0f);
}

}  // namespace
}  // namespace turbo

// Tests of core/quant.h (SPEC 1-3) against oracles written from the SPEC text: float steps are
// computed exactly in double / long double and rounded once to FP32 (an exactness check guards
// each), integer rounding is re-derived as "nearest, ties to even" or as an argmin, never by
// calling the function under test.
#include "core/quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/kv_layout.h"
#include "core/tensor.h"

namespace {

float half_value(uint16_t bits) { return turbo::half_to_float(turbo::Half{bits}); }

// Round half to even of a double holding an exact value, written from the definition.
int64_t rint_even(double v) {
  const double fl = std::floor(v);
  const double frac = v - fl;  // exact
  int64_t n = static_cast<int64_t>(fl);
  if (frac > 0.5 || (frac == 0.5 && (n & 1))) ++n;
  return n;
}

// FP32 product, computed exactly in double (24 x 24 bits) and rounded once.
float f32_mul(float a, float b) { return static_cast<float>(static_cast<double>(a) * b); }
// FP32 difference: exact in double when the exponent span is < 29 bits, which holds for the FP16
// operands used here (checked by the inexact flag).
float f32_sub(float a, float b) {
  std::feclearexcept(FE_INEXACT);
  const double d = static_cast<double>(a) - static_cast<double>(b);
  EXPECT_FALSE(std::fetestexcept(FE_INEXACT)) << a << " - " << b;
  return static_cast<float>(d);
}
// FP32 quotient: double has >= 2 * 24 + 2 bits, so rounding twice equals rounding once.
float f32_div(float a, float b) { return static_cast<float>(static_cast<double>(a) / b); }

// SPEC 1 from its text: s = amax / 127, inv = 1.0f / s, q = clamp(rint(x * inv), -127, 127).
struct Stage1Oracle {
  float s, inv;
  explicit Stage1Oracle(float amax) {
    s = f32_div(amax, 127.0f);
    inv = s == 0.0f ? 0.0f : f32_div(1.0f, s);
  }
  int code(float x) const {
    if (s == 0.0f) return 0;
    const double v = f32_mul(x, inv);
    const int64_t r = rint_even(v);
    return static_cast<int>(r < -127 ? -127 : (r > 127 ? 127 : r));
  }
};

// ---- stage 1 ---------------------------------------------------------------------------------

TEST(Stage1, ScaleMatchesSpec) {
  for (uint32_t h = 0; h < 0x7c00u; ++h) {  // every non-negative finite FP16 amax
    const float amax = half_value(static_cast<uint16_t>(h));
    const turbo::Stage1Scale sc = turbo::stage1_scale(amax);
    const Stage1Oracle o(amax);
    ASSERT_EQ(sc.scale, o.s) << amax;
    ASSERT_EQ(sc.inv, o.inv) << amax;
    if (h == 0) {
      EXPECT_EQ(sc.scale, 0.0f);
      EXPECT_EQ(sc.inv, 0.0f);
    } else {
      EXPECT_GT(sc.scale, 0.0f);
      EXPECT_TRUE(std::isfinite(sc.inv)) << amax;  // amax >= 2^-24: s >= 2^-31, 1/s finite
    }
  }
}

// For a spread of group maxima, every FP16 x with |x| <= amax: code equals the oracle and lies in
// [-127, 127]; +-amax map to +-127.
TEST(Stage1, CodesMatchSpecAllHalvesInRange) {
  int64_t checked = 0, nonzero = 0;
  for (uint32_t ah = 1; ah < 0x7c00u; ah += 61) {
    const float amax = half_value(static_cast<uint16_t>(ah));
    const turbo::Stage1Scale sc = turbo::stage1_scale(amax);
    const Stage1Oracle o(amax);
    EXPECT_EQ(turbo::stage1_code(amax, sc.inv), 127) << amax;
    EXPECT_EQ(turbo::stage1_code(-amax, sc.inv), -127) << amax;
    for (uint32_t xh = 0; xh <= ah; xh += 7) {
      for (uint16_t sign : {uint16_t{0}, uint16_t{0x8000}}) {
        const float x = half_value(static_cast<uint16_t>(xh | sign));
        const int got = turbo::stage1_code(x, sc.inv);
        ASSERT_EQ(got, o.code(x)) << "x=" << x << " amax=" << amax;
        ASSERT_GE(got, -127);
        ASSERT_LE(got, 127);
        ++checked;
        nonzero += got != 0;
      }
    }
  }
  EXPECT_GT(checked, 2000000);
  EXPECT_GT(nonzero, checked / 3);  // most FP16 x below amax are small, but not most
}

TEST(Stage1, CodesMatchSpecRandom) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 3000000; ++i) {
    const uint16_t a = static_cast<uint16_t>(1 + rng() % 0x7bffu);
    const uint16_t x =
        static_cast<uint16_t>(rng() % (a + 1u)) | static_cast<uint16_t>(rng() & 0x8000u);
    const float amax = half_value(a), xv = half_value(x);
    const Stage1Oracle o(amax);
    ASSERT_EQ(turbo::stage1_code(xv, turbo::stage1_scale(amax).inv), o.code(xv))
        << xv << " " << amax;
  }
}

TEST(Stage1, ZeroGroupGivesZeroScaleAndCodes) {
  const turbo::Stage1Scale sc = turbo::stage1_scale(0.0f);
  EXPECT_EQ(sc.scale, 0.0f);
  EXPECT_EQ(sc.inv, 0.0f);
  EXPECT_EQ(turbo::stage1_code(0.0f, sc.inv), 0);
  EXPECT_EQ(turbo::stage1_code(-0.0f, sc.inv), 0);
}

// SPEC 1: |x| clears the sign bit. Every FP16 value (as FP32), NaNs included: the result is the
// input's bits with bit 31 cleared, so |-0| = +0 and |-x| = |x| bit for bit.
TEST(Stage1, AbsClearsTheSignBitOfEveryHalf) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const float x = half_value(static_cast<uint16_t>(h));
    uint32_t xb, ab;
    const float a = turbo::absf(x);
    std::memcpy(&xb, &x, 4);
    std::memcpy(&ab, &a, 4);
    ASSERT_EQ(ab, xb & 0x7fffffffu) << std::hex << h;
  }
}

// An all-zero group scans to amax = +0 whatever the signs and order of its zeros (it used to
// carry the sign of the last zero), so its stored scale is +0 bit for bit.
TEST(Stage1, AllZeroGroupScaleIsPositiveZero) {
  for (float last : {0.0f, -0.0f})
    for (float first : {0.0f, -0.0f}) {
      float amax = 0.0f;
      for (float x : {first, -0.0f, 0.0f, last}) amax = turbo::maxf(amax, turbo::absf(x));
      const float s = turbo::stage1_scale(amax).scale;
      uint32_t sb;
      std::memcpy(&sb, &s, 4);
      EXPECT_EQ(sb, 0u) << first << " " << last;
    }
}

// A constant group (all x equal) and a single-element group both map to +-127 exactly, and the
// dequantized value 127 * s recovers x to within one FP32 rounding.
TEST(Stage1, ConstantAndSingleElementGroups) {
  for (uint32_t h = 1; h < 0x7c00u; ++h) {
    for (uint16_t sign : {uint16_t{0}, uint16_t{0x8000}}) {
      const float x = half_value(static_cast<uint16_t>(h | sign));
      const turbo::Stage1Scale sc = turbo::stage1_scale(std::fabs(x));
      const int q = turbo::stage1_code(x, sc.inv);
      ASSERT_EQ(q, sign ? -127 : 127) << x;
      const float back = static_cast<float>(q) * sc.scale;
      ASSERT_LE(std::fabs(back - x), std::fabs(x) * 0x1p-23f) << x;
    }
  }
}

TEST(Stage1, SaturatesOutsideTheGroupRange) {
  const turbo::Stage1Scale sc = turbo::stage1_scale(1.0f);
  EXPECT_EQ(turbo::stage1_code(1.0f, sc.inv), 127);
  EXPECT_EQ(turbo::stage1_code(1.01f, sc.inv), 127);
  EXPECT_EQ(turbo::stage1_code(65504.0f, sc.inv), 127);
  EXPECT_EQ(turbo::stage1_code(-65504.0f, sc.inv), -127);
  EXPECT_EQ(turbo::stage1_code(3.0e38f, sc.inv), 127);  // x * inv overflows to inf: still 127
  EXPECT_EQ(turbo::stage1_code(-3.0e38f, sc.inv), -127);
  // 127.5 would round to 128 (even); the clamp keeps it at 127 and never yields -128.
  const turbo::Stage1Scale p2 = turbo::stage1_scale(127.0f * 0.125f);  // s = 1/8 exactly
  ASSERT_EQ(p2.scale, 0.125f);
  ASSERT_EQ(p2.inv, 8.0f);
  EXPECT_EQ(turbo::stage1_code(127.5f / 8.0f, p2.inv), 127);
  EXPECT_EQ(turbo::stage1_code(-127.5f / 8.0f, p2.inv), -127);
  EXPECT_EQ(turbo::stage1_code(-128.5f / 8.0f, p2.inv), -127);
}

// x * inv exactly on a half-integer: ties go to the even integer, both signs.
TEST(Stage1, RoundsHalfToEven) {
  const turbo::Stage1Scale sc = turbo::stage1_scale(127.0f * 0.125f);  // inv = 8 exactly
  ASSERT_EQ(sc.inv, 8.0f);
  for (int k = -127; k < 127; ++k) {
    const float x = (static_cast<float>(k) + 0.5f) / 8.0f;  // an FP16 value; x * 8 exact
    ASSERT_EQ(x * 8.0f, k + 0.5f);
    const int want = (k % 2 == 0) ? k : k + 1;  // the even one of k, k + 1
    EXPECT_EQ(turbo::stage1_code(x, sc.inv), want) << k;
    EXPECT_EQ(want % 2, 0);
  }
  // Just off the tie, the nearest integer wins.
  EXPECT_EQ(turbo::stage1_code(std::nextafter(2.5f / 8.0f, 1.0f), sc.inv), 3);
  EXPECT_EQ(turbo::stage1_code(std::nextafter(3.5f / 8.0f, 0.0f), sc.inv), 3);
}

// ---- stage 2 ---------------------------------------------------------------------------------

struct Stage2Oracle {
  int s2, z, levels;
  Stage2Oracle(int lo, int hi, int bits) {
    levels = (1 << bits) - 1;
    s2 = static_cast<int>(std::ceil(static_cast<double>(hi - lo) / levels));
    if (s2 < 1) s2 = 1;
    z = lo;
  }
  // The code in [0, L] whose grid point c * s2 + z is nearest q; ties to the larger code (SPEC:
  // round half up). A different formulation from the floor formula of the SPEC.
  int code(int q) const {
    int best = 0;
    for (int c = 1; c <= levels; ++c) {
      const int d_best = std::abs(best * s2 + z - q), d = std::abs(c * s2 + z - q);
      if (d <= d_best) best = c;  // later (larger) c wins ties
    }
    return best;
  }
  int dequant(int c) const {
    const int v = c * s2 + z;
    return v < -127 ? -127 : (v > 127 ? 127 : v);
  }
};

// Every (lo, hi) with -127 <= lo <= hi <= 127 and every q in [lo, hi], bits 4 and 2: params,
// code and dequant equal the oracle; dequant stays in [-127, 127]; |q' - q| <= s2 / 2.
// s2_step = float, every (lo, hi, q): code and reconstruction are the real (q - lo) L / r and
// lo + c r / L rounded half up (computed here in double, exact for these small rationals); the
// reconstruction error is at most r / (2L) + 1/2 and never above the integer step's worst case.
TEST(Stage2, FractionalStepExhaustive) {
  for (int bits : {4, 2}) {
    const int L = (1 << bits) - 1;
    int64_t checked = 0;
    double sq_frac = 0, sq_int = 0;
    for (int lo = -127; lo <= 127; ++lo)
      for (int hi = lo; hi <= 127; ++hi) {
        const turbo::Stage2Params p = turbo::stage2f_params(lo, hi);
        ASSERT_EQ(static_cast<int>(p.s2), hi - lo);
        ASSERT_EQ(static_cast<int>(p.z), lo);
        const int r = hi - lo;
        int worst_f = 0, worst_i = 0;
        const turbo::Stage2Params pi = turbo::stage2_params(lo, hi, bits);
        for (int q = lo; q <= hi; ++q) {
          const int c = turbo::stage2f_code(q, p, bits);
          const int want =
              r == 0 ? 0 : static_cast<int>(std::floor((q - lo) * L / double(r) + 0.5));
          ASSERT_EQ(c, want) << "q=" << q << " lo=" << lo << " hi=" << hi << " b" << bits;
          const int qd = turbo::stage2f_dequant(c, p, bits);
          ASSERT_EQ(qd, lo + static_cast<int>(std::floor(c * r / double(L) + 0.5)));
          ASSERT_LE(std::abs(qd - q), r / (2.0 * L) + 0.5);
          const int qi = turbo::stage2_dequant(turbo::stage2_code(q, pi, bits), pi);
          worst_f = std::max(worst_f, std::abs(qd - q));
          worst_i = std::max(worst_i, std::abs(qi - q));
          sq_frac += double(qd - q) * (qd - q);
          sq_int += double(qi - q) * (qi - q);
          ++checked;
        }
        ASSERT_LE(worst_f, worst_i) << "lo=" << lo << " hi=" << hi << " b" << bits;
      }
    EXPECT_GT(checked, 2000000);
    EXPECT_LT(sq_frac, sq_int);
    std::printf("stage2 b=%d: summed squared error, fractional step %.4g, integer step %.4g\n",
                bits, sq_frac, sq_int);
  }
}

TEST(Stage2, ExhaustiveAgainstOracle) {
  for (int bits : {4, 2}) {
    int64_t checked = 0;
    int max_err = 0, max_s2 = 0;
    bool min_active = false;
    for (int lo = -127; lo <= 127; ++lo) {
      for (int hi = lo; hi <= 127; ++hi) {
        const turbo::Stage2Params p = turbo::stage2_params(lo, hi, bits);
        const Stage2Oracle o(lo, hi, bits);
        ASSERT_EQ(static_cast<int>(p.s2), o.s2) << lo << " " << hi << " b" << bits;
        ASSERT_EQ(static_cast<int>(p.z), o.z);
        ASSERT_LE((o.levels) * o.s2, 2 * 255);
        max_s2 = std::max(max_s2, o.s2);
        for (int q = lo; q <= hi; ++q) {
          const int c = turbo::stage2_code(q, p, bits);
          ASSERT_EQ(c, o.code(q)) << "q=" << q << " lo=" << lo << " hi=" << hi << " b" << bits;
          ASSERT_LE(c, o.levels);
          // The SPEC's min(L, .) never bites: (q - z) / s2 <= L already.
          if ((2 * (q - lo) + o.s2) / (2 * o.s2) > o.levels) min_active = true;
          const int qd = turbo::stage2_dequant(c, p);
          ASSERT_EQ(qd, o.dequant(c));
          ASSERT_GE(qd, -127);
          ASSERT_LE(qd, 127);
          const int err = std::abs(qd - q);
          ASSERT_LE(2 * err, o.s2) << "q=" << q << " lo=" << lo << " hi=" << hi;
          max_err = std::max(max_err, err);
          ++checked;
        }
      }
    }
    EXPECT_FALSE(min_active);
    EXPECT_EQ(checked, 2796160);  // sum over lo <= hi of (hi - lo + 1) = C(257, 3)
    std::printf("stage2 b=%d: max s2 = %d, max |q' - q| = %d (bound s2/2)\n", bits, max_s2,
                max_err);
    EXPECT_EQ(max_s2, bits == 4 ? 17 : 85);
  }
}

// The group extremes are reproduced: lo exactly (c = 0), and hi within s2 / 2.
TEST(Stage2, GroupExtremes) {
  for (int bits : {4, 2}) {
    for (int lo = -127; lo <= 127; lo += 3) {
      for (int hi = lo; hi <= 127; hi += 5) {
        const turbo::Stage2Params p = turbo::stage2_params(lo, hi, bits);
        EXPECT_EQ(turbo::stage2_code(lo, p, bits), 0);
        EXPECT_EQ(turbo::stage2_dequant(0, p), lo);
      }
    }
    // Constant group: s2 = 1, every code 0, exact.
    for (int v = -127; v <= 127; ++v) {
      const turbo::Stage2Params p = turbo::stage2_params(v, v, bits);
      EXPECT_EQ(p.s2, 1);
      EXPECT_EQ(turbo::stage2_code(v, p, bits), 0);
      EXPECT_EQ(turbo::stage2_dequant(0, p), v);
    }
  }
  // Full range at 4 bits: s2 = ceil(254 / 15) = 17; 127 rounds to code 15 = 128 - clamped to 127.
  const turbo::Stage2Params p = turbo::stage2_params(-127, 127, 4);
  EXPECT_EQ(p.s2, 17);
  EXPECT_EQ(turbo::stage2_code(127, p, 4), 15);
  EXPECT_EQ(turbo::stage2_dequant(15, p), 127);
}

// Round half up: (q - z) exactly half-way between two grid points goes to the upper one.
TEST(Stage2, RoundsHalfUp) {
  const turbo::Stage2Params p = turbo::stage2_params(0, 60, 4);  // s2 = 4
  ASSERT_EQ(p.s2, 4);
  EXPECT_EQ(turbo::stage2_code(2, p, 4), 1);   // 0.5 -> 1
  EXPECT_EQ(turbo::stage2_code(6, p, 4), 2);   // 1.5 -> 2
  EXPECT_EQ(turbo::stage2_code(10, p, 4), 3);  // 2.5 -> 3 (half up, not even)
  EXPECT_EQ(turbo::stage2_code(1, p, 4), 0);
  EXPECT_EQ(turbo::stage2_code(3, p, 4), 1);
}

// ---- packing ---------------------------------------------------------------------------------

// The FP16 route of stage-2 dequantization (the decode kernel's half2 steps) equals the integer
// recipe for every code, step and zero point a block can hold: exhaustive.
TEST(Stage2, Fp16DequantEqualsIntegerRecipeExhaustive) {
  int64_t checked = 0, clamped = 0;
  for (int c = 0; c < 16; ++c)
    for (int s2 = 1; s2 < 256; ++s2)
      for (int z = -127; z <= 127; ++z) {
        const turbo::Stage2Params p{static_cast<uint8_t>(s2), static_cast<int8_t>(z)};
        const int want = std::min(127, c * s2 + z);  // SPEC 2, written from the text
        ASSERT_EQ(turbo::stage2_dequant(c, p), want);
        ASSERT_EQ(turbo::stage2_dequant_fp16(c, p), want) << c << " " << s2 << " " << z;
        ++checked;
        clamped += c * s2 + z > 127;
      }
  EXPECT_EQ(checked, 16 * 255 * 255);
  EXPECT_GT(clamped, checked / 4);  // the clamp branch is exercised, far past 2048 too
}

// The kernels' in-group form (core/quant.h stage2_top: M from the compile-time table, the +128
// bias folded into b, no clamp, the code in the top bits of a 32-bit value) on every code q of
// every group [lo, hi] with lo from -128, at 4 and 2 bits, against stage2_code of the group's
// parameters and against the SPEC formula written out here.
TEST(Stage2, InGroupTopBitsCodeEqualsDivisionExhaustive) {
  constexpr turbo::Stage2RecipTable kTable4 = turbo::stage2_recip_table(4);
  constexpr turbo::Stage2RecipTable kTable2 = turbo::stage2_recip_table(2);
  int64_t checked = 0, top_code = 0;
  for (int bits : {4, 2}) {
    const turbo::Stage2RecipTable& table = bits == 4 ? kTable4 : kTable2;
    const int levels = (1 << bits) - 1;
    for (int s2 = 1; s2 <= 255; ++s2) {
      // Independent: the smallest M with M * 2 s2 >= 2^(32 - bits).
      const uint64_t m = 2 * static_cast<uint64_t>(s2);
      const uint64_t M = table.M[s2];
      ASSERT_GE(M * m, uint64_t{1} << (32 - bits)) << s2;
      ASSERT_LT((M - 1) * m, uint64_t{1} << (32 - bits)) << s2;
    }
    for (int lo = -128; lo <= 127; ++lo)
      for (int hi = lo; hi <= 127; ++hi) {
        const turbo::Stage2Params p = turbo::stage2_params(lo, hi, bits);
        const turbo::Stage2Top t = turbo::stage2_top(p, table.M[p.s2]);
        for (int q = lo; q <= hi; ++q) {
          const int want = std::min(levels, (2 * (q - lo) + p.s2) / (2 * p.s2));
          ASSERT_EQ(turbo::stage2_code(q, p, bits), want);
          const uint32_t v = turbo::stage2_top_value(static_cast<uint32_t>(q + 128), t);
          ASSERT_EQ(static_cast<int>(v >> (32 - bits)), want) << q << " " << lo << " " << hi;
          ++checked;
          top_code += want == levels;
        }
      }
  }
  EXPECT_EQ(checked, 2 * (256 * 257 * 258 / 6));  // sum over lo <= hi of hi - lo + 1
  EXPECT_GT(top_code, checked / 100);             // the top code, where a clamp would act
}

TEST(Pack, RoundTripAndLayout) {
  std::mt19937_64 rng(12);
  for (int bits : {8, 4, 2}) {
    const int per = 8 / bits;
    EXPECT_EQ(turbo::codes_per_byte(bits), per);
    for (int n = 0; n <= 67; ++n) {
      const int64_t nbytes = turbo::packed_bytes(n, bits);
      ASSERT_EQ(nbytes, (static_cast<int64_t>(n) * bits + 7) / 8) << n << " b" << bits;
      std::vector<uint8_t> codes(n);
      for (auto& c : codes) c = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
      // Independent packing: code i sits at bit (i % per) * bits of byte i / per.
      std::vector<uint8_t> want(nbytes, 0);
      for (int i = 0; i < n; ++i)
        want[i / per] |= static_cast<uint8_t>(codes[i] << ((i % per) * bits));
      for (uint8_t poison : {uint8_t{0x00}, uint8_t{0xff}, uint8_t{0xa5}}) {
        std::vector<uint8_t> buf(nbytes + 1, poison);
        for (int i = 0; i < n; ++i) turbo::pack_code(buf.data(), i, codes[i], bits);
        for (int i = 0; i < n; ++i) ASSERT_EQ(turbo::unpack_code(buf.data(), i, bits), codes[i]);
        EXPECT_EQ(buf[nbytes], poison) << "wrote past the packed size";
        if (poison == 0) {
          for (int64_t j = 0; j < nbytes; ++j) ASSERT_EQ(buf[j], want[j]) << j;
        } else if (n > 0) {
          // Full bytes carry no trace of the poison.
          for (int64_t j = 0; j < n / per; ++j) ASSERT_EQ(buf[j], want[j]) << j;
        }
      }
    }
  }
  // The first code goes in the low bits.
  uint8_t b = 0;
  turbo::pack_code(&b, 0, 0x3, 4);
  turbo::pack_code(&b, 1, 0xc, 4);
  EXPECT_EQ(b, 0xc3);
  b = 0;
  for (int i = 0; i < 4; ++i) turbo::pack_code(&b, i, static_cast<uint8_t>(i), 2);
  EXPECT_EQ(b, 0xe4);  // 3 2 1 0 from the high bits down
}

// A code wider than `bits` must not spill into its neighbours.
TEST(Pack, OverwriteKeepsNeighbours) {
  for (int bits : {4, 2}) {
    std::vector<uint8_t> buf(4, 0);
    const int n = 4 * (8 / bits);
    for (int i = 0; i < n; ++i)
      turbo::pack_code(buf.data(), i, static_cast<uint8_t>((1u << bits) - 1), bits);
    turbo::pack_code(buf.data(), 1, 0, bits);
    for (int i = 0; i < n; ++i)
      EXPECT_EQ(turbo::unpack_code(buf.data(), i, bits), i == 1 ? 0 : (1 << bits) - 1) << i;
  }
}

// ---- direct asymmetric quantizer (SPEC 3) ----------------------------------------------------

float round_to_storage(float v, turbo::ScaleStorage st) {
  if (st == turbo::ScaleStorage::kFp32) return v;
  uint16_t b;
  const _Float16 h = static_cast<_Float16>(v);  // libgcc, independent of core/fp16.h
  std::memcpy(&b, &h, 2);
  return half_value(b);
}

struct AsymOracle {
  float s, z, inv;
  int levels;
  AsymOracle(float mn, float mx, int bits, turbo::ScaleStorage st) {
    levels = (1 << bits) - 1;
    s = round_to_storage(f32_div(f32_sub(mx, mn), static_cast<float>(levels)), st);
    z = round_to_storage(mn, st);
    inv = s == 0.0f ? 0.0f : f32_div(1.0f, s);
  }
  int code(float x) const {
    const double v = f32_mul(f32_sub(x, z), inv);
    const int64_t r = rint_even(v < 0 ? 0 : (v > levels ? levels : v));
    return static_cast<int>(r);
  }
  // fma(c, s, z) with one rounding: c * s + z exact in long double (guarded), rounded once.
  float dequant(int c) const {
    std::feclearexcept(FE_INEXACT);
    const long double e = static_cast<long double>(c) * s + static_cast<long double>(z);
    EXPECT_FALSE(std::fetestexcept(FE_INEXACT));
    return static_cast<float>(e);
  }
};

TEST(Asym, MatchesSpecOnRandomGroups) {
  std::mt19937_64 rng(13);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (turbo::ScaleStorage st : {turbo::ScaleStorage::kFp16, turbo::ScaleStorage::kFp32}) {
    for (int bits : {4, 2}) {
      int64_t nonzero = 0, total = 0;
      for (int g = 0; g < 4000; ++g) {
        const int len = 1 + static_cast<int>(rng() % 64);
        const float scale = std::ldexp(1.0f, static_cast<int>(rng() % 24) - 12);
        std::vector<float> x(len);
        for (auto& v : x)
          v = turbo::round_half(nd(rng) * scale + (g % 3 == 0 ? 3.0f * scale : 0.0f));
        float mn = x[0], mx = x[0];
        for (float v : x) mn = std::min(mn, v), mx = std::max(mx, v);
        const turbo::AsymParams p = turbo::asym_params(mn, mx, bits, st);
        const AsymOracle o(mn, mx, bits, st);
        ASSERT_EQ(p.scale, o.s);
        ASSERT_EQ(p.zero, o.z);
        ASSERT_EQ(p.inv, o.inv);
        for (float v : x) {
          const int c = turbo::asym_code(v, p, bits);
          ASSERT_EQ(c, o.code(v)) << v << " mn=" << mn << " mx=" << mx;
          ASSERT_GE(c, 0);
          ASSERT_LE(c, o.levels);
          nonzero += c != 0;
          ++total;
        }
        for (int c = 0; c <= o.levels; ++c) ASSERT_EQ(turbo::asym_dequant(c, p), o.dequant(c));
        if (st == turbo::ScaleStorage::kFp32 && len > 1) {
          EXPECT_EQ(turbo::asym_code(mn, p, bits), 0);
          EXPECT_EQ(turbo::asym_code(mx, p, bits), o.levels);
        }
      }
      EXPECT_GT(nonzero, total / 2);
    }
  }
}

TEST(Asym, ZeroRangeGivesZeroCodes) {
  for (turbo::ScaleStorage st : {turbo::ScaleStorage::kFp16, turbo::ScaleStorage::kFp32}) {
    for (float v : {0.0f, 1.5f, -3.25f, 65504.0f}) {
      const turbo::AsymParams p = turbo::asym_params(v, v, 4, st);
      EXPECT_EQ(p.scale, 0.0f);
      EXPECT_EQ(p.inv, 0.0f);
      EXPECT_EQ(turbo::asym_code(v, p, 4), 0);
      EXPECT_EQ(turbo::asym_dequant(0, p), v);
    }
  }
  // FP16 storage can round a tiny scale to 0: codes are then 0 as well, never inf/NaN codes.
  const turbo::AsymParams p = turbo::asym_params(0.0f, 0x1p-24f, 4, turbo::ScaleStorage::kFp16);
  EXPECT_EQ(p.scale, 0.0f);
  EXPECT_EQ(turbo::asym_code(0x1p-24f, p, 4), 0);
}

// Values exactly on the grid z + c * s (FP32 storage, power-of-two s) come back exactly.
TEST(Asym, GridValuesRoundTrip) {
  for (turbo::ScaleStorage st : {turbo::ScaleStorage::kFp16, turbo::ScaleStorage::kFp32}) {
    for (int bits : {4, 2}) {
      const int levels = (1 << bits) - 1;
      const float s = 0.25f, z = -1.0f;
      const turbo::AsymParams p = turbo::asym_params(z, z + levels * s, bits, st);
      ASSERT_EQ(p.scale, s);
      for (int c = 0; c <= levels; ++c) {
        const float x = z + c * s;
        EXPECT_EQ(turbo::asym_code(x, p, bits), c);
        EXPECT_EQ(turbo::asym_dequant(c, p), x);
      }
    }
  }
}

// ---- non-finite inputs are rejected, naming the tensor and position ---------------------------

TEST(CheckFinite, NamesTensorAndPosition) {
  turbo::HostTensor<turbo::Half> t(1, 2, 3, 16);
  for (auto& h : t.storage) h = turbo::float_to_half(0.5f);
  EXPECT_NO_THROW(turbo::check_finite(t.view().as_const(), "K (layer 3)"));
  for (uint16_t bad : {uint16_t{0x7c00}, uint16_t{0xfc00}, uint16_t{0x7e00}}) {
    auto u = t;
    u.storage[((0 * 2 + 1) * 3 + 2) * 16 + 5] = turbo::Half{bad};  // head 1, token 2, channel 5
    try {
      turbo::check_finite(u.view().as_const(), "K (layer 3)");
      ADD_FAILURE() << "no error for " << bad;
    } catch (const turbo::Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("K (layer 3)"), std::string::npos) << m;
      EXPECT_NE(m.find("head 1"), std::string::npos) << m;
      EXPECT_NE(m.find("token 2"), std::string::npos) << m;
      EXPECT_NE(m.find("channel 5"), std::string::npos) << m;
    }
  }
}

}  // namespace

// ---- block layout and byte accounting (core/kv_layout.h, SPEC 2 and 8)
// ---------------------------

namespace {

// Hand counts: codes (n_b * D * b / 8 bytes), s2 and z (1 byte each per group), scale (4 bytes).
TEST(BlockLayout, HandCounts) {
  struct Row {
    int n_b, d, bits, axis, gs;
    int64_t code_bytes, groups, bytes;
  } rows[] = {
      {64, 128, 4, 0, 32, 4096, 128, 4096 + 256 + 4},  // channel axis: one group per channel
      {64, 128, 4, 1, 32, 4096, 256, 4096 + 512 + 4},  // token axis: 64 tokens x 4 groups
      {64, 128, 2, 0, 32, 2048, 128, 2048 + 256 + 4}, {64, 64, 2, 1, 16, 1024, 256, 1024 + 512 + 4},
      {64, 128, 8, 0, 32, 8192, 0, 8192 + 4},  // stage 1 only: codes and scale
      {16, 16, 4, 0, 16, 128, 16, 128 + 32 + 4},
  };
  for (const Row& r : rows) {
    const turbo::BlockLayout L{r.n_b, r.d, r.bits, r.axis, r.gs};
    EXPECT_EQ(L.elements(), static_cast<int64_t>(r.n_b) * r.d);
    EXPECT_EQ(L.code_bytes(), r.code_bytes) << r.n_b << "x" << r.d << " b" << r.bits;
    EXPECT_EQ(L.groups(), r.groups);
    EXPECT_EQ(L.s2_offset(), r.code_bytes);
    EXPECT_EQ(L.z_offset(), r.code_bytes + r.groups);
    EXPECT_EQ(L.scale_offset(), r.code_bytes + 2 * r.groups);
    EXPECT_EQ(L.bytes(), r.bytes);
    EXPECT_EQ(L.metadata_bytes(), 2 * r.groups + 4);
    // Every element maps to a group in range, and every group is used.
    if (r.groups > 0) {
      std::vector<int> used(static_cast<size_t>(r.groups), 0);
      for (int t = 0; t < r.n_b; ++t)
        for (int c = 0; c < r.d; ++c) {
          const int64_t g = L.group_of(t, c);
          ASSERT_GE(g, 0);
          ASSERT_LT(g, r.groups);
          ++used[static_cast<size_t>(g)];
        }
      for (int u : used) EXPECT_EQ(u, r.axis == 0 ? r.n_b : r.gs);
    }
  }
  // 4-bit KV at n_b = 64, D = 128, channel axis: 4356 / (64 * 128 * 2) of FP16, i.e. 3.761x.
  const turbo::BlockLayout L{64, 128, 4, 0, 32};
  EXPECT_NEAR(64.0 * 128 * 2 / static_cast<double>(L.bytes()), 3.7612, 1e-4);
}

}  // namespace

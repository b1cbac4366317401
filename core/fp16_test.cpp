// Tests of core/fp16.h against references that share no code with it:
//  - `exact_to_half`: a from-scratch RN rounding of an exact dyadic m * 2^e (m an unsigned 128-bit
//    integer) to binary16, written from the IEEE definition (quantum of the target binade, ties to
//    even) rather than from the bit layout of the source format.
//  - GCC's `_Float16` conversions (libgcc __truncsfhf2 / __truncdfhf2 / __truncxfhf2), an
//    independent implementation that is itself cross-checked against `exact_to_half` below, so the
//    SAS and oracle tests may use it as their rounding oracle.
// Sums and products of FP16 values are computed exactly as integers in units of 2^-24 / 2^-48.
#include "core/fp16.h"

#include <gtest/gtest.h>

#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace {

using u128 = unsigned __int128;
using i128 = __int128;

// RN-even rounding of (-1)^neg * m * 2^e to binary16 bits. Overflow gives +-inf.
uint16_t exact_to_half(bool neg, u128 m, int e) {
  const uint16_t sign = neg ? 0x8000u : 0u;
  if (m == 0) return sign;
  int top = 127;  // index of the highest set bit of m
  while (!((m >> top) & 1)) --top;
  const int exp2 = top + e;  // value in [2^exp2, 2^(exp2+1))
  if (exp2 > 15) return sign | 0x7c00u;
  const int binade = exp2 < -14 ? -14 : exp2;
  const int qe = binade - 10;  // quantum (ulp) of the target binade
  u128 n;                      // value / quantum, rounded
  if (e >= qe) {
    n = m << (e - qe);  // exact: no rounding
  } else {
    const int shift = qe - e;
    if (shift > top + 1) return sign;  // value < quantum / 2: rounds to 0
    n = m >> shift;
    const u128 rem = shift >= 128 ? m : (m & ((u128(1) << shift) - 1));
    const u128 half = u128(1) << (shift - 1);
    if (rem > half || (rem == half && (n & 1))) ++n;
  }
  // n in [0, 2^11]; encode: subnormal binade if n < 2^10 and binade == -14 with exp field 0.
  uint32_t bits;
  if (binade == -14 && n < 1024) {
    bits = static_cast<uint32_t>(n);
  } else {
    bits = (static_cast<uint32_t>(binade + 15) << 10) + static_cast<uint32_t>(n - 1024);
  }
  if (bits >= 0x7c00u) bits = 0x7c00u;
  return static_cast<uint16_t>(sign | bits);
}

uint16_t exact_float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const bool neg = x >> 31;
  const uint32_t ex = (x >> 23) & 0xff, man = x & 0x7fffff;
  if (ex == 0) return exact_to_half(neg, man, -149);
  return exact_to_half(neg, man | 0x800000u, static_cast<int>(ex) - 150);
}

uint16_t exact_double_to_half(double d) {
  uint64_t x;
  std::memcpy(&x, &d, 8);
  const bool neg = x >> 63;
  const uint64_t ex = (x >> 52) & 0x7ff, man = x & ((uint64_t{1} << 52) - 1);
  if (ex == 0) return exact_to_half(neg, man, -1074);
  return exact_to_half(neg, man | (uint64_t{1} << 52), static_cast<int>(ex) - 1075);
}

uint16_t f16_bits(_Float16 h) {
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}
_Float16 from_f16(uint32_t h) {
  const uint16_t b = static_cast<uint16_t>(h);
  _Float16 v;
  std::memcpy(&v, &b, 2);
  return v;
}
uint16_t gcc_half(float f) { return f16_bits(static_cast<_Float16>(f)); }
uint16_t gcc_half(double d) { return f16_bits(static_cast<_Float16>(d)); }
uint16_t gcc_half(long double d) { return f16_bits(static_cast<_Float16>(d)); }

uint32_t fbits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return x;
}
float from_fbits(uint32_t x) {
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

bool is_nan_half(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu); }

// Independent decode of binary16 bits (as an exact double: every half is one).
double decode_half(uint16_t h) {
  const int s = h >> 15, ex = (h >> 10) & 0x1f, man = h & 0x3ff;
  double v;
  if (ex == 31)
    v = man ? NAN : INFINITY;
  else if (ex == 0)
    v = std::ldexp(static_cast<double>(man), -24);
  else
    v = std::ldexp(static_cast<double>(1024 + man), ex - 25);
  return s ? -v : v;
}

// A half as an exact integer multiple of 2^-24 (finite halves only).
int64_t half_units(uint16_t h) {
  const int s = h >> 15, ex = (h >> 10) & 0x1f, man = h & 0x3ff;
  int64_t u = ex == 0 ? man : (int64_t{1024 + man} << (ex - 1));
  return s ? -u : u;
}

uint16_t exact_signed(i128 v, int e) {
  const bool neg = v < 0;
  return exact_to_half(neg, static_cast<u128>(neg ? -v : v), e);
}

uint16_t hbits(float f_holding_half) { return turbo::float_to_half(f_holding_half).bits; }

// Random finite half bit pattern.
uint16_t random_finite_half(std::mt19937_64& rng) {
  for (;;) {
    const uint16_t h = static_cast<uint16_t>(rng());
    if ((h & 0x7c00u) != 0x7c00u) return h;
  }
}

// ---- the oracle's own sanity -----------------------------------------------------------------

TEST(Fp16Oracle, KnownValues) {
  EXPECT_EQ(exact_float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(exact_float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(exact_float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(exact_float_to_half(65520.0f), 0x7c00);
  EXPECT_EQ(exact_float_to_half(std::nextafter(65520.0f, 0.0f)), 0x7bff);
  EXPECT_EQ(exact_float_to_half(0x1p-24f), 0x0001);
  EXPECT_EQ(exact_float_to_half(0x1p-25f), 0x0000);
  EXPECT_EQ(exact_float_to_half(0x1.8p-24f), 0x0002);
  EXPECT_EQ(exact_float_to_half(0x1p-14f), 0x0400);
  EXPECT_EQ(exact_float_to_half(1.0f + 0x1p-11f), 0x3c00);
  EXPECT_EQ(exact_float_to_half(1.0f + 0x1.8p-10f), 0x3c02);
}

// The oracle and libgcc's _Float16 agree; afterwards other tests may use either.
TEST(Fp16Oracle, AgreesWithGccFloat16) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 2000000; ++i) {
    const float f = from_fbits(static_cast<uint32_t>(rng()));
    if (std::isnan(f)) continue;
    ASSERT_EQ(exact_float_to_half(f), gcc_half(f)) << std::hexfloat << f;
    uint64_t db = rng();
    double d;
    std::memcpy(&d, &db, 8);
    if (std::isnan(d)) continue;
    ASSERT_EQ(exact_double_to_half(d), gcc_half(d)) << std::hexfloat << d;
  }
  // Double rounding probe: a float-first path would round 1 + 2^-11 + 2^-40 down to 1.
  const double probe = 1.0 + 0x1p-11 + 0x1p-40;
  EXPECT_EQ(gcc_half(probe), 0x3c01);
  EXPECT_EQ(gcc_half(1.0L + 0x1p-11L + 0x1p-62L), 0x3c01);
}

// ---- half -> float -------------------------------------------------------------------------

TEST(Fp16, HalfToFloatExhaustive) {
  int nonzero = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = turbo::detail::half_bits_to_float_host(static_cast<uint16_t>(h));
    const float g = static_cast<float>(from_f16(h));
    if (is_nan_half(static_cast<uint16_t>(h))) {
      EXPECT_TRUE(std::isnan(f)) << h;
      EXPECT_EQ(std::signbit(f), (h >> 15) != 0) << h;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), decode_half(static_cast<uint16_t>(h))) << h;
    ASSERT_EQ(fbits(f), fbits(g)) << h;  // also the sign of zero
    nonzero += f != 0.0f;
  }
  EXPECT_EQ(nonzero, 65536 - 2 * 1023 - 2);  // all but the NaNs and the two zeros
}

// ---- float -> half -------------------------------------------------------------------------

TEST(Fp16, RoundTripAllHalves) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t b = static_cast<uint16_t>(h);
    const float f = turbo::half_to_float(turbo::Half{b});
    const uint16_t back = turbo::float_to_half(f).bits;
    const uint16_t back_d = turbo::detail::double_to_half_bits_host(static_cast<double>(f));
    if (is_nan_half(b)) {
      EXPECT_TRUE(is_nan_half(back)) << h;
      EXPECT_TRUE(is_nan_half(back_d)) << h;
      EXPECT_EQ(back >> 15, b >> 15);
      EXPECT_EQ(back_d >> 15, b >> 15);
      continue;
    }
    ASSERT_EQ(back, b) << h;
    ASSERT_EQ(back_d, b) << h;
    ASSERT_EQ(turbo::round_half(f), f) << h;
  }
}

TEST(Fp16, FloatToHalfEdgeCases) {
  struct Case {
    float in;
    uint16_t out;
  } cases[] = {
      {0.0f, 0x0000},
      {-0.0f, 0x8000},
      {65504.0f, 0x7bff},
      {65519.99609375f, 0x7bff},  // largest float below the overflow tie
      {65520.0f, 0x7c00},         // the tie between 65504 and 65536 goes to even = inf
      {-65520.0f, 0xfc00},
      {1e30f, 0x7c00},
      {INFINITY, 0x7c00},
      {-INFINITY, 0xfc00},
      {0x1p-24f, 0x0001},
      {0x1p-25f, 0x0000},  // tie between 0 and 2^-24: to even (0)
      {-0x1p-25f, 0x8000},
      {std::nextafter(0x1p-25f, 1.0f), 0x0001},  // just above the tie
      {std::nextafter(0x1p-25f, 0.0f), 0x0000},
      {0x1p-26f, 0x0000},
      {0x1p-149f, 0x0000},     // float subnormal
      {0x1.8p-24f, 0x0002},    // 1.5 ulp: tie to even (2)
      {0x1.4p-23f, 0x0002},    // 2.5 ulp: tie to even (2)
      {0x1.cp-23f, 0x0004},    // 3.5 ulp: tie to even (4)
      {0x1.ffcp-15f, 0x0400},  // 1023.5 ulp: rounds up into the normals
      {0x1p-14f, 0x0400},
      {1.0f + 0x1p-11f, 0x3c00},    // tie, even is 1
      {1.0f + 0x1.8p-10f, 0x3c02},  // tie, odd below: up
      {2047.5f, 0x6800},            // 2047.5 -> 2048 (ulp 1 below 2048)
      {2049.0f, 0x6800},            // tie between 2048 and 2050: even = 2048
      {2051.0f, 0x6802},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(turbo::float_to_half(c.in).bits, c.out) << std::hexfloat << c.in;
    EXPECT_EQ(exact_float_to_half(c.in), c.out) << std::hexfloat << c.in;
    EXPECT_EQ(turbo::detail::double_to_half_bits_host(c.in), c.out) << std::hexfloat << c.in;
  }
  EXPECT_TRUE(is_nan_half(turbo::float_to_half(NAN).bits));
  EXPECT_TRUE(is_nan_half(turbo::float_to_half(-NAN).bits));
  EXPECT_TRUE(is_nan_half(turbo::detail::double_to_half_bits_host(std::nan(""))));
  // A NaN whose payload sits only in the low 13 bits must not become inf.
  EXPECT_TRUE(is_nan_half(turbo::float_to_half(from_fbits(0x7f800001u)).bits));
  uint64_t dnan = 0x7ff0000000000001ull;
  double dn;
  std::memcpy(&dn, &dnan, 8);
  EXPECT_TRUE(is_nan_half(turbo::detail::double_to_half_bits_host(dn)));
}

// Every float whose top 19 bits (sign, exponent, 10 mantissa bits) are any value, combined with
// low-13-bit patterns around the tie (0x1000) and the ends: covers every normal-half tie, overflow
// and every binade. The subnormal-half range is covered by the next test.
TEST(Fp16, FloatToHalfStructuredTies) {
  const uint32_t lows[] = {0x0000, 0x0001, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x0800, 0x1800};
  int64_t checked = 0;
  for (uint32_t top = 0; top < (1u << 19); ++top) {
    for (uint32_t low : lows) {
      const uint32_t x = (top << 13) | low;
      const float f = from_fbits(x);
      if (std::isnan(f)) continue;
      const uint16_t want = exact_float_to_half(f);
      ASSERT_EQ(turbo::float_to_half(f).bits, want) << std::hexfloat << f;
      ASSERT_EQ(turbo::detail::double_to_half_bits_host(f), want) << std::hexfloat << f;
      ++checked;
    }
  }
  EXPECT_GT(checked, 4000000);
}

// Ties and near-ties of every subnormal half n * 2^-24 (n = 0 .. 1023): (n + 1/2) * 2^-24 and its
// float neighbours, both signs.
TEST(Fp16, FloatToHalfSubnormalTies) {
  for (int n = 0; n < 1024; ++n) {
    for (int sgn = 0; sgn < 2; ++sgn) {
      const float tie = std::ldexp(static_cast<float>(2 * n + 1), -25) * (sgn ? -1.0f : 1.0f);
      const float probes[] = {tie, std::nextafter(tie, 0.0f), std::nextafter(tie, 2 * tie),
                              std::ldexp(static_cast<float>(n), -24) * (sgn ? -1.0f : 1.0f)};
      for (float f : probes) {
        const uint16_t want = exact_float_to_half(f);
        ASSERT_EQ(turbo::float_to_half(f).bits, want) << std::hexfloat << f;
        ASSERT_EQ(turbo::detail::double_to_half_bits_host(f), want) << std::hexfloat << f;
      }
      // The exact tie goes to the even neighbour.
      const uint16_t got = turbo::float_to_half(tie).bits & 0x7fffu;
      EXPECT_EQ(got % 2, 0) << n;
      EXPECT_TRUE(got == n || got == n + 1) << n;
    }
  }
}

TEST(Fp16, FloatToHalfRandom) {
  std::mt19937_64 rng(2);
  std::uniform_int_distribution<int> exps(-30, 17);
  for (int i = 0; i < 4000000; ++i) {
    float f;
    if (i & 1) {
      f = from_fbits(static_cast<uint32_t>(rng()));
      if (std::isnan(f)) continue;
    } else {  // concentrated on the half range
      const uint32_t man = static_cast<uint32_t>(rng()) & 0x7fffffu;
      const int e = exps(rng);
      f = from_fbits((static_cast<uint32_t>(rng() & 1) << 31) |
                     (static_cast<uint32_t>(e + 127) << 23) | man);
    }
    const uint16_t want = exact_float_to_half(f);
    ASSERT_EQ(turbo::float_to_half(f).bits, want) << std::hexfloat << f;
  }
}

// ---- double -> half (one rounding) ----------------------------------------------------------

TEST(Fp16, DoubleToHalfTiesAndNeighbours) {
  int64_t checked = 0;
  for (uint32_t h = 0; h < 0x7c00u; ++h) {  // every finite non-negative half below the max
    const double a = decode_half(static_cast<uint16_t>(h));
    const double b = decode_half(static_cast<uint16_t>(h + 1));  // next half (inf for 0x7bff)
    const double mid = std::isinf(b) ? 65520.0 : (a + b) / 2;    // exact in double
    const double probes[] = {a,
                             mid,
                             std::nextafter(mid, 0.0),
                             std::nextafter(mid, 1e9),
                             mid + mid * 0x1p-40,
                             mid - mid * 0x1p-40,
                             std::nextafter(a, 1e9)};
    for (double d0 : probes) {
      for (double d : {d0, -d0}) {
        const uint16_t want = exact_double_to_half(d);
        ASSERT_EQ(turbo::detail::double_to_half_bits_host(d), want) << std::hexfloat << d;
        ASSERT_EQ(hbits(turbo::round_half(d)), want) << std::hexfloat << d;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 400000);
  // The double-rounding trap: 1 + 2^-11 + 2^-40 is above the tie; via float it would be a tie.
  EXPECT_EQ(turbo::detail::double_to_half_bits_host(1.0 + 0x1p-11 + 0x1p-40), 0x3c01);
  EXPECT_EQ(turbo::detail::double_to_half_bits_host(0x1p-25 + 0x1p-60), 0x0001);
  EXPECT_EQ(turbo::detail::double_to_half_bits_host(0x1p-25), 0x0000);
  EXPECT_EQ(turbo::detail::double_to_half_bits_host(65520.0 - 0x1p-30), 0x7bff);
  EXPECT_EQ(turbo::detail::double_to_half_bits_host(65520.0), 0x7c00);
  EXPECT_EQ(turbo::detail::double_to_half_bits_host(1e300), 0x7c00);
  EXPECT_EQ(turbo::detail::double_to_half_bits_host(-1e-300), 0x8000);
}

TEST(Fp16, DoubleToHalfRandom) {
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int> exps(-30, 17);
  for (int i = 0; i < 4000000; ++i) {
    double d;
    if (i & 1) {
      const uint64_t x = rng();
      std::memcpy(&d, &x, 8);
      if (std::isnan(d)) continue;
    } else {
      const uint64_t man = rng() & ((uint64_t{1} << 52) - 1);
      const uint64_t x =
          ((rng() & 1) << 63) | (static_cast<uint64_t>(exps(rng) + 1023) << 52) | man;
      std::memcpy(&d, &x, 8);
    }
    ASSERT_EQ(turbo::detail::double_to_half_bits_host(d), exact_double_to_half(d))
        << std::hexfloat << d;
  }
}

// ---- FP16 arithmetic: sub16, mul16, fma16 against exact integer arithmetic ------------------

// a - b, a * b, a * b + c of finite halves are exact integers in units of 2^-24 / 2^-48.
// An exactly zero result takes IEEE 754's sign rule (6.3): x + y with x = -y is +0 under RN,
// (-0) + (-0) is -0; a product's sign is the xor of the operand signs.
uint16_t exact_sub(uint16_t a, uint16_t b) {
  const i128 v = static_cast<i128>(half_units(a)) - half_units(b);
  if (v == 0)
    return ((a & 0x8000u) && !(b & 0x8000u) && !(a & 0x7fffu) && !(b & 0x7fffu)) ? 0x8000 : 0;
  return exact_signed(v, -24);
}
uint16_t exact_mul(uint16_t a, uint16_t b) {
  const i128 v = static_cast<i128>(half_units(a)) * half_units(b);
  if (v == 0) return (a ^ b) & 0x8000u;
  return exact_signed(v, -48);
}
uint16_t exact_fma(uint16_t a, uint16_t b, uint16_t c) {
  const i128 p = static_cast<i128>(half_units(a)) * half_units(b);
  const i128 v = p + static_cast<i128>(half_units(c)) * (i128{1} << 24);  // c may be negative
  if (v == 0) {
    const bool p_neg = (a ^ b) & 0x8000u, c_neg = c & 0x8000u;
    return (p == 0 && (c & 0x7fffu) == 0 && p_neg && c_neg) ? 0x8000 : 0;
  }
  return exact_signed(v, -48);
}

float hf(uint16_t h) { return static_cast<float>(decode_half(h)); }

// Half values biased to produce cancellation, huge exponent gaps and ties.
uint16_t pick_half(std::mt19937_64& rng, int mode) {
  switch (mode) {
    case 0:
      return random_finite_half(rng);
    case 1:
      return static_cast<uint16_t>(rng() % 0x0400u | (rng() & 0x8000u));  // subnormal
    case 2:
      return static_cast<uint16_t>((0x3800u + rng() % 0x0800u) | (rng() & 0x8000u));  // [0.5, 2)
    default:
      return static_cast<uint16_t>((0x7800u + rng() % 0x0400u) | (rng() & 0x8000u));  // huge
  }
}

TEST(Fp16Arith, Sub16AndMul16MatchExact) {
  std::mt19937_64 rng(4);
  int64_t nonzero = 0;
  for (int i = 0; i < 3000000; ++i) {
    const uint16_t a = pick_half(rng, i % 4), b = pick_half(rng, (i / 4) % 4);
    const uint16_t s = hbits(turbo::sub16(hf(a), hf(b)));
    const uint16_t m = hbits(turbo::mul16(hf(a), hf(b)));
    ASSERT_EQ(s, exact_sub(a, b)) << std::hex << a << " - " << b;
    ASSERT_EQ(m, exact_mul(a, b)) << std::hex << a << " * " << b;
    nonzero += (s & 0x7fff) != 0;
  }
  EXPECT_GT(nonzero, 1000000);
}

// sub16 on a dense grid of the SAS inputs: pairs of halves in [0, 16) (x = m - s and the
// rescale argument m_new - m_old).
TEST(Fp16Arith, Sub16GridSmallPositive) {
  for (uint32_t a = 0; a < 0x4c00u; a += 5) {
    for (uint32_t b = 0; b < 0x4c00u; b += 11) {
      ASSERT_EQ(hbits(turbo::sub16(hf(a), hf(b))), exact_sub(a, b)) << a << " " << b;
    }
  }
}

TEST(Fp16Arith, Fma16MatchesExact) {
  std::mt19937_64 rng(5);
  int64_t inexact_double = 0;
  for (int i = 0; i < 3000000; ++i) {
    const uint16_t a = pick_half(rng, i % 4), b = pick_half(rng, (i / 4) % 4),
                   c = pick_half(rng, (i / 16) % 4);
    const uint16_t want = exact_fma(a, b, c);
    const uint16_t got = hbits(turbo::fma16(hf(a), hf(b), hf(c)));
    // The header documents exactness on the SAS domain only; record whether the double sum was
    // inexact so that a failure here says which regime it is in.
    std::feclearexcept(FE_INEXACT);
    volatile double sum = static_cast<double>(hf(a)) * hf(b) + static_cast<double>(hf(c));
    (void)sum;
    inexact_double += std::fetestexcept(FE_INEXACT) != 0;
    ASSERT_EQ(got, want) << std::hex << "fma16(" << a << ", " << b << ", " << c << ")";
  }
  // The domain includes sums that are inexact in double, so this also shows the single double
  // rounding never moves the FP16 result on these operands.
  std::printf("fma16: %lld of 3000000 random operand triples had an inexact double sum\n",
              static_cast<long long>(inexact_double));
}

// The SAS domain of fma16: p (any half of magnitude <= 2) * f (every f = x - floor(x) for FP16
// x in [0, 11)) + c (FP16 coefficients of magnitude in [2^-8, 2]), on a grid; the exhaustive SAS
// test covers the real coefficient tables.
TEST(Fp16Arith, Fma16SasDomainGrid) {
  std::vector<uint16_t> fs;
  for (uint32_t x = 0; x < 0x4980u; ++x) {  // x < 11
    const double v = decode_half(static_cast<uint16_t>(x));
    const double f = v - std::floor(v);
    fs.push_back(exact_double_to_half(f));
  }
  std::mt19937_64 rng(6);
  for (uint32_t cb = 0x1c00u; cb <= 0x4000u; cb += 11) {
    for (int sgn = 0; sgn < 2; ++sgn) {
      const uint16_t c = static_cast<uint16_t>(cb | (sgn << 15));
      for (int j = 0; j < 4; ++j) {
        const uint16_t p = static_cast<uint16_t>((rng() % 0x4001u) | (rng() & 0x8000u));
        for (size_t i = j; i < fs.size(); i += 5) {
          ASSERT_EQ(hbits(turbo::fma16(hf(p), hf(fs[i]), hf(c))), exact_fma(p, fs[i], c));
        }
      }
    }
  }
}

TEST(Fp16, IsFiniteHalf) {
  int finite = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const bool want = std::isfinite(decode_half(static_cast<uint16_t>(h)));
    EXPECT_EQ(turbo::is_finite_half(turbo::Half{static_cast<uint16_t>(h)}), want) << h;
    finite += want;
  }
  EXPECT_EQ(finite, 65536 - 2048);
}

}  // namespace

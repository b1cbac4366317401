// Exhaustive tests of SAS (core/sas.h, SPEC 4).
//
// The oracle re-derives every rounding without core/fp16.h's fma16/mul16/round_half:
//   - coefficients and LUT are rounded from long double by libgcc's _Float16 conversion (checked
//     against an exact-rounding oracle in fp16_test) or by a plain (float) cast;
//   - every Horner step p * f + c and the final LUT[k] * p is computed in long double, proven exact
//     by the FE_INEXACT flag, and rounded once to the working precision.
// Every FP16 x in [0, n_r + 1) and +inf is evaluated for every polynomial, both precisions and
// n_r = 3 .. 10. The error of SAS against e^-x is bounded by a bound derived from the polynomial's
// own approximation error plus the rounding steps (not from the observed maximum), and a table of
// the observed errors is printed.
#include "core/sas.h"

#include <gtest/gtest.h>

#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/flashq.h"

namespace {

using turbo::Poly;
using turbo::SasPrecision;

constexpr int kNrMin = 3, kNrMax = 10;

const turbo::Poly kAllPolys[] = {Poly::kLs2,      Poly::kLs3,      Poly::kLs4,     Poly::kMinimax2,
                                 Poly::kMinimax3, Poly::kMinimax4, Poly::kTaylor2, Poly::kTaylor3,
                                 Poly::kTaylor4,  Poly::kSpec3};
const char* kPolyNames[] = {"ls2",      "ls3",     "ls4",     "minimax2", "minimax3",
                            "minimax4", "taylor2", "taylor3", "taylor4",  "spec3"};

float half_value(uint16_t bits) { return turbo::half_to_float(turbo::Half{bits}); }

// long double -> FP16 by libgcc (one rounding), returned as float.
float to_half(long double v) {
  const _Float16 h = static_cast<_Float16>(v);
  return static_cast<float>(h);
}
float to_prec(long double v, SasPrecision p) {
  return p == SasPrecision::kFp16 ? to_half(v) : static_cast<float>(v);
}

// a * b + c in long double, exact (asserted), then one rounding.
float exact_fma_round(float a, float b, float c, SasPrecision p) {
  std::feclearexcept(FE_INEXACT);
  const long double v = static_cast<long double>(a) * b + static_cast<long double>(c);
  if (std::fetestexcept(FE_INEXACT)) {
    ADD_FAILURE() << "oracle lost exactness in " << a << " * " << b << " + " << c;
  }
  return to_prec(v, p);
}

struct SasOracle {
  int n_r, degree;
  SasPrecision prec;
  float c[turbo::kMaxPolyDegree + 1];
  float lut[turbo::kMaxNr];

  SasOracle(int n_r_, Poly poly, SasPrecision p) : n_r(n_r_), prec(p) {
    const turbo::PolyDef& d = turbo::poly_def(poly);
    degree = d.degree;
    for (int i = 0; i <= turbo::kMaxPolyDegree; ++i)
      c[i] = to_prec(static_cast<long double>(d.c[i]), p);
    for (int k = 0; k < turbo::kMaxNr; ++k)
      lut[k] = to_prec(std::exp(-static_cast<long double>(k)), p);
  }

  float eval(uint16_t xbits) const {
    const float x = half_value(xbits);
    if (std::isinf(x) || x >= static_cast<float>(n_r)) return 0.0f;
    const double fl = std::floor(static_cast<double>(x));
    const int k = static_cast<int>(fl);
    const float f = static_cast<float>(static_cast<double>(x) - fl);  // exact
    float acc = c[degree];
    for (int i = degree - 1; i >= 0; --i) acc = exact_fma_round(acc, f, c[i], prec);
    return exact_fma_round(lut[k], acc, 0.0f, prec);
  }
};

// Every FP16 value in [0, hi) plus +inf, as bits.
std::vector<uint16_t> halves_below(int hi) {
  std::vector<uint16_t> v;
  for (uint32_t b = 0; b < 0x7c00u; ++b)
    if (half_value(static_cast<uint16_t>(b)) < static_cast<float>(hi))
      v.push_back(static_cast<uint16_t>(b));
  return v;
}

uint32_t fbits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return x;
}

std::string case_name(Poly poly, SasPrecision p, int n_r) {
  return std::string(kPolyNames[static_cast<int>(poly)]) +
         (p == SasPrecision::kFp16 ? "/fp16" : "/fp32") + "/n_r=" + std::to_string(n_r);
}

// ---- the tables ------------------------------------------------------------------------------

// SPEC 4 defines the default as the least-squares fit rounded to FP16 and prints it as
// 0.9996, -0.9922, 0.4626, -0.1025. ls3 follows the definition; spec3 takes the decimals literally.
// Both readings are kept (core/sas.h says why): c0..c2 agree in FP16, c3 is one FP16 ulp apart.
TEST(SasTables, Ls3IsTheFitAndSpec3IsThePrintedDecimals) {
  const long double printed[] = {0.9996L, -0.9922L, 0.4626L, -0.1025L};
  const turbo::SasParams ls3 =
      turbo::make_sas_params(6, Poly::kLs3, SasPrecision::kFp16, turbo::ExpMode::kSas);
  const turbo::SasParams spec3 =
      turbo::make_sas_params(6, Poly::kSpec3, SasPrecision::kFp16, turbo::ExpMode::kSas);
  EXPECT_EQ(ls3.degree, 3);
  EXPECT_EQ(spec3.degree, 3);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(spec3.c[i], to_half(printed[i])) << "c" << i;
    // The printed values are the (unrounded) fit to four significant digits.
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", turbo::poly_def(Poly::kLs3).c[i]);
    EXPECT_EQ(std::strtold(buf, nullptr), printed[i]) << "c" << i << " prints as " << buf;
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ls3.c[i], spec3.c[i]) << "c" << i;
  EXPECT_EQ(turbo::float_to_half(ls3.c[3]).bits, 0xae90);
  EXPECT_EQ(turbo::float_to_half(spec3.c[3]).bits, 0xae8f);
}

TEST(SasTables, LutIsRoundedExp) {
  for (SasPrecision prec : {SasPrecision::kFp16, SasPrecision::kFp32}) {
    const turbo::SasParams p = turbo::make_sas_params(10, Poly::kLs3, prec, turbo::ExpMode::kSas);
    for (int k = 0; k < turbo::kMaxNr; ++k) {
      EXPECT_EQ(fbits(p.lut[k]), fbits(to_prec(std::exp(-static_cast<long double>(k)), prec))) << k;
      EXPECT_GT(p.lut[k], 0.0f) << k;
    }
    EXPECT_EQ(p.lut[0], 1.0f);
  }
}

TEST(SasTables, CoefficientTablesAreConsistent) {
  for (int pi = 0; pi < turbo::kNumPolys; ++pi) {
    const turbo::PolyDef& d = turbo::poly_def(kAllPolys[pi]);
    EXPECT_STREQ(d.name, kPolyNames[pi]);
    EXPECT_EQ(turbo::enum_name(kAllPolys[pi]), kPolyNames[pi]);
    EXPECT_EQ(d.degree, kPolyNames[pi][std::strlen(kPolyNames[pi]) - 1] - '0') << d.name;
    for (int i = d.degree + 1; i <= turbo::kMaxPolyDegree; ++i) EXPECT_EQ(d.c[i], 0.0) << d.name;
    EXPECT_NE(d.c[d.degree], 0.0) << d.name;
    for (SasPrecision prec : {SasPrecision::kFp16, SasPrecision::kFp32}) {
      const turbo::SasParams p =
          turbo::make_sas_params(6, kAllPolys[pi], prec, turbo::ExpMode::kSas);
      EXPECT_EQ(p.degree, d.degree);
      for (int i = 0; i <= turbo::kMaxPolyDegree; ++i)
        EXPECT_EQ(fbits(p.c[i]), fbits(to_prec(static_cast<long double>(d.c[i]), prec)))
            << d.name << i;
    }
  }
}

// Least squares on np.linspace(0, 1, 100), solved from scratch (normal equations in long double).
std::vector<long double> ls_fit(int degree) {
  const int n = degree + 1;
  std::vector<long double> a(n * (n + 1), 0.0L);
  for (int i = 0; i < 100; ++i) {
    const long double t = static_cast<long double>(i) / 99.0L, y = std::exp(-t);
    for (int r = 0; r < n; ++r) {
      for (int c = 0; c < n; ++c) a[r * (n + 1) + c] += std::pow(t, r) * std::pow(t, c);
      a[r * (n + 1) + n] += std::pow(t, r) * y;
    }
  }
  for (int col = 0; col < n; ++col) {  // Gauss-Jordan with partial pivoting
    int piv = col;
    for (int r = col + 1; r < n; ++r)
      if (std::fabs(a[r * (n + 1) + col]) > std::fabs(a[piv * (n + 1) + col])) piv = r;
    for (int c = 0; c <= n; ++c) std::swap(a[col * (n + 1) + c], a[piv * (n + 1) + c]);
    for (int r = 0; r < n; ++r) {
      if (r == col) continue;
      const long double m = a[r * (n + 1) + col] / a[col * (n + 1) + col];
      for (int c = 0; c <= n; ++c) a[r * (n + 1) + c] -= m * a[col * (n + 1) + c];
    }
  }
  std::vector<long double> coef(n);
  for (int r = 0; r < n; ++r) coef[r] = a[r * (n + 1) + n] / a[r * (n + 1) + r];
  return coef;
}

long double poly_exact(const turbo::PolyDef& d, long double f) {
  long double p = d.c[d.degree];
  for (int i = d.degree - 1; i >= 0; --i) p = p * f + d.c[i];
  return p;
}

// max over f in [0, 1] of |POLY(f) - e^-f| with the unrounded coefficients: the polynomial's
// own approximation error, a property of the table (sampled densely; |d/df err| < 1, so the
// sampling step 2^-18 adds < 4e-6 at most, covered by adding that step).
long double approx_error(const turbo::PolyDef& d) {
  long double e = 0.0L;
  const int n = 1 << 18;
  for (int i = 0; i <= n; ++i) {
    const long double f = static_cast<long double>(i) / n;
    e = std::max(e, std::fabs(poly_exact(d, f) - std::exp(-f)));
  }
  return e + 1.0L / n;
}

TEST(SasTables, LeastSquaresFitsReproduce) {
  for (Poly poly : {Poly::kLs2, Poly::kLs3, Poly::kLs4}) {
    const turbo::PolyDef& d = turbo::poly_def(poly);
    const std::vector<long double> c = ls_fit(d.degree);
    for (int i = 0; i <= d.degree; ++i)
      EXPECT_NEAR(d.c[i], static_cast<double>(c[i]), 1e-9) << d.name << " c" << i;
  }
}

TEST(SasTables, TaylorIsTheMaclaurinSeries) {
  long double fact = 1.0L;
  for (int i = 0; i <= 4; ++i) {
    if (i > 0) fact *= i;
    const long double want = (i % 2 ? -1.0L : 1.0L) / fact;
    for (Poly poly : {Poly::kTaylor2, Poly::kTaylor3, Poly::kTaylor4}) {
      const turbo::PolyDef& d = turbo::poly_def(poly);
      if (i <= d.degree) {
        EXPECT_EQ(d.c[i], static_cast<double>(want)) << d.name << " c" << i;
      }
    }
  }
}

// Remez optimality: the error equioscillates at degree + 2 points with alternating signs, and its
// maximum is below the least-squares fit of the same degree.
TEST(SasTables, MinimaxEquioscillates) {
  const Poly mm[] = {Poly::kMinimax2, Poly::kMinimax3, Poly::kMinimax4};
  const Poly ls[] = {Poly::kLs2, Poly::kLs3, Poly::kLs4};
  for (int j = 0; j < 3; ++j) {
    const turbo::PolyDef& d = turbo::poly_def(mm[j]);
    const int n = 200000;
    long double emax = 0.0L;
    for (int i = 0; i <= n; ++i) {
      const long double f = static_cast<long double>(i) / n;
      emax = std::max(emax, std::fabs(poly_exact(d, f) - std::exp(-f)));
    }
    int alternations = 0, last = 0;
    for (int i = 0; i <= n; ++i) {
      const long double f = static_cast<long double>(i) / n;
      const long double e = poly_exact(d, f) - std::exp(-f);
      if (std::fabs(e) >= 0.999L * emax) {
        const int sg = e > 0 ? 1 : -1;
        if (sg != last) ++alternations, last = sg;
      }
    }
    EXPECT_GE(alternations, d.degree + 2) << d.name << " max err " << static_cast<double>(emax);
    EXPECT_LT(approx_error(d), approx_error(turbo::poly_def(ls[j]))) << d.name;
  }
}

// ---- exhaustive evaluation -----------------------------------------------------------------

struct SasCase {
  Poly poly;
  SasPrecision prec;
};

std::vector<SasCase> all_cases() {
  std::vector<SasCase> v;
  for (Poly p : kAllPolys)
    for (SasPrecision pr : {SasPrecision::kFp16, SasPrecision::kFp32}) v.push_back({p, pr});
  return v;
}

class SasExhaustive : public ::testing::TestWithParam<SasCase> {};

std::string param_name(const ::testing::TestParamInfo<SasCase>& info) {
  return std::string(kPolyNames[static_cast<int>(info.param.poly)]) +
         (info.param.prec == SasPrecision::kFp16 ? "_fp16" : "_fp32");
}

// (a) bit-equal to the independent evaluation for every FP16 x in [0, n_r + 1), n_r = 3 .. 10.
TEST_P(SasExhaustive, MatchesIndependentOracle) {
  const SasCase c = GetParam();
  for (int n_r = kNrMin; n_r <= kNrMax; ++n_r) {
    const turbo::SasParams p = turbo::make_sas_params(n_r, c.poly, c.prec, turbo::ExpMode::kSas);
    const SasOracle o(n_r, c.poly, c.prec);
    int64_t nonzero = 0, checked = 0;
    for (uint16_t xb : halves_below(n_r + 1)) {
      const float got = turbo::sas_eval(half_value(xb), p);
      const float want = o.eval(xb);
      ASSERT_EQ(fbits(got), fbits(want))
          << case_name(c.poly, c.prec, n_r) << " x=" << half_value(xb) << " (0x" << std::hex << xb
          << ") got " << std::hexfloat << got << " want " << want;
      if (c.prec == SasPrecision::kFp16) {
        ASSERT_EQ(turbo::round_half(got), got);
      }
      nonzero += got != 0.0f;
      ++checked;
    }
    // Every x below n_r gives a positive result (no accidental sparsity).
    EXPECT_EQ(nonzero, static_cast<int64_t>(halves_below(n_r).size()))
        << case_name(c.poly, c.prec, n_r);
    EXPECT_GT(checked, 15000);
  }
}

// (c) exactly 0 from n_r on, at +inf and at the largest FP16.
TEST_P(SasExhaustive, ZeroFromNr) {
  const SasCase c = GetParam();
  for (int n_r = kNrMin; n_r <= kNrMax; ++n_r) {
    const turbo::SasParams p = turbo::make_sas_params(n_r, c.poly, c.prec, turbo::ExpMode::kSas);
    for (uint32_t xb = 0; xb <= 0x7c00u; ++xb) {
      const float x = half_value(static_cast<uint16_t>(xb));
      if (x < static_cast<float>(n_r)) continue;
      ASSERT_EQ(fbits(turbo::sas_eval(x, p)), 0u) << case_name(c.poly, c.prec, n_r) << " x=" << x;
    }
    EXPECT_GT(turbo::sas_eval(std::nextafter(static_cast<float>(n_r), 0.0f), p), 0.0f);
    const uint16_t nr_bits = turbo::float_to_half(static_cast<float>(n_r)).bits;
    EXPECT_GT(turbo::sas_eval(half_value(static_cast<uint16_t>(nr_bits - 1)), p),
              0.0f);  // FP16 below n_r
  }
}

struct ErrRow {
  double max_abs = 0, max_rel = 0, bound_rel = 0, bound_abs = 0, approx = 0;
};
std::map<std::string, ErrRow>& err_table() {
  static std::map<std::string, ErrRow> t;
  return t;
}

// (b) within a derived bound of e^-x on [0, n_r) (n_r = 10 covers every smaller n_r).
//   SAS = fp16(LUT[k] * P^(f)) with |LUT[k] / e^-k - 1| <= u, the product rounded (rel u, plus
//   2^-25 absolute where FP16 results are subnormal), and
//   |P^(f) - e^-f| <= E_approx + sum_i |c^_i - c_i| + u * sum_{i<d} B_i  (+ 2^-25 per FP16 step),
//   B_i = sum_{j>=i} |c^_j| bounding the Horner intermediate |p_i| on f in [0, 1); e^-f >= 1/e
//   turns that into a relative error. u = 2^-11 (FP16) or 2^-24 (FP32).
TEST_P(SasExhaustive, WithinDerivedBoundOfExp) {
  const SasCase c = GetParam();
  const int n_r = kNrMax;
  const turbo::PolyDef& d = turbo::poly_def(c.poly);
  const turbo::SasParams p = turbo::make_sas_params(n_r, c.poly, c.prec, turbo::ExpMode::kSas);
  const bool h = c.prec == SasPrecision::kFp16;
  const long double u = h ? 0x1p-11L : 0x1p-24L;
  const long double sub_abs = h ? 0x1p-25L : 0.0L;
  long double coef_err = 0, horner = 0;
  for (int i = 0; i <= d.degree; ++i)
    coef_err += std::fabs(static_cast<long double>(p.c[i]) - d.c[i]);
  for (int i = 0; i < d.degree; ++i) {
    long double b = 0;
    for (int j = i; j <= d.degree; ++j) b += std::fabs(static_cast<long double>(p.c[j]));
    horner += u * b * (1 + 4 * u) + sub_abs;
  }
  const long double e_poly = approx_error(d) + coef_err + horner;
  const long double rel_poly = e_poly * std::exp(1.0L);
  const long double bound_rel = (1 + u) * (1 + u) * (1 + rel_poly) - 1;
  ErrRow row;
  row.bound_rel = static_cast<double>(bound_rel);
  row.approx = static_cast<double>(approx_error(d));
  row.bound_abs = static_cast<double>(bound_rel + sub_abs);  // e^-x <= 1
  for (uint16_t xb : halves_below(n_r)) {
    const long double x = half_value(xb);
    const long double e = std::exp(-x);
    const long double err =
        std::fabs(static_cast<long double>(turbo::sas_eval(half_value(xb), p)) - e);
    ASSERT_LE(err, e * bound_rel + sub_abs)
        << case_name(c.poly, c.prec, n_r) << " x=" << static_cast<double>(x);
    row.max_abs = std::max(row.max_abs, static_cast<double>(err));
    if (e >= 0x1p-14L) row.max_rel = std::max(row.max_rel, static_cast<double>(err / e));
  }
  EXPECT_GT(row.max_abs, 0.0);
  err_table()[param_name(::testing::TestParamInfo<SasCase>(c, 0))] = row;
}

INSTANTIATE_TEST_SUITE_P(SasExhaustive, SasExhaustive, ::testing::ValuesIn(all_cases()),
                         param_name);

// Printed once at the end: the SAS error table (x over every FP16 in [0, 10), n_r = 10).
class SasTablePrinter : public ::testing::Environment {
 public:
  void TearDown() override {
    if (err_table().empty()) return;
    std::printf(
        "\nSAS vs e^-x over every FP16 x in [0, 10) (n_r = 10; rel over e^-x >= 2^-14;\n"
        "poly_err = max |POLY(f) - e^-f| on [0, 1] with the unrounded coefficients)\n");
    std::printf("%-14s %12s %12s %12s %12s\n", "poly/prec", "poly_err", "max_abs", "max_rel",
                "bound_rel");
    for (const auto& kv : err_table())
      std::printf("%-14s %12.3e %12.3e %12.3e %12.3e\n", kv.first.c_str(), kv.second.approx,
                  kv.second.max_abs, kv.second.max_rel, kv.second.bound_rel);
    std::printf("truncation at x >= n_r drops at most e^-n_r per entry (n_r = 6: %.3e)\n",
                std::exp(-6.0));
  }
};
const auto* const kPrinter = ::testing::AddGlobalTestEnvironment(new SasTablePrinter);

// ---- exact mode and rescale -----------------------------------------------------------------

TEST(SasExactMode, IsExpfWithoutSparsity) {
  const turbo::SasParams p =
      turbo::make_sas_params(6, Poly::kLs3, SasPrecision::kFp16, turbo::ExpMode::kExact);
  for (uint16_t xb : halves_below(20)) {
    const float x = half_value(xb);
    const float got = turbo::sas_eval(x, p);
    const long double e = std::exp(-static_cast<long double>(x));
    ASSERT_LE(std::fabs(got - e), e * 0x1p-22L) << x;  // libm expf: within 2 ulp
    ASSERT_GT(got, 0.0f) << x;                         // no sparsity in exact mode
  }
}

// SPEC 5 step 3: alpha = 1 when the max did not move, 0 on the first tile (m_old = -inf),
// SAS(fp16(m_new - m_old)) otherwise (0 for a jump >= n_r).
TEST(SasRescale, Semantics) {
  for (SasPrecision prec : {SasPrecision::kFp16, SasPrecision::kFp32}) {
    for (int n_r = kNrMin; n_r <= kNrMax; ++n_r) {
      const turbo::SasParams p =
          turbo::make_sas_params(n_r, Poly::kLs3, prec, turbo::ExpMode::kSas);
      const SasOracle o(n_r, Poly::kLs3, prec);
      std::mt19937_64 rng(20 + n_r);
      for (int i = 0; i < 20000; ++i) {
        // FP16 maxima: random, with m_new >= m_old.
        float a = half_value(static_cast<uint16_t>(rng() % 0x7c00u | (rng() & 0x8000u)));
        float b = (i % 4 == 0)
                      ? a
                      : turbo::round_half(a + std::ldexp(static_cast<float>(rng() % 4096), -9));
        if (b < a) std::swap(a, b);
        const float alpha = turbo::sas_rescale(a, b, p);
        if (a == b) {
          ASSERT_EQ(alpha, 1.0f);
          continue;
        }
        const _Float16 diff = static_cast<_Float16>(static_cast<long double>(b) - a);
        const float x = static_cast<float>(diff);
        uint16_t xb;
        std::memcpy(&xb, &diff, 2);
        ASSERT_EQ(fbits(alpha), fbits(o.eval(xb))) << a << " -> " << b;
        if (x >= n_r) {
          ASSERT_EQ(alpha, 0.0f);
        }
        ASSERT_LE(alpha, 1.0f);
      }
      EXPECT_EQ(turbo::sas_rescale(-INFINITY, 3.0f, p), 0.0f);
      EXPECT_EQ(turbo::sas_rescale(-INFINITY, -65504.0f, p), 0.0f);
      EXPECT_EQ(turbo::sas_rescale(2.0f, 2.0f, p), 1.0f);
      EXPECT_EQ(turbo::sas_rescale(-3.5f, -3.5f, p), 1.0f);
      EXPECT_EQ(turbo::sas_rescale(0.0f, static_cast<float>(n_r), p), 0.0f);
      EXPECT_GT(turbo::sas_rescale(0.0f, static_cast<float>(n_r) - 0.25f, p), 0.0f);
      EXPECT_EQ(turbo::sas_rescale(-65504.0f, 65504.0f, p), 0.0f);  // the FP16 difference is inf
      // merge_factor is the same rule (SPEC 6).
      EXPECT_EQ(turbo::merge_factor(1.0f, 2.5f, p), turbo::sas_rescale(1.0f, 2.5f, p));
    }
  }
}

TEST(SasRescale, ExactMode) {
  const turbo::SasParams p =
      turbo::make_sas_params(6, Poly::kLs3, SasPrecision::kFp16, turbo::ExpMode::kExact);
  EXPECT_EQ(turbo::sas_rescale(1.0f, 1.0f, p), 1.0f);
  EXPECT_EQ(turbo::sas_rescale(-INFINITY, 1.0f, p), 0.0f);
  EXPECT_NEAR(turbo::sas_rescale(1.0f, 3.0f, p), std::exp(-2.0), 1e-7);
  EXPECT_GT(turbo::sas_rescale(0.0f, 20.0f, p), 0.0f);  // no sparsity in exact mode
}

}  // namespace

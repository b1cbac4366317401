// SAS: sparsity-based softmax approximation (SPEC section 4), host + device.
//
//   x = fp16(m - s) >= 0 (or +inf)
//   x >= n_r             -> 0                    (the sparsity; compared in FP16)
//   k = floor(x), f = x - k (exact)
//   SAS(x) = fp16(LUT[k] * POLY(f)),  LUT[k] = fp16(e^-k),
//   POLY in Horner form, one RN FP16 FMA per step.
// sas_precision = fp32 runs the same steps with FP32 tables and fmaf; exp_mode = exact returns
// FP32 expf(-x) (no sparsity; tolerance-checked only).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/fp16.h"
#include "core/macros.h"
#include "core/quant.h"

namespace turbo {

enum class Poly : int {
  kLs2 = 0,
  kLs3,
  kLs4,
  kMinimax2,
  kMinimax3,
  kMinimax4,
  kTaylor2,
  kTaylor3,
  kTaylor4,
  kSpec3,
};
constexpr int kNumPolys = 10;
enum class SasPrecision : int { kFp16 = 0, kFp32 = 1 };
enum class ExpMode : int { kSas = 0, kExact = 1 };

constexpr int kMaxPolyDegree = 4;
constexpr int kMaxNr = 16;  // LUT capacity; n_r is validated against it

// A named approximation of e^-f on f in [0, 1): c[0] + c[1] f + ... (unrounded coefficients).
// ls*:      least squares on 100 equispaced points of [0, 1] (np.linspace(0, 1, 100)).
// minimax*: Remez equioscillation of the absolute error on [0, 1].
// taylor*:  Maclaurin series of e^-f (exact at 0, worst at f -> 1).
// spec3:    SPEC 4's printed decimals 0.9996, -0.9922, 0.4626, -0.1025 taken literally.
// SPEC 4 defines the default as "the least-squares fit ... rounded to FP16" and prints the fit to
// four digits. Rounded to FP16, ls3's c0..c2 equal the printed values rounded to FP16, but c3 does
// not: fp16(-0.10252827) = -0.10253906 (0xae90) while fp16(-0.1025) = -0.10247803 (0x ae8f), one
// FP16 ulp apart. The default `ls3` follows the normative definition (the fit); `spec3` is the
// literal reading, for anyone matching another implementation that typed the decimals in.
struct PolyDef {
  const char* name;
  int degree;
  double c[kMaxPolyDegree + 1];
};

inline const PolyDef& poly_def(Poly p) {
  static const PolyDef kDefs[kNumPolys] = {
      {"ls2", 2, {0.9946652842914449, -0.9309673200067222, 0.30882760570501905, 0, 0}},
      {"ls3",
       3,
       {0.9996373981566391, -0.9921756840644499, 0.46262001468703556, -0.10252827265467747, 0}},
      {"ls4",
       4,
       {0.9999809028110319, -0.9993715166609393, 0.49538210761223744, -0.15366079331210156,
        0.025566260328712176}},
      {"minimax2", 2, {0.9967788394776912, -0.9369142553116102, 0.31123601752767016, 0, 0}},
      {"minimax3",
       3,
       {0.9997995823809986, -0.9932516162651475, 0.4641286517693877, -0.10299759433279797, 0}},
      {"minimax4",
       4,
       {0.999990007504528, -0.9994830981720726, 0.4957031523086693, -0.15396347835881793,
        0.025642850384607556}},
      {"taylor2", 2, {1.0, -1.0, 0.5, 0, 0}},
      {"taylor3", 3, {1.0, -1.0, 0.5, -1.0 / 6.0, 0}},
      {"taylor4", 4, {1.0, -1.0, 0.5, -1.0 / 6.0, 1.0 / 24.0}},
      {"spec3", 3, {0.9996, -0.9922, 0.4626, -0.1025, 0}},
  };
  return kDefs[static_cast<int>(p)];
}

// Everything a SAS evaluation needs, as a POD passed by value to kernels. Built on the host by
// make_sas_params(); coefficients and LUT are already rounded to the working precision.
struct SasParams {
  int n_r;
  int degree;
  SasPrecision precision;
  ExpMode exp_mode;
  float c[kMaxPolyDegree + 1];
  float lut[kMaxNr];
};

inline SasParams make_sas_params(int n_r, Poly poly, SasPrecision precision, ExpMode exp_mode) {
  SasParams p{};
  p.n_r = n_r;
  p.precision = precision;
  p.exp_mode = exp_mode;
  const PolyDef& d = poly_def(poly);
  p.degree = d.degree;
  for (int i = 0; i <= kMaxPolyDegree; ++i) {
    p.c[i] = precision == SasPrecision::kFp16 ? round_half(d.c[i]) : static_cast<float>(d.c[i]);
  }
  for (int k = 0; k < kMaxNr; ++k) {
    const double e = std::exp(-static_cast<double>(k));
    p.lut[k] = precision == SasPrecision::kFp16 ? round_half(e) : static_cast<float>(e);
  }
  return p;
}

TURBO_HD float exp_neg_f32(float x) {
#if TURBO_ON_DEVICE
  return expf(-x);
#else
  return std::exp(-x);
#endif
}

// SAS(x) for an FP16 value x >= 0 (carried in a float). Returns an FP16 value (fp16 precision)
// or an FP32 value (fp32 precision / exact mode).
TURBO_HD float sas_eval(float x, const SasParams& p) {
  if (p.exp_mode == ExpMode::kExact) return exp_neg_f32(x);
  if (!(x < static_cast<float>(p.n_r))) return 0.0f;  // x >= n_r, includes +inf
  const int k = static_cast<int>(x);                  // floor for x >= 0
  const float f = x - static_cast<float>(k);          // exact
  float acc = p.c[p.degree];
  if (p.precision == SasPrecision::kFp16) {
    for (int i = p.degree - 1; i >= 0; --i) acc = fma16(acc, f, p.c[i]);
    return mul16(p.lut[k], acc);
  }
  for (int i = p.degree - 1; i >= 0; --i) acc = fmaf_rn(acc, f, p.c[i]);
  return p.lut[k] * acc;
}

// The rescale factor of SPEC 5 step 3: 1 when the max did not move, 0 on the first tile (m_old =
// -inf), otherwise SAS(fp16(m_new - m_old)) (exact mode: expf(m_old - m_new)).
TURBO_HD float sas_rescale(float m_old, float m_new, const SasParams& p) {
  if (m_new == m_old) return 1.0f;
  if (m_old == -INFINITY) return 0.0f;
  if (p.exp_mode == ExpMode::kExact) return exp_neg_f32(m_new - m_old);
  return sas_eval(sub16(m_new, m_old), p);
}

}  // namespace turbo

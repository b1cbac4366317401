// FlashQ attention per-element steps (SPEC section 5), host + device. The reference loops and
// the kernels call these in the same order, so their results agree bit for bit.
#pragma once

#include <cstdint>

#include "core/fp16.h"
#include "core/macros.h"
#include "core/quant.h"
#include "core/sas.h"

namespace turbo {

enum class PQuant : int { kU8 = 0, kS8 = 1, kU8Row = 2, kFp16 = 3 };

// c = (s_Q * s_K) * tau, FP32 in that order.
TURBO_HD float score_scale(float s_q, float s_k, float tau) { return (s_q * s_k) * tau; }

// S = fp16(clamp((float)acc * c, -65504, 65504)): saturating, so S is always finite (c is a
// finite product of scales). Split in two steps for kernels that round two scores with one packed
// convert: `score_clamped` takes (float)acc, converted exactly by any means.
TURBO_HD float score_clamped(float acc, float c) {
  const float v = acc * c;
  return minf(maxf(v, -kHalfMax), kHalfMax);
}
TURBO_HD float score_fp16(int32_t acc, float c) {
  return round_half(score_clamped(static_cast<float>(acc), c));
}

// Per-row P quantization parameters of one tile. `row_max` is only read for kU8Row.
struct PScale {
  float s_p;  // dequant scale of the P codes
  float inv;  // multiplier applied to P before rint
  int max_code;
};

TURBO_HD PScale p_scale(PQuant mode, float row_max) {
  PScale r;
  switch (mode) {
    case PQuant::kS8:
      r.s_p = 1.0f / 127.0f;
      r.inv = 127.0f;
      r.max_code = 127;
      break;
    case PQuant::kU8Row:
      r.s_p = row_max / 255.0f;
      r.inv = r.s_p == 0.0f ? 0.0f : 1.0f / r.s_p;
      r.max_code = 255;
      break;
    case PQuant::kU8:
    case PQuant::kFp16:  // unused for fp16, which keeps P as is
    default:
      r.s_p = 1.0f / 255.0f;
      r.inv = 255.0f;
      r.max_code = 255;
      break;
  }
  return r;
}

// P8 = min(max_code, rint(P * inv)); P >= 0 so no lower clamp is needed.
TURBO_HD int p_code(float p, const PScale& s) {
  float v = p * s.inv;
  v = minf(v, static_cast<float>(s.max_code));
  return rint_to_int(v);
}

// The P code as a function of x = fp16(m_new - s) alone (SPEC 5 steps 3-4): for p_quant u8 and s8
// the PScale does not depend on the row, and at sas_precision fp16 / exp_mode sas SAS(x) depends
// only on the 16 bits of x and is 0 for x >= n_r. So a kernel may replace SAS, the scaling and the
// rint of every score by one lookup `table[p_code_table_index(bits(x), count)]` of a table filled
// by `fill_p_code_table` (count + 1 entries, the last 0): core's exhaustive test checks the lookup
// against p_code(sas_eval(x), p_scale(mode, .)) for every FP16 x >= 0 (and -0 and NaN, which
// sas_eval also maps like +0 and like x >= n_r).
TURBO_HD bool p_code_table_applies(const SasParams& p, PQuant mode) {
  return p.precision == SasPrecision::kFp16 && p.exp_mode == ExpMode::kSas &&
         (mode == PQuant::kU8 || mode == PQuant::kS8);
}
// Entries for x < n_r: bits(fp16(n_r)), since FP16 x >= 0 orders as its bits.
inline int p_code_table_count(const SasParams& p) {
  return float_to_half(static_cast<float>(p.n_r)).bits;
}
TURBO_HD int p_code_table_index(uint16_t x_bits, int count) {
  const int b = x_bits & 0x7fff;  // -0 -> +0; NaN stays above count
  return b < count ? b : count;
}
TURBO_HD int p_code_of_x(float x, const SasParams& p, PQuant mode) {
  return p_code(sas_eval(x, p), p_scale(mode, 0.0f));
}
// table[0 .. count]: the code of x = the FP16 value with bits i, and table[count] = 0.
inline void fill_p_code_table(const SasParams& p, PQuant mode, uint8_t* table) {
  const int count = p_code_table_count(p);
  for (int i = 0; i < count; ++i)
    table[i] =
        static_cast<uint8_t>(p_code_of_x(half_to_float(Half{static_cast<uint16_t>(i)}), p, mode));
  table[count] = 0;
}

// l = fma(l, alpha, (float)sum_j(P8) * s_P)
TURBO_HD float update_rowsum(float l, float alpha, int32_t sum_p8, float s_p) {
  return fmaf_rn(l, alpha, static_cast<float>(sum_p8) * s_p);
}

// O[d] = fma(O[d], alpha, (float)accPV[d] * (s_P * s_V)). `update_output_f` takes (float)accPV,
// converted exactly by any means (small_int_to_float in the kernels).
TURBO_HD float update_output_f(float o, float alpha, float acc_pv, float s_pv) {
  return fmaf_rn(o, alpha, acc_pv * s_pv);
}
TURBO_HD float update_output(float o, float alpha, int32_t acc_pv, float s_pv) {
  return update_output_f(o, alpha, static_cast<float>(acc_pv), s_pv);
}

// Final normalisation: fp16(O[d] / l).
TURBO_HD float finalize_output(float o, float l) { return round_half(o / l); }

// Split-K merge of one run (SPEC 6): in order s = 0 .. S-1 from l = 0, O = 0, with m = max_s m_s
// already known: a_s = 1 if m_s == m else SAS(fp16(m - m_s)); l = fma(l_s, a_s, l).
TURBO_HD float merge_factor(float m_s, float m, const SasParams& p) {
  return sas_rescale(m_s, m, p);
}

}  // namespace turbo

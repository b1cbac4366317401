// Tests of the exact rewrites in core/flashq.h and core/quant.h that the kernels use in place of
// the scalar recipe: the P-code table (one lookup for SAS, the P scaling and the rint of a score)
// and the int -> float conversion by the magic number. Both are checked exhaustively on their
// whole domain against the scalar recipe, which the reference backend runs.
#include "core/flashq.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace turbo {
namespace {

TEST(SmallIntToFloat, ExactOnTheWholeRange) {
  int64_t bad = 0;
  for (int32_t v = -kSmallIntLimit; v <= kSmallIntLimit; ++v)
    bad += small_int_to_float(v) != static_cast<float>(v);
  EXPECT_EQ(bad, 0);
  // The bound is tight: one past it the sum leaves the 2^23 binade and is rounded.
  EXPECT_NE(small_int_to_float(kSmallIntLimit + 1), static_cast<float>(kSmallIntLimit + 1));
}

TEST(ScoreSteps, SplitEqualsTheOneStepRecipe) {
  // score_fp16 is round_half(score_clamped((float)acc, c)); spot-check the clamp at both ends.
  EXPECT_EQ(score_fp16(1 << 20, 1.0f), kHalfMax);
  EXPECT_EQ(score_fp16(-(1 << 20), 1.0f), -kHalfMax);
  EXPECT_EQ(score_clamped(small_int_to_float(-3), 0.5f), -1.5f);
}

// Every FP16 x that the kernels can form as fp16(m_new - s) (x >= 0, -0, +inf, NaN from a fully
// masked row), every polynomial, every n_r and both row-independent P quantizations.
TEST(PCodeTable, LookupEqualsScalarRecipeOnEveryFp16Input) {
  int64_t checked = 0, bad = 0;
  for (int pi = 0; pi < kNumPolys; ++pi)
    for (int n_r = 1; n_r < kMaxNr; ++n_r)
      for (PQuant mode : {PQuant::kU8, PQuant::kS8}) {
        const SasParams p =
            make_sas_params(n_r, static_cast<Poly>(pi), SasPrecision::kFp16, ExpMode::kSas);
        ASSERT_TRUE(p_code_table_applies(p, mode));
        const int count = p_code_table_count(p);
        std::vector<uint8_t> table(static_cast<size_t>(count) + 1, 0xAA);
        fill_p_code_table(p, mode, table.data());
        const PScale ps = p_scale(mode, 0.0f);
        for (uint32_t b = 0; b < 0x10000u; ++b) {
          const float x = half_to_float(Half{static_cast<uint16_t>(b)});
          if (x < 0.0f) continue;  // m_new >= s: never formed
          const int want = std::isnan(x) ? 0 : p_code(sas_eval(x, p), ps);
          const int got = table[p_code_table_index(static_cast<uint16_t>(b), count)];
          bad += got != want;
          ++checked;
        }
        // x = 0: SAS(0) = LUT[0] * c0 = fp16(c0); x >= n_r: 0.
        EXPECT_EQ(table[0], static_cast<int>(std::nearbyint(static_cast<double>(p.c[0]) * ps.inv)))
            << "poly " << pi << " n_r " << n_r;
        EXPECT_EQ(table[count], 0);
      }
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(checked, int64_t{kNumPolys} * (kMaxNr - 1) * 2 * (0x8000 + 1 + 0x3ff));
}

TEST(PCodeTable, AppliesOnlyWhereTheCodeIsAFunctionOfX) {
  const SasParams fp16 = make_sas_params(6, Poly::kLs3, SasPrecision::kFp16, ExpMode::kSas);
  EXPECT_FALSE(p_code_table_applies(fp16, PQuant::kU8Row));  // scale from the row's max P
  EXPECT_FALSE(p_code_table_applies(fp16, PQuant::kFp16));
  EXPECT_FALSE(p_code_table_applies(
      make_sas_params(6, Poly::kLs3, SasPrecision::kFp32, ExpMode::kSas), PQuant::kU8));
  EXPECT_FALSE(p_code_table_applies(
      make_sas_params(6, Poly::kLs3, SasPrecision::kFp16, ExpMode::kExact), PQuant::kU8));
  EXPECT_EQ(p_code_table_count(fp16), 0x4600);  // bits of FP16 6.0
}

}  // namespace
}  // namespace turbo

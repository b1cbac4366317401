// core/sas_stats.h against sums worked out by hand in FP64.
#include "core/sas_stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace turbo {
namespace {

TEST(SasStats, TileCountsZeroedAndWipedEntries) {
  SasRunStats st;
  // Tile 1: max 0; the entry at -10 was zeroed by SAS.
  const float s1[] = {0.0f, -10.0f, -1.0f}, p1[] = {1.0f, 0.0f, 0.25f};
  sas_stats_tile(st, -INFINITY, 0.0f, 0.0f, s1, p1, 3, false);
  EXPECT_EQ(st.scored, 3);
  EXPECT_EQ(st.zeroed, 1);
  EXPECT_EQ(st.alive_count, 2);
  EXPECT_DOUBLE_EQ(st.alive_mass, 1.0 + std::exp(-1.0));
  EXPECT_DOUBLE_EQ(st.dropped_mass, std::exp(-10.0));
  const SasRowStats r1 = sas_row_stats(st);
  EXPECT_DOUBLE_EQ(r1.dropped, std::exp(-10.0) / (1.0 + std::exp(-1.0) + std::exp(-10.0)));
  // With exp_mode = exact nothing counts as zeroed by SAS.
  SasRunStats ex;
  sas_stats_tile(ex, -INFINITY, 0.0f, 0.0f, s1, p1, 3, true);
  EXPECT_EQ(ex.zeroed, 0);
  EXPECT_EQ(ex.dropped_mass, 0.0);

  // Tile 2: the max jumps to 8 and alpha = 0 wipes everything before; masses rescale to the new
  // max first.
  const float s2[] = {8.0f}, p2[] = {1.0f};
  sas_stats_tile(st, 0.0f, 8.0f, 0.0f, s2, p2, 1, false);
  EXPECT_EQ(st.max, 8.0);
  EXPECT_EQ(st.scored, 4);
  EXPECT_EQ(st.zeroed, 3);
  EXPECT_EQ(st.alive_count, 1);
  EXPECT_DOUBLE_EQ(st.alive_mass, 1.0);
  EXPECT_DOUBLE_EQ(st.dropped_mass,
                   (1.0 + std::exp(-1.0)) * std::exp(-8.0) + std::exp(-10.0) * std::exp(-8.0));
}

TEST(SasStats, MergeRescalesRunsAndDropsRunsMergedWithZero) {
  SasRunStats a, b, empty;
  const float sa[] = {0.0f}, pa[] = {1.0f}, sb[] = {2.0f, -7.0f}, pb[] = {1.0f, 0.0f};
  sas_stats_tile(a, -INFINITY, 0.0f, 0.0f, sa, pa, 1, false);
  sas_stats_tile(b, -INFINITY, 2.0f, 0.0f, sb, pb, 2, false);
  const SasRunStats runs[] = {a, empty, b};
  const float keep[] = {0.5f, 0.0f, 1.0f};
  const SasRowStats r = sas_merge_runs(runs, keep, 3);
  const double alive = std::exp(-2.0) + 1.0, dropped = std::exp(-9.0);
  EXPECT_EQ(r.scored, 3);
  EXPECT_EQ(r.zeroed, 1);
  EXPECT_DOUBLE_EQ(r.dropped, dropped / (alive + dropped));
  // Run a merged with factor 0: its alive entry is dropped too.
  const float wipe_a[] = {0.0f, 0.0f, 1.0f};
  const SasRowStats w = sas_merge_runs(runs, wipe_a, 3);
  EXPECT_EQ(w.zeroed, 2);
  EXPECT_DOUBLE_EQ(w.dropped, (std::exp(-2.0) + dropped) / (alive + dropped));
  // Nothing scored: no mass, no share.
  const SasRowStats none = sas_merge_runs(&empty, keep, 1);
  EXPECT_EQ(none.dropped, 0.0);
  EXPECT_EQ(none.scored, 0);
}

}  // namespace
}  // namespace turbo

// core/sas_stats.h: the SAS statistics bookkeeping on hand-worked rows (SPEC 9).
#include "core/sas_stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace {

using turbo::SasRunStats;

// Tile 1 (first tile, max 0): scores 0 and -1 kept, -20 zeroed by SAS. Tile 2: max 10, a jump
// past n_r so alpha = 0 wipes the two kept entries; its one entry (10) is kept.
TEST(SasStats, TileBookkeepingByHand) {
  SasRunStats st = turbo::sas_stats_init();
  double tmax = turbo::sas_stats_tile_begin(st, 0.0f, -INFINITY, 0.0f);
  EXPECT_EQ(tmax, 0.0);
  turbo::sas_stats_entry(st, 0.0f, tmax, false);
  turbo::sas_stats_entry(st, -1.0f, tmax, false);
  turbo::sas_stats_entry(st, -20.0f, tmax, true);
  EXPECT_EQ(st.zeroed, 1);  // the first tile's alpha = 0 wipes nothing (m_old = -inf)
  EXPECT_EQ(st.alive_count, 2);
  tmax = turbo::sas_stats_tile_begin(st, 10.0f, 0.0f, 0.0f);
  EXPECT_EQ(tmax, 10.0);
  turbo::sas_stats_entry(st, 10.0f, tmax, false);
  EXPECT_EQ(st.stat_max, 10.0);
  EXPECT_EQ(st.scored, 4);
  EXPECT_EQ(st.zeroed, 3);
  EXPECT_EQ(st.alive_count, 1);
  EXPECT_DOUBLE_EQ(st.alive_mass, 1.0);
  const double dropped =
      std::exp(-20.0) * std::exp(-10.0) + (1.0 + std::exp(-1.0)) * std::exp(-10.0);
  EXPECT_NEAR(st.dropped_mass, dropped, 1e-15 * dropped);
  EXPECT_NEAR(turbo::sas_stats_dropped_fraction(st.alive_mass, st.dropped_mass),
              dropped / (1.0 + dropped), 1e-15);
}

// A tile whose max did not move (alpha = 1) keeps the masses; one with a lower max keeps the
// reference max.
TEST(SasStats, NoMoveKeepsMasses) {
  SasRunStats st = turbo::sas_stats_init();
  double tmax = turbo::sas_stats_tile_begin(st, 2.0f, -INFINITY, 0.0f);
  turbo::sas_stats_entry(st, 2.0f, tmax, false);
  tmax = turbo::sas_stats_tile_begin(st, 1.0f, 2.0f, 1.0f);
  EXPECT_EQ(tmax, 2.0);
  turbo::sas_stats_entry(st, 1.0f, tmax, false);
  EXPECT_DOUBLE_EQ(st.alive_mass, 1.0 + std::exp(-1.0));
  EXPECT_EQ(st.dropped_mass, 0.0);
  EXPECT_EQ(turbo::sas_stats_dropped_fraction(0.0, 0.0), 0.0);  // a row with no entry
}

// Merge of three runs: one empty, one wiped by its factor a = 0, one kept.
TEST(SasStats, MergeByHand) {
  SasRunStats empty = turbo::sas_stats_init();
  SasRunStats low{1.0, 2.0, 0.5, 3, 4, 1};
  SasRunStats high{5.0, 1.5, 0.25, 2, 3, 1};
  turbo::SasStatsTotal t;
  turbo::sas_stats_merge_run(t, empty, 5.0, 0.0f);
  turbo::sas_stats_merge_run(t, low, 5.0, 0.0f);
  turbo::sas_stats_merge_run(t, high, 5.0, 1.0f);
  const double f = std::exp(-4.0);
  EXPECT_DOUBLE_EQ(t.alive, 1.5);
  EXPECT_DOUBLE_EQ(t.dropped, 0.5 * f + 2.0 * f + 0.25);
  EXPECT_EQ(t.scored, 7);
  EXPECT_EQ(t.zeroed, 1 + 3 + 1);
}

}  // namespace

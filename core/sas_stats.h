// SAS statistics of one query row (SPEC 9: the fraction of scored entries SAS zeroes, and the
// probability mass it drops), written once for the reference (reference/flashq.cpp) and the rows
// kernel (cuda/flashq_rows.cu). Masses are FP64 sums of exp(S - stat_max) of the method's own
// FP16 scores S, kept relative to the largest score seen so far; `exp` is libm on the host and
// CUDA's on the device, so the two agree to about 1e-15 relative, not bit for bit (tested at 1e-9).
#pragma once

#include <cmath>

#include "core/macros.h"

namespace turbo {

// One row over one run of tiles (SPEC 6: a split-K run, or the whole row).
struct SasRunStats {
  double stat_max;        // largest score of the run; -inf before its first tile
  double alive_mass;      // entries SAS kept, relative to stat_max
  double dropped_mass;    // entries SAS zeroed or a rescale factor of 0 wiped
  long long alive_count;  // entries behind alive_mass
  long long scored;       // entries scored
  long long zeroed;       // entries zeroed or wiped
};

TURBO_HD SasRunStats sas_stats_init() { return SasRunStats{-INFINITY, 0.0, 0.0, 0, 0, 0}; }

TURBO_HD double exp_f64(double x) {
#if TURBO_ON_DEVICE
  return ::exp(x);
#else
  return std::exp(x);
#endif
}

// Start of a tile whose largest score is m_tile, after SPEC 5 step 3 gave alpha for the move of
// the row max from m_old: both masses move to the new reference max, and when alpha == 0 wiped
// the row's earlier entries (not on the first tile, m_old = -inf) they count as dropped. Returns
// the reference max of this tile's entries.
TURBO_HD double sas_stats_tile_begin(SasRunStats& st, float m_tile, float m_old, float alpha) {
  const double new_max = st.stat_max > m_tile ? st.stat_max : static_cast<double>(m_tile);
  if (new_max > st.stat_max && st.stat_max != -INFINITY) {
    const double f = exp_f64(st.stat_max - new_max);
    st.alive_mass *= f;
    st.dropped_mass *= f;
  }
  st.stat_max = new_max;
  if (alpha == 0.0f && m_old != -INFINITY) {
    st.dropped_mass += st.alive_mass;
    st.zeroed += st.alive_count;
    st.alive_mass = 0.0;
    st.alive_count = 0;
  }
  return new_max;
}

// One scored entry S of the tile (in the tile's order), `zeroed` when SAS gave it P = 0.
TURBO_HD void sas_stats_entry(SasRunStats& st, float s, double tile_max, bool zeroed) {
  const double e = exp_f64(static_cast<double>(s) - tile_max);
  if (zeroed) {
    st.dropped_mass += e;
    ++st.zeroed;
  } else {
    st.alive_mass += e;
    ++st.alive_count;
  }
  ++st.scored;
}

// The SPEC 6 merge of a row's runs, in run order: `smax` is the largest stat_max of the runs and
// `a` the run's merge factor (its alive entries are wiped when a == 0).
struct SasStatsTotal {
  double alive = 0.0, dropped = 0.0;
  long long scored = 0, zeroed = 0;
};

TURBO_HD void sas_stats_merge_run(SasStatsTotal& t, const SasRunStats& r, double smax, float a) {
  if (r.stat_max != -INFINITY) {
    const double f = exp_f64(r.stat_max - smax);
    t.dropped += r.dropped_mass * f;
    if (a == 0.0f) {
      t.dropped += r.alive_mass * f;
      t.zeroed += r.alive_count;
    } else {
      t.alive += r.alive_mass * f;
    }
  }
  t.scored += r.scored;
  t.zeroed += r.zeroed;
}

// The row's dropped probability mass: dropped / (alive + dropped), 0 for a row with no entry.
TURBO_HD double sas_stats_dropped_fraction(double alive, double dropped) {
  const double total = alive + dropped;
  return total > 0.0 ? dropped / total : 0.0;
}

}  // namespace turbo

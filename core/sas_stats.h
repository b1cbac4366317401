// SAS statistics of one query row (SPEC 9: sparsity and dropped probability mass), kept beside the
// online softmax of SPEC 5 and merged across split-K runs as SPEC 6 merges the outputs. Written
// once here for the reference (reference/flashq.cpp) and the row kernel (cuda/flashq_rows.cu).
//
// Masses are FP64 sums of exp(S - max) over the method's own FP16 scores S, relative to the
// running max of S: entries SAS zeroed (x >= n_r), and earlier entries wiped by a rescale factor
// of 0, count as dropped; the rest as alive. Counts are exact integers; the masses use FP64 exp
// (libm on the host, CUDA's on the device) and are compared within a tolerance, not bit for bit.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/macros.h"

namespace turbo {

struct SasRunStats {
  double max = -INFINITY;  // running max of S (the FP16 scores, widened exactly)
  double alive_mass = 0.0;
  double dropped_mass = 0.0;
  int64_t alive_count = 0;
  int64_t scored = 0;  // unmasked entries seen
  int64_t zeroed = 0;  // entries dropped (zeroed by SAS or wiped by alpha = 0)
};

// One tile of n unmasked scores s[j] with SAS outputs p[j]: m_old is the softmax max before the
// tile, m_tile the tile's own max, alpha the tile's rescale factor (SPEC 5 step 3). With
// exp_mode = exact (`exact`) no entry counts as zeroed by SAS.
TURBO_HD void sas_stats_tile(SasRunStats& st, float m_old, float m_tile, float alpha,
                             const float* s, const float* p, int n, bool exact) {
  const double new_max = fmax(st.max, static_cast<double>(m_tile));
  if (new_max > st.max && st.max != -INFINITY) {
    const double f = exp(st.max - new_max);
    st.alive_mass *= f;
    st.dropped_mass *= f;
  }
  st.max = new_max;
  if (alpha == 0.0f && m_old != -INFINITY) {
    st.dropped_mass += st.alive_mass;
    st.zeroed += st.alive_count;
    st.alive_mass = 0.0;
    st.alive_count = 0;
  }
  for (int j = 0; j < n; ++j) {
    const double e = exp(static_cast<double>(s[j]) - new_max);
    if (!exact && p[j] == 0.0f) {
      st.dropped_mass += e;
      ++st.zeroed;
    } else {
      st.alive_mass += e;
      ++st.alive_count;
    }
  }
  st.scored += n;
}

// What a row adds to AttentionStats: the dropped share of the mass, scored and zeroed entries.
struct SasRowStats {
  double dropped = 0.0;  // dropped / (alive + dropped), 0 when nothing was scored
  int64_t scored = 0;
  int64_t zeroed = 0;
};

TURBO_HD SasRowStats sas_row_stats(double alive, double dropped, int64_t scored, int64_t zeroed) {
  const double total = alive + dropped;
  return SasRowStats{total > 0.0 ? dropped / total : 0.0, scored, zeroed};
}

TURBO_HD SasRowStats sas_row_stats(const SasRunStats& st) {
  return sas_row_stats(st.alive_mass, st.dropped_mass, st.scored, st.zeroed);
}

// Split-K (SPEC 6): runs s = 0 .. S-1 with their merge factors a[s]; a run merged with factor 0
// has all its alive entries dropped.
TURBO_HD SasRowStats sas_merge_runs(const SasRunStats* runs, const float* a, int S) {
  double smax = -INFINITY;
  for (int s = 0; s < S; ++s) smax = fmax(smax, runs[s].max);
  double alive = 0.0, dropped = 0.0;
  int64_t scored = 0, zeroed = 0;
  for (int s = 0; s < S; ++s) {
    const SasRunStats& r = runs[s];
    if (r.max != -INFINITY) {
      const double f = exp(r.max - smax);
      dropped += r.dropped_mass * f;
      if (a[s] == 0.0f) {
        dropped += r.alive_mass * f;
        zeroed += r.alive_count;
      } else {
        alive += r.alive_mass * f;
      }
    }
    scored += r.scored;
    zeroed += r.zeroed;
  }
  return sas_row_stats(alive, dropped, scored, zeroed);
}

}  // namespace turbo

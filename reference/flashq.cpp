// FlashQ reference: SPEC 1, 2, 5 and 6 on the CPU, bit-exact by construction.
//
// Every float step is a core/ function called in SPEC order; every sum inside a tile is an
// integer sum. OpenMP parallelises over rows and (batch, head) pairs only, so the result does not
// depend on the thread count.
//
// Readings of SPEC that the text leaves open (documented in README "Numerics contract"):
//  - V with a per-token stage-1 scale (kv_gran = token, or the int8 residual buffer) cannot
//    factor s_V out of the int32 P8.V8 sum. Then, per channel and in token order,
//    pv = fma((float)(P8_j * V8_jd), s_Vj, pv) from pv = 0, and O = fma(O, alpha, pv * s_P).
//  - p_quant = fp16 keeps P as computed: l = fma(l, alpha, sum_j P_j) with a sequential FP32 sum,
//    pv = sum_j fma(P_j, V8_jd * s_Vj, pv); tolerance-checked only.
//  - exp_mode = exact uses x = m_new - S in FP32 (no FP16 rounding of the distance).
//  - Prefill always runs K/V at stage 1 (INT8), as in the paper; kv_bits shapes the decode cache.
//  - k_smooth = mean in decode: the mean is fixed by the first cache_append (the prompt).
//  - buffer = int8: a full buffer is compressed by re-running stage 1 per block on the
//    dequantized per-token values (the FP16 rows are not kept).
// Design-space knobs of the decode cache (the paper is silent on each; prefill ignores them):
//  - s2_step = float: stage 2 with the fractional step (core/quant.h stage2f_*).
//  - kv_scale = token: a block carries one stage-1 scale per token (K and V), and the buffer tile
//    is quantized per token too.
//  - sink = N: the first N tokens are kept in FP16 and never compressed; at attention they form
//    the first tile, quantized per token at stage 1. Blocks then start at token N.
//  - window = W: a block is compressed only when W newer tokens follow it, so the FP16 buffer holds
//    W .. W + n_b - 1 tokens (all of them while the cache is shorter); with W > 0 the buffer tile
//    is quantized per token at attention.
#include "reference/flashq.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/flashq.h"
#include "core/kv_cache.h"
#include "core/quant.h"
#include "core/sas.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace turbo {
namespace ref {

void stage1_rows(const float* x, int64_t n, int d, int64_t group_rows, int8_t* codes,
                 float* scales) {
  if (group_rows < 1) group_rows = 1;
  for (int64_t g0 = 0, gi = 0; g0 < n; g0 += group_rows, ++gi) {
    const int64_t g1 = std::min(n, g0 + group_rows);
    float amax = 0.0f;
    for (int64_t i = g0 * d; i < g1 * d; ++i) amax = maxf(amax, absf(x[i]));
    const Stage1Scale s = stage1_scale(amax);
    scales[gi] = s.scale;
    for (int64_t i = g0 * d; i < g1 * d; ++i) codes[i] = stage1_code(x[i], s.inv);
  }
}

void channel_mean(const ConstHalfTensor& k, int64_t b, int64_t h, int64_t t0, int64_t t1,
                  float* mean) {
  const int64_t d = k.dim();
  const int64_t n = t1 - t0;
  for (int64_t c = 0; c < d; ++c) {
    int64_t sum = 0;  // k * 2^24 is an integer for every FP16 k: the sum is exact
    for (int64_t t = t0; t < t1; ++t) {
      sum += static_cast<int64_t>(
          std::ldexp(static_cast<double>(half_to_float(k.row(b, h, t)[c])), 24));
    }
    mean[c] =
        n > 0
            ? static_cast<float>(std::ldexp(static_cast<double>(sum), -24) / static_cast<double>(n))
            : 0.0f;
  }
}

void compress_block_ref(const int8_t* q, const BlockLayout& L, uint8_t* block) {
  if (L.bits == 8) {
    std::memcpy(block, q, static_cast<size_t>(L.elements()));
    return;
  }
  const int64_t groups = L.groups();
  std::vector<int> lo(static_cast<size_t>(groups), 127), hi(static_cast<size_t>(groups), -127);
  for (int t = 0; t < L.n_b; ++t)
    for (int c = 0; c < L.d; ++c) {
      const int64_t g = L.group_of(t, c);
      const int v = q[static_cast<int64_t>(t) * L.d + c];
      lo[g] = std::min(lo[g], v);
      hi[g] = std::max(hi[g], v);
    }
  uint8_t* s2 = block + L.s2_offset();
  int8_t* z = reinterpret_cast<int8_t*>(block + L.z_offset());
  for (int64_t g = 0; g < groups; ++g) {
    const Stage2Params p = L.params(lo[g], hi[g]);
    s2[g] = p.s2;
    z[g] = p.z;
  }
  std::memset(block, 0, static_cast<size_t>(L.code_bytes()));
  for (int t = 0; t < L.n_b; ++t)
    for (int c = 0; c < L.d; ++c) {
      const int64_t g = L.group_of(t, c);
      const int64_t i = static_cast<int64_t>(t) * L.d + c;
      pack_code(block, i, L.code(q[i], Stage2Params{s2[g], z[g]}), L.bits);
    }
}

void decompress_block_ref(const uint8_t* block, const BlockLayout& L, int8_t* q) {
  if (L.bits == 8) {
    std::memcpy(q, block, static_cast<size_t>(L.elements()));
    return;
  }
  const uint8_t* s2 = block + L.s2_offset();
  const int8_t* z = reinterpret_cast<const int8_t*>(block + L.z_offset());
  for (int t = 0; t < L.n_b; ++t)
    for (int c = 0; c < L.d; ++c) {
      const int64_t g = L.group_of(t, c);
      const int64_t i = static_cast<int64_t>(t) * L.d + c;
      q[i] = L.dequant(unpack_code(block, i, L.bits), Stage2Params{s2[g], z[g]});
    }
}

// ---- one row over one tile (SPEC 5 steps 1-5) ---------------------------------------------

void process_tile(RowState& st, const RowParams& rp, const KvTileView& t, const SasParams& sas,
                  TileScratch& sc) {
  int n = t.n;
  if (rp.causal) {
    const int64_t visible = rp.pos - t.pos0 + 1;
    if (visible <= 0) return;  // fully masked: skipped, not given a value
    if (visible < n) n = static_cast<int>(visible);
  }
  const int d = rp.d;
  sc.s.resize(static_cast<size_t>(n));
  sc.p.resize(static_cast<size_t>(n));
  sc.p8.resize(static_cast<size_t>(n));
  sc.acc.resize(static_cast<size_t>(d));
  sc.pv.resize(static_cast<size_t>(d));
  float* s = sc.s.data();
  float* p = sc.p.data();

  // 1. S = fp16(clamp((float)(Q8 . K8) * ((s_Q * s_K) * tau)))
  float m_tile = -INFINITY;
  for (int j = 0; j < n; ++j) {
    const int8_t* kj = t.k + static_cast<int64_t>(j) * d;
    int32_t acc = 0;
    for (int c = 0; c < d; ++c) acc += static_cast<int32_t>(rp.q[c]) * static_cast<int32_t>(kj[c]);
    const float sk = t.k_per_token ? t.k_scale[j] : t.k_scale[0];
    s[j] = score_fp16(acc, score_scale(rp.q_scale, sk, rp.tau));
    m_tile = maxf(m_tile, s[j]);
  }

  // 2. m_new, x = fp16(m_new - S), P = SAS(x)
  const float m_old = st.m;
  const float m_new = maxf(m_old, m_tile);
  const bool exact = sas.exp_mode == ExpMode::kExact;
  float p_max = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float x = exact ? m_new - s[j] : sub16(m_new, s[j]);
    p[j] = sas_eval(x, sas);
    p_max = maxf(p_max, p[j]);
  }

  // 3. alpha
  const float alpha = sas_rescale(m_old, m_new, sas);

  if (rp.want_stats) {  // stats: the core bookkeeping, entries in tile order
    const double tile_max = sas_stats_tile_begin(st.stats, m_tile, m_old, alpha);
    for (int j = 0; j < n; ++j) sas_stats_entry(st.stats, s[j], tile_max, !exact && p[j] == 0.0f);
  }

  float* pv = sc.pv.data();
  if (rp.p_quant == PQuant::kFp16) {
    float psum = 0.0f;
    for (int j = 0; j < n; ++j) psum += p[j];
    st.l = fmaf_rn(st.l, alpha, psum);
    std::fill(pv, pv + d, 0.0f);
    for (int j = 0; j < n; ++j) {
      const int8_t* vj = t.v + static_cast<int64_t>(j) * d;
      const float sv = t.v_per_token ? t.v_scale[j] : t.v_scale[0];
      for (int c = 0; c < d; ++c) pv[c] = fmaf_rn(p[j], static_cast<float>(vj[c]) * sv, pv[c]);
    }
    for (int c = 0; c < d; ++c) st.o[c] = fmaf_rn(st.o[c], alpha, pv[c]);
    st.m = m_new;
    return;
  }

  // 4. P8 codes; 5. l and O updates with integer sums
  const PScale ps = p_scale(rp.p_quant, p_max);
  int32_t* p8 = sc.p8.data();
  int32_t p8_sum = 0;
  for (int j = 0; j < n; ++j) {
    p8[j] = p_code(p[j], ps);
    p8_sum += p8[j];
  }
  st.l = update_rowsum(st.l, alpha, p8_sum, ps.s_p);

  if (!t.v_per_token) {
    int32_t* acc = sc.acc.data();
    std::fill(acc, acc + d, 0);
    for (int j = 0; j < n; ++j) {
      if (p8[j] == 0) continue;  // adds 0: skipping keeps the integer sum identical
      const int8_t* vj = t.v + static_cast<int64_t>(j) * d;
      for (int c = 0; c < d; ++c) acc[c] += p8[j] * static_cast<int32_t>(vj[c]);
    }
    const float s_pv = ps.s_p * t.v_scale[0];
    for (int c = 0; c < d; ++c) st.o[c] = update_output(st.o[c], alpha, acc[c], s_pv);
  } else {
    std::fill(pv, pv + d, 0.0f);
    for (int j = 0; j < n; ++j) {
      const int8_t* vj = t.v + static_cast<int64_t>(j) * d;
      for (int c = 0; c < d; ++c)
        pv[c] =
            fmaf_rn(static_cast<float>(p8[j] * static_cast<int32_t>(vj[c])), t.v_scale[j], pv[c]);
    }
    for (int c = 0; c < d; ++c) st.o[c] = fmaf_rn(st.o[c], alpha, pv[c] * ps.s_p);
  }
  st.m = m_new;
}

namespace {
void add_row_stats(double alive, double dropped, int64_t scored, int64_t zeroed,
                   AttentionStats* stats) {
  if (!stats) return;
  stats->rows += 1;
  stats->scored += scored;
  stats->zeroed += zeroed;
  stats->dropped_mass += sas_stats_dropped_fraction(alive, dropped);
}
}  // namespace

void finalize_row(const RowState& st, int d, Half* out, AttentionStats* stats) {
  for (int c = 0; c < d; ++c) out[c] = float_to_half(finalize_output(st.o[c], st.l));
  add_row_stats(st.stats.alive_mass, st.stats.dropped_mass, st.stats.scored, st.stats.zeroed,
                stats);
}

void merge_runs(const std::vector<RowState>& runs, const SasParams& sas, int d, Half* out,
                AttentionStats* stats) {
  float m = -INFINITY;
  for (const RowState& r : runs) m = maxf(m, r.m);
  float l = 0.0f;
  std::vector<float> o(static_cast<size_t>(d), 0.0f);
  double smax = -INFINITY;
  for (const RowState& r : runs) smax = std::max(smax, r.stats.stat_max);
  SasStatsTotal total;
  for (const RowState& r : runs) {
    const float a = merge_factor(r.m, m, sas);
    l = fmaf_rn(r.l, a, l);
    for (int c = 0; c < d; ++c) o[c] = fmaf_rn(r.o[c], a, o[c]);
    sas_stats_merge_run(total, r.stats, smax, a);
  }
  for (int c = 0; c < d; ++c) out[c] = float_to_half(finalize_output(o[c], l));
  add_row_stats(total.alive, total.dropped, total.scored, total.zeroed, stats);
}

// ---- prefill -------------------------------------------------------------------------------

namespace {

// Stage-1 codes and scales of one [n, D] head slice, optionally after K mean smoothing.
struct QuantHead {
  std::vector<int8_t> codes;
  std::vector<float> scales;
  int64_t group_rows = 1;
  float scale_of_row(int64_t i) const { return scales[static_cast<size_t>(i / group_rows)]; }
};

void quantize_head(const ConstHalfTensor& x, int64_t b, int64_t h, int64_t group_rows,
                   const float* mean, QuantHead& out) {
  const int64_t n = x.tokens(), d = x.dim();
  std::vector<float> rows(static_cast<size_t>(n * d));
  for (int64_t t = 0; t < n; ++t) {
    const Half* r = x.row(b, h, t);
    for (int64_t c = 0; c < d; ++c) {
      const float v = half_to_float(r[c]);
      rows[static_cast<size_t>(t * d + c)] = mean ? v - mean[c] : v;
    }
  }
  out.group_rows = std::max<int64_t>(1, group_rows);
  out.codes.resize(static_cast<size_t>(n * d));
  out.scales.resize(static_cast<size_t>((n + out.group_rows - 1) / out.group_rows));
  stage1_rows(rows.data(), n, static_cast<int>(d), out.group_rows, out.codes.data(),
              out.scales.data());
}

// KV tile t of a quantized head: scales per tile (shared) unless the group is a single token.
KvTileView head_tile(const QuantHead& kq, const QuantHead& vq, int64_t t0, int64_t t1, int64_t d) {
  KvTileView v;
  v.k = kq.codes.data() + t0 * d;
  v.v = vq.codes.data() + t0 * d;
  v.k_per_token = kq.group_rows == 1 && t1 - t0 > 1;
  v.v_per_token = vq.group_rows == 1 && t1 - t0 > 1;
  v.k_scale = kq.scales.data() + t0 / kq.group_rows;
  v.v_scale = vq.scales.data() + t0 / vq.group_rows;
  v.pos0 = t0;
  v.n = static_cast<int>(t1 - t0);
  return v;
}

}  // namespace

void flashq_prefill(const AttentionConfig& cfg, const ConstHalfTensor& q, const ConstHalfTensor& k,
                    const ConstHalfTensor& v, const HalfTensor& o, AttentionStats* stats) {
  const int64_t B = q.batch(), Hq = q.heads(), Hkv = k.heads(), N = q.tokens(), D = q.dim();
  const int64_t group = Hq / Hkv;
  const QuantConfig& qc = cfg.quant;
  const SasParams sas = cfg.sas.params();
  const float tau = cfg.tau_for(static_cast<int>(D));
  const int64_t bc = qc.bc;

  std::vector<QuantHead> kq(static_cast<size_t>(B * Hkv)), vq(static_cast<size_t>(B * Hkv)),
      qq(static_cast<size_t>(B * Hq));
  const int64_t kv_rows = group_rows_for(qc.kv_gran, bc, N);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < B * Hkv; ++i) {
    const int64_t b = i / Hkv, h = i % Hkv;
    std::vector<float> mean;
    if (qc.k_smooth == KSmooth::kMean) {
      mean.resize(static_cast<size_t>(D));
      channel_mean(k, b, h, 0, N, mean.data());
    }
    quantize_head(k, b, h, kv_rows, mean.empty() ? nullptr : mean.data(),
                  kq[static_cast<size_t>(i)]);
    quantize_head(v, b, h, kv_rows, nullptr, vq[static_cast<size_t>(i)]);
  }
  const int64_t q_rows = group_rows_for(qc.q_gran, qc.br, N);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < B * Hq; ++i)
    quantize_head(q, i / Hq, i % Hq, q_rows, nullptr, qq[static_cast<size_t>(i)]);

  const int64_t n_tiles = (N + bc - 1) / bc;
  std::vector<AttentionStats> row_stats(stats ? static_cast<size_t>(B * Hq * N) : 0);
  const int64_t total_rows = B * Hq * N;
#pragma omp parallel
  {
    TileScratch sc;
    RowState st(static_cast<int>(D));
#pragma omp for schedule(dynamic, 16)
    for (int64_t r = 0; r < total_rows; ++r) {
      const int64_t bh = r / N, i = r % N, b = bh / Hq, h = bh % Hq;
      const QuantHead& qh = qq[static_cast<size_t>(bh)];
      const size_t kvi = static_cast<size_t>(b * Hkv + h / group);
      RowParams rp;
      rp.q = qh.codes.data() + i * D;
      rp.q_scale = qh.scale_of_row(i);
      rp.pos = i;
      rp.causal = cfg.causal;
      rp.tau = tau;
      rp.d = static_cast<int>(D);
      rp.p_quant = cfg.p_quant;
      rp.want_stats = stats != nullptr;
      st = RowState(static_cast<int>(D));
      for (int64_t t = 0; t < n_tiles; ++t) {
        const int64_t t0 = t * bc, t1 = std::min(N, t0 + bc);
        if (cfg.causal && t0 > i) break;
        process_tile(st, rp, head_tile(kq[kvi], vq[kvi], t0, t1, D), sas, sc);
      }
      finalize_row(st, static_cast<int>(D), o.row(b, h, i),
                   stats ? &row_stats[static_cast<size_t>(r)] : nullptr);
    }
  }
  if (stats)
    for (int64_t r = 0; r < total_rows; ++r) stats[r / N].merge(row_stats[static_cast<size_t>(r)]);
}

// ---- compressed KV cache (SPEC 6) -----------------------------------------------------------

namespace {

// Stage 1 over the FP32 rows of a full buffer (one scale per block, or per token with
// kv_scale = token), then stage 2: one compressed block.
std::vector<uint8_t> build_block(const std::vector<float>& rows, const BlockLayout& L) {
  std::vector<int8_t> codes(static_cast<size_t>(L.elements()));
  std::vector<float> scales(static_cast<size_t>(L.scale_bytes() / 4));
  stage1_rows(rows.data(), L.n_b, L.d, L.token_scales ? 1 : L.n_b, codes.data(), scales.data());
  std::vector<uint8_t> block(static_cast<size_t>(L.bytes()), 0);
  compress_block_ref(codes.data(), L, block.data());
  std::memcpy(block.data() + L.scale_offset(), scales.data(), static_cast<size_t>(L.scale_bytes()));
  return block;
}

// One kv head of a FlashQ cache: the FP16 sink rows, compressed blocks, the residual buffer (with
// the FP16 window: blocks compress once `window` newer rows follow them), the K mean.
class FlashqStream final : public KvStream {
 public:
  FlashqStream(const KvCacheSpec& spec, int bits) : spec_(spec), bits_(bits) {}

  void append(const ConstHalfTensor& k, const ConstHalfTensor& v, int64_t b, int64_t h) override;
  KvBytes bytes() const override {
    return flashq_stream_bytes(spec_, bits_, static_cast<int64_t>(k_blocks.size()), n_buf,
                               !k_mean.empty(), length, n_sink);
  }

  std::vector<std::vector<uint8_t>> k_blocks, v_blocks;
  // The same blocks expanded back to INT8 codes (decompress_block_ref), made once when a block is
  // compressed so that decode does not re-expand the whole cache on every call. A derived view,
  // not storage: bytes() does not count it.
  std::vector<std::vector<int8_t>> k_expanded, v_expanded;
  std::vector<std::vector<float>> k_block_scale, v_block_scale;  // [1] or [n_b] per block
  std::vector<Half> k_sink, v_sink;     // sink: the first `sink` rows, FP16 [n_sink, D]
  std::vector<Half> k_buf, v_buf;       // buffer = fp16: raw rows [n_buf, D]
  std::vector<int8_t> k_buf8, v_buf8;   // buffer = int8: per-token codes
  std::vector<float> k_buf_s, v_buf_s;  // ... and their scales
  std::vector<float> k_mean;            // [D] once k_smooth = mean has fixed it
  int64_t n_sink = 0;
  int64_t n_buf = 0;
  int64_t length = 0;

 private:
  KvCacheSpec spec_;
  int bits_;
};

void FlashqStream::append(const ConstHalfTensor& k, const ConstHalfTensor& v, int64_t b,
                          int64_t h) {
  const QuantConfig& qc = spec_.config.quant;
  const int64_t D = spec_.head_dim, T = k.tokens();
  const bool smooth = qc.k_smooth == KSmooth::kMean;
  if (smooth && k_mean.empty() && T > 0) {  // fixed by the first append (the prompt)
    k_mean.resize(static_cast<size_t>(D));
    channel_mean(k, b, h, 0, T, k_mean.data());
  }
  const bool int8_buf = qc.buffer == BufferMode::kInt8;
  const float* mean = smooth ? k_mean.data() : nullptr;
  std::vector<float> row(static_cast<size_t>(D));
  for (int64_t t = 0; t < T; ++t) {
    const Half* kr = k.row(b, h, t);
    const Half* vr = v.row(b, h, t);
    ++length;
    if (n_sink < qc.sink) {  // the first `sink` tokens stay FP16 for good
      k_sink.insert(k_sink.end(), kr, kr + D);
      v_sink.insert(v_sink.end(), vr, vr + D);
      ++n_sink;
      continue;
    }
    if (int8_buf) {
      for (int is_k = 1; is_k >= 0; --is_k) {
        const Half* src = is_k ? kr : vr;
        for (int64_t c = 0; c < D; ++c) {
          const float x = half_to_float(src[c]);
          row[static_cast<size_t>(c)] = (is_k && mean) ? x - mean[c] : x;
        }
        auto& codes = is_k ? k_buf8 : v_buf8;
        auto& scales = is_k ? k_buf_s : v_buf_s;
        codes.resize(static_cast<size_t>((n_buf + 1) * D));
        scales.resize(static_cast<size_t>(n_buf + 1));
        stage1_rows(row.data(), 1, static_cast<int>(D), 1, codes.data() + n_buf * D,
                    scales.data() + n_buf);
      }
    } else {
      k_buf.insert(k_buf.end(), kr, kr + D);
      v_buf.insert(v_buf.end(), vr, vr + D);
    }
    ++n_buf;
    // The oldest n_b buffer rows become a block once `window` newer rows follow them.
    if (n_buf < qc.block + qc.window) continue;
    for (int is_k = 1; is_k >= 0; --is_k) {
      std::vector<float> rows(static_cast<size_t>(qc.block * D));
      for (int64_t r = 0; r < qc.block; ++r)
        for (int64_t c = 0; c < D; ++c) {
          float x;
          if (int8_buf) {
            const auto& codes = is_k ? k_buf8 : v_buf8;
            const auto& scales = is_k ? k_buf_s : v_buf_s;
            x = static_cast<float>(codes[static_cast<size_t>(r * D + c)]) *
                scales[static_cast<size_t>(r)];
          } else {
            x = half_to_float((is_k ? k_buf : v_buf)[static_cast<size_t>(r * D + c)]);
            if (is_k && mean) x -= mean[c];
          }
          rows[static_cast<size_t>(r * D + c)] = x;
        }
      const BlockLayout Lb = cache_block_layout(spec_, bits_, is_k != 0);
      std::vector<uint8_t> blk = build_block(rows, Lb);
      std::vector<int8_t> expanded(static_cast<size_t>(Lb.elements()));
      decompress_block_ref(blk.data(), Lb, expanded.data());
      std::vector<float> scales(static_cast<size_t>(Lb.scale_bytes() / 4));
      std::memcpy(scales.data(), blk.data() + Lb.scale_offset(),
                  static_cast<size_t>(Lb.scale_bytes()));
      (is_k ? k_expanded : v_expanded).push_back(std::move(expanded));
      (is_k ? k_block_scale : v_block_scale).push_back(std::move(scales));
      (is_k ? k_blocks : v_blocks).push_back(std::move(blk));
    }
    const size_t nb = static_cast<size_t>(qc.block);
    const size_t ne = static_cast<size_t>(qc.block * D);
    auto drop = [](auto& vec, size_t n) {
      vec.erase(vec.begin(), vec.begin() + std::min(n, vec.size()));
    };
    drop(k_buf, ne);
    drop(v_buf, ne);
    drop(k_buf8, ne);
    drop(v_buf8, ne);
    drop(k_buf_s, nb);
    drop(v_buf_s, nb);
    n_buf -= qc.block;
  }
}

}  // namespace

std::unique_ptr<KvStream> flashq_make_stream(const KvCacheSpec& spec, int bits) {
  check_stage2_groups(spec);
  return std::make_unique<FlashqStream>(spec, bits);
}

void flashq_decode(const AttentionConfig& cfg, const ConstHalfTensor& q, const KvCache& cache_base,
                   const HalfTensor& o, AttentionStats* stats) {
  const RefKvCache& cache = as_ref_cache(cache_base);
  const KvCacheSpec& spec = cache.spec();
  const QuantConfig& qc = spec.config.quant;
  const int64_t B = q.batch(), Hq = q.heads(), Hkv = spec.kv_heads, QL = q.tokens(), D = q.dim();
  const int64_t L = cache.length(), group = Hq / Hkv;
  const SasParams sas = cfg.sas.params();
  const float tau = cfg.tau_for(static_cast<int>(D));

  // Tiles of every stream: the FP16 sink tile (stage 1 per token, now), the expanded blocks as
  // they are, then the buffer tile quantized now: one stage-1 scale for the tile by default, one
  // per token with kv_scale = token or an FP16 window (window > 0), or the int8 buffer's own.
  struct OnTheFlyTile {
    std::vector<int8_t> k, v;
    std::vector<float> ks, vs;
  };
  std::vector<OnTheFlyTile> buffers(static_cast<size_t>(B * Hkv)), sinks(buffers.size());
  std::vector<std::vector<KvTileView>> tiles(static_cast<size_t>(B * Hkv));
  const bool buffer_per_token = qc.kv_scale == KvScale::kToken || qc.window > 0;
#pragma omp parallel for schedule(static) if (B * Hkv > 1)
  for (int64_t i = 0; i < B * Hkv; ++i) {
    const FlashqStream& s = cache.stream<FlashqStream>(i / Hkv, i % Hkv);
    std::vector<KvTileView>& views = tiles[static_cast<size_t>(i)];
    const float* mean = s.k_mean.empty() ? nullptr : s.k_mean.data();
    // Stage 1 of n FP16 rows (K after the mean, if any) into an on-the-fly tile.
    auto quantize_rows = [&](const std::vector<Half>& kb, const std::vector<Half>& vb, int64_t n,
                             bool per_token, OnTheFlyTile& out) {
      for (int is_k = 1; is_k >= 0; --is_k) {
        std::vector<float> rows(static_cast<size_t>(n * D));
        const auto& buf = is_k ? kb : vb;
        for (int64_t r = 0; r < n; ++r)
          for (int64_t c = 0; c < D; ++c) {
            float x = half_to_float(buf[static_cast<size_t>(r * D + c)]);
            if (is_k && mean) x -= mean[c];
            rows[static_cast<size_t>(r * D + c)] = x;
          }
        auto& codes = is_k ? out.k : out.v;
        auto& sc = is_k ? out.ks : out.vs;
        codes.resize(rows.size());
        sc.resize(static_cast<size_t>(per_token ? n : 1));
        stage1_rows(rows.data(), n, static_cast<int>(D), per_token ? 1 : n, codes.data(),
                    sc.data());
      }
    };
    auto add_view = [&](const OnTheFlyTile& t, int64_t pos0, int64_t n, bool per_token) {
      KvTileView vw;
      vw.k = t.k.data();
      vw.v = t.v.data();
      vw.k_scale = t.ks.data();
      vw.v_scale = t.vs.data();
      vw.k_per_token = vw.v_per_token = per_token && n > 1;  // as prefill's head_tile
      vw.pos0 = pos0;
      vw.n = static_cast<int>(n);
      views.push_back(vw);
    };
    if (s.n_sink > 0) {
      quantize_rows(s.k_sink, s.v_sink, s.n_sink, true, sinks[static_cast<size_t>(i)]);
      add_view(sinks[static_cast<size_t>(i)], 0, s.n_sink, true);
    }
    const size_t nb = s.k_blocks.size();
    for (size_t t = 0; t < nb; ++t) {
      KvTileView vw;
      vw.k = s.k_expanded[t].data();
      vw.v = s.v_expanded[t].data();
      vw.k_scale = s.k_block_scale[t].data();
      vw.v_scale = s.v_block_scale[t].data();
      vw.k_per_token = vw.v_per_token = qc.kv_scale == KvScale::kToken && qc.block > 1;
      vw.pos0 = s.n_sink + static_cast<int64_t>(t) * qc.block;
      vw.n = qc.block;
      views.push_back(vw);
    }
    if (s.n_buf == 0) continue;
    OnTheFlyTile& bt = buffers[static_cast<size_t>(i)];
    bool per_token = buffer_per_token;
    if (qc.buffer == BufferMode::kInt8) {
      bt.k = s.k_buf8;
      bt.v = s.v_buf8;
      bt.ks = s.k_buf_s;
      bt.vs = s.v_buf_s;
      per_token = bt.ks.size() > 1;  // a one-row int8 buffer takes the per-tile path
    } else {
      quantize_rows(s.k_buf, s.v_buf, s.n_buf, buffer_per_token, bt);
    }
    add_view(bt, s.n_sink + static_cast<int64_t>(nb) * qc.block, s.n_buf, per_token);
  }

  // Q rows of this call, stage 1 with q_gran groups starting at the call's first row.
  std::vector<QuantHead> qq(static_cast<size_t>(B * Hq));
  const int64_t q_rows = group_rows_for(qc.q_gran, qc.br, QL);
  for (int64_t i = 0; i < B * Hq; ++i)
    quantize_head(q, i / Hq, i % Hq, q_rows, nullptr, qq[static_cast<size_t>(i)]);

  const int S = cfg.splits;
  const int64_t total_rows = B * Hq * QL;
  std::vector<AttentionStats> row_stats(stats ? static_cast<size_t>(total_rows) : 0);
#pragma omp parallel if (total_rows > 1)
  {
    TileScratch sc;
    std::vector<RowState> runs;
#pragma omp for schedule(dynamic, 4)
    for (int64_t r = 0; r < total_rows; ++r) {
      const int64_t bh = r / QL, i = r % QL, b = bh / Hq, h = bh % Hq;
      const std::vector<KvTileView>& views = tiles[static_cast<size_t>(b * Hkv + h / group)];
      const QuantHead& qh = qq[static_cast<size_t>(bh)];
      RowParams rp;
      rp.q = qh.codes.data() + i * D;
      rp.q_scale = qh.scale_of_row(i);
      rp.pos = L - QL + i;
      rp.causal = true;
      rp.tau = tau;
      rp.d = static_cast<int>(D);
      rp.p_quant = cfg.p_quant;
      rp.want_stats = stats != nullptr;
      const int64_t T = static_cast<int64_t>(views.size());
      runs.assign(static_cast<size_t>(S), RowState(static_cast<int>(D)));
      for (int s = 0; s < S; ++s) {
        const int64_t t0 = T * s / S, t1 = T * (s + 1) / S;
        for (int64_t t = t0; t < t1; ++t)
          process_tile(runs[static_cast<size_t>(s)], rp, views[static_cast<size_t>(t)], sas, sc);
      }
      AttentionStats* rs = stats ? &row_stats[static_cast<size_t>(r)] : nullptr;
      if (S == 1)
        finalize_row(runs[0], static_cast<int>(D), o.row(b, h, i), rs);
      else
        merge_runs(runs, sas, static_cast<int>(D), o.row(b, h, i), rs);
    }
  }
  if (stats)
    for (int64_t r = 0; r < total_rows; ++r) stats[r / QL].merge(row_stats[static_cast<size_t>(r)]);
}

}  // namespace ref
}  // namespace turbo

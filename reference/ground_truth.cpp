// SPEC 9 ground truth (FP64 softmax attention from the FP16 inputs), the FP16 noise floor, and
// SPEC 7 head-priority calibration.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "reference/reference.h"

namespace turbo {
namespace ref {
namespace {

using RowMatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
constexpr int64_t kQueryBlock = 64;  // query rows per parallel task

void check_qkv(const ConstHalfTensor& q, const ConstHalfTensor& k, const ConstHalfTensor& v) {
  TURBO_CHECK(q.dim() == k.dim() && k.dim() == v.dim(), "head_dim mismatch between Q, K, V");
  TURBO_CHECK(q.batch() == k.batch() && k.batch() == v.batch(), "batch mismatch between Q, K, V");
  TURBO_CHECK(k.heads() == v.heads() && k.tokens() == v.tokens(), "K and V shapes differ");
  TURBO_CHECK(k.heads() > 0 && q.heads() % k.heads() == 0,
              "query heads must be a multiple of kv heads");
  check_finite(q, "Q");
  check_finite(k, "K");
  check_finite(v, "V");
}

// Query rows i of q [B, Hq, n, D] sit at positions first + i of the L keys; a causal row sees keys
// [0, first + i], otherwise all L. FP16 -> FP64 is exact; Q K^T and P V are FP64 Eigen products
// over blocks of kQueryBlock rows (one OpenMP task each, so the result is thread-count
// independent), softmax per row with its max subtracted.
void exact_attention(const ConstHalfTensor& q, const ConstHalfTensor& k, const ConstHalfTensor& v,
                     bool causal, float tau, double* out) {
  fix_eigen_blocking();
  const int64_t B = q.batch(), Hq = q.heads(), Hkv = k.heads(), n = q.tokens(), L = k.tokens();
  const int64_t D = q.dim(), g = Hq / Hkv, first = L - n;
  const double tt = tau > 0.0f ? tau : static_cast<double>(default_tau(D));
  std::vector<RowMatD> kd(static_cast<size_t>(B * Hkv)), vd(static_cast<size_t>(B * Hkv));
#pragma omp parallel for schedule(static) if (B * Hkv > 1)
  for (int64_t i = 0; i < B * Hkv; ++i) {
    RowMatD& K = kd[static_cast<size_t>(i)];
    RowMatD& V = vd[static_cast<size_t>(i)];
    K.resize(L, D);
    V.resize(L, D);
    for (int64_t j = 0; j < L; ++j)
      for (int64_t c = 0; c < D; ++c) {
        K(j, c) = half_to_float(k.row(i / Hkv, i % Hkv, j)[c]);
        V(j, c) = half_to_float(v.row(i / Hkv, i % Hkv, j)[c]);
      }
  }
  const int64_t qblocks = (n + kQueryBlock - 1) / kQueryBlock;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t task = 0; task < B * Hq * qblocks; ++task) {
    const int64_t bh = task / qblocks, b = bh / Hq, h = bh % Hq;
    const int64_t i0 = (task % qblocks) * kQueryBlock, rows = std::min(kQueryBlock, n - i0);
    const int64_t keys = causal ? first + i0 + rows : L;
    RowMatD qd(rows, D);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < D; ++c) qd(r, c) = half_to_float(q.row(b, h, i0 + r)[c]);
    const size_t kv = static_cast<size_t>(b * Hkv + h / g);
    RowMatD s = qd * kd[kv].topRows(keys).transpose();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t visible = causal ? first + i0 + r + 1 : L;
      double m = -INFINITY;
      for (int64_t j = 0; j < visible; ++j) {
        s(r, j) *= tt;
        m = std::max(m, s(r, j));
      }
      double l = 0.0;
      for (int64_t j = 0; j < visible; ++j) {
        s(r, j) = std::exp(s(r, j) - m);
        l += s(r, j);
      }
      for (int64_t j = visible; j < keys; ++j) s(r, j) = 0.0;
      s.row(r) *= 1.0 / l;
    }
    const RowMatD o = s * vd[kv].topRows(keys);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < D; ++c) out[(bh * n + i0 + r) * D + c] = o(r, c);
  }
}

}  // namespace

void fix_eigen_blocking() {
  static const bool done = [] {
    Eigen::setCpuCacheSizes(32 * 1024, 256 * 1024, 2 * 1024 * 1024);
    return true;
  }();
  (void)done;
}

void attention_fp64(const ConstHalfTensor& q, const ConstHalfTensor& k, const ConstHalfTensor& v,
                    bool causal, float tau, double* out) {
  check_qkv(q, k, v);
  TURBO_CHECK(q.tokens() == k.tokens(), "prefill ground truth needs as many query rows as keys");
  exact_attention(q, k, v, causal, tau, out);
}

void attention_fp64_decode(const ConstHalfTensor& q, const ConstHalfTensor& k,
                           const ConstHalfTensor& v, float tau, double* out) {
  check_qkv(q, k, v);
  TURBO_CHECK(q.tokens() <= k.tokens(), "decode ground truth: q_len "
                                            << q.tokens() << " exceeds the " << k.tokens()
                                            << " keys");
  exact_attention(q, k, v, true, tau, out);
}

void attention_fp16_floor(const ConstHalfTensor& q, const ConstHalfTensor& k,
                          const ConstHalfTensor& v, bool causal, float tau, const HalfTensor& o) {
  check_qkv(q, k, v);
  const int64_t B = q.batch(), Hq = q.heads(), N = q.tokens(), L = k.tokens(), D = q.dim();
  const int64_t g = Hq / k.heads();
  TURBO_CHECK(N <= L, "more query rows than keys");
  const float t = tau > 0.0f ? tau : default_tau(D);
#pragma omp parallel
  {
    std::vector<float> s, acc(static_cast<size_t>(D));
#pragma omp for schedule(dynamic, 16)
    for (int64_t r = 0; r < B * Hq * N; ++r) {
      const int64_t bh = r / N, i = r % N, b = bh / Hq, h = bh % Hq, hk = h / g;
      const int64_t n_keys = causal ? L - N + i + 1 : L;
      const Half* qr = q.row(b, h, i);
      s.resize(static_cast<size_t>(n_keys));
      float m = -INFINITY;
      for (int64_t j = 0; j < n_keys; ++j) {
        const Half* kr = k.row(b, hk, j);
        float a = 0.0f;
        for (int64_t c = 0; c < D; ++c) a += half_to_float(qr[c]) * half_to_float(kr[c]);
        s[static_cast<size_t>(j)] = a * t;
        m = std::max(m, s[static_cast<size_t>(j)]);
      }
      float l = 0.0f;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t j = 0; j < n_keys; ++j) {
        const float p = std::exp(s[static_cast<size_t>(j)] - m);
        l += p;
        const Half* vr = v.row(b, hk, j);
        for (int64_t c = 0; c < D; ++c) acc[static_cast<size_t>(c)] += p * half_to_float(vr[c]);
      }
      Half* orow = o.row(b, h, i);
      for (int64_t c = 0; c < D; ++c) orow[c] = float_to_half(acc[static_cast<size_t>(c)] / l);
    }
  }
}

std::vector<double> head_priorities(const ConstHalfTensor& k, const ConstHalfTensor& v,
                                    PrioTensors tensors, PrioMetric metric, uint64_t seed) {
  TURBO_CHECK(k.batch() == 1, "calibration expects batch 1");
  check_finite(k, "K (calibration)");
  if (tensors == PrioTensors::kKV) {
    TURBO_CHECK(v.heads() == k.heads() && v.tokens() == k.tokens() && v.dim() == k.dim(),
                "calibration K and V shapes differ");
    check_finite(v, "V (calibration)");
  }
  const int64_t H = k.heads(), N = k.tokens(), D = k.dim();
  TURBO_CHECK(N >= 2, "calibration needs at least 2 tokens");
  std::vector<double> prio(static_cast<size_t>(H));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  for (int64_t h = 0; h < H; ++h) {
    double gap_sum = 0.0, sum = 0.0, sum2 = 0.0;
    int64_t channels = 0, count = 0;
    std::vector<double> vals;
    auto take = [&](const ConstHalfTensor& x) {
      for (int64_t c = 0; c < D; ++c) {
        double mn = INFINITY, mx = -INFINITY;
        for (int64_t t = 0; t < N; ++t) {
          const double e = half_to_float(x.row(0, h, t)[c]);
          mn = std::min(mn, e);
          mx = std::max(mx, e);
          sum += e;
          sum2 += e * e;
          vals.push_back(e);
          ++count;
        }
        gap_sum += mx - mn;
        ++channels;
      }
    };
    take(k);
    if (tensors == PrioTensors::kKV) take(v);
    const double gap = gap_sum / static_cast<double>(channels);
    const double mean = sum / static_cast<double>(count);
    const double var = std::max(0.0, sum2 / static_cast<double>(count) - mean * mean);
    const double sd = std::sqrt(var);
    double p = 0.0;
    switch (metric) {
      case PrioMetric::kGapStd:
        p = gap * sd;
        break;
      case PrioMetric::kGap:
        p = gap;
        break;
      case PrioMetric::kStd:
        p = sd;
        break;
      case PrioMetric::kKurtosis: {
        double m4 = 0.0;
        for (double e : vals) m4 += std::pow(e - mean, 4);
        m4 /= static_cast<double>(count);
        p = var > 0.0 ? m4 / (var * var) - 3.0 : 0.0;
        break;
      }
      case PrioMetric::kRandom:
        p = uni(rng);
        break;
    }
    prio[static_cast<size_t>(h)] = p;
  }
  return prio;
}

std::vector<int> assign_head_bits(const std::vector<double>& priority, float f2) {
  const size_t H = priority.size();
  std::vector<size_t> order(H);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return priority[a] < priority[b]; });
  // At most the fraction f2 of the heads goes to 2 bits: floor(f2 * H) (with 3 kv heads and the
  // default 0.5, one head; rounding to nearest would put 2 of 3 at 2 bits). The epsilon keeps an
  // exact product such as 0.6 * 5 from flooring to 2.
  const size_t n2 =
      static_cast<size_t>(std::floor(static_cast<double>(f2) * static_cast<double>(H) + 1e-9));
  std::vector<int> bits(H, 4);
  for (size_t i = 0; i < n2 && i < H; ++i) bits[order[i]] = 2;
  return bits;
}

}  // namespace ref
}  // namespace turbo

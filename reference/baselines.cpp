// Baseline attention methods of the "ref" backend (declarations and summary: baselines.h).
//
// Every baseline, and the FP16 floor, is written as a stream of the reference cache
// (reference/kv_cache.h) per (batch, kv head) that stores exactly what the method's cache stores
// (so KvCache::bytes() counts real storage, SPEC 8), plus an attention routine over the stream's
// contents. Prefill builds a stream from the whole window (the window is treated as cached) and
// attends causally from position 0; decode attends with the last q_len positions over the cache.
// Numerics, per method (FP32 = binary32 with RN, no FMA contraction; exp = libm expf; "fp16(x)" =
// one RN rounding to FP16):
//
// fp16: the FP16 noise floor (ref::attention_fp16_floor, SPEC 9) over the FP16 rows themselves.
//
// kivi (KIVI, Liu et al. 2024), bits b = kv_bits (4 or 2; a cache may give per-kv-head bits 4/2
//   in KvCacheSpec::head_bits). K per channel over groups of G = group_size consecutive tokens,
//   V per token over groups of G channels. Two variants (knob kivi_impl):
//   authors (default): the rules of the authors' code (jy-yuan/KIVI, models/llama_kivi.py and
//     quant/new_pack.py). Prefill attends the unquantized K/V (the FP16 floor) and quantizes the
//     cache afterwards. A decode step appends the token, attends, then quantizes: K when its FP16
//     rows reach R = residual (all R of them, G-token groups), V's oldest row when it holds R + 1.
//     At attention time of length L the FP16 K rows are therefore the last (L - 1) % R + 1 (none
//     kept after a prefill whose length is a multiple of R) and the FP16 V rows the last
//     min(L, R + 1). A cache here applies a step's post-attention quantization when the next
//     token is appended, so the cache of length L is what that step attends, in any batching of
//     appends. Quantizer: core/quant.h kivi_params / kivi_code, the FP16 torch arithmetic of
//     its code. Shape rules of its code, as errors: head_dim % G == 0, R > 0, R % G == 0; scale
//     and zero are FP16 (scale_storage = fp32 is refused).
//   legacy: this toolkit's earlier reading: prefill goes through the cache; the direct quantizer
//     of SPEC 3 (core/quant.h asym_*), scale/zero per `scale_storage`; the newest R tokens stay
//     FP16 and so do K tokens of an incomplete group: of L tokens, V holds max(0, L - R)
//     quantized tokens and K floor(max(0, L - R) / G) * G; V groups of min(G, D) channels (a last
//     shorter group if D % G).
//   Attention (both): dequantize fma(c, s, z) in FP32, round to FP16, then the FP16 noise floor
//   itself (ref::attention_fp16_floor) over the dequantized cache. (The authors' decode kernel
//   keeps the dequantized value in FP32 inside its dot products; this is the one place where the
//   authors variant follows the floor's arithmetic instead of theirs.)
// int8kv: K and V per token symmetric INT8 (SPEC 1 stage1_scale / stage1_code, token groups, FP32
//   scale per token); dequantized (float)q * s rounded to FP16, then the floor as for kivi.
// sage (SageAttention, Zhang et al. 2025). The cache stores K/V in FP16 (SageAttention quantizes
//   on the fly, not the cache); prefill and decode quantize at attention time. Two variants (knob
//   sage_impl):
//   authors (default): the formulas of its authors' code (thu-ml/SageAttention: sageattention/
//     core.py, triton/quant_per_block.py, quant_per_thread.py, attn_qk_int8_per_block*.py,
//     csrc/qattn/qk_int_sv_f16_cuda_sm80.cu, csrc/fused/fused.cu). With k_smooth = mean,
//     km = fp16(FP32 sum of K over the stream's tokens, in token order, / n) (torch's FP16 mean)
//     and K' = fp16(K - km); else K' = K. INT8 quantizer core/quant.h sage_int8_scale /
//     sage_int8_code (x / scale rounded half away from zero). Groups (sage_gran):
//       block (its Triton per-block kernels): Q multiplied by fp32(tau * 1.44269504) first, one
//         scale per 128 rows from the call's first row; K' one per 64 tokens from token 0;
//         base-2 score S2 = (float)acc * (s_q * s_k).
//       thread (its sm80 CUDA path): Q as it is, per 32-row warp 8 groups (rows r = g mod 8);
//         K' per 64-token block 4 groups (tokens t with t mod 8 in {2g, 2g + 1}); scales
//         + 1e-7; S2 = (float)acc * ((tau * log2e) * (s_q * s_k)).
//     Per query row, 64-token tiles in order, keys <= the row's position (causal); online
//     softmax in base 2: m_new = max(m, max S2), alpha = exp2f(m - m_new) (0 on the first tile),
//     P = exp2f(S2 - m_new), l = l * alpha + sum P (FP32, t ascending). P.V (sage_pv):
//       fp32 (sm80): O_d = O_d * alpha, then O_d += fp16(P_t) * v_td (FP32, t ascending);
//       fp16 (sm86, Triton's FP16-accumulator dot): a_d = fp16(a_d + fp16(P_t) * v_td) from 0, t
//         ascending (one rounding each), O_d = O_d * alpha + a_d;
//       fp8 (sm90): V per channel over the stream's tokens: s_d = amax_d / 448, codes
//         e4m3(v * (448 / amax_d)) (codes 0 when amax_d = 0); P = exp2f(S2 - (m_new - 8.807))
//         (<= 448, its S_FP8_OFFSET), l sums that P, O_d = O_d * alpha, O_d += e4m3(P_t) *
//         v8_td (FP32, t ascending); at the end O_d *= s_d.
//     out = fp16(O_d / l). What the GPU does and this does not: approximate ex2 and division
//     (Triton's and the PTX ex2.approx are within 2 ulp; here libm exp2f and IEEE division),
//     the tensor core's internal accumulation order, FMA in the sm80 exponent, the sm90 kernel's
//     own grouping (Q warps of 16 rows, K blocks of 128; here sage_gran's), a padded
//     head_dim < 64 (zeros: no numeric effect) and its refusal of head_dim > 128 (here the same
//     formulas run at any D).
//   legacy: this toolkit's earlier reading: K' = K - mean_c, the per-channel mean over all
//     tokens of the stream by SPEC 1's exact formula (ref::channel_mean), no FP16 rounding; Q in
//     INT8 per block of Br rows (blocks start at the first query row of the call), K' per tile of
//     Bc tokens from token 0 (stage-1 formulas, SPEC 1). Per query row, tiles in order, only keys
//     <= the row's position: S = (float)acc * ((s_q * s_k) * tau) in FP32; online softmax in
//     FP32 (softmax_tile, base e); O_d = O_d * alpha + sum_t fp16(P_t) * v_td (FP16 P and V,
//     FP32 products and sums, t ascending); out = fp16(O_d / l).
// fp8 (FP8 E4M3 attention, e.g. FlashAttention-3 FP8). Q per block of Br rows, K and V per tile
//   of Bc tokens: s = amax / 448 (FP32), codes e4m3(x * (1 / s)) (core/fp8.h, RN, satfinite).
//   The cache stores complete Bc-token blocks as E4M3 codes + one FP32 scale each for K and V,
//   and the newest < Bc tokens in FP16; attention quantizes that partial tile on the fly as one
//   tile (as prefill does for the last tile, so prefill and decode quantize K/V identically).
//   Dot products of E4M3 values are exact in FP64 (products span < 2^40, D <= 256) and are
//   rounded once to FP32, as an FP8 tensor core with an exact FP32 accumulator would give:
//   S = (float)dot(q8, k8) * ((s_q * s_k) * tau). Online softmax as for legacy sage. P quantization
//   by p_quant: u8_row -> per row per tile s_P = rowmax(P) / 448; fp16 -> P kept as fp16(P), s_P =
//   1; u8 / s8 (default) -> static s_P = 1 / 448 (P <= 1 maps onto the full E4M3 range). P8 =
//   e4m3(P * (1 / s_P)); l accumulates the FP32 P; acc_d = (float)dot(P8, v8_d) (FP64, rounded
//   once); O_d = O_d * alpha + acc_d * (s_P * s_V); out = fp16(O_d / l).
// Stats: rows and scored entries are filled; zeroed and dropped_mass stay 0 (no SAS).
#include "reference/baselines.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "core/fp8.h"
#include "core/quant.h"
#include "reference/flashq.h"
#include "reference/reference.h"

namespace turbo {
namespace ref {
namespace {

// ---- what attention reads from a stream -------------------------------------------------------

struct PreparedKv {
  int64_t len = 0;
  int d = 0;
  std::vector<float> k, v;              // [len, d] values (FP16 values, or E4M3 values for fp8)
  std::vector<int8_t> k8;               // sage: INT8 K' codes [len, d]
  std::vector<float> k_scale, v_scale;  // per tile (legacy sage: K; fp8: K and V); authors sage:
                                        // K per token (its group's), V per channel (sage_pv=fp8)
  int tile = 1;                         // tokens per tile (sage, fp8)

  // len x d rows of K and V values, zero, to be filled.
  static PreparedKv rows(int64_t len, int d) {
    PreparedKv p;
    p.len = len;
    p.d = d;
    p.k.resize(static_cast<size_t>(len * d));
    p.v.resize(static_cast<size_t>(len * d));
    return p;
  }
};

// SageAttention's blocks (its kernels' BLKQ, BLKK / CTA_K, WARPQ) and per-thread groups.
constexpr int kSageBlockQ = 128;
constexpr int kSageBlockK = 64;
constexpr int kSageWarpQ = 32;
constexpr int kSageThreadGroupsQ = 8;  // per 32-row warp: rows r = g (mod 8)
constexpr int kSageThreadGroupsK = 4;  // per 64-token block: tokens t with t % 8 in {2g, 2g + 1}

// Quantizes n rows x d FP32 values as one E4M3 tile: writes the codes e4m3(x * (1 / s)) and
// returns the scale s = amax / 448.
float quantize_fp8_tile(const float* x, int64_t n, int d, uint8_t* codes) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n * d; ++i) amax = maxf(amax, absf(x[i]));
  const Fp8Scale s = fp8_scale(amax);
  for (int64_t i = 0; i < n * d; ++i) codes[i] = float_to_e4m3(x[i] * s.inv);
  return s.scale;
}

void half_row_to_float(const Half* src, int d, float* dst) {
  for (int c = 0; c < d; ++c) dst[c] = half_to_float(src[c]);
}

// ---- streams: what each method's cache stores -------------------------------------------------

class Stream : public KvStream {
 public:
  explicit Stream(int d) : d_(d) {}
  void append(const ConstHalfTensor& k, const ConstHalfTensor& v, int64_t b, int64_t h) final {
    for (int64_t t = 0; t < k.tokens(); ++t) append_token(k.row(b, h, t), v.row(b, h, t));
  }
  // What attention reads: the stored values (dequantized where the method dequantizes).
  virtual PreparedKv prepare(const AttentionConfig& config) const = 0;
  int64_t length() const { return len_; }

 protected:
  // One token: k, v rows of d FP16 values.
  virtual void append_token(const Half* k, const Half* v) = 0;

  int d_;
  int64_t len_ = 0;
};

// Both KIVI variants share this storage; they differ in when rows are quantized and in the
// quantizer's arithmetic (see the file comment).
class KiviStream final : public Stream {
 public:
  KiviStream(int d, int bits, int group, int residual, ScaleStorage storage, KiviImpl impl)
      : Stream(d),
        bits_(bits),
        g_(group),
        r_(residual),
        storage_(storage),
        impl_(impl),
        vg_(std::min(group, d)),
        n_vg_((d + vg_ - 1) / vg_) {}

  void append_token(const Half* k, const Half* v) override {
    if (impl_ == KiviImpl::kAuthors) {
      // The authors' decode step quantizes after attending: what the previous token's step
      // would quantize happens now, before this token joins the FP16 rows.
      while (len_ - k_quant_ >= r_)
        for (int c = 0; c < r_ / g_; ++c) quantize_k_group();
      while (len_ - v_quant_ > r_) quantize_v_row();
      pend_k_.insert(pend_k_.end(), k, k + d_);
      pend_v_.insert(pend_v_.end(), v, v + d_);
      ++len_;
      return;
    }
    pend_k_.insert(pend_k_.end(), k, k + d_);
    pend_v_.insert(pend_v_.end(), v, v + d_);
    ++len_;
    while (len_ - v_quant_ > r_) quantize_v_row();
    while (len_ - k_quant_ - g_ >= r_) quantize_k_group();
  }

  PreparedKv prepare(const AttentionConfig&) const override {
    PreparedKv p = PreparedKv::rows(len_, d_);
    for (int64_t t = 0; t < k_quant_; ++t)
      for (int c = 0; c < d_; ++c) {
        const int64_t s = (t / g_) * d_ + c;
        p.k[t * d_ + c] =
            dequant(unpack_code(k_codes_.data(), t * d_ + c, bits_), k_scale_[s], k_zero_[s]);
      }
    for (int64_t t = k_quant_; t < len_; ++t)
      half_row_to_float(&pend_k_[(t - k_quant_) * d_], d_, &p.k[t * d_]);
    for (int64_t t = 0; t < v_quant_; ++t)
      for (int c = 0; c < d_; ++c) {
        const int64_t s = t * n_vg_ + c / vg_;
        p.v[t * d_ + c] =
            dequant(unpack_code(v_codes_.data(), t * d_ + c, bits_), v_scale_[s], v_zero_[s]);
      }
    for (int64_t t = v_quant_; t < len_; ++t)
      half_row_to_float(&pend_v_[(t - v_quant_) * d_], d_, &p.v[t * d_]);
    return p;
  }

  KvBytes bytes() const override {
    KvBytes b;
    b.codes = static_cast<int64_t>(k_codes_.size() + v_codes_.size());
    const int64_t per = storage_ == ScaleStorage::kFp16 ? 2 : 4;
    b.metadata = per * static_cast<int64_t>(k_scale_.size() + k_zero_.size() + v_scale_.size() +
                                            v_zero_.size());
    b.buffer = 2 * static_cast<int64_t>(pend_k_.size() + pend_v_.size());
    b.tokens = len_;
    return b;
  }

  KiviStreamState state() const {
    KiviStreamState st;
    st.k_quant = k_quant_;
    st.v_quant = v_quant_;
    for (int64_t i = 0; i < k_quant_ * d_; ++i)
      st.k_codes.push_back(unpack_code(k_codes_.data(), i, bits_));
    for (int64_t i = 0; i < v_quant_ * d_; ++i)
      st.v_codes.push_back(unpack_code(v_codes_.data(), i, bits_));
    st.k_scale = k_scale_;
    st.k_zero = k_zero_;
    st.v_scale = v_scale_;
    st.v_zero = v_zero_;
    st.k_fp16 = pend_k_;
    st.v_fp16 = pend_v_;
    return st;
  }

 private:
  static float dequant(int c, float scale, float zero) {
    AsymParams p{scale, zero, 0.0f};
    return round_half(asym_dequant(c, p));
  }

  AsymParams params(float mn, float mx) const {
    if (impl_ == KiviImpl::kLegacy) return asym_params(mn, mx, bits_, storage_);
    const AsymParams p = kivi_params(mn, mx, bits_);
    TURBO_CHECK(std::isfinite(p.scale), "kivi: the FP16 range of a group overflows (max "
                                            << mx << " - min " << mn
                                            << "); the authors' FP16 arithmetic cannot hold it");
    return p;
  }
  uint8_t code(float x, const AsymParams& p) const {
    return impl_ == KiviImpl::kLegacy ? asym_code(x, p, bits_) : kivi_code(x, p, bits_);
  }

  void grow_codes(std::vector<uint8_t>& codes, int64_t n_codes) {
    codes.resize(static_cast<size_t>(packed_bytes(n_codes, bits_)), 0);
  }

  // The oldest G FP16 K rows: one group per channel over G tokens.
  void quantize_k_group() {
    const Half* rows = pend_k_.data();
    grow_codes(k_codes_, (k_quant_ + g_) * d_);
    for (int c = 0; c < d_; ++c) {
      float mn = INFINITY, mx = -INFINITY;
      for (int t = 0; t < g_; ++t) {
        const float x = half_to_float(rows[t * d_ + c]);
        mn = minf(mn, x);
        mx = maxf(mx, x);
      }
      const AsymParams p = params(mn, mx);
      k_scale_.push_back(p.scale);
      k_zero_.push_back(p.zero);
      for (int t = 0; t < g_; ++t)
        pack_code(k_codes_.data(), (k_quant_ + t) * d_ + c,
                  code(half_to_float(rows[t * d_ + c]), p), bits_);
    }
    k_quant_ += g_;
    pend_k_.erase(pend_k_.begin(), pend_k_.begin() + static_cast<int64_t>(g_) * d_);
  }

  // The oldest FP16 V row: groups of vg_ channels.
  void quantize_v_row() {
    const Half* row = pend_v_.data();
    grow_codes(v_codes_, (v_quant_ + 1) * d_);
    for (int g0 = 0; g0 < d_; g0 += vg_) {
      const int g1 = std::min(d_, g0 + vg_);
      float mn = INFINITY, mx = -INFINITY;
      for (int c = g0; c < g1; ++c) {
        mn = minf(mn, half_to_float(row[c]));
        mx = maxf(mx, half_to_float(row[c]));
      }
      const AsymParams p = params(mn, mx);
      v_scale_.push_back(p.scale);
      v_zero_.push_back(p.zero);
      for (int c = g0; c < g1; ++c)
        pack_code(v_codes_.data(), v_quant_ * d_ + c, code(half_to_float(row[c]), p), bits_);
    }
    ++v_quant_;
    pend_v_.erase(pend_v_.begin(), pend_v_.begin() + d_);
  }

  int bits_, g_, r_;
  ScaleStorage storage_;
  KiviImpl impl_;
  int vg_, n_vg_;
  int64_t k_quant_ = 0, v_quant_ = 0;
  std::vector<uint8_t> k_codes_, v_codes_;  // packed, token-major
  std::vector<float> k_scale_, k_zero_;     // [k_quant / G, d]
  std::vector<float> v_scale_, v_zero_;     // [v_quant, n_vg]
  std::vector<Half> pend_k_, pend_v_;       // FP16 rows not yet quantized
};

class Int8Stream final : public Stream {
 public:
  explicit Int8Stream(int d) : Stream(d) {}

  void append_token(const Half* k, const Half* v) override {
    push(k, k_codes_, k_scale_);
    push(v, v_codes_, v_scale_);
    ++len_;
  }

  PreparedKv prepare(const AttentionConfig&) const override {
    PreparedKv p = PreparedKv::rows(len_, d_);
    for (int64_t t = 0; t < len_; ++t)
      for (int c = 0; c < d_; ++c) {
        p.k[t * d_ + c] = round_half(static_cast<float>(k_codes_[t * d_ + c]) * k_scale_[t]);
        p.v[t * d_ + c] = round_half(static_cast<float>(v_codes_[t * d_ + c]) * v_scale_[t]);
      }
    return p;
  }

  KvBytes bytes() const override {
    KvBytes b;
    b.codes = static_cast<int64_t>(k_codes_.size() + v_codes_.size());
    b.metadata = 4 * static_cast<int64_t>(k_scale_.size() + v_scale_.size());
    b.tokens = len_;
    return b;
  }

 private:
  void push(const Half* x, std::vector<int8_t>& codes, std::vector<float>& scales) {
    float amax = 0.0f;
    for (int c = 0; c < d_; ++c) amax = maxf(amax, absf(half_to_float(x[c])));
    const Stage1Scale s = stage1_scale(amax);
    scales.push_back(s.scale);
    for (int c = 0; c < d_; ++c) codes.push_back(stage1_code(half_to_float(x[c]), s.inv));
  }

  std::vector<int8_t> k_codes_, v_codes_;
  std::vector<float> k_scale_, v_scale_;
};

// sage and the FP16 floor: a plain FP16 cache (sage quantizes at attention time).
class Fp16Stream final : public Stream {
 public:
  explicit Fp16Stream(int d) : Stream(d) {}

  void append_token(const Half* k, const Half* v) override {
    k_.insert(k_.end(), k, k + d_);
    v_.insert(v_.end(), v, v + d_);
    ++len_;
  }

  PreparedKv prepare(const AttentionConfig&) const override {
    PreparedKv p = PreparedKv::rows(len_, d_);  // k_, v_: len_ x d_ FP16 values
    for (size_t i = 0; i < k_.size(); ++i) {
      p.k[i] = half_to_float(k_[i]);
      p.v[i] = half_to_float(v_[i]);
    }
    return p;
  }

  KvBytes bytes() const override {
    KvBytes b;
    b.codes = 2 * static_cast<int64_t>(k_.size() + v_.size());
    b.tokens = len_;
    return b;
  }

 private:
  std::vector<Half> k_, v_;
};

class Fp8Stream final : public Stream {
 public:
  Fp8Stream(int d, int tile) : Stream(d), tile_(tile) {}

  void append_token(const Half* k, const Half* v) override {
    pend_k_.insert(pend_k_.end(), k, k + d_);
    pend_v_.insert(pend_v_.end(), v, v + d_);
    ++len_;
    if (static_cast<int64_t>(pend_k_.size()) == static_cast<int64_t>(tile_) * d_) {
      store_block(pend_k_, k_codes_, k_scale_);
      store_block(pend_v_, v_codes_, v_scale_);
      pend_k_.clear();
      pend_v_.clear();
    }
  }

  PreparedKv prepare(const AttentionConfig&) const override {
    PreparedKv p = PreparedKv::rows(len_, d_);
    p.tile = tile_;
    for (size_t i = 0; i < k_codes_.size(); ++i) {
      p.k[i] = e4m3_to_float(k_codes_[i]);
      p.v[i] = e4m3_to_float(v_codes_[i]);
    }
    p.k_scale = k_scale_;
    p.v_scale = v_scale_;
    const int64_t n = static_cast<int64_t>(pend_k_.size()) / d_;
    if (n > 0) {
      const int64_t off = static_cast<int64_t>(k_codes_.size());
      p.k_scale.push_back(decode_tile(pend_k_, &p.k[off]));
      p.v_scale.push_back(decode_tile(pend_v_, &p.v[off]));
    }
    return p;
  }

  KvBytes bytes() const override {
    KvBytes b;
    b.codes = static_cast<int64_t>(k_codes_.size() + v_codes_.size());
    b.metadata = 4 * static_cast<int64_t>(k_scale_.size() + v_scale_.size());
    b.buffer = 2 * static_cast<int64_t>(pend_k_.size() + pend_v_.size());
    b.tokens = len_;
    return b;
  }

 private:
  static std::vector<float> to_float(const std::vector<Half>& rows) {
    std::vector<float> f(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) f[i] = half_to_float(rows[i]);
    return f;
  }
  void store_block(const std::vector<Half>& rows, std::vector<uint8_t>& codes,
                   std::vector<float>& scales) {
    const std::vector<float> f = to_float(rows);
    const size_t off = codes.size();
    codes.resize(off + f.size());
    scales.push_back(quantize_fp8_tile(f.data(), tile_, d_, &codes[off]));
  }
  // Quantizes the partial tile on the fly; writes its E4M3 values, returns the scale.
  float decode_tile(const std::vector<Half>& rows, float* out) const {
    const std::vector<float> f = to_float(rows);
    std::vector<uint8_t> codes(f.size());
    const float s =
        quantize_fp8_tile(f.data(), static_cast<int64_t>(f.size()) / d_, d_, codes.data());
    for (size_t i = 0; i < codes.size(); ++i) out[i] = e4m3_to_float(codes[i]);
    return s;
  }

  int tile_;
  std::vector<uint8_t> k_codes_, v_codes_;  // complete blocks, token-major
  std::vector<float> k_scale_, v_scale_;    // one per block
  std::vector<Half> pend_k_, pend_v_;       // < tile newest rows, FP16
};

// ---- stream factory ---------------------------------------------------------------------------

// The shape rules of the KIVI code (it asserts them): V groups of G channels need D % G == 0, and
// K quantized in chunks of R tokens made of G-token groups needs R % G == 0 (and R > 0). Its
// scale and zero are FP16 tensors: scale_storage = fp32 belongs to the legacy variant only.
void check_kivi_shape(const QuantConfig& qc, int d) {
  if (qc.kivi_impl != KiviImpl::kAuthors) return;
  TURBO_CHECK(d % qc.group_size == 0,
              "kivi (kivi_impl=authors) needs head_dim % group_size == 0, "
              "got head_dim "
                  << d << ", group_size " << qc.group_size);
  TURBO_CHECK(qc.residual > 0 && qc.residual % qc.group_size == 0,
              "kivi (kivi_impl=authors) needs residual > 0 and residual % group_size == 0, got "
              "residual "
                  << qc.residual << ", group_size " << qc.group_size);
  TURBO_CHECK(qc.scale_storage == ScaleStorage::kFp16,
              "kivi (kivi_impl=authors) stores scale and zero in FP16 as its code does; "
              "scale_storage=fp32 needs kivi_impl=legacy");
}

std::unique_ptr<Stream> make_stream(const AttentionConfig& config, int bits, int d) {
  switch (config.method) {
    case Method::kKivi: {
      const QuantConfig& qc = config.quant;
      check_kivi_shape(qc, d);
      return std::make_unique<KiviStream>(d, bits, qc.group_size, qc.residual, qc.scale_storage,
                                          qc.kivi_impl);
    }
    case Method::kInt8Kv:
      return std::make_unique<Int8Stream>(d);
    case Method::kSage:
    case Method::kFp16:
      return std::make_unique<Fp16Stream>(d);
    case Method::kFp8:
      return std::make_unique<Fp8Stream>(d, config.quant.bc);
    default:
      break;
  }
  throw Error("method '" + enum_name(config.method) + "' has no baseline stream");
}

// Legacy sage's K at attention time: with k_smooth = mean, K' = K - mean_c (SPEC 1's exact mean
// over the stream's tokens), then INT8 codes per tile of Bc tokens from token 0. p.k holds FP16
// values.
void quantize_sage_keys(const AttentionConfig& config, PreparedKv& p) {
  const int64_t len = p.len;
  const int d = p.d;
  p.tile = config.quant.bc;
  std::vector<float> mean(static_cast<size_t>(d), 0.0f);
  if (config.quant.k_smooth == KSmooth::kMean && len > 0) {
    std::vector<Half> rows(p.k.size());
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = float_to_half(p.k[i]);  // exact
    channel_mean(ConstHalfTensor::contiguous(rows.data(), 1, 1, len, d), 0, 0, 0, len, mean.data());
  }
  for (int64_t t = 0; t < len; ++t)
    for (int c = 0; c < d; ++c) p.k[t * d + c] -= mean[c];
  p.k8.resize(p.k.size());
  for (int64_t t0 = 0; t0 < len; t0 += p.tile) {
    const int64_t n = std::min<int64_t>(p.tile, len - t0);
    float amax = 0.0f;
    for (int64_t i = t0 * d; i < (t0 + n) * d; ++i) amax = maxf(amax, absf(p.k[i]));
    const Stage1Scale s = stage1_scale(amax);
    p.k_scale.push_back(s.scale);
    for (int64_t i = t0 * d; i < (t0 + n) * d; ++i) p.k8[i] = stage1_code(p.k[i], s.inv);
  }
}

// K side: the FP16 mean, K' = fp16(K - mean), INT8 codes and the per-token scale of each token's
// group. k: n rows of d FP16 values (row-major).
void sage_quantize_k(const AttentionConfig& config, const Half* k, int64_t n, int d,
                     SageCodes& out) {
  out.k_mean.assign(static_cast<size_t>(d), 0.0f);
  if (config.quant.k_smooth == KSmooth::kMean && n > 0) {
    // torch's k.mean() on FP16: an FP32 sum (here in token order), divided in FP32, rounded to
    // FP16.
    for (int c = 0; c < d; ++c) {
      float sum = 0.0f;
      for (int64_t t = 0; t < n; ++t) sum += half_to_float(k[t * d + c]);
      out.k_mean[c] = round_half(sum / static_cast<float>(n));
    }
  }
  std::vector<float> kp(static_cast<size_t>(n * d));
  for (int64_t t = 0; t < n; ++t)
    for (int c = 0; c < d; ++c) kp[t * d + c] = sub16(half_to_float(k[t * d + c]), out.k_mean[c]);
  out.k8.assign(kp.size(), 0);
  out.k_scale.assign(static_cast<size_t>(n), 0.0f);
  const bool thread = config.quant.sage_gran == SageGran::kThread;
  // Groups inside a 64-token block: the whole block, or (per thread) tokens t with t % 8 in
  // {2g, 2g + 1}, g = 0..3 (the rows one thread holds in the mma fragments).
  const int groups = thread ? kSageThreadGroupsK : 1;
  auto group_of = [&](int64_t t) { return thread ? static_cast<int>((t % 8) / 2) : 0; };
  for (int64_t t0 = 0; t0 < n; t0 += kSageBlockK) {
    const int64_t t1 = std::min<int64_t>(t0 + kSageBlockK, n);
    for (int g = 0; g < groups; ++g) {
      float amax = 0.0f;
      for (int64_t t = t0; t < t1; ++t)
        if (group_of(t) == g)
          for (int c = 0; c < d; ++c) amax = maxf(amax, absf(kp[t * d + c]));
      const float s = sage_int8_scale(amax, thread ? kSageThreadEps : 0.0f);
      for (int64_t t = t0; t < t1; ++t) {
        if (group_of(t) != g) continue;
        out.k_scale[t] = s;
        for (int c = 0; c < d; ++c) out.k8[t * d + c] = sage_int8_code(kp[t * d + c], s);
      }
    }
  }
}

// Q side: INT8 codes and the per-row scale of each row's group; rows count from the first row of
// the call. Per block (Triton) Q is first multiplied by tau * log2(e) and quantized per 128 rows;
// per thread (sm80) Q is quantized as it is, 8 groups per 32-row warp (rows r with r % 8 = g).
void sage_quantize_q(const AttentionConfig& config, const Half* q, int64_t q_stride, int64_t n,
                     int d, float tau, SageCodes& out) {
  const bool thread = config.quant.sage_gran == SageGran::kThread;
  const float pre = thread ? 1.0f : sage_q_prescale(tau);
  std::vector<float> x(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < d; ++c) x[i * d + c] = half_to_float(q[i * q_stride + c]) * pre;
  out.q8.assign(x.size(), 0);
  out.q_scale.assign(static_cast<size_t>(n), 0.0f);
  const int64_t block = thread ? kSageWarpQ : kSageBlockQ;
  const int groups = thread ? kSageThreadGroupsQ : 1;
  for (int64_t i0 = 0; i0 < n; i0 += block) {
    const int64_t i1 = std::min<int64_t>(i0 + block, n);
    for (int g = 0; g < groups; ++g) {
      float amax = 0.0f;
      for (int64_t i = i0 + g; i < i1; i += groups)
        for (int c = 0; c < d; ++c) amax = maxf(amax, absf(x[i * d + c]));
      const float s = sage_int8_scale(amax, thread ? kSageThreadEps : 0.0f);
      for (int64_t i = i0 + g; i < i1; i += groups) {
        out.q_scale[i] = s;
        for (int c = 0; c < d; ++c) out.q8[i * d + c] = sage_int8_code(x[i * d + c], s);
      }
    }
  }
}

// Authors sage's K/V at attention time: K codes and per-token scales (sage_quantize_k); with
// sage_pv = fp8, V per channel in E4M3 (p.v then holds E4M3 values, p.v_scale the scales).
void quantize_sage_authors_kv(const AttentionConfig& config, PreparedKv& p) {
  const int64_t len = p.len;
  const int d = p.d;
  p.tile = kSageBlockK;
  std::vector<Half> rows(p.k.size());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = float_to_half(p.k[i]);  // exact
  SageCodes kc;
  sage_quantize_k(config, rows.data(), len, d, kc);
  p.k8 = std::move(kc.k8);
  p.k_scale = std::move(kc.k_scale);
  if (config.quant.sage_pv != SagePv::kFp8) return;
  p.v_scale.assign(static_cast<size_t>(d), 0.0f);
  for (int c = 0; c < d; ++c) {
    float amax = 0.0f;
    for (int64_t t = 0; t < len; ++t) amax = maxf(amax, absf(p.v[t * d + c]));
    // Its per_channel_fp8 kernel: scale = amax / 448, codes e4m3(v * (448 / amax)); a zero
    // channel (0 / 0 there) keeps codes 0.
    p.v_scale[c] = amax / kFp8E4M3Max;
    const float recp = amax > 0.0f ? kFp8E4M3Max / amax : 0.0f;
    for (int64_t t = 0; t < len; ++t) p.v[t * d + c] = round_e4m3(p.v[t * d + c] * recp);
  }
}

// What attention reads from a stream; K/V-side knobs come from `kv_config` (the cache's).
PreparedKv prepare_kv(const Stream& stream, const AttentionConfig& kv_config) {
  PreparedKv p = stream.prepare(kv_config);
  if (kv_config.method == Method::kSage) {
    if (kv_config.quant.sage_impl == SageImpl::kLegacy)
      quantize_sage_keys(kv_config, p);
    else
      quantize_sage_authors_kv(kv_config, p);
  }
  return p;
}

// ---- attention over a prepared stream ---------------------------------------------------------

// Query rows of one head: row i sits at absolute position pos0 + i and sees keys
// [0, causal ? pos0 + i + 1 : len).
struct QueryRows {
  const Half* q;
  int64_t q_stride;
  Half* o;
  int64_t o_stride;
  int64_t n;
  int64_t pos0;
  bool causal;
};

int64_t visible_keys(const QueryRows& r, int64_t i, int64_t len) {
  return r.causal ? std::min(r.pos0 + i + 1, len) : len;
}

// Online-softmax state of one row (sage, fp8).
struct OnlineRow {
  float m = -INFINITY;
  float l = 0.0f;
  std::vector<float> o;
};

enum class ExpBase { kE, kTwo };

// One tile of the online softmax of a row, from the tile's scores s[0, n): m_new = max(m, max s),
// alpha = exp(m - m_new) (0 on the first tile), s[t] <- P_t = exp(s_t - (m_new - p_offset)),
// l = l * alpha + sum P (FP32, t ascending); exp is expf, or exp2f for base 2. Returns alpha.
float softmax_tile(OnlineRow& st, float* s, int64_t n, ExpBase base, float p_offset = 0.0f) {
  auto ex = [base](float x) { return base == ExpBase::kTwo ? std::exp2(x) : std::exp(x); };
  float m_new = st.m;
  for (int64_t t = 0; t < n; ++t) m_new = maxf(m_new, s[t]);
  const float alpha = st.m == -INFINITY ? 0.0f : ex(st.m - m_new);
  st.m = m_new;
  const float m_p = m_new - p_offset;
  float rowsum = 0.0f;
  for (int64_t t = 0; t < n; ++t) {
    s[t] = ex(s[t] - m_p);
    rowsum += s[t];
  }
  st.l = st.l * alpha + rowsum;
  return alpha;
}

int32_t int8_dot(const int8_t* a, const int8_t* b, int d) {
  int32_t acc = 0;
  for (int c = 0; c < d; ++c) acc += static_cast<int32_t>(a[c]) * b[c];
  return acc;
}

void finish_row(const OnlineRow& st, int d, Half* out) {
  for (int c = 0; c < d; ++c) out[c] = float_to_half(st.o[c] / st.l);
}

// The online-softmax methods' loop: each query row i over its visible keys in tiles of `tile`
// tokens, in order, with the row's state: tile_fn(i, st, t0, tile_index, n) for each tile,
// row_end(st) after the last, then O / l into the row's output.
template <class TileFn, class RowEnd>
void each_row_tile(const PreparedKv& kv, const QueryRows& r, int64_t tile, TileFn&& tile_fn,
                   RowEnd&& row_end) {
  for (int64_t i = 0; i < r.n; ++i) {
    const int64_t n_keys = visible_keys(r, i, kv.len);
    OnlineRow st;
    st.o.assign(kv.d, 0.0f);
    for (int64_t t0 = 0, index = 0; t0 < n_keys; t0 += tile, ++index)
      tile_fn(i, st, t0, index, std::min<int64_t>(tile, n_keys - t0));
    row_end(st);
    finish_row(st, kv.d, r.o + i * r.o_stride);
  }
}

// sage_impl = legacy (file comment).
void attend_sage(const PreparedKv& kv, const QueryRows& r, const AttentionConfig& config,
                 float tau) {
  const int d = kv.d;
  const int br = config.quant.br;
  // Q in INT8 per block of Br rows: the stage-1 quantizer of SPEC 1 (ref::stage1_rows).
  std::vector<float> qf(static_cast<size_t>(r.n * d));
  for (int64_t i = 0; i < r.n; ++i) half_row_to_float(r.q + i * r.q_stride, d, &qf[i * d]);
  std::vector<int8_t> q8(qf.size());
  std::vector<float> q_scale(static_cast<size_t>((r.n + br - 1) / br));
  stage1_rows(qf.data(), r.n, d, br, q8.data(), q_scale.data());
  std::vector<float> s(static_cast<size_t>(kv.tile)), p(static_cast<size_t>(kv.tile));
  each_row_tile(
      kv, r, kv.tile,
      [&](int64_t i, OnlineRow& st, int64_t t0, int64_t tile, int64_t n) {
        const float c_scale = score_scale(q_scale[i / br], kv.k_scale[tile], tau);
        for (int64_t t = 0; t < n; ++t)
          s[t] = static_cast<float>(int8_dot(&q8[i * d], &kv.k8[(t0 + t) * d], d)) * c_scale;
        const float alpha = softmax_tile(st, s.data(), n, ExpBase::kE);
        for (int64_t t = 0; t < n; ++t) p[t] = round_half(s[t]);
        for (int c = 0; c < d; ++c) {
          float acc = 0.0f;
          for (int64_t t = 0; t < n; ++t) acc += p[t] * kv.v[(t0 + t) * d + c];
          st.o[c] = st.o[c] * alpha + acc;
        }
      },
      [](OnlineRow&) {});
}

// sage_impl = authors: per row, 64-token tiles in order, only keys <= the row's position (causal):
// S2 = (float)acc * ds (the base-2 score: ds = s_q * s_k per block, Q having been multiplied by
// tau * log2(e) before quantization; (tau * log2e) * (s_q * s_k) per thread), the online softmax
// in base 2 (softmax_tile), then P.V at sage_pv's precision (file comment).
void attend_sage_authors(const PreparedKv& kv, const QueryRows& r, const AttentionConfig& config,
                         float tau) {
  const int d = kv.d;
  SageCodes qc;
  sage_quantize_q(config, r.q, r.q_stride, r.n, d, tau, qc);
  const bool thread = config.quant.sage_gran == SageGran::kThread;
  const float c_thread = tau * kSageLog2e;
  const SagePv pv = config.quant.sage_pv;
  std::vector<float> s(static_cast<size_t>(kSageBlockK)), p(s.size());
  auto tile_fn = [&](int64_t i, OnlineRow& st, int64_t t0, int64_t, int64_t n) {
    const int8_t* qi = &qc.q8[i * d];
    for (int64_t t = 0; t < n; ++t) {
      const float ds = qc.q_scale[i] * kv.k_scale[t0 + t];
      s[t] =
          static_cast<float>(int8_dot(qi, &kv.k8[(t0 + t) * d], d)) * (thread ? c_thread * ds : ds);
    }
    const float alpha =
        softmax_tile(st, s.data(), n, ExpBase::kTwo, pv == SagePv::kFp8 ? kSageFp8Offset : 0.0f);
    if (pv == SagePv::kFp16) {
      // An FP16 accumulator per tile (one rounding per product-add), added to the FP32 output.
      for (int64_t t = 0; t < n; ++t) p[t] = round_half(s[t]);
      for (int c = 0; c < d; ++c) {
        float acc = 0.0f;
        for (int64_t t = 0; t < n; ++t)
          acc = round_half(static_cast<double>(acc) +
                           static_cast<double>(p[t]) * kv.v[(t0 + t) * d + c]);
        st.o[c] = st.o[c] * alpha + acc;
      }
    } else {
      // The FP32 accumulator is the output itself (the mma's C operand): rescaled, then summed
      // into in token order. FP16 x FP16 and E4M3 x E4M3 products are exact in FP32.
      for (int64_t t = 0; t < n; ++t)
        p[t] = pv == SagePv::kFp8 ? round_e4m3(s[t]) : round_half(s[t]);
      for (int c = 0; c < d; ++c) {
        float o = st.o[c] * alpha;
        for (int64_t t = 0; t < n; ++t) o += p[t] * kv.v[(t0 + t) * d + c];
        st.o[c] = o;
      }
    }
  };
  each_row_tile(kv, r, kSageBlockK, tile_fn, [&](OnlineRow& st) {
    if (pv == SagePv::kFp8)
      for (int c = 0; c < d; ++c) st.o[c] *= kv.v_scale[c];
  });
}

// Exact dot product of E4M3 (or FP16 x E4M3) values in FP64, rounded once to FP32.
float dot_exact(const float* a, const float* b, int64_t n, int64_t b_stride) {
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(a[i]) * b[i * b_stride];
  return static_cast<float>(acc);
}

void attend_fp8(const PreparedKv& kv, const QueryRows& r, const AttentionConfig& config,
                float tau) {
  const int d = kv.d;
  const int br = config.quant.br;
  std::vector<float> q8(static_cast<size_t>(r.n * d));
  std::vector<float> q_scale;
  {
    std::vector<float> f(static_cast<size_t>(std::min<int64_t>(br, r.n) * d));
    std::vector<uint8_t> codes(f.size());
    for (int64_t i0 = 0; i0 < r.n; i0 += br) {
      const int64_t n = std::min<int64_t>(br, r.n - i0);
      for (int64_t i = 0; i < n; ++i) half_row_to_float(r.q + (i0 + i) * r.q_stride, d, &f[i * d]);
      q_scale.push_back(quantize_fp8_tile(f.data(), n, d, codes.data()));
      for (int64_t j = 0; j < n * d; ++j) q8[i0 * d + j] = e4m3_to_float(codes[j]);
    }
  }
  const PQuant pq = config.p_quant;
  std::vector<float> s(static_cast<size_t>(kv.tile)), p8(static_cast<size_t>(kv.tile));
  auto tile_fn = [&](int64_t i, OnlineRow& st, int64_t t0, int64_t tile, int64_t n) {
    const float* qi = &q8[i * d];
    const float c_scale = score_scale(q_scale[i / br], kv.k_scale[tile], tau);
    for (int64_t t = 0; t < n; ++t) s[t] = dot_exact(qi, &kv.k[(t0 + t) * d], d, 1) * c_scale;
    const float alpha = softmax_tile(st, s.data(), n, ExpBase::kE);  // s now holds P (FP32)
    float rowmax = 0.0f;
    for (int64_t t = 0; t < n; ++t) rowmax = maxf(rowmax, s[t]);
    float s_p = 1.0f;
    if (pq == PQuant::kFp16) {
      for (int64_t t = 0; t < n; ++t) p8[t] = round_half(s[t]);
    } else {
      const Fp8Scale ps = pq == PQuant::kU8Row ? fp8_scale(rowmax) : fp8_scale(1.0f);
      s_p = ps.scale;
      for (int64_t t = 0; t < n; ++t) p8[t] = round_e4m3(s[t] * ps.inv);
    }
    const float s_pv = s_p * kv.v_scale[tile];
    for (int c = 0; c < d; ++c) {
      const float acc = dot_exact(p8.data(), &kv.v[t0 * d + c], n, d);
      st.o[c] = st.o[c] * alpha + acc * s_pv;
    }
  };
  each_row_tile(kv, r, kv.tile, tile_fn, [](OnlineRow&) {});
}

// sage and fp8; kivi and int8kv run the FP16 floor over their dequantized cache instead.
void attend_online(const AttentionConfig& config, const PreparedKv& kv, const QueryRows& r) {
  const float tau = config.tau_for(kv.d);
  if (config.method == Method::kSage && config.quant.sage_impl == SageImpl::kAuthors) {
    attend_sage_authors(kv, r, config, tau);
  } else if (config.method == Method::kSage) {
    attend_sage(kv, r, config, tau);
  } else {
    attend_fp8(kv, r, config, tau);
  }
}

// kivi, int8kv: the FP16 noise floor itself (ref::attention_fp16_floor) over the dequantized
// cache contents, which are FP16 values by construction. q [B, Hq, n, D] are the last n positions.
void attend_dequantized(const std::vector<PreparedKv>& prepared, int64_t B, int64_t Hkv,
                        const ConstHalfTensor& q, bool causal, float tau, const HalfTensor& o) {
  const int64_t L = prepared.front().len, d = prepared.front().d;
  HostTensor<Half> kd(B, Hkv, L, d), vd(B, Hkv, L, d);
  for (int64_t s = 0; s < B * Hkv; ++s) {
    const PreparedKv& p = prepared[static_cast<size_t>(s)];
    for (int64_t i = 0; i < L * d; ++i) {
      kd.storage[static_cast<size_t>(s * L * d + i)] = float_to_half(p.k[static_cast<size_t>(i)]);
      vd.storage[static_cast<size_t>(s * L * d + i)] = float_to_half(p.v[static_cast<size_t>(i)]);
    }
  }
  attention_fp16_floor(q, kd.view(), vd.view(), causal, tau, o);
}

bool uses_floor(Method m) {
  return m == Method::kKivi || m == Method::kInt8Kv || m == Method::kFp16;
}

void add_stats(AttentionStats* stats, int64_t index, const QueryRows& r, int64_t len) {
  if (!stats) return;
  AttentionStats s;
  s.rows = r.n;
  for (int64_t i = 0; i < r.n; ++i) s.scored += visible_keys(r, i, len);
  stats[index].merge(s);
}

// Attention of q [B, Hq, n, D] (absolute positions pos0 .. pos0 + n - 1) over the prepared
// streams of every (batch, kv head), each of `len` tokens.
void attend_streams(const AttentionConfig& config, const std::vector<PreparedKv>& prepared,
                    const ConstHalfTensor& q, int64_t Hkv, int64_t pos0, int64_t len, bool causal,
                    const HalfTensor& o, AttentionStats* stats) {
  const int64_t B = q.batch(), Hq = q.heads(), n = q.tokens(), g = Hq / Hkv;
  if (uses_floor(config.method)) {
    attend_dequantized(prepared, B, Hkv, q, causal, config.tau_for(static_cast<int>(q.dim())), o);
  } else {
#pragma omp parallel for schedule(dynamic)
    for (int64_t idx = 0; idx < B * Hq; ++idx) {
      const int64_t b = idx / Hq, h = idx % Hq;
      const QueryRows r{q.row(b, h, 0), q.stride[2], o.row(b, h, 0), o.stride[2], n, pos0, causal};
      attend_online(config, prepared[static_cast<size_t>(b * Hkv + h / g)], r);
    }
  }
  for (int64_t idx = 0; idx < B * Hq; ++idx) {
    const QueryRows r{nullptr, 0, nullptr, 0, n, pos0, causal};
    add_stats(stats, idx, r, len);
  }
}

}  // namespace

void baseline_prefill(const AttentionConfig& config, const ConstHalfTensor& q,
                      const ConstHalfTensor& k, const ConstHalfTensor& v, const HalfTensor& o,
                      AttentionStats* stats) {
  const int64_t B = q.batch(), Hkv = k.heads();
  const int d = static_cast<int>(q.dim());
  if (config.method == Method::kKivi && config.quant.kivi_impl == KiviImpl::kAuthors) {
    // The authors' prefill attends the unquantized K/V and quantizes the cache afterwards.
    check_kivi_shape(config.quant, d);
    attention_fp16_floor(q, k, v, config.causal, config.tau_for(d), o);
    for (int64_t idx = 0; idx < B * q.heads(); ++idx) {
      const QueryRows r{nullptr, 0, nullptr, 0, q.tokens(), 0, config.causal};
      add_stats(stats, idx, r, q.tokens());
    }
    return;
  }
  std::vector<PreparedKv> prepared(static_cast<size_t>(B * Hkv));
#pragma omp parallel for schedule(dynamic)
  for (int64_t s = 0; s < B * Hkv; ++s) {
    std::unique_ptr<Stream> stream =
        make_stream(config, method_stored_bits(config, {}, static_cast<int>(s % Hkv)), d);
    stream->append(k, v, s / Hkv, s % Hkv);
    prepared[static_cast<size_t>(s)] = prepare_kv(*stream, config);
  }
  attend_streams(config, prepared, q, Hkv, 0, q.tokens(), config.causal, o, stats);
}

std::unique_ptr<KvStream> baseline_make_stream(const KvCacheSpec& spec, int bits) {
  return make_stream(spec.config, bits, spec.head_dim);
}

void baseline_decode(const AttentionConfig& config, const ConstHalfTensor& q, const KvCache& cache,
                     const HalfTensor& o, AttentionStats* stats) {
  const RefKvCache& c = as_ref_cache(cache);
  const int64_t Hkv = c.spec().kv_heads, L = c.length();
  std::vector<PreparedKv> prepared(static_cast<size_t>(q.batch() * Hkv));
#pragma omp parallel for schedule(dynamic)
  for (int64_t s = 0; s < q.batch() * Hkv; ++s)
    prepared[static_cast<size_t>(s)] =
        prepare_kv(c.stream<Stream>(s / Hkv, s % Hkv), c.spec().config);
  attend_streams(config, prepared, q, Hkv, L - q.tokens(), L, true, o, stats);
}

KiviStreamState kivi_stream_state(const KvCache& cache, int b, int h) {
  const RefKvCache& c = as_ref_cache(cache);
  TURBO_CHECK(c.spec().config.method == Method::kKivi, "kivi_stream_state needs a kivi cache");
  TURBO_CHECK(b >= 0 && b < c.spec().batch && h >= 0 && h < c.spec().kv_heads,
              "kivi_stream_state: no stream (" << b << ", " << h << ")");
  return c.stream<KiviStream>(b, h).state();
}

SageCodes sage_codes(const AttentionConfig& config, const Half* q, int64_t nq, const Half* k,
                     int64_t nk, int d) {
  TURBO_CHECK(config.method == Method::kSage && config.quant.sage_impl == SageImpl::kAuthors,
              "sage_codes needs a sage_impl=authors config");
  SageCodes out;
  sage_quantize_k(config, k, nk, d, out);
  sage_quantize_q(config, q, d, nq, d, config.tau_for(d), out);
  return out;
}

}  // namespace ref
}  // namespace turbo

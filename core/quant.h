// FlashQ quantizer formulas (SPEC sections 1-3), host + device.
//
// Rounding contract, written once here (FBGEMM QuantUtils style):
//  - stage 1 (symmetric INT8): s = amax / 127 (FP32); inv = 1.0f / s (IEEE division, once per
//    group); q = clamp(rint(x * inv), -127, 127), rint = round half to even. amax == 0 gives
//    s = 0, inv = 0 and all codes 0.
//  - stage 2 (integer, asymmetric, on INT8 codes): s2 = max(1, ceil((hi - lo) / L)), z = lo,
//    c = min(L, floor((2 (q - z) + s2) / (2 s2)))  (round half up, integers only),
//    dequant q' = clamp(c s2 + z, -127, 127).
//  - stage 2 with s2_step = float: the step is the exact fraction r / L (r = hi - lo, stored in
//    the s2 byte), c = min(L, floor((2 (q - z) L + r) / (2 r))) (0 when r = 0), dequant
//    q' = z + floor((2 c r + L) / (2 L)): round half up both ways, integers only, and q' stays on
//    the INT8 grid so that the integer products downstream are unchanged.
//  - direct asymmetric (KIVI-style baselines): s = (mx - mn) / L, z = mn, both rounded to the
//    storage precision first; c = clamp(rint((x - z) * (1/s)), 0, L); dequant fma(c, s, z).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/fp16.h"
#include "core/macros.h"

namespace turbo {

TURBO_HD int rint_to_int(float v) {
#if TURBO_ON_DEVICE
  return __float2int_rn(v);
#else
  return static_cast<int>(std::nearbyint(v));
#endif
}

TURBO_HD float fmaf_rn(float a, float b, float c) {
#if TURBO_ON_DEVICE
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// |x| clears the sign bit (SPEC 1): |-0| = +0, so an all-zero group's amax, and its stored
// scale, is +0 whatever the order of the scan. (A `v < 0 ? -v : v` would keep -0.)
TURBO_HD float absf(float v) {
#if TURBO_ON_DEVICE
  return fabsf(v);
#else
  return std::fabs(v);
#endif
}
// (float)v without an int -> float conversion instruction, exact for |v| <= 2^22 (kSmallIntLimit):
// the FP32 number 1.5 * 2^23 + v holds v in its low mantissa bits (its exponent is 2^23 for every
// such v, so the integer addition on the bits is the exact sum), and subtracting 1.5 * 2^23 again
// is exact. Kernels use it on tile sums of INT8 products, whose bound they check at compile time:
// the conversion pipe is a quarter or less of the FP32 rate. Tested exhaustively on the range.
constexpr int32_t kSmallIntLimit = 1 << 22;  // |v| <= this
TURBO_HD float small_int_to_float(int32_t v) {
  const uint32_t bits = 0x4B400000u + static_cast<uint32_t>(v);
#if TURBO_ON_DEVICE
  const float f = __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, 4);
#endif
  return f - 12582912.0f;
}

TURBO_HD float maxf(float a, float b) { return a > b ? a : b; }
TURBO_HD float minf(float a, float b) { return a < b ? a : b; }
TURBO_HD int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// ---- Stage 1: symmetric INT8 -------------------------------------------------------------

constexpr int kInt8Max = 127;

struct Stage1Scale {
  float scale;  // s, stored FP32
  float inv;    // 1.0f / s, or 0 when s == 0
};

TURBO_HD Stage1Scale stage1_scale(float amax) {
  Stage1Scale r;
  r.scale = amax / 127.0f;
  r.inv = r.scale == 0.0f ? 0.0f : 1.0f / r.scale;
  return r;
}

// x * inv rounded half-to-even and saturated to [-127, 127]. The clamp happens on the float
// first so that no out-of-range float reaches the integer conversion.
TURBO_HD int8_t stage1_code(float x, float inv) {
  float v = x * inv;
  v = minf(maxf(v, -127.0f), 127.0f);
  return static_cast<int8_t>(rint_to_int(v));
}

// ---- Stage 2: progressive INT8 -> INT4 / INT2 ---------------------------------------------

struct Stage2Params {
  uint8_t s2;  // integer step, >= 1
  int8_t z;    // zero point = group minimum
};

TURBO_HD Stage2Params stage2_params(int lo, int hi, int bits) {
  const int levels = (1 << bits) - 1;
  int s2 = (hi - lo + levels - 1) / levels;  // ceil for hi - lo >= 0
  if (s2 < 1) s2 = 1;
  Stage2Params p;
  p.s2 = static_cast<uint8_t>(s2);
  p.z = static_cast<int8_t>(lo);
  return p;
}

TURBO_HD uint8_t stage2_code(int q, Stage2Params p, int bits) {
  const int levels = (1 << bits) - 1;
  const int s2 = p.s2;
  const int c = (2 * (q - p.z) + s2) / (2 * s2);  // q - z >= 0: integer division is floor
  return static_cast<uint8_t>(c < levels ? c : levels);
}

// The kernels' in-group form of stage2_code: for a code q that lies in the [lo, hi] its group's
// parameters were computed from (p = stage2_params(lo, hi, bits): every code of the group does),
// with u = q + 128 (the code biased to unsigned, u in [0, 255]), K = 32 - bits,
// M = ceil(2^K / (2 s2)) (stage2_recip, a 255-entry table per width), and
//   v = u (2 M) + (s2 - 2 z - 256) M   (mod 2^32),
// the code is the top `bits` bits of v: c = v >> K, and the bits below are the fraction. Why: v
// = n M with n = 2 (q - z) + s2 in [1, 765] (the bias is folded into the constant: 2 (u - 128) =
// 2 q). With m = 2 s2 in [2, 510], M m = 2^K + e with e in [0, m), so n M / 2^K = n / m + n e /
// (m 2^K), and n e < 765 * 510 < 2^K keeps the excess below 1 / m: floor(n M / 2^K) = floor(n / m)
// (the fraction of n / m is at most (m - 1) / m). No clamp: q - z <= hi - lo <= L s2 (s2 = ceil((hi
// - lo) / L)) gives n / m <= L + 1/2, so the code is at most L and n M < (L + 1/2) 2^K + n < 2^32:
// v fits in 32 bits, and unsigned arithmetic mod 2^32 is exact even where u (2 M) alone wraps. A
// kernel packs the code of v with one funnel shift (acc << bits | v >> K). quant_test proves it
// equal to stage2_code for every (lo, hi, q in [lo, hi]) at 4 and 2 bits, lo from -128, through
// the table.
TURBO_HD constexpr uint32_t stage2_recip(int s2, int bits) {
  return ((uint32_t{1} << (32 - bits)) + 2 * static_cast<uint32_t>(s2) - 1) /
         (2 * static_cast<uint32_t>(s2));
}

// stage2_recip for every s2 in [1, 255] (entry 0 unused) of one width, built at compile time.
struct Stage2RecipTable {
  uint32_t M[256];
};
constexpr Stage2RecipTable stage2_recip_table(int bits) {
  Stage2RecipTable t{};
  for (int s2 = 1; s2 < 256; ++s2) t.M[s2] = stage2_recip(s2, bits);
  return t;
}

struct Stage2Top {
  uint32_t a;  // 2 M
  uint32_t b;  // (s2 - 2 z - 256) M mod 2^32
};

// The group's constants from its parameters and M = stage2_recip(p.s2, bits) (a table entry).
TURBO_HD Stage2Top stage2_top(Stage2Params p, uint32_t M) {
  const int32_t k = static_cast<int32_t>(p.s2) - 2 * static_cast<int32_t>(p.z) - 256;
  return Stage2Top{2 * M, static_cast<uint32_t>(k) * M};
}

// v of the comment above for the biased code u; the code is v >> (32 - bits).
TURBO_HD uint32_t stage2_top_value(uint32_t u, Stage2Top t) { return u * t.a + t.b; }

TURBO_HD int8_t stage2_dequant(int c, Stage2Params p) {
  return static_cast<int8_t>(clampi(c * static_cast<int>(p.s2) + p.z, -127, 127));
}

// Stage-2 dequantization through FP16 arithmetic: an exact transformation of stage2_dequant that
// the decode kernel runs on two codes at a time (half2). With c in [0, 15], s2 in [1, 255] and z
// in [-127, 127]:
//   v = min(fma16(c, s2, z + 1536), 1536 + 127),   q' = low byte of the FP16 bits of v.
// z + 1536 lies in [1409, 1663], exact in FP16 (ulp 1 in [1024, 2048)); c * s2 + z + 1536 is an
// integer, exact in FP16 when < 2048, and otherwise rounds (monotonically) to >= 2048, where the
// true c * s2 + z >= 512 clamps to 127 anyway. The lower clamp of stage2_dequant never acts
// (c * s2 + z >= z >= -127). So v = 1536 + q', whose FP16 bits are 0x6600 + q': the low byte is
// q' as an int8. A code c enters as the FP16 bits 0x6400 | c (= 1024 + c) minus 1024, also exact.
// quant_test proves this equal to stage2_dequant for every (c, s2, z).
constexpr float kStage2Fp16Bias = 1536.0f;
TURBO_HD int8_t stage2_dequant_fp16(int c, Stage2Params p) {
  const float code = sub16(half_to_float(Half{static_cast<uint16_t>(0x6400u | c)}), 1024.0f);
  float v = fma16(code, static_cast<float>(p.s2), static_cast<float>(p.z) + kStage2Fp16Bias);
  v = minf(v, kStage2Fp16Bias + 127.0f);
  return static_cast<int8_t>(float_to_half(v).bits & 0xffu);
}

// Stage 2 with the fractional step r / L (s2_step = float). Same storage as the integer step:
// the s2 byte holds the range r = hi - lo (0..254), z = lo. The paper (arXiv 2412.08585, sec. 3)
// writes the second-stage scale as an integer; the fractional step is this toolkit's variant.
TURBO_HD Stage2Params stage2f_params(int lo, int hi) {
  Stage2Params p;
  p.s2 = static_cast<uint8_t>(hi - lo);
  p.z = static_cast<int8_t>(lo);
  return p;
}

TURBO_HD uint8_t stage2f_code(int q, Stage2Params p, int bits) {
  const int levels = (1 << bits) - 1;
  const int r = p.s2;
  if (r == 0) return 0;
  const int c = (2 * (q - p.z) * levels + r) / (2 * r);  // q - z in [0, r]: floor = round half up
  return static_cast<uint8_t>(c < levels ? c : levels);
}

TURBO_HD int8_t stage2f_dequant(int c, Stage2Params p, int bits) {
  const int levels = (1 << bits) - 1;
  const int r = p.s2;
  return static_cast<int8_t>(clampi(p.z + (2 * c * r + levels) / (2 * levels), -127, 127));
}

// ---- Direct asymmetric quantizer (baselines) -----------------------------------------------

enum class ScaleStorage : int { kFp16 = 0, kFp32 = 1 };

struct AsymParams {
  float scale;  // as stored (already rounded to the storage precision)
  float zero;
  float inv;  // 1 / scale, 0 when scale == 0
};

TURBO_HD AsymParams asym_params(float mn, float mx, int bits, ScaleStorage storage) {
  const float levels = static_cast<float>((1 << bits) - 1);
  float s = (mx - mn) / levels;
  float z = mn;
  if (storage == ScaleStorage::kFp16) {
    s = round_half(s);
    z = round_half(z);
  }
  AsymParams p;
  p.scale = s;
  p.zero = z;
  p.inv = s == 0.0f ? 0.0f : 1.0f / s;
  return p;
}

TURBO_HD uint8_t asym_code(float x, AsymParams p, int bits) {
  const float levels = static_cast<float>((1 << bits) - 1);
  float v = (x - p.zero) * p.inv;
  v = minf(maxf(v, 0.0f), levels);
  return static_cast<uint8_t>(rint_to_int(v));
}

TURBO_HD float asym_dequant(int c, AsymParams p) {
  return fmaf_rn(static_cast<float>(c), p.scale, p.zero);
}

// ---- KIVI as its authors' code computes it -------------------------------------------------
// jy-yuan/KIVI, quant/new_pack.py, triton_quantize_and_pack_along_last_dim: on FP16 tensors,
//   scale = (mx - mn) / (2^b - 1);  data = (data - mn) / scale;  data.clamp_(0, L).round_()
// PyTorch's half arithmetic does each op in FP32 and rounds the result to FP16, so here:
//   s = fp16(fp16(mx - mn) / L), t = fp16(x - mn), c = rint(clamp(fp16(t / s), 0, L)) (true
// division, round half to even). s == 0 (all values equal, or a range below FP16's reach) makes
// t / s NaN (t = 0) or +inf (t > 0); torch's float-to-int cast gives 0 for NaN, the clamp gives L
// for inf; either dequantizes to mn. Scale and zero (= mn) are FP16 values. The caller rejects a
// group whose fp16(mx - mn) overflows to inf.
TURBO_HD AsymParams kivi_params(float mn, float mx, int bits) {
  const float levels = static_cast<float>((1 << bits) - 1);
  AsymParams p;
  p.scale = round_half(round_half(mx - mn) / levels);
  p.zero = mn;
  p.inv = 0.0f;  // not used: the authors' code divides
  return p;
}

TURBO_HD uint8_t kivi_code(float x, AsymParams p, int bits) {
  const float levels = static_cast<float>((1 << bits) - 1);
  const float t = round_half(x - p.zero);
  if (p.scale == 0.0f) return static_cast<uint8_t>(t > 0.0f ? levels : 0.0f);
  float v = round_half(t / p.scale);
  v = minf(maxf(v, 0.0f), levels);
  return static_cast<uint8_t>(rint_to_int(v));
}

// ---- SageAttention's INT8 quantizer as its authors' code computes it --------------------------
// thu-ml/SageAttention, sageattention/triton/quant_per_block.py and quant_per_thread.py, on the
// FP32 values x of one scale group:
//   scale = max|x| / 127 (+ 1e-7 in the per-thread kernels: kSageThreadEps);
//   q = int8(x / scale + 0.5 * (x / scale >= 0 ? 1 : -1))
// an FP32 division and an FP32 add, then the float-to-int8 cast, which truncates toward zero: the
// quotient rounded half away from zero. |x / scale| <= 127 up to an ulp, so no code leaves
// [-127, 127]. A group of zeros makes the per-block kernel divide 0 / 0 (NaN codes); here a zero
// scale gives codes 0, which is what the per-thread kernels' epsilon gives.
constexpr float kSageThreadEps = 1e-7f;

TURBO_HD float sage_int8_scale(float amax, float eps) { return amax / 127.0f + eps; }

TURBO_HD int8_t sage_int8_code(float x, float scale) {
  if (scale == 0.0f) return 0;
  const float v = x / scale;
  return static_cast<int8_t>(static_cast<int>(v + (v >= 0.0f ? 0.5f : -0.5f)));
}

// The factor its Triton wrapper multiplies Q by before the per-block quantizer: sm_scale *
// 1.44269504 (tau * log2(e), with that literal), a Python double passed to the kernel as FP32.
TURBO_HD float sage_q_prescale(float tau) {
  return static_cast<float>(static_cast<double>(tau) * 1.44269504);
}
// Its CUDA kernels' log2(e) (csrc/math.cuh), by which the sm80 path multiplies sm_scale.
constexpr float kSageLog2e = 1.44269504088896340736f;
// S_FP8_OFFSET of its FP8 P.V kernels: P = 2^(S2 - m + 8.807) <= 2^8.807 ~ 448 fills E4M3's range.
constexpr float kSageFp8Offset = 8.807f;

// ---- Packing: 8 / b codes per byte, the first code in the low bits ---------------------------

TURBO_HD int codes_per_byte(int bits) { return 8 / bits; }

TURBO_HD int64_t packed_bytes(int64_t n_codes, int bits) {
  const int per = codes_per_byte(bits);
  return (n_codes + per - 1) / per;
}

TURBO_HD void pack_code(uint8_t* out, int64_t i, uint8_t code, int bits) {
  const int per = codes_per_byte(bits);
  const int shift = static_cast<int>(i % per) * bits;
  const uint8_t mask = static_cast<uint8_t>(((1 << bits) - 1) << shift);
  out[i / per] = static_cast<uint8_t>((out[i / per] & ~mask) | ((code << shift) & mask));
}

TURBO_HD uint8_t unpack_code(const uint8_t* in, int64_t i, int bits) {
  const int per = codes_per_byte(bits);
  const int shift = static_cast<int>(i % per) * bits;
  return static_cast<uint8_t>((in[i / per] >> shift) & ((1 << bits) - 1));
}

}  // namespace turbo

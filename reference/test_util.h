// Helpers for tests that check the reference against independent oracles.
//
// FP16 conversions here go through GCC's _Float16 (libgcc's __trunc*hf2 / __extendhfsf2), which
// share no code with core/fp16.h; core/fp16_test.cpp checks them against an exact-rounding oracle.
// Inputs are seeded and FP16-exact, so every test is reproducible from its name alone.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace turbo {
namespace test {

// RN-even rounding of an exact long double value to FP16, as bits / as a float.
inline uint16_t f16_bits(long double v) {
  const _Float16 h = static_cast<_Float16>(v);
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}
inline float f16_round(long double v) {
  const _Float16 h = static_cast<_Float16>(v);
  return static_cast<float>(h);
}
inline float f16_value(uint16_t bits) {
  _Float16 h;
  std::memcpy(&h, &bits, 2);
  return static_cast<float>(h);
}
inline float f16_value(Half h) { return f16_value(h.bits); }

// Shapes of one attention problem.
struct Shape {
  int64_t b = 1, hq = 2, hkv = 2, n = 100, d = 64;
};

inline std::string shape_string(const Shape& s) {
  std::ostringstream os;
  os << "B=" << s.b << ",Hq=" << s.hq << ",Hkv=" << s.hkv << ",N=" << s.n << ",D=" << s.d;
  return os.str();
}

// Input structure of a test case.
enum class InputKind {
  kGaussian,        // N(0, 1) entries
  kOutlierChannel,  // K with two channels 30x larger (a tile-scale stressor, SageAttention-like)
  kSink,            // token 0 of K aligned with every query (an attention sink, about 8 above
                    // the other scores at D = 64), V[0] large
  kLarge,           // magnitudes up to ~6e4: scores saturate at 65504
  kMixedScale,      // per-token magnitudes spread over 2^-8 .. 2^4
};

// Fills FP16 tensors (values exactly FP16) for q [B, Hq, N, D], k/v [B, Hkv, N, D].
struct Inputs {
  HostTensor<Half> q, k, v;
};

inline Half to_f16(float x) { return Half{f16_bits(x)}; }

inline Inputs make_inputs(const Shape& s, InputKind kind, uint64_t seed) {
  Inputs in{HostTensor<Half>(s.b, s.hq, s.n, s.d), HostTensor<Half>(s.b, s.hkv, s.n, s.d),
            HostTensor<Half>(s.b, s.hkv, s.n, s.d)};
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto fill = [&](HostTensor<Half>& t, float scale) {
    for (int64_t i = 0; i < t.numel(); ++i) {
      float x = nd(rng) * scale;
      if (kind == InputKind::kMixedScale)
        x *= std::ldexp(1.0f, static_cast<int>((i / t.d) % 13) - 8);
      t.storage[static_cast<size_t>(i)] = to_f16(x);
    }
  };
  const float scale = kind == InputKind::kLarge ? 15000.0f : 1.0f;
  fill(in.q, scale);
  fill(in.k, scale);
  fill(in.v, scale);
  if (kind == InputKind::kOutlierChannel) {
    for (int64_t r = 0; r < s.b * s.hkv * s.n; ++r) {
      for (int64_t c : {int64_t{3}, s.d / 2 + 1}) {
        Half& h = in.k.storage[static_cast<size_t>(r * s.d + c)];
        h = to_f16(f16_value(h) * 30.0f + 20.0f);
      }
    }
  }
  if (kind == InputKind::kSink) {
    for (int64_t b = 0; b < s.b; ++b)
      for (int64_t h = 0; h < s.hkv; ++h)
        for (int64_t c = 0; c < s.d; ++c) {
          in.k.storage[static_cast<size_t>(((b * s.hkv + h) * s.n) * s.d + c)] = to_f16(0.5f);
          in.v.storage[static_cast<size_t>(((b * s.hkv + h) * s.n) * s.d + c)] =
              to_f16(c % 2 ? 8.0f : -8.0f);
        }
    for (int64_t i = 0; i < in.q.numel(); ++i) {
      Half& h = in.q.storage[static_cast<size_t>(i)];
      h = to_f16(f16_value(h) * 0.5f + 2.0f);
    }
  }
  return in;
}

// Index of a [B, H, N, D] element as text.
inline std::string index_string(const HostTensor<Half>& t, int64_t i) {
  std::ostringstream os;
  const int64_t d = i % t.d, n = (i / t.d) % t.n, h = (i / (t.d * t.n)) % t.h,
                b = i / (t.d * t.n * t.h);
  os << "[b=" << b << ", h=" << h << ", n=" << n << ", d=" << d << "]";
  return os.str();
}

// Empty when a and b hold identical bits everywhere; else the first differing element, both
// values, and the count of differing elements.
inline std::string first_difference(const HostTensor<Half>& got, const HostTensor<Half>& want) {
  if (got.numel() != want.numel()) return "size differs";
  int64_t first = -1, count = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    if (got.storage[static_cast<size_t>(i)].bits != want.storage[static_cast<size_t>(i)].bits) {
      if (first < 0) first = i;
      ++count;
    }
  }
  if (first < 0) return "";
  std::ostringstream os;
  const uint16_t g = got.storage[static_cast<size_t>(first)].bits,
                 w = want.storage[static_cast<size_t>(first)].bits;
  os << count << " of " << got.numel() << " elements differ; first at " << index_string(got, first)
     << ": got " << f16_value(g) << " (0x" << std::hex << g << "), want " << std::dec
     << f16_value(w) << " (0x" << std::hex << w << ")";
  return os.str();
}

// L2 norm of an FP16 tensor (to rule out vacuous all-zero comparisons).
inline double l2_norm(const HostTensor<Half>& t) {
  double s = 0.0;
  for (const Half& h : t.storage) {
    const double x = f16_value(h);
    s += x * x;
  }
  return std::sqrt(s);
}

}  // namespace test
}  // namespace turbo

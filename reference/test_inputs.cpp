#include "reference/test_inputs.h"

#include <random>

namespace turbo {
namespace ref {

QkvInputs make_inputs(const InputShape& s, InputKind kind, uint64_t seed, float scale) {
  QkvInputs r{HostTensor<Half>(s.batch, s.q_heads, s.tokens, s.dim),
              HostTensor<Half>(s.batch, s.kv_heads, s.tokens, s.dim),
              HostTensor<Half>(s.batch, s.kv_heads, s.tokens, s.dim)};
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto* t : {&r.q, &r.k, &r.v})
    for (auto& x : t->storage) x = float_to_half(normal(rng) * scale);
  if (kind == InputKind::kOutlierChannel) {
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t h = 0; h < s.kv_heads; ++h)
        for (int64_t n = 0; n < s.tokens; ++n) {
          Half* row = r.k.view().row(b, h, n);
          for (int64_t c : {int64_t{3}, s.dim / 2 + 1})
            row[c] = float_to_half(half_to_float(row[c]) * 4.0f + 20.0f * scale);
        }
  } else if (kind == InputKind::kSink) {
    // The sink key is the mean query direction, scaled up: every row puts most mass on token 0.
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t h = 0; h < s.kv_heads; ++h) {
        Half* sink = r.k.view().row(b, h, 0);
        const int64_t g = s.q_heads / s.kv_heads;
        for (int64_t c = 0; c < s.dim; ++c) {
          float mean = 0.0f;
          for (int64_t n = 0; n < s.tokens; ++n)
            mean += half_to_float(r.q.view().row(b, h * g, n)[c]);
          sink[c] = float_to_half(mean / static_cast<float>(s.tokens) * 8.0f +
                                  (c % 2 ? 1.0f : -1.0f) * scale);
        }
      }
  }
  return r;
}

}  // namespace ref
}  // namespace turbo

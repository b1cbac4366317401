// The project's one seeded generator: splitmix64 (Steele, Lea, Flood 2014), the same stream on
// every platform and standard library (std::mt19937's distributions are not portable). Used for
// decode positions, validation inputs, benchmark inputs and bootstrap resampling.
#pragma once

#include <cstdint>

namespace turbo {

class SplitMix64 {
 public:
  static constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;
  // `state` is the raw initial state; callers derive it from their seed (e.g. seed ^ kGolden).
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t next() {
    uint64_t z = (state_ += kGolden);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // An index in [0, n), n >= 1 (modulo: the bias, n / 2^64, is far below any use here).
  uint64_t below(uint64_t n) { return next() % n; }
  // A double in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

}  // namespace turbo

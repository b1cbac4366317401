// SPEC 9 error metrics of an FP16 attention output against the FP64 ground truth, over all
// elements of one (layer, head, phase): relative L2 ||O - R|| / ||R||, NMSE ||O - R||^2 / ||R||^2,
// max |O - R|, cosine <O, R> / (||O|| ||R||). Sums in FP64, element order fixed.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/fp16.h"

namespace turbo {
namespace eval {

struct ErrorMetrics {
  double rel_l2 = 0, nmse = 0, max_abs = 0, cosine = 0;
};

class ErrorAccumulator {
 public:
  void add(const Half* o, const double* ref, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      const double x = half_to_float(o[i]), r = ref[i], e = x - r;
      err2_ += e * e;
      ref2_ += r * r;
      out2_ += x * x;
      dot_ += x * r;
      max_abs_ = std::fmax(max_abs_, std::fabs(e));
    }
  }
  ErrorMetrics result() const {
    ErrorMetrics m;
    m.nmse = ref2_ > 0 ? err2_ / ref2_ : NAN;
    m.rel_l2 = std::sqrt(m.nmse);
    m.max_abs = max_abs_;
    m.cosine = ref2_ > 0 && out2_ > 0 ? dot_ / std::sqrt(ref2_ * out2_) : NAN;
    return m;
  }

 private:
  double err2_ = 0, ref2_ = 0, out2_ = 0, dot_ = 0, max_abs_ = 0;
};

}  // namespace eval
}  // namespace turbo

// Non-owning 4-D tensor views [B, H, N, D] with an innermost stride of 1, plus a small owning
// host tensor. Q is [B, Hq, N, D], K/V are [B, Hkv, N, D] (SPEC "Conventions").
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"

namespace turbo {

template <typename T>
struct Tensor4 {
  T* data = nullptr;
  int64_t shape[4] = {0, 0, 0, 0};   // B, H, N, D
  int64_t stride[4] = {0, 0, 0, 1};  // elements; stride[3] is always 1

  int64_t batch() const { return shape[0]; }
  int64_t heads() const { return shape[1]; }
  int64_t tokens() const { return shape[2]; }
  int64_t dim() const { return shape[3]; }
  int64_t numel() const { return shape[0] * shape[1] * shape[2] * shape[3]; }

  T* row(int64_t b, int64_t h, int64_t n) const {
    return data + b * stride[0] + h * stride[1] + n * stride[2];
  }

  static Tensor4 contiguous(T* data, int64_t b, int64_t h, int64_t n, int64_t d) {
    Tensor4 t;
    t.data = data;
    t.shape[0] = b;
    t.shape[1] = h;
    t.shape[2] = n;
    t.shape[3] = d;
    t.stride[3] = 1;
    t.stride[2] = d;
    t.stride[1] = n * d;
    t.stride[0] = h * n * d;
    return t;
  }

  // Views of mutable elements convert implicitly to views of const elements.
  template <typename U = T, typename = std::enable_if_t<!std::is_const<U>::value>>
  operator Tensor4<const U>() const {  // NOLINT(google-explicit-constructor)
    return as_const();
  }

  // The same view with const elements.
  Tensor4<const T> as_const() const {
    Tensor4<const T> t;
    t.data = data;
    for (int i = 0; i < 4; ++i) {
      t.shape[i] = shape[i];
      t.stride[i] = stride[i];
    }
    return t;
  }
};

using HalfTensor = Tensor4<Half>;
using ConstHalfTensor = Tensor4<const Half>;

// Owning, contiguous host tensor.
template <typename T>
struct HostTensor {
  std::vector<T> storage;
  int64_t b = 0, h = 0, n = 0, d = 0;

  HostTensor() = default;
  HostTensor(int64_t b_, int64_t h_, int64_t n_, int64_t d_)
      : storage(static_cast<size_t>(b_ * h_ * n_ * d_)), b(b_), h(h_), n(n_), d(d_) {}

  Tensor4<T> view() { return Tensor4<T>::contiguous(storage.data(), b, h, n, d); }
  Tensor4<const T> view() const { return Tensor4<const T>::contiguous(storage.data(), b, h, n, d); }
  int64_t numel() const { return static_cast<int64_t>(storage.size()); }
};

// Rejects NaN/Inf with an error that names the tensor and the position (SPEC "Conventions").
// `what` names the tensor, e.g. "K (layer 3)"; the head index is added.
inline void check_finite(const ConstHalfTensor& t, const char* what) {
  for (int64_t b = 0; b < t.batch(); ++b)
    for (int64_t h = 0; h < t.heads(); ++h)
      for (int64_t n = 0; n < t.tokens(); ++n) {
        const Half* r = t.row(b, h, n);
        for (int64_t d = 0; d < t.dim(); ++d)
          TURBO_CHECK(is_finite_half(r[d]), "non-finite value in " << what << " at batch " << b
                                                                   << ", head " << h << ", token "
                                                                   << n << ", channel " << d);
      }
}

}  // namespace turbo

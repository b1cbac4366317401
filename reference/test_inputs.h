// Deterministic synthetic attention inputs for tests and benchmarks.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace turbo {
namespace ref {

struct InputShape {
  int64_t batch = 1, q_heads = 1, kv_heads = 1, tokens = 64, dim = 64;
};

enum class InputKind {
  kGaussian,        // N(0, 1) entries
  kOutlierChannel,  // K has a few channels 20x larger (the case K smoothing targets)
  kSink,            // token 0's key aligns with every query: an attention sink
};

struct QkvInputs {
  HostTensor<Half> q, k, v;
};

// Fills Q [B, Hq, N, D] and K, V [B, Hkv, N, D] from a seeded generator.
QkvInputs make_inputs(const InputShape& shape, InputKind kind, uint64_t seed, float scale = 1.0f);

}  // namespace ref
}  // namespace turbo

// The "ref" backend: bit-exact CPU implementations of SPEC 1-8, plus the float ground truth and
// the FP16 noise floor (SPEC 9). OpenMP runs across rows and heads only, never reordering the
// per-element arithmetic, so results are identical for any thread count.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"

namespace turbo {
namespace ref {

// Registers "ref" in the backend registry (idempotent).
void register_reference_backend();
std::unique_ptr<Backend> make_reference_backend();

// Eigen picks its GEMM blocking from the cache sizes it detects; fixing them makes every FP64 and
// FP32 Eigen product (ground truth here, the model forward in datasets/) sum in the same order on
// every x86-64 machine. Idempotent.
void fix_eigen_blocking();

// Ground truth (SPEC 9): exact softmax attention in FP64 from the FP16 inputs (Eigen FP64
// products over blocks of 64 query rows; thread-count independent).
// out [B, Hq, N, D] contiguous, FP64. tau <= 0 means 1 / sqrt(D).
void attention_fp64(const ConstHalfTensor& q, const ConstHalfTensor& k, const ConstHalfTensor& v,
                    bool causal, float tau, double* out);

// The same ground truth for decode: q [B, Hq, q_len, D] are the last q_len positions of the
// keys/values k, v [B, Hkv, L, D] (causal among themselves). out [B, Hq, q_len, D].
void attention_fp64_decode(const ConstHalfTensor& q, const ConstHalfTensor& k,
                           const ConstHalfTensor& v, float tau, double* out);

// Noise floor (SPEC 9): FP16 inputs, FP32 scores/softmax/accumulation, FP16 output.
void attention_fp16_floor(const ConstHalfTensor& q, const ConstHalfTensor& k,
                          const ConstHalfTensor& v, bool causal, float tau, const HalfTensor& o);

// SPEC 7: per-kv-head priority of one layer from K (and V when prio_tensors = kv) of the
// calibration split: k, v [1, Hkv, N, D]. `seed` is used by prio_metric = random only.
std::vector<double> head_priorities(const ConstHalfTensor& k, const ConstHalfTensor& v,
                                    PrioTensors tensors, PrioMetric metric, uint64_t seed);
// Bits per kv head: the floor(f2 * H) lowest-priority heads get 2 bits (never more than the
// fraction f2), the rest 4. Ties break by head index (lower index = lower priority).
std::vector<int> assign_head_bits(const std::vector<double>& priority, float f2);

}  // namespace ref
}  // namespace turbo

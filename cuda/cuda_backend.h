// The "cuda" backend: SPEC 1-6 on an NVIDIA GPU (sm_80, sm_90), bit-exact with the "ref" backend
// for every knob the reference defines exactly (exp_mode = exact and p_quant = fp16 follow the
// same per-element order but are only tolerance-checked, since CUDA expf and libm differ).
//
// The Backend interface takes HOST pointers (core/backend.h); this backend stages them to the
// device. The *_device entry points below take DEVICE pointers (cuda/device_api.h wraps them
// for strided tensor views with the front's checks: the Python package's zero-copy path) and run on
// a stream without any host copy; they check the config and the shapes as the Backend front does,
// but not finiteness (that would read the data).
#pragma once

#include <cstdint>
#include <memory>

#include "core/backend.h"

typedef struct CUstream_st* cudaStream_t;

namespace turbo {
namespace cuda {

// Registers "cuda" in the backend registry (idempotent).
void register_cuda_backend();
std::unique_ptr<Backend> make_cuda_backend();

// Number of CUDA devices visible (0 when there is none or the driver is missing).
int cuda_device_count();

// Which prefill kernel a config runs on: "mma" (INT8 tensor-core tiles, the fast path) or "rows"
// (one warp per query row; every knob, and the AttentionStats bookkeeping).
const char* prefill_kernel_name(const AttentionConfig& config, bool want_stats);

// Device-memory prefill (method flashq): q [B, Hq, N, D], k/v [B, Hkv, N, D], o [B, Hq, N, D],
// all contiguous FP16 in device memory, 16-byte aligned. No finiteness check. Scratch memory is
// kept in a per-thread workspace and reused by later calls; the call is asynchronous on `stream`
// (it synchronizes only when the SAS table of new SAS knobs is built, and when `stats` is not
// null: B * Hq entries added to as Backend::attention_prefill does, read back after the kernel).
void flashq_prefill_device(const AttentionConfig& config, const Half* q, const Half* k,
                           const Half* v, Half* o, int64_t batch, int64_t q_heads, int64_t kv_heads,
                           int64_t tokens, int head_dim, cudaStream_t stream,
                           AttentionStats* stats = nullptr);

// Device-memory decode on a cache created by the cuda backend: q, o [B, Hq, q_len, D] contiguous
// FP16 in device memory. Split-K per config.splits. `stats` as for prefill.
void flashq_decode_device(const AttentionConfig& config, const Half* q, const KvCache& cache,
                          Half* o, int64_t q_heads, int64_t q_len, cudaStream_t stream,
                          AttentionStats* stats = nullptr);

// Device-memory cache append (SPEC 6) on a cache created by the cuda backend: k, v [B, Hkv, T, D]
// contiguous FP16 in device memory; the front's shape checks, no finiteness check; asynchronous
// on `stream` (it synchronizes when the block storage grows).
void flashq_cache_append_device(KvCache& cache, const Half* k, const Half* v, int64_t tokens,
                                cudaStream_t stream);

}  // namespace cuda
}  // namespace turbo

// Attention of the cuda backend on tensors that already live in GPU memory (PyTorch CUDA tensors
// through DLPack, or any cudaMalloc'd buffer): no host staging, work enqueued on the caller's
// stream. This is the zero-copy path of the Python package (eval/python/module.cpp); the Backend
// interface (core/backend.h) stays the host-memory one.
//
// A DeviceHalfTensor is a Tensor4 view whose data pointer is device memory of CUDA device
// `device` (any strides >= 0, unit stride in D). A view that is C-contiguous and 16-byte aligned is
// read (or, as an output, written) in place; any other view is gathered into (or scattered from)
// a contiguous scratch buffer by a copy kernel on the same stream, device to device. Numerics are
// those of the host entry points: bit-identical results for the same inputs and config.
//
// Checks, once, before any kernel: the config (AttentionConfig::validate, the method table, the
// cuda backend's limits), the shapes (the Backend front's check_*_shapes), and finiteness of every
// input element (a reduction kernel, then one 8-byte read back: the error names the tensor and the
// first non-finite element in (batch, head, token, channel) order, as the host front's does).
// The calls are asynchronous on `stream` except for that read back, the AttentionStats read back
// when `stats` is not null, and cache storage growth.
//
// One device per host thread: the cuda backend keeps its scratch memory and SAS table per thread,
// so the first call of a thread binds it to the tensors' device (cudaSetDevice) and a later call
// with tensors on another device is refused.
#pragma once

#include <cstdint>
#include <memory>

#include "core/backend.h"

typedef struct CUstream_st* cudaStream_t;

namespace turbo {
namespace cuda {

struct DeviceHalfTensor {
  HalfTensor view;  // data is a device pointer
  int device = 0;   // CUDA device ordinal of the memory
};
struct ConstDeviceHalfTensor {
  ConstHalfTensor view;
  int device = 0;
};

// Binds this thread to `device` (see above) and makes it current; throws when the thread is bound
// to another device or `device` is not a visible CUDA device.
void bind_thread_device(int device);

// Prefill (method flashq): q [B, Hq, N, D], k and v [B, Hkv, N, D] FP16 -> o [B, Hq, N, D].
// `stats`, when not null, has B * Hq entries that are added to (as Backend::attention_prefill).
void attention_prefill_device(const AttentionConfig& config, const ConstDeviceHalfTensor& q,
                              const ConstDeviceHalfTensor& k, const ConstDeviceHalfTensor& v,
                              const DeviceHalfTensor& o, cudaStream_t stream,
                              AttentionStats* stats);

// An empty compressed KV cache (SPEC 6) of the cuda backend, its storage on `device` (which binds
// this thread, as above: use the cache from threads bound to the same device).
std::unique_ptr<KvCache> create_cache_device(const KvCacheSpec& spec, int device);

// Appends k, v [B, Hkv, t, D] (FP16, on the cache's device) to a cache of create_cache_device.
void cache_append_device(KvCache& cache, const ConstDeviceHalfTensor& k,
                         const ConstDeviceHalfTensor& v, cudaStream_t stream);

// Decode attention over the cache: q [B, Hq, q_len, D] the queries of the last q_len cached
// positions, o shaped as q; `stats` as for prefill.
void attention_decode_device(const AttentionConfig& config, const ConstDeviceHalfTensor& q,
                             const KvCache& cache, const DeviceHalfTensor& o, cudaStream_t stream,
                             AttentionStats* stats);

}  // namespace cuda
}  // namespace turbo

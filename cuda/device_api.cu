// The device-memory entry points of device_api.h: checks, strided views to contiguous scratch
// (device to device), then the cuda backend's flashq_*_device entry points (cuda_backend.cu),
// which run the same kernels as the host-memory Backend interface.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <sstream>
#include <string>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_common.cuh"
#include "cuda/device_api.h"

namespace turbo {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// Logical index (b, h, n, c) of element i of a [B, H, N, D] shape.
struct Index4 {
  int64_t b, h, n, c;
};
__host__ __device__ inline Index4 unflatten(int64_t i, const int64_t* shape) {
  Index4 x;
  x.c = i % shape[3];
  i /= shape[3];
  x.n = i % shape[2];
  i /= shape[2];
  x.h = i % shape[1];
  x.b = i / shape[1];
  return x;
}

struct View4 {
  const Half* data;
  int64_t shape[4];
  int64_t stride[4];
  int64_t numel;
};

View4 to_view4(const ConstHalfTensor& t) {
  View4 v{};
  v.data = t.data;
  for (int i = 0; i < 4; ++i) {
    v.shape[i] = t.shape[i];
    v.stride[i] = t.stride[i];
  }
  v.numel = t.numel();
  return v;
}

__device__ inline int64_t offset_of(const View4& v, const Index4& x) {
  return x.b * v.stride[0] + x.h * v.stride[1] + x.n * v.stride[2] + x.c;
}

// first[t] = the smallest logical index of a non-finite element of views[t] (untouched if none).
struct FiniteArgs {
  View4 views[3];
  int count;
};
__global__ void FirstNonFiniteKernel(FiniteArgs a, unsigned long long* first) {
  for (int t = 0; t < a.count; ++t) {
    const View4& v = a.views[t];
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < v.numel;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const Half x = v.data[offset_of(v, unflatten(i, v.shape))];
      if (!is_finite_half(x)) atomicMin(&first[t], static_cast<unsigned long long>(i));
    }
  }
}

// dst (contiguous) = src (strided view) or the reverse; one element per thread iteration.
__global__ void GatherKernel(View4 src, Half* dst) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < src.numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = src.data[offset_of(src, unflatten(i, src.shape))];
}
__global__ void ScatterKernel(const Half* src, View4 dst) {
  Half* out = const_cast<Half*>(dst.data);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < dst.numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[offset_of(dst, unflatten(i, dst.shape))] = src[i];
}

unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 4096)));
}

// Scratch of the device entry points (per thread, as the backend's own workspace).
struct Scratch {
  DeviceBuffer q, k, v, o, first;
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

thread_local int g_bound_device = -1;

// C-contiguous (dimensions of size 1 aside) with a 16-byte aligned base: used in place.
bool in_place(const ConstHalfTensor& t) {
  if (reinterpret_cast<uintptr_t>(t.data) % 16 != 0) return false;
  int64_t expect = t.shape[3];
  for (int i = 2; i >= 0; --i) {
    if (t.shape[i] > 1 && t.stride[i] != expect) return false;
    expect *= t.shape[i];
  }
  return true;
}

void check_device(int device, const char* what) {
  TURBO_CHECK(device == g_bound_device,
              what << " is on cuda:" << device
                   << ", but this thread runs the cuda backend on cuda:" << g_bound_device
                   << " (one device per thread: its scratch memory and SAS table live there)");
}

// The front's finiteness check, on the device: the same message as check_finite (core/tensor.h).
void check_finite_device(const ConstHalfTensor* t[], const char* const names[], int count,
                         cudaStream_t stream) {
  FiniteArgs a{};
  a.count = count;
  bool any = false;
  for (int i = 0; i < count; ++i) {
    a.views[i] = to_view4(*t[i]);
    any = any || a.views[i].numel > 0;
  }
  if (!any) return;
  Scratch& s = scratch();
  s.first.reserve(3 * sizeof(unsigned long long));
  TURBO_CUDA_CHECK(
      cudaMemsetAsync(s.first.as<void>(), 0xff, 3 * sizeof(unsigned long long), stream));
  int64_t most = 0;
  for (int i = 0; i < count; ++i) most = std::max(most, a.views[i].numel);
  FirstNonFiniteKernel<<<grid_for(most), kThreads, 0, stream>>>(a,
                                                                s.first.as<unsigned long long>());
  TURBO_CUDA_LAUNCH_CHECK();
  unsigned long long first[3];
  TURBO_CUDA_CHECK(
      cudaMemcpyAsync(first, s.first.as<void>(), sizeof first, cudaMemcpyDeviceToHost, stream));
  TURBO_CUDA_CHECK(cudaStreamSynchronize(stream));
  for (int i = 0; i < count; ++i) {
    if (first[i] == ULLONG_MAX) continue;
    const Index4 x = unflatten(static_cast<int64_t>(first[i]), a.views[i].shape);
    std::ostringstream msg;
    msg << "non-finite value in " << names[i] << " at batch " << x.b << ", head " << x.h
        << ", token " << x.n << ", channel " << x.c;
    throw Error(msg.str());
  }
}

// A contiguous, aligned device pointer holding `t`: t itself, or a gathered copy in `buf`.
const Half* contiguous_input(const ConstHalfTensor& t, DeviceBuffer& buf, cudaStream_t stream) {
  if (in_place(t) || t.numel() == 0) return t.data;
  buf.reserve(sizeof(Half) * static_cast<size_t>(t.numel()));
  GatherKernel<<<grid_for(t.numel()), kThreads, 0, stream>>>(to_view4(t), buf.as<Half>());
  TURBO_CUDA_LAUNCH_CHECK();
  return buf.as<Half>();
}

// Where the kernels write o: o itself, or scratch scattered into o by finish_output.
Half* contiguous_output(const HalfTensor& o, DeviceBuffer& buf) {
  if (in_place(o) || o.numel() == 0) return o.data;
  buf.reserve(sizeof(Half) * static_cast<size_t>(o.numel()));
  return buf.as<Half>();
}
void finish_output(const HalfTensor& o, const Half* written, cudaStream_t stream) {
  if (written == o.data) return;
  ScatterKernel<<<grid_for(o.numel()), kThreads, 0, stream>>>(written, to_view4(o));
  TURBO_CUDA_LAUNCH_CHECK();
}

// The cuda backend, per thread (its supports() and create_cache() are the front's checks).
Backend& thread_backend() {
  thread_local std::unique_ptr<Backend> backend;
  if (!backend) backend = make_cuda_backend();
  return *backend;
}

// The config checks of the Backend front, in its order.
void require_supported(const AttentionConfig& config, Phase phase) {
  Status s = thread_backend().supports(config);
  if (s.ok) s = method_supports(config, phase);
  TURBO_CHECK(s.ok, s.message);
}

}  // namespace

void bind_thread_device(int device) {
  if (g_bound_device < 0) {
    const int n = cuda_device_count();
    TURBO_CHECK(device >= 0 && device < n,
                "cuda:" << device << " is not a visible CUDA device (" << n << " visible)");
    TURBO_CUDA_CHECK(cudaSetDevice(device));
    g_bound_device = device;
    return;
  }
  check_device(device, "the tensor");
  TURBO_CUDA_CHECK(cudaSetDevice(device));
}

void attention_prefill_device(const AttentionConfig& config, const ConstDeviceHalfTensor& q,
                              const ConstDeviceHalfTensor& k, const ConstDeviceHalfTensor& v,
                              const DeviceHalfTensor& o, cudaStream_t stream,
                              AttentionStats* stats) {
  require_supported(config, Phase::kPrefill);
  check_prefill_shapes(q.view, k.view, v.view, o.view);
  bind_thread_device(q.device);
  check_device(k.device, "K");
  check_device(v.device, "V");
  check_device(o.device, "the output");
  const ConstHalfTensor* views[] = {&q.view, &k.view, &v.view};
  const char* const names[] = {"Q", "K", "V"};
  check_finite_device(views, names, 3, stream);
  Scratch& s = scratch();
  const Half* qp = contiguous_input(q.view, s.q, stream);
  const Half* kp = contiguous_input(k.view, s.k, stream);
  const Half* vp = contiguous_input(v.view, s.v, stream);
  Half* op = contiguous_output(o.view, s.o);
  flashq_prefill_device(config, qp, kp, vp, op, q.view.batch(), q.view.heads(), k.view.heads(),
                        q.view.tokens(), static_cast<int>(q.view.dim()), stream, stats);
  finish_output(o.view, op, stream);
}

std::unique_ptr<KvCache> create_cache_device(const KvCacheSpec& spec, int device) {
  bind_thread_device(device);
  return thread_backend().create_cache(spec);  // the front's checks, then the cuda backend's cache
}

void cache_append_device(KvCache& cache, const ConstDeviceHalfTensor& k,
                         const ConstDeviceHalfTensor& v, cudaStream_t stream) {
  check_append_shapes(cache.spec(), k.view, v.view);
  bind_thread_device(k.device);
  check_device(v.device, "V");
  const ConstHalfTensor* views[] = {&k.view, &v.view};
  const char* const names[] = {"K (cache append)", "V (cache append)"};
  check_finite_device(views, names, 2, stream);
  Scratch& s = scratch();
  const Half* kp = contiguous_input(k.view, s.k, stream);
  const Half* vp = contiguous_input(v.view, s.v, stream);
  flashq_cache_append_device(cache, kp, vp, k.view.tokens(), stream);
}

void attention_decode_device(const AttentionConfig& config, const ConstDeviceHalfTensor& q,
                             const KvCache& cache, const DeviceHalfTensor& o, cudaStream_t stream,
                             AttentionStats* stats) {
  require_supported(config, Phase::kDecode);
  check_decode_shapes(config, cache, q.view, o.view);
  bind_thread_device(q.device);
  check_device(o.device, "the output");
  const ConstHalfTensor* views[] = {&q.view};
  const char* const names[] = {"Q (decode)"};
  check_finite_device(views, names, 1, stream);
  Scratch& s = scratch();
  const Half* qp = contiguous_input(q.view, s.q, stream);
  Half* op = contiguous_output(o.view, s.o);
  flashq_decode_device(config, qp, cache, op, q.view.heads(), q.view.tokens(), stream, stats);
  finish_output(o.view, op, stream);
}

}  // namespace cuda
}  // namespace turbo

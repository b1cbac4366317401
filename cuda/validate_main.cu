// cuda_validate: the device report. Runs every case of reference/backend_check.h (the harness
// `turboattn validate` runs: cuda against ref, exact ops bit for bit, the others within their
// bound) and prints one line per case and a summary per op. Timings are cuda_flashq_bench's job
// (flashq_bench.cu); --profile runs one prefill and one decode call for a profiler.
//
//   cuda_validate [--small] [--op NAME[,NAME...]] [--profile]
// --op runs only the cases of those ops (e.g. compress_block,attention_decode for a sanitizer).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_common.cuh"
#include "reference/backend_check.h"
#include "reference/reference.h"
#include "reference/test_inputs.h"

using namespace turbo;

namespace {

// `ops`: comma-separated op names to run (empty: every case).
bool selected(const std::string& ops, const std::string& op) {
  if (ops.empty()) return true;
  size_t b = 0;
  while (b <= ops.size()) {
    const size_t e = std::min(ops.find(',', b), ops.size());
    if (ops.compare(b, e - b, op) == 0) return true;
    b = e + 1;
  }
  return false;
}

int run_validation(bool small, const std::string& ops) {
  auto ref = ref::make_reference_backend();
  auto dev = cuda::make_cuda_backend();
  check::Backends backends{*dev, *ref};
  std::vector<check::CaseResult> results;
  const auto t0 = std::chrono::steady_clock::now();
  for (const check::Case& c : check::all_cases(small)) {
    if (!selected(ops, c.op)) continue;
    results.push_back(check::run_case(c, backends));
    const check::CaseResult& r = results.back();
    std::printf("%-5s %-18s mismatches %8lld / %10lld  %s%s\n",
                r.unsupported ? "skip"
                : r.pass      ? "ok"
                              : "FAIL",
                r.op.c_str(), static_cast<long long>(r.mismatches),
                static_cast<long long>(r.compared), r.vars.c_str(),
                r.note.empty() ? "" : ("  (" + r.note + ")").c_str());
    std::fflush(stdout);
  }
  if (results.empty()) {
    std::fprintf(stderr, "cuda_validate: no case of op '%s' in the case list\n", ops.c_str());
    return 1;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const check::Summary sum = check::summarize(results, true);
  std::printf("\n%s%.1f s\n", sum.text.c_str(), secs);
  return sum.failed;
}

struct DeviceTensor {
  cuda::DeviceBuffer buf;
  Half* ptr() const { return buf.as<Half>(); }
};

void to_device(DeviceTensor& t, const HostTensor<Half>& h) {
  t.buf.reserve(h.storage.size() * sizeof(Half));
  TURBO_CUDA_CHECK(cudaMemcpy(t.buf.as<void>(), h.storage.data(), h.storage.size() * sizeof(Half),
                              cudaMemcpyHostToDevice));
}

// One prefill (B=1, H=16, N=4096, D=128, causal) and one decode (L=32768) call, for a profiler.
int run_profile() {
  AttentionConfig cfg;
  const int64_t B = 1, H = 16, N = 4096, D = 128;
  const auto in = ref::make_inputs({B, H, H, N, D}, ref::InputKind::kGaussian, 1, 1.5f);
  DeviceTensor q, k, v, o;
  to_device(q, in.q);
  to_device(k, in.k);
  to_device(v, in.v);
  o.buf.reserve(in.q.storage.size() * sizeof(Half));
  for (int i = 0; i < 2; ++i)
    cuda::flashq_prefill_device(cfg, q.ptr(), k.ptr(), v.ptr(), o.ptr(), B, H, H, N, D, nullptr);
  auto dev = cuda::make_cuda_backend();
  AttentionConfig dc = cfg;
  dc.splits = 64;
  KvCacheSpec spec;
  spec.config = dc;
  spec.kv_heads = 8;
  spec.head_dim = 128;
  auto cache = dev->create_cache(spec);
  const auto kv = ref::make_inputs({1, 8, 8, 32768, 128}, ref::InputKind::kGaussian, 2, 1.5f);
  dev->cache_append(*cache, kv.k.view(), kv.v.view());
  const auto qin = ref::make_inputs({1, 32, 8, 1, 128}, ref::InputKind::kGaussian, 3, 1.5f);
  DeviceTensor qd, od;
  to_device(qd, qin.q);
  od.buf.reserve(qin.q.storage.size() * sizeof(Half));
  for (int i = 0; i < 2; ++i)
    cuda::flashq_decode_device(dc, qd.ptr(), *cache, od.ptr(), 32, 1, nullptr);
  TURBO_CUDA_CHECK(cudaDeviceSynchronize());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool small = false, validate = true, profile = false;
  std::string ops;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--small"))
      small = true;
    else if (!std::strcmp(argv[i], "--op") && i + 1 < argc)
      ops = argv[++i];
    else if (!std::strcmp(argv[i], "--profile"))
      profile = true, validate = false;
    else {
      std::fprintf(stderr, "usage: cuda_validate [--small] [--op NAME[,NAME...]] [--profile]\n");
      return 2;
    }
  }
  if (cuda::cuda_device_count() == 0) {
    std::fprintf(stderr, "cuda_validate: no CUDA device visible; nothing was run\n");
    return 3;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount);
  int failed = 0;
  try {
    if (validate) failed += run_validation(small, ops);
    if (profile) failed += run_profile();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_validate: %s\n", e.what());
    return 1;
  }
  return failed ? 1 : 0;
}

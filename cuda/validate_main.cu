// cuda_validate: the device report. Runs every case of validate_cases.h (cuda vs ref, bit for
// bit), prints one line per case and a summary per op, then (with --bench CSV) times prefill and
// decode of the cuda backend on device memory and writes `op,shape,config,ms,tflops` rows.
//
//   cuda_validate [--small] [--bench out.csv] [--skip-validate] [--no-check] [--profile]
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_common.cuh"
#include "cuda/validate_cases.h"
#include "reference/reference.h"
#include "reference/test_inputs.h"

using namespace turbo;

namespace {

int run_validation(bool small) {
  auto ref = ref::make_reference_backend();
  auto dev = cuda::make_cuda_backend();
  const auto cases = cuda::validate::all_cases(small);
  struct Sum {
    int64_t cases = 0, failed = 0, mismatches = 0, total = 0;
    double max_rel = 0;
    bool tol = false;
  };
  std::map<std::string, Sum> per_op;
  int failed = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < cases.size(); ++i) {
    cuda::validate::CaseResult r;
    try {
      r = cases[i].run(*ref, *dev);
    } catch (const std::exception& e) {
      r.op = cases[i].op + " error";
      r.name = e.what();
      r.mismatches = 1;
    }
    const bool bad = r.mismatches != 0 || (!r.nonzero && r.op != "error");
    failed += bad;
    Sum& s = per_op[r.op + (r.exact ? "" : " (tolerance)")];
    s.cases += 1;
    s.failed += bad;
    s.mismatches += r.mismatches;
    s.total += r.total;
    s.max_rel = std::max(s.max_rel, r.max_rel);
    s.tol |= !r.exact;
    std::printf("%-5s %-32s mismatches %8lld / %10lld%s  %s\n", bad ? "FAIL" : "ok", r.op.c_str(),
                static_cast<long long>(r.mismatches), static_cast<long long>(r.total),
                r.nonzero ? "" : " (all-zero reference!)", r.name.c_str());
    std::fflush(stdout);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "\n| op | cases | failed | mismatching elements | elements compared | max rel (tolerance "
      "ops) |\n");
  std::printf("| --- | --- | --- | --- | --- | --- |\n");
  for (const auto& kv : per_op)
    std::printf("| %s | %lld | %lld | %lld | %lld | %s |\n", kv.first.c_str(),
                static_cast<long long>(kv.second.cases), static_cast<long long>(kv.second.failed),
                static_cast<long long>(kv.second.mismatches),
                static_cast<long long>(kv.second.total),
                kv.second.tol ? std::to_string(kv.second.max_rel).c_str() : "exact");
  std::printf("validation: %zu cases, %d failed, %.1f s\n", cases.size(), failed, secs);
  return failed;
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

template <typename F>
double median_ms(F&& f, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) f();
  TURBO_CUDA_CHECK(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  TURBO_CUDA_CHECK(cudaEventCreate(&a));
  TURBO_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<float> ms;
  for (int i = 0; i < iters; ++i) {
    TURBO_CUDA_CHECK(cudaEventRecord(a));
    f();
    TURBO_CUDA_CHECK(cudaEventRecord(b));
    TURBO_CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    TURBO_CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
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

int run_bench(const char* csv_path, bool check) {
  FILE* csv = std::fopen(csv_path, "w");
  TURBO_CHECK(csv, "cannot write " << csv_path);
  std::fprintf(csv, "op,B,Hq,Hkv,N,D,L,causal,splits,kernel,ms,tflops,bitexact\n");
  auto ref = ref::make_reference_backend();
  AttentionConfig cfg;  // defaults: flashq, tile/tile, Br = Bc = 64, u8 P, n_r = 6, ls3, causal
  int failed = 0;
  for (int d : {64, 128})
    for (int h : {8, 16}) {
      const int64_t B = 1, N = 4096;
      const auto in =
          ref::make_inputs({B, h, h, N, d}, ref::InputKind::kGaussian, 4242 + d + h, 1.5f);
      DeviceTensor q, k, v, o;
      to_device(q, in.q);
      to_device(k, in.k);
      to_device(v, in.v);
      o.buf.reserve(in.q.storage.size() * sizeof(Half));
      const double ms = median_ms(
          [&] {
            cuda::flashq_prefill_device(cfg, q.ptr(), k.ptr(), v.ptr(), o.ptr(), B, h, h, N, d,
                                        nullptr);
          },
          3, 20);
      const double flops = 4.0 * B * h * static_cast<double>(N) * N * d / 2.0;  // causal: half
      std::string exact = "not checked";
      if (check && h == 8) {
        HostTensor<Half> o_dev(B, h, N, d), o_ref(B, h, N, d);
        TURBO_CUDA_CHECK(cudaMemcpy(o_dev.storage.data(), o.ptr(),
                                    o_dev.storage.size() * sizeof(Half), cudaMemcpyDeviceToHost));
        ref->attention_prefill(cfg, in.q.view(), in.k.view(), in.v.view(), o_ref.view(), nullptr);
        int64_t mism = 0;
        for (size_t i = 0; i < o_dev.storage.size(); ++i)
          mism += o_dev.storage[i].bits != o_ref.storage[i].bits;
        exact = std::to_string(mism) + " mismatches";
        failed += mism != 0;
      }
      std::printf(
          "prefill B=%lld H=%d N=%lld D=%d causal: %.3f ms, %.1f TFLOP/s-equiv, kernel %s, vs ref: "
          "%s\n",
          static_cast<long long>(B), h, static_cast<long long>(N), d, ms, flops / ms / 1e9,
          cuda::prefill_kernel_name(cfg, false), exact.c_str());
      std::fprintf(csv, "prefill,%lld,%d,%d,%lld,%d,%lld,1,1,%s,%.4f,%.2f,%s\n",
                   static_cast<long long>(B), h, h, static_cast<long long>(N), d,
                   static_cast<long long>(N), cuda::prefill_kernel_name(cfg, false), ms,
                   flops / ms / 1e9, exact.c_str());
      std::fflush(csv);
    }
  auto dev = cuda::make_cuda_backend();
  for (int64_t L : {8192, 32768}) {
    const int64_t B = 1, Hq = 32, Hkv = 8, D = 128;
    AttentionConfig dc = cfg;
    dc.splits = 32;  // best of 16..256 on H100 for both lengths (cuda/RESULTS.md)
    if (const char* e = std::getenv("TURBO_BENCH_SPLITS")) dc.splits = std::atoi(e);
    KvCacheSpec spec;
    spec.config = dc;
    spec.batch = static_cast<int>(B);
    spec.kv_heads = static_cast<int>(Hkv);
    spec.head_dim = static_cast<int>(D);
    auto c_dev = dev->create_cache(spec);
    auto c_ref = ref->create_cache(spec);
    const auto kv = ref::make_inputs({B, Hkv, Hkv, L, D}, ref::InputKind::kGaussian, 99 + L, 1.5f);
    dev->cache_append(*c_dev, kv.k.view(), kv.v.view());
    if (check) ref->cache_append(*c_ref, kv.k.view(), kv.v.view());
    const auto qin = ref::make_inputs({B, Hq, Hkv, 1, D}, ref::InputKind::kGaussian, 7 + L, 1.5f);
    DeviceTensor q, o;
    to_device(q, qin.q);
    o.buf.reserve(qin.q.storage.size() * sizeof(Half));
    const double ms = median_ms(
        [&] { cuda::flashq_decode_device(dc, q.ptr(), *c_dev, o.ptr(), Hq, 1, nullptr); }, 5, 50);
    const double flops = 4.0 * B * Hq * static_cast<double>(L) * D;
    std::string exact = "not checked";
    if (check) {
      HostTensor<Half> o_dev(B, Hq, 1, D), o_ref(B, Hq, 1, D);
      TURBO_CUDA_CHECK(cudaMemcpy(o_dev.storage.data(), o.ptr(),
                                  o_dev.storage.size() * sizeof(Half), cudaMemcpyDeviceToHost));
      ref->attention_decode(dc, qin.q.view(), *c_ref, o_ref.view(), nullptr);
      int64_t mism = 0;
      for (size_t i = 0; i < o_dev.storage.size(); ++i)
        mism += o_dev.storage[i].bits != o_ref.storage[i].bits;
      const KvBytes b1 = c_dev->bytes(), b2 = c_ref->bytes();
      mism += b1.total() != b2.total();
      exact = std::to_string(mism) + " mismatches";
      failed += mism != 0;
    }
    const KvBytes kb = c_dev->bytes();
    std::printf(
        "decode B=%lld Hq=%lld Hkv=%lld L=%lld D=%lld kv_bits=4 splits=%d: %.4f ms, %.2f "
        "TFLOP/s-equiv, "
        "cache %.1f MB (%.2f bytes/token-head), vs ref: %s\n",
        static_cast<long long>(B), static_cast<long long>(Hq), static_cast<long long>(Hkv),
        static_cast<long long>(L), static_cast<long long>(D), dc.splits, ms, flops / ms / 1e9,
        kb.total() / 1e6, static_cast<double>(kb.total()) / kb.tokens, exact.c_str());
    std::fprintf(csv, "decode,%lld,%lld,%lld,1,%lld,%lld,0,%d,rows,%.4f,%.3f,%s\n",
                 static_cast<long long>(B), static_cast<long long>(Hq), static_cast<long long>(Hkv),
                 static_cast<long long>(D), static_cast<long long>(L), dc.splits, ms,
                 flops / ms / 1e9, exact.c_str());
    std::fflush(csv);
  }
  std::fclose(csv);
  return failed;
}

}  // namespace

int main(int argc, char** argv) {
  bool small = false, validate = true, check = true, profile = false;
  const char* bench = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--small"))
      small = true;
    else if (!std::strcmp(argv[i], "--skip-validate"))
      validate = false;
    else if (!std::strcmp(argv[i], "--no-check"))
      check = false;
    else if (!std::strcmp(argv[i], "--profile"))
      profile = true, validate = false;
    else if (!std::strcmp(argv[i], "--bench") && i + 1 < argc)
      bench = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: cuda_validate [--small] [--skip-validate] [--no-check] [--bench "
                   "out.csv] [--profile]\n");
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
    if (validate) failed += run_validation(small);
    if (bench) failed += run_bench(bench, check);
    if (profile) failed += run_profile();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_validate: %s\n", e.what());
    return 1;
  }
  return failed ? 1 : 0;
}

// cuda_flashq_bench: times the cuda backend on device memory, on the shapes of issue 7, and
// writes one CSV row per timing (cuda/bench_sdpa.py times PyTorch SDPA on the same shapes and
// writes the result JSON and its Markdown table).
//
//   cuda_flashq_bench --csv ours.csv [--quick] [--check]
//
// Timing: CUDA events around each call after warm-up, the median of many calls, inputs rotated
// among enough copies that they exceed three times the L2 (so the L2 does not hold them). At
// B = 1 the decode is also timed as a CUDA graph replay of one call per copy (launch gaps out).
// Ceilings measured in the same run: `read` (a streaming 16-byte read kernel over 2 GiB) and
// `copy` (cudaMemcpy device to device of 2 GiB, bytes read + written).
// Rates against the copy ceiling: stage 1 (quantize), stage 2 into the cache's block layout
// (compress) and the cache append from device rows (append), each as GB/s of bytes read + written.
// --check compares the decode output of the B = 1, L <= 32k rows with the ref backend, bit for
// bit (the full case list is cuda_validate's job).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/kv_cache.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_common.cuh"
#include "reference/reference.h"

using namespace turbo;

namespace {

// Deterministic Gaussian-like FP16 values (sum of 4 uniforms, scaled) from a hash of the index.
__global__ void FillKernel(Half* x, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint64_t h = (static_cast<uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    float acc = 0.0f;
    for (int k = 0; k < 4; ++k) {
      h ^= h >> 33;
      h *= 0xff51afd7ed558ccdull;
      h ^= h >> 29;
      acc += static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
    }
    x[i] = float_to_half((acc - 2.0f) * 1.7320508f * scale);  // unit variance times scale
  }
}

__global__ void ReadKernel(const uint4* x, int64_t n, unsigned* sink) {
  uint32_t acc = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint4 v = __ldcs(x + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) *sink = acc;  // keeps the loads
}

void fill(Half* x, int64_t n, uint64_t seed, float scale = 1.5f) {
  FillKernel<<<1024, 256>>>(x, n, seed, scale);
  TURBO_CUDA_LAUNCH_CHECK();
}

template <typename F>
double median_ms(F&& f, int warmup, int iters, cudaStream_t stream = nullptr) {
  for (int i = 0; i < warmup; ++i) f(i);
  TURBO_CUDA_CHECK(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  TURBO_CUDA_CHECK(cudaEventCreate(&a));
  TURBO_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<float> ms;
  for (int i = 0; i < iters; ++i) {
    TURBO_CUDA_CHECK(cudaEventRecord(a, stream));
    f(warmup + i);
    TURBO_CUDA_CHECK(cudaEventRecord(b, stream));
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

int l2_bytes() {
  int v = 0;
  cudaDeviceGetAttribute(&v, cudaDevAttrL2CacheSize, 0);
  return v;
}

int copies_for(double bytes) {
  return static_cast<int>(std::min(16.0, std::max(1.0, 3.0 * l2_bytes() / bytes + 1.0)));
}

struct Csv {
  FILE* f;
  void row(const char* op, int B, int hq, int hkv, int64_t n, int64_t l, int d, int causal,
           const char* kv_bits, int splits, const char* kernel, double ms, double graph_ms,
           double bytes, const std::string& check) {
    std::fprintf(f, "%s,%d,%d,%d,%lld,%lld,%d,%d,%s,%d,%s,%.5f,%.5f,%.0f,%s\n", op, B, hq, hkv,
                 static_cast<long long>(n), static_cast<long long>(l), d, causal, kv_bits, splits,
                 kernel, ms, graph_ms, bytes, check.c_str());
    std::fflush(f);
  }
};

void bench_ceilings(Csv& csv) {
  const size_t bytes = size_t{2} << 30;
  cuda::DeviceBuffer a(bytes), b(bytes), sink(64);
  TURBO_CUDA_CHECK(cudaMemset(a.as<void>(), 1, bytes));
  const double copy = median_ms(
      [&](int) {
        TURBO_CUDA_CHECK(
            cudaMemcpyAsync(b.as<void>(), a.as<void>(), bytes, cudaMemcpyDeviceToDevice));
      },
      3, 20);
  const double read = median_ms(
      [&](int) {
        ReadKernel<<<132 * 16, 256>>>(a.as<uint4>(), static_cast<int64_t>(bytes / 16),
                                      sink.as<unsigned>());
      },
      3, 20);
  std::printf("ceilings: copy %.0f GB/s (read + written), streaming read %.0f GB/s\n",
              2.0 * bytes / copy / 1e6, bytes / read / 1e6);
  csv.row("copy", 0, 0, 0, 0, 0, 0, 0, "-", 0, "memcpy", copy, 0, 2.0 * bytes, "");
  csv.row("read", 0, 0, 0, 0, 0, 0, 0, "-", 0, "read", read, 0, static_cast<double>(bytes), "");
}

// Stage 1 (SPEC 1) of a [heads, n, d] FP16 tensor: reads 2 bytes per element, writes 1 (plus a
// scale per row), the quantize step of every prefill.
void bench_quantize(Csv& csv) {
  const int64_t heads = 32, n = 16384, d = 128;
  const int64_t elems = heads * n * d;
  cuda::DeviceBuffer x(elems * 2 * 2), codes(elems), scales(heads * n * 4);
  fill(x.as<Half>(), elems * 2, 5);
  const double ms = median_ms(
      [&](int i) {
        cuda::launch_stage1(x.as<Half>() + (i % 2) * elems, nullptr, heads, n, static_cast<int>(d),
                            64, codes.as<int8_t>(), static_cast<int>(d), nullptr,
                            scales.as<float>(), nullptr);
      },
      3, 30);
  const double bytes = elems * 3.0 + heads * n * 4.0;
  std::printf("quantize stage1 [32, 16384, 128]: %.4f ms, %.0f GB/s\n", ms, bytes / ms / 1e6);
  csv.row("quantize", 1, 32, 32, n, n, 128, 0, "-", 0, "stage1", ms, 0, bytes, "");
}

// Stage 2 (SPEC 2) of INT8 blocks into the cache's block layout (4-bit, channel axis, 64 x 128),
// the cache compression step: reads 1 byte per element, writes the compressed block.
// `kernel`: the CSV's kernel column (the variant of the stage-2 path timed, set by the caller).
void bench_compress(Csv& csv, const char* kernel) {
  const BlockLayout layout{64, 128, 4, 0, 128};
  const int64_t n_blocks = 32 * 16384 / 64;  // the [32, 16384, 128] tensor of bench_quantize
  const int64_t stride = (layout.bytes() + 15) / 16 * 16;
  const int64_t in_bytes = n_blocks * layout.elements();
  cuda::DeviceBuffer q(in_bytes * 2), blocks(n_blocks * stride);
  {  // two copies of INT8 codes: stage 1 of Gaussian-like rows, one scale per 64-token block
    cuda::DeviceBuffer x(in_bytes * 2), scales(in_bytes / 64 * 4);
    for (int c = 0; c < 2; ++c) {
      fill(x.as<Half>(), in_bytes, 9 + c);
      cuda::launch_stage1(x.as<Half>(), nullptr, 32, 16384, 128, 64, q.as<int8_t>() + c * in_bytes,
                          128, nullptr, scales.as<float>(), nullptr);
    }
    TURBO_CUDA_CHECK(cudaDeviceSynchronize());
  }
  const double ms = median_ms(
      [&](int i) {
        cuda::launch_compress_blocks(q.as<int8_t>() + (i % 2) * in_bytes, layout, n_blocks,
                                     blocks.as<uint8_t>(), stride, nullptr);
      },
      3, 30);
  const double bytes = static_cast<double>(in_bytes) + n_blocks * layout.bytes();
  std::printf("compress %s 4-bit [%lld blocks of 64 x 128]: %.4f ms, %.0f GB/s\n", kernel,
              static_cast<long long>(n_blocks), ms, bytes / ms / 1e6);
  csv.row("compress", 1, 32, 32, 16384, 16384, 128, 0, "4", 0, kernel, ms, 0, bytes, "");
}

// Cache append (SPEC 7-8) from device FP16 rows, B = 16, 8 kv heads, D = 128, 4-bit: chunks of
// 1024 tokens per call (16 full blocks per stream: stage 1 + stage 2 into the cache). Bytes: the
// FP16 K and V read plus the cache bytes each call adds (median call; the cache's occasional
// doubling lands in the tail).
void bench_append(Csv& csv, const char* bits, const char* kernel) {
  auto dev = cuda::make_cuda_backend();
  const int B = 16, Hkv = 8, D = 128;
  const int64_t chunk = 1024;
  const int calls = 24;
  AttentionConfig cfg;
  cfg.quant.kv_bits = !std::strcmp(bits, "8") ? KvBits::k8 : KvBits::k4;
  KvCacheSpec spec;
  spec.batch = B;
  spec.kv_heads = Hkv;
  spec.head_dim = D;
  spec.config = cfg;
  const int64_t elems = static_cast<int64_t>(B) * Hkv * chunk * D;
  cuda::DeviceBuffer kv(elems * 2 * 2 * 2);
  fill(kv.as<Half>(), elems * 2 * 2, 31);
  auto cache = dev->create_cache(spec);
  const double before = static_cast<double>(cache->bytes().total());
  const double ms = median_ms(
      [&](int i) {
        const Half* base = kv.as<Half>() + (i % 2) * elems * 2;
        cuda::flashq_cache_append_device(*cache, base, base + elems, chunk, nullptr);
      },
      2, calls);
  TURBO_CUDA_CHECK(cudaDeviceSynchronize());
  const double added = (static_cast<double>(cache->bytes().total()) - before) / (calls + 2);
  const double bytes = elems * 2.0 * 2 + added;
  // The same calls 4 at a time between the events: the host's launch work of a call overlaps the
  // device's work of the one before (printed only; the CSV keeps the per-call time).
  const double ms4 =
      median_ms(
          [&](int i) {
            for (int r = 0; r < 4; ++r) {
              const Half* base = kv.as<Half>() + ((i * 4 + r) % 2) * elems * 2;
              cuda::flashq_cache_append_device(*cache, base, base + elems, chunk, nullptr);
            }
          },
          1, 8) /
      4;
  std::printf(
      "append %s %s-bit B=%d Hkv=%d D=%d, %lld tokens per call: %.4f ms, %.0f GB/s; back to back "
      "(4 calls per timing): %.4f ms per call, %.0f GB/s\n",
      kernel, bits, B, Hkv, D, static_cast<long long>(chunk), ms, bytes / ms / 1e6, ms4,
      bytes / ms4 / 1e6);
  csv.row("append", B, Hkv, Hkv, chunk, chunk, D, 0, bits, 0, kernel, ms, 0, bytes, "");
}

void bench_prefill(Csv& csv, bool quick) {
  AttentionConfig cfg;  // defaults: flashq, tile/tile, Br = Bc = 64, u8 P, n_r = 6, ls3, causal
  for (int d : {64, 128})
    for (int64_t n : {int64_t{4096}, int64_t{16384}})
      for (int causal : {1, 0}) {
        if (quick && (n != 16384 || d != 128)) continue;
        const int B = 1, H = 32;
        cfg.causal = causal != 0;
        const int64_t elems = static_cast<int64_t>(B) * H * n * d;
        const int copies = copies_for(elems * 2.0 * 3);
        cuda::DeviceBuffer qkv(elems * 2 * 3 * copies), o(elems * 2);
        fill(qkv.as<Half>(), elems * 3 * copies, 11 + d + n);
        const double ms = median_ms(
            [&](int i) {
              const Half* base = qkv.as<Half>() + (i % copies) * elems * 3;
              cuda::flashq_prefill_device(cfg, base, base + elems, base + 2 * elems, o.as<Half>(),
                                          B, H, H, n, d, nullptr);
            },
            3, quick ? 10 : 20);
        const double bytes = elems * 2.0 * 4;  // Q, K, V read, O written (FP16)
        std::printf("prefill B=%d H=%d N=%lld D=%d causal=%d: %.3f ms (%s)\n", B, H,
                    static_cast<long long>(n), d, causal, ms,
                    cuda::prefill_kernel_name(cfg, false));
        csv.row("prefill", B, H, H, n, n, d, causal, "-", 1, cuda::prefill_kernel_name(cfg, false),
                ms, 0, bytes, "");
      }
}

// Splits that fill the card in one wave: the decode kernel's CTAs per SM (2, or 3 with
// TURBO_DECODE_CTAS=3, flashq_decode.cu), each run at least 2 blocks. The benchmark also times
// half and twice that and keeps the best (reported).
int default_splits(int64_t streams, int64_t tiles) {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  const char* e = std::getenv("TURBO_DECODE_CTAS");
  const int per_sm = e != nullptr && std::atoi(e) == 3 ? 3 : 2;
  const int64_t want = (per_sm * sms + streams - 1) / streams;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({want, tiles / 2, 256})));
}

void bench_decode(Csv& csv, bool quick, bool check) {
  auto dev = cuda::make_cuda_backend();
  auto ref = ref::make_reference_backend();
  cudaStream_t stream;
  TURBO_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const int Hq = 32, Hkv = 8, D = 128;
  for (const char* bits : {"4", "mixed", "8"})
    for (int B : {1, 16})
      for (int64_t L : {int64_t{8192}, int64_t{32768}, int64_t{131072}}) {
        if (quick && (L != 32768 || std::strcmp(bits, "4") != 0)) continue;
        AttentionConfig cfg;
        KvCacheSpec spec;
        if (!std::strcmp(bits, "mixed")) {
          cfg.quant.kv_bits = KvBits::kMixed;
          for (int h = 0; h < Hkv; ++h) spec.head_bits.push_back(h % 2 ? 4 : 2);  // 50/50
        } else {
          cfg.quant.kv_bits = !std::strcmp(bits, "8") ? KvBits::k8 : KvBits::k4;
        }
        spec.batch = B;
        spec.kv_heads = Hkv;
        spec.head_dim = D;
        spec.config = cfg;
        // Cache copies, each built from its own FP16 rows, appended in chunks from the device.
        const int64_t chunk = std::min<int64_t>(L, 8192);
        const int64_t chunk_elems = static_cast<int64_t>(B) * Hkv * chunk * D;
        cuda::DeviceBuffer kv(chunk_elems * 2 * 2);
        std::vector<std::unique_ptr<KvCache>> caches;
        int copies = 1;
        double cache_bytes = 0;
        for (int c = 0; c < copies; ++c) {
          auto cache = dev->create_cache(spec);
          for (int64_t t = 0; t < L; t += chunk) {
            fill(kv.as<Half>(), chunk_elems * 2, 1000 * c + t + B);
            cuda::flashq_cache_append_device(*cache, kv.as<Half>(), kv.as<Half>() + chunk_elems,
                                             chunk, nullptr);
          }
          TURBO_CUDA_CHECK(cudaDeviceSynchronize());
          if (c == 0) {
            cache_bytes = static_cast<double>(cache->bytes().total());
            copies = copies_for(cache_bytes);
          }
          caches.push_back(std::move(cache));
        }
        const int64_t q_elems = static_cast<int64_t>(B) * Hq * D;
        cuda::DeviceBuffer q(q_elems * 2 * copies), o(q_elems * 2 * copies);
        fill(q.as<Half>(), q_elems * copies, 77 + L);
        const int64_t tiles = (L + 63) / 64;
        const int base = default_splits(static_cast<int64_t>(B) * Hkv, tiles);
        double best = 1e30;
        int best_s = base;
        for (int s : {std::max(1, base / 2), base, std::min(256, base * 2)}) {
          cfg.splits = s;
          const double ms = median_ms(
              [&](int i) {
                const int c = i % copies;
                cuda::flashq_decode_device(cfg, q.as<Half>() + c * q_elems, *caches[c],
                                           o.as<Half>() + c * q_elems, Hq, 1, stream);
              },
              5, quick ? 30 : 100, stream);
          std::printf("  decode kv_bits=%s B=%d L=%lld splits=%d: %.4f ms\n", bits, B,
                      static_cast<long long>(L), s, ms);
          if (ms < best) best = ms, best_s = s;
        }
        cfg.splits = best_s;
        double graph_ms = 0;
        if (B == 1) {  // one graph of one call per copy, replayed
          cudaGraph_t graph;
          cudaGraphExec_t exec;
          TURBO_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
          for (int c = 0; c < copies; ++c)
            cuda::flashq_decode_device(cfg, q.as<Half>() + c * q_elems, *caches[c],
                                       o.as<Half>() + c * q_elems, Hq, 1, stream);
          TURBO_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
          TURBO_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
          graph_ms = median_ms([&](int) { TURBO_CUDA_CHECK(cudaGraphLaunch(exec, stream)); }, 3, 50,
                               stream) /
                     copies;
          cudaGraphExecDestroy(exec);
          cudaGraphDestroy(graph);
        }
        std::string verdict = "not checked";
        if (check && B == 1 && L <= 32768) {  // the ref cache from the same rows, then bit for bit
          auto c_ref = ref->create_cache(spec);
          std::vector<Half> k(static_cast<size_t>(chunk_elems)), v(k.size());
          for (int64_t t = 0; t < L; t += chunk) {
            fill(kv.as<Half>(), chunk_elems * 2, 1000 * 0 + t + B);
            TURBO_CUDA_CHECK(
                cudaMemcpy(k.data(), kv.as<Half>(), chunk_elems * 2, cudaMemcpyDeviceToHost));
            TURBO_CUDA_CHECK(cudaMemcpy(v.data(), kv.as<Half>() + chunk_elems, chunk_elems * 2,
                                        cudaMemcpyDeviceToHost));
            const auto kt = ConstHalfTensor::contiguous(k.data(), B, Hkv, chunk, D);
            const auto vt = ConstHalfTensor::contiguous(v.data(), B, Hkv, chunk, D);
            ref->cache_append(*c_ref, kt, vt);
          }
          std::vector<Half> qh(static_cast<size_t>(q_elems)), od(qh.size()), orf(qh.size());
          TURBO_CUDA_CHECK(
              cudaMemcpy(qh.data(), q.as<Half>(), q_elems * 2, cudaMemcpyDeviceToHost));
          cuda::flashq_decode_device(cfg, q.as<Half>(), *caches[0], o.as<Half>(), Hq, 1, stream);
          TURBO_CUDA_CHECK(cudaStreamSynchronize(stream));
          TURBO_CUDA_CHECK(
              cudaMemcpy(od.data(), o.as<Half>(), q_elems * 2, cudaMemcpyDeviceToHost));
          ref->attention_decode(cfg, ConstHalfTensor::contiguous(qh.data(), B, Hq, 1, D), *c_ref,
                                HalfTensor::contiguous(orf.data(), B, Hq, 1, D), nullptr);
          int64_t mism = c_ref->bytes().total() != caches[0]->bytes().total();
          bool nonzero = false;
          for (size_t i = 0; i < od.size(); ++i)
            mism += od[i].bits != orf[i].bits, nonzero |= (orf[i].bits & 0x7fff) != 0;
          verdict = std::to_string(mism) + " mismatches" + (nonzero ? "" : " (zero reference!)");
        }
        const double bytes = cache_bytes + q_elems * 2.0;
        std::printf(
            "decode kv_bits=%s B=%d Hq=%d Hkv=%d L=%lld D=%d splits=%d: %.4f ms (graph %.4f), "
            "%.1f MB read, %.0f GB/s, vs ref: %s\n",
            bits, B, Hq, Hkv, static_cast<long long>(L), D, best_s, best, graph_ms, bytes / 1e6,
            bytes / best / 1e6, verdict.c_str());
        csv.row("decode", B, Hq, Hkv, 1, L, D, 1, bits, best_s, "decode", best, graph_ms, bytes,
                verdict);
      }
  cudaStreamDestroy(stream);
}

// Compress and append under every stage-2 path (TURBO_STAGE2_PATH, cuda/stage2_channel.cuh) and
// the compress op's ring depths (TURBO_STAGE2_RING), in two rounds (the second in reverse order:
// drift between the rounds shows in the pairs), so that one run gives the A/B of cuda/TUNING.md.
// The defaults (both variables unset: the column scan with a ring of 2 for compress, the register
// path for the append) keep the kernel names "stage2" and "cache"; a variant's rows say which it
// is. The environment the program started with is restored after.
void bench_stage2_variants(Csv& csv) {
  struct Variant {
    const char* path;      // TURBO_STAGE2_PATH (nullptr: unset)
    const char* ring;      // TURBO_STAGE2_RING (nullptr: unset)
    const char* compress;  // the compress row's kernel name (nullptr: not timed, as a default)
    const char* append;    // the append rows' kernel name (nullptr: not timed)
  };
  const Variant variants[] = {
      {nullptr, nullptr, "stage2", "cache"},
      {"scan", "3", "stage2/scan-ring3", nullptr},
      {"scan", "4", "stage2/scan-ring4", nullptr},
      {"scan", nullptr, nullptr, "cache/scan"},
      {"register", nullptr, "stage2/register", nullptr},
      {"general", nullptr, "stage2/general", "cache/general"},
  };
  auto saved = [](const char* name) -> std::pair<bool, std::string> {
    const char* e = std::getenv(name);
    return {e != nullptr, e ? e : ""};
  };
  const auto path0 = saved("TURBO_STAGE2_PATH"), ring0 = saved("TURBO_STAGE2_RING");
  const int n = static_cast<int>(sizeof(variants) / sizeof(variants[0]));
  for (int round = 0; round < 2; ++round)
    for (int k = 0; k < n; ++k) {
      const Variant& v = variants[round == 0 ? k : n - 1 - k];
      for (const auto& [name, value] : {std::make_pair("TURBO_STAGE2_PATH", v.path),
                                        std::make_pair("TURBO_STAGE2_RING", v.ring)})
        if (value)
          setenv(name, value, 1);
        else
          unsetenv(name);
      if (v.compress) bench_compress(csv, v.compress);
      if (v.append)
        for (const char* bits : {"4", "8"}) bench_append(csv, bits, v.append);
    }
  for (const auto& [name, old] :
       {std::make_pair("TURBO_STAGE2_PATH", path0), std::make_pair("TURBO_STAGE2_RING", ring0)}) {
    if (old.first)
      setenv(name, old.second.c_str(), 1);
    else
      unsetenv(name);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* path = nullptr;
  bool quick = false, check = false;
  std::string only;  // prefill | decode | rates: one part only (tuning runs)
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--csv") && i + 1 < argc)
      path = argv[++i];
    else if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else if (!std::strcmp(argv[i], "--check"))
      check = true;
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: cuda_flashq_bench --csv out.csv [--quick] [--check] "
                   "[--only prefill|decode|rates]\n");
      return 2;
    }
  }
  if (!path) {
    std::fprintf(stderr, "cuda_flashq_bench: --csv is required\n");
    return 2;
  }
  if (cuda::cuda_device_count() == 0) {
    std::fprintf(stderr, "cuda_flashq_bench: no CUDA device visible; nothing was run\n");
    return 3;
  }
  Csv csv{std::fopen(path, "w")};
  if (!csv.f) {
    std::fprintf(stderr, "cuda_flashq_bench: cannot write %s\n", path);
    return 2;
  }
  std::fprintf(csv.f, "op,B,Hq,Hkv,N,L,D,causal,kv_bits,splits,kernel,ms,graph_ms,bytes,check\n");
  try {
    bench_ceilings(csv);
    if (only.empty() || only == "rates") {
      bench_quantize(csv);
      bench_stage2_variants(csv);
    }
    if (only.empty() || only == "decode") bench_decode(csv, quick, check);
    if (only.empty() || only == "prefill") bench_prefill(csv, quick);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_flashq_bench: %s\n", e.what());
    return 1;
  }
  std::fclose(csv.f);
  return 0;
}

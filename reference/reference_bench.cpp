// Reference-backend throughput (Google Benchmark). The baseline in the same run is a plain Eigen
// FP32 attention of the same shape (SPEC-free: Q K^T, row softmax, P V, FP32 throughout).
// Counters: elements/s for the quantizers and SAS, score-elements/s (unmasked Q.K entries) for
// attention.
#include <benchmark/benchmark.h>

#include <Eigen/Dense>
#include <cmath>
#include <vector>

#include "reference/reference.h"
#include "reference/test_inputs.h"

namespace turbo {
namespace ref {
namespace {

void BM_QuantizeStage1(benchmark::State& state) {
  const int64_t n = 4096, d = state.range(0);
  const QkvInputs in = make_inputs({1, 1, 1, n, d}, InputKind::kGaussian, 1);
  auto be = make_reference_backend();
  std::vector<int8_t> codes(static_cast<size_t>(n * d));
  std::vector<float> scales(static_cast<size_t>(n / 64 + 1));
  for (auto _ : state) {
    be->quantize_stage1(in.k.storage.data(), n, static_cast<int>(d), 64, codes.data(),
                        scales.data());
    benchmark::DoNotOptimize(codes.data());
  }
  state.counters["elements/s"] =
      benchmark::Counter(static_cast<double>(n * d), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_CompressBlock(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0)), d = 128;
  std::vector<int8_t> q(static_cast<size_t>(64 * d));
  for (size_t i = 0; i < q.size(); ++i)
    q[i] = static_cast<int8_t>(static_cast<int>((i * 73) % 255) - 127);
  const BlockLayout L{64, d, bits, 0, 32};
  std::vector<uint8_t> block(static_cast<size_t>(L.bytes()));
  auto be = make_reference_backend();
  for (auto _ : state) {
    be->compress_block(q.data(), L, block.data());
    benchmark::DoNotOptimize(block.data());
  }
  state.counters["elements/s"] = benchmark::Counter(static_cast<double>(L.elements()),
                                                    benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Sas(benchmark::State& state) {
  SasConfig c;
  c.precision = static_cast<SasPrecision>(state.range(0));
  std::vector<Half> x(1 << 16);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float_to_half(static_cast<float>(i % 7000) * 1e-3f);
  std::vector<float> out(x.size());
  auto be = make_reference_backend();
  for (auto _ : state) {
    be->sas(x.data(), static_cast<int64_t>(x.size()), c, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["elements/s"] = benchmark::Counter(static_cast<double>(x.size()),
                                                    benchmark::Counter::kIsIterationInvariantRate);
}

double causal_scores(int64_t n) {
  return static_cast<double>(n) * static_cast<double>(n + 1) / 2.0;
}

void BM_PrefillFlashQ(benchmark::State& state) {
  const int64_t n = 4096, d = state.range(0);
  const QkvInputs in = make_inputs({1, 1, 1, n, d}, InputKind::kGaussian, 2);
  HostTensor<Half> o(1, 1, n, d);
  auto be = make_reference_backend();
  AttentionConfig c;
  for (auto _ : state)
    be->attention_prefill(c, in.q.view(), in.k.view(), in.v.view(), o.view(), nullptr);
  state.counters["score-elements/s"] =
      benchmark::Counter(causal_scores(n), benchmark::Counter::kIsIterationInvariantRate);
}

// Baseline: plain Eigen FP32 causal attention of the same shape.
void BM_PrefillEigenFp32(benchmark::State& state) {
  const int64_t n = 4096, d = state.range(0);
  const QkvInputs in = make_inputs({1, 1, 1, n, d}, InputKind::kGaussian, 2);
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Mat q(n, d), k(n, d), v(n, d);
  for (int64_t i = 0; i < n * d; ++i) {
    q.data()[i] = half_to_float(in.q.storage[static_cast<size_t>(i)]);
    k.data()[i] = half_to_float(in.k.storage[static_cast<size_t>(i)]);
    v.data()[i] = half_to_float(in.v.storage[static_cast<size_t>(i)]);
  }
  const float tau = default_tau(d);
  Mat s(n, n), o(n, d);
  for (auto _ : state) {
    s.noalias() = (q * k.transpose()) * tau;
    for (int64_t i = 0; i < n; ++i) {
      auto row = s.row(i);
      for (int64_t j = i + 1; j < n; ++j) row(j) = -INFINITY;
      const float m = row.maxCoeff();
      row = (row.array() - m).exp();
      row /= row.sum();
    }
    o.noalias() = s * v;
    benchmark::DoNotOptimize(o.data());
  }
  state.counters["score-elements/s"] =
      benchmark::Counter(causal_scores(n), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_DecodeFlashQ(benchmark::State& state) {
  const int64_t len = state.range(0), d = 128;
  const QkvInputs in = make_inputs({1, 1, 1, len, d}, InputKind::kGaussian, 3);
  auto be = make_reference_backend();
  AttentionConfig c;  // 4-bit channel-axis blocks, FP16 buffer
  auto cache = be->create_cache({c, 1, 1, static_cast<int>(d), {}});
  be->cache_append(*cache, in.k.view(), in.v.view());
  HostTensor<Half> q(1, 1, 1, d), o(1, 1, 1, d);
  std::copy(in.q.storage.end() - d, in.q.storage.end(), q.storage.begin());
  for (auto _ : state) be->attention_decode(c, q.view(), *cache, o.view(), nullptr);
  state.counters["score-elements/s"] =
      benchmark::Counter(static_cast<double>(len), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_DecodeEigenFp32(benchmark::State& state) {
  const int64_t len = state.range(0), d = 128;
  const QkvInputs in = make_inputs({1, 1, 1, len, d}, InputKind::kGaussian, 3);
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Mat k(len, d), v(len, d);
  Eigen::VectorXf q(d);
  for (int64_t i = 0; i < len * d; ++i) {
    k.data()[i] = half_to_float(in.k.storage[static_cast<size_t>(i)]);
    v.data()[i] = half_to_float(in.v.storage[static_cast<size_t>(i)]);
  }
  for (int64_t c = 0; c < d; ++c)
    q(c) = half_to_float(in.q.storage[static_cast<size_t>((len - 1) * d + c)]);
  const float tau = default_tau(d);
  Eigen::VectorXf s(len), o(d);
  for (auto _ : state) {
    s.noalias() = (k * q) * tau;
    s = (s.array() - s.maxCoeff()).exp();
    s /= s.sum();
    o.noalias() = v.transpose() * s;
    benchmark::DoNotOptimize(o.data());
  }
  state.counters["score-elements/s"] =
      benchmark::Counter(static_cast<double>(len), benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_QuantizeStage1)->Arg(64)->Arg(128);
BENCHMARK(BM_CompressBlock)->Arg(4)->Arg(2);
BENCHMARK(BM_Sas)->Arg(0)->Arg(1);
BENCHMARK(BM_PrefillFlashQ)
    ->Arg(64)
    ->Arg(128)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(2);
BENCHMARK(BM_PrefillEigenFp32)
    ->Arg(64)
    ->Arg(128)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);
BENCHMARK(BM_DecodeFlashQ)->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DecodeEigenFp32)->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace ref
}  // namespace turbo

BENCHMARK_MAIN();

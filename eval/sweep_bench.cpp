// Throughput of the sweep's reference path (eval/sweep.h run_unit on the "ref" backend): configs
// per second and score elements per second for a prefill and a decode unit of representative
// methods on one synthetic layer shaped like SmolLM2-135M (9 query heads, 3 kv heads, D = 64).
// Rates are per wall-clock second (the reference uses OpenMP threads). Score elements: prefill Hq *
// N (N + 1) / 2, decode Hq * sum over positions of (p + 1).
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>

#include "eval/backends.h"
#include "eval/sweep.h"

namespace turbo {
namespace eval {
namespace {

SweepData make_data(int64_t n, const std::vector<Phase>& phases) {
  SweepData d;
  d.n_heads = 9;
  d.n_kv_heads = 3;
  d.head_dim = 64;
  d.tokens = n;
  d.positions = sample_positions(n, 8, 0);
  std::mt19937 rng(1);
  std::normal_distribution<float> g;
  auto tensor = [&](int64_t h, float outlier) {
    HostTensor<Half> t(1, h, n, 64);
    for (int64_t i = 0; i < t.numel(); ++i)
      t.storage[static_cast<size_t>(i)] = float_to_half(g(rng) * ((i % 64) == 5 ? outlier : 1.0f));
    return t;
  };
  add_layer(d, 0, tensor(9, 1.0f), tensor(3, 10.0f), tensor(3, 1.0f), phases);
  return d;
}

void BM_SweepUnit(benchmark::State& state, const char* key, Phase phase) {
  register_builtin_backends();
  const int64_t n = state.range(0);
  const SweepData data = make_data(n, {phase});
  std::unique_ptr<Backend> backend = make_backend("ref");
  Unit unit{phase, canonical_config(parse_attention_config(key), phase), ""};
  unit.key = unit.config.to_string();
  double scores = 0;
  if (phase == Phase::kPrefill) {
    scores = 9.0 * n * (n + 1) / 2.0;
  } else {
    for (int64_t p : data.positions) scores += 9.0 * (p + 1);
  }
  for (auto _ : state) benchmark::DoNotOptimize(run_unit(*backend, unit, data, nullptr, ""));
  state.counters["configs/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["score-elements/s"] = benchmark::Counter(
      scores * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

BENCHMARK_CAPTURE(BM_SweepUnit, flashq_prefill, "method=flashq", Phase::kPrefill)
    ->Arg(256)
    ->Arg(512)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_SweepUnit, flashq4_decode, "method=flashq,kv_bits=4", Phase::kDecode)
    ->Arg(512)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_SweepUnit, flashq2_decode, "method=flashq,kv_bits=2", Phase::kDecode)
    ->Arg(512)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_SweepUnit, kivi2_prefill, "method=kivi,kv_bits=2", Phase::kPrefill)
    ->Arg(512)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_SweepUnit, kivi2_decode, "method=kivi,kv_bits=2", Phase::kDecode)
    ->Arg(512)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_SweepUnit, fp8_prefill, "method=fp8", Phase::kPrefill)
    ->Arg(512)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_SweepUnit, sage_prefill, "method=sage,k_smooth=mean", Phase::kPrefill)
    ->Arg(512)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_SweepUnit, fp16_prefill, "method=fp16", Phase::kPrefill)
    ->Arg(512)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace eval
}  // namespace turbo

BENCHMARK_MAIN();

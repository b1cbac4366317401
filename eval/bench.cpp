// `turboattn bench`: times each op of a backend on given shapes; prints a Markdown table with the
// median of the repeats and elements per second. Element counts: quantize_stage1 / quantize_asym /
// cache_append: input values; compress/decompress_block: block elements; sas: values; prefill:
// score entries (causal: Hq * N (N + 1) / 2); decode: Hq * L score entries per query row.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <sstream>

#include "core/backend.h"
#include "core/error.h"
#include "core/host/numbers.h"
#include "core/host/rng.h"
#include "core/kv_layout.h"
#include "eval/commands.h"

namespace turbo {
namespace eval {
namespace {

struct BenchShape {
  int64_t hq = 9, hkv = 3, n = 1024, d = 64;
};

// "Hq/HkvxNxD", e.g. 9/3x1024x64. Every number is parsed strictly, and the tensors the ops
// allocate (Q, K, V in FP16, the FP32 output and its FP64 check, about 20 bytes per Q element
// and 4 per K/V element) must fit in half the physical memory: a huge shape is refused by name
// instead of failing with std::bad_alloc.
BenchShape parse_shape(const std::string& s) {
  const std::string format = "--shape expects Hq/HkvxNxD (e.g. 9/3x1024x64), got '" + s + "'";
  const size_t slash = s.find('/'), x1 = s.find('x', slash == std::string::npos ? 0 : slash),
               x2 = x1 == std::string::npos ? x1 : s.find('x', x1 + 1);
  TURBO_CHECK(slash != std::string::npos && x1 != std::string::npos && x2 != std::string::npos,
              format);
  BenchShape b;
  b.hq = parse_int(s.substr(0, slash), 1, 4096, "--shape Hq");
  b.hkv = parse_int(s.substr(slash + 1, x1 - slash - 1), 1, 4096, "--shape Hkv");
  b.n = parse_int(s.substr(x1 + 1, x2 - x1 - 1), 1, int64_t{1} << 24, "--shape N");
  b.d = parse_int(s.substr(x2 + 1), 1, 4096, "--shape D");
  TURBO_CHECK(b.hq % b.hkv == 0, "--shape: Hq " << b.hq << " is not a multiple of Hkv " << b.hkv);
  const double bytes = (20.0 * static_cast<double>(b.hq) + 4.0 * static_cast<double>(b.hkv)) *
                       static_cast<double>(b.n) * static_cast<double>(b.d);
  const double memory =
      static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  TURBO_CHECK(memory <= 0 || bytes <= memory / 2,
              "--shape " << s << " needs about " << bytes / 1e9 << " GB; this machine has "
                         << memory / 1e9 << " GB (at most half of it is used)");
  return b;
}

HostTensor<Half> filled(int64_t h, int64_t n, int64_t d, uint64_t seed) {
  HostTensor<Half> t(1, h, n, d);
  SplitMix64 rng(seed * SplitMix64::kGolden + 7);
  for (auto& x : t.storage)
    x = float_to_half(static_cast<float>(static_cast<int64_t>(rng.below(4001)) - 2000) / 700.0f);
  return t;
}

double median_seconds(int repeats, const std::function<void()>& fn) {
  fn();  // warm-up
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

void add_bench_command(CLI::App& app, CommonOptions& common) {
  struct Opts {
    std::string backend = "ref";
    std::vector<std::string> shapes = {"9/3x1024x64"};
    std::string config = "method=flashq";
    std::string ops = "all";
    int repeats = 5;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub =
      app.add_subcommand("bench", "Time each op of a backend (median of repeats, elements/s)");
  sub->add_option("--backend", o->backend, "backend")->capture_default_str();
  sub->add_option("--shape", o->shapes, "Hq/HkvxNxD (repeatable)")->capture_default_str();
  sub->add_option("--config", o->config, "attention config key for prefill/decode")
      ->capture_default_str();
  sub->add_option("--ops", o->ops,
                  "all, or a list of: quantize_stage1, compress_block, decompress_block, "
                  "quantize_asym, sas, "
                  "prefill, cache_append, decode")
      ->capture_default_str();
  sub->add_option("--repeats", o->repeats, "timed repeats per op")->capture_default_str();
  sub->callback([o, &common]() {
    common.apply_threads();
    TURBO_CHECK(o->repeats >= 1, "--repeats must be >= 1");
    const std::vector<std::string> all = {
        "quantize_stage1", "compress_block", "decompress_block", "quantize_asym", "sas", "prefill",
        "cache_append",    "decode"};
    std::vector<std::string> ops;
    if (o->ops == "all") {
      ops = all;
    } else {
      std::istringstream in(o->ops);
      std::string op;
      while (std::getline(in, op, ',')) {
        TURBO_CHECK(std::find(all.begin(), all.end(), op) != all.end(),
                    "unknown op '" << op << "'; valid: " << join_names(all));
        ops.push_back(op);
      }
    }
    const AttentionConfig cfg = parse_attention_config(o->config);
    std::unique_ptr<Backend> be = make_backend(o->backend);
    const Status st = be->supports(cfg);
    TURBO_CHECK(st.ok,
                "backend '" << o->backend << "' does not run " << o->config << ": " << st.message);
    std::printf("bench: backend '%s', config `%s`, median of %d\n\n", o->backend.c_str(),
                o->config.c_str(), o->repeats);
    std::printf("| op | shape | elements | median time | elements/s |\n|---|---|---|---|---|\n");
    for (const std::string& shape_text : o->shapes) {
      const BenchShape s = parse_shape(shape_text);
      const HostTensor<Half> q = filled(s.hq, s.n, s.d, common.seed + 1),
                             k = filled(s.hkv, s.n, s.d, common.seed + 2),
                             v = filled(s.hkv, s.n, s.d, common.seed + 3);
      for (const std::string& op : ops) {
        double secs = 0, elements = 0;
        if (op == "quantize_stage1") {
          std::vector<int8_t> codes(k.storage.size());
          std::vector<float> scales(static_cast<size_t>(s.hkv * s.n));
          secs = median_seconds(o->repeats, [&] {
            be->quantize_stage1(k.storage.data(), s.hkv * s.n, static_cast<int>(s.d), cfg.quant.bc,
                                codes.data(), scales.data());
          });
          elements = static_cast<double>(k.numel());
        } else if (op == "compress_block" || op == "decompress_block") {
          const BlockLayout layout{
              cfg.quant.block, static_cast<int>(s.d),
              kv_bits_value(cfg.quant.kv_bits) ? kv_bits_value(cfg.quant.kv_bits) : 4,
              static_cast<int>(cfg.quant.k_axis), cfg.quant.group_size};
          TURBO_CHECK(layout.bits != 8,
                      "compress/decompress_block need kv_bits 4 or 2 in --config");
          const int64_t blocks = std::max<int64_t>(1, s.hkv * s.n / layout.n_b);
          std::vector<int8_t> codes(static_cast<size_t>(layout.elements() * blocks));
          for (size_t i = 0; i < codes.size(); ++i)
            codes[i] = static_cast<int8_t>(static_cast<int>(i * 37 % 255) - 127);
          std::vector<uint8_t> bytes(static_cast<size_t>(layout.bytes() * blocks));
          for (int64_t b = 0; b < blocks; ++b)
            be->compress_block(&codes[b * layout.elements()], layout, &bytes[b * layout.bytes()]);
          secs = median_seconds(o->repeats, [&] {
            for (int64_t b = 0; b < blocks; ++b) {
              if (op == "compress_block")
                be->compress_block(&codes[b * layout.elements()], layout,
                                   &bytes[b * layout.bytes()]);
              else
                be->decompress_block(&bytes[b * layout.bytes()], layout,
                                     &codes[b * layout.elements()]);
            }
          });
          elements = static_cast<double>(layout.elements() * blocks);
        } else if (op == "quantize_asym") {
          const int len = cfg.quant.group_size;
          const int64_t groups = k.numel() / len;
          std::vector<uint8_t> codes(static_cast<size_t>(groups * len));
          std::vector<float> sc(static_cast<size_t>(groups)), z(static_cast<size_t>(groups));
          secs = median_seconds(o->repeats, [&] {
            be->quantize_asym(k.storage.data(), groups, len, 4, cfg.quant.scale_storage,
                              codes.data(), sc.data(), z.data());
          });
          elements = static_cast<double>(groups * len);
        } else if (op == "sas") {
          std::vector<Half> x(k.storage.size());
          for (size_t i = 0; i < x.size(); ++i)
            x[i] = float_to_half(std::fabs(half_to_float(k.storage[i])) * 2.0f);
          std::vector<float> out(x.size());
          secs = median_seconds(o->repeats, [&] {
            be->sas(x.data(), static_cast<int64_t>(x.size()), cfg.sas, out.data());
          });
          elements = static_cast<double>(x.size());
        } else if (op == "prefill") {
          HostTensor<Half> out(1, s.hq, s.n, s.d);
          secs = median_seconds(o->repeats, [&] {
            be->attention_prefill(cfg, q.view(), k.view(), v.view(), out.view(), nullptr);
          });
          elements = static_cast<double>(s.hq) *
                     (cfg.causal ? s.n * (s.n + 1) / 2.0 : static_cast<double>(s.n) * s.n);
        } else if (op == "cache_append" || op == "decode") {
          KvCacheSpec spec;
          spec.config = cfg;
          spec.kv_heads = static_cast<int>(s.hkv);
          spec.head_dim = static_cast<int>(s.d);
          TURBO_CHECK(cfg.quant.kv_bits != KvBits::kMixed,
                      "bench: use a fixed kv_bits in --config");
          if (op == "cache_append") {
            secs = median_seconds(o->repeats, [&] {
              auto cache = be->create_cache(spec);
              be->cache_append(*cache, k.view(), v.view());
            });
            elements = 2.0 * static_cast<double>(k.numel());
          } else {
            auto cache = be->create_cache(spec);
            be->cache_append(*cache, k.view(), v.view());
            ConstHalfTensor qrow = q.view();
            qrow.data = q.storage.data() + (s.n - 1) * s.d;
            qrow.shape[2] = 1;
            HostTensor<Half> out(1, s.hq, 1, s.d);
            secs = median_seconds(
                o->repeats, [&] { be->attention_decode(cfg, qrow, *cache, out.view(), nullptr); });
            elements = static_cast<double>(s.hq * s.n);
          }
        }
        std::printf("| %s | %s | %.0f | %.3f ms | %.3g |\n", op.c_str(), shape_text.c_str(),
                    elements, secs * 1e3, elements / secs);
        std::fflush(stdout);
      }
    }
  });
}

}  // namespace eval
}  // namespace turbo

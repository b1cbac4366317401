#include "eval/ppl.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <sstream>
#include <utility>

#include "core/config.h"
#include "core/error.h"
#include "core/host/file_io.h"
#include "core/host/json.h"
#include "core/host/progress.h"
#include "core/host/rng.h"
#include "core/method.h"
#include "datasets/commands.h"
#include "datasets/llama_model.h"
#include "datasets/model_path.h"
#include "datasets/sha256.h"
#include "eval/calibrate.h"
#include "eval/provenance.h"
#include "eval/sweep.h"
#include "reference/reference.h"

namespace turbo {
namespace eval {
namespace {

using Clock = std::chrono::steady_clock;

// SPEC 8 as the sweep counts it (eval/sweep.cpp run_unit): the bytes each layer's cache holds
// after token p is appended, for every p in [decode_start(n), n), per token and kv head. The
// decode hook appends a chunk at a time, so a second cache per layer takes the same K/V rows one
// token at a time (a cache is a pure function of its rows, reference/kv_cache.h) and is read
// after each; its bytes at the end must equal the decode caches'.
class KvBytesProbe : public data::AttentionHook {
 public:
  KvBytesProbe(data::BackendDecodeHook& inner, Backend& backend, const AttentionConfig& config,
               const data::LlamaConfig& mc, const std::vector<std::vector<int>>& head_bits,
               int64_t n)
      : inner_(inner), start_(decode_start(n)), caches_(static_cast<size_t>(mc.n_layers)) {
    for (int l = 0; l < mc.n_layers; ++l) {
      KvCacheSpec spec;
      spec.config = config;
      spec.kv_heads = mc.n_kv_heads;
      spec.head_dim = mc.head_dim;
      if (!head_bits.empty()) spec.head_bits = head_bits[static_cast<size_t>(l)];
      caches_[static_cast<size_t>(l)] = backend.create_cache(spec);
    }
    backend_ = &backend;
  }
  void attend(int layer, int64_t pos0, int64_t window, const HostTensor<Half>& q,
              const HostTensor<Half>& k, const HostTensor<Half>& v, float* o) override {
    inner_.attend(layer, pos0, window, q, k, v, o);
    KvCache& cache = *caches_[static_cast<size_t>(layer)];
    for (int64_t t = 0; t < k.n; ++t) {
      backend_->cache_append(cache, token_slice(k, t, t + 1), token_slice(v, t, t + 1));
      if (pos0 + t < start_) continue;
      const KvBytes b = cache.bytes();
      TURBO_CHECK(b.tokens == cache.length() * cache.spec().kv_heads,
                  "KvCache::bytes() counts " << b.tokens << " token-heads, expected "
                                             << cache.length() * cache.spec().kv_heads);
      sum_ += static_cast<double>(b.total()) / static_cast<double>(b.tokens);
      ++count_;
    }
  }
  // Mean over the decode positions and the layers, per token and kv head.
  double mean() const {
    const KvBytes end = inner_.kv_bytes();
    KvBytes probe;
    for (const auto& c : caches_) probe += c->bytes();
    TURBO_CHECK(probe.total() == end.total() && probe.tokens == end.tokens,
                "the token-by-token cache holds " << probe.total() << " bytes, the decode caches "
                                                  << end.total());
    return count_ > 0 ? sum_ / static_cast<double>(count_) : 0.0;
  }

 private:
  data::BackendDecodeHook& inner_;
  Backend* backend_ = nullptr;
  int64_t start_;
  std::vector<std::unique_ptr<KvCache>> caches_;
  double sum_ = 0;
  int64_t count_ = 0;
};

// Logits rows of positions [eval_from, N - 1) (each predicts the next token).
std::vector<float> scored_logits(const data::LlamaModel& model, const std::vector<int32_t>& tokens,
                                 bool decode, int64_t chunk, int64_t eval_from,
                                 data::AttentionHook& hook) {
  const int64_t n = static_cast<int64_t>(tokens.size()), vocab = model.config().vocab;
  std::vector<float> out;
  out.reserve(static_cast<size_t>((n - 1 - eval_from) * vocab));
  std::vector<float> lg;
  const int64_t step = decode ? chunk : n;
  for (int64_t p0 = 0; p0 < n; p0 += step) {
    const int64_t len = std::min(step, n - p0);
    const int64_t begin = std::clamp<int64_t>(eval_from - p0, 0, len);
    model.forward(tokens.data() + p0, len, p0, hook, &lg, -1, begin);
    const int64_t last = std::min(p0 + len, n - 1);  // rows of positions < n - 1
    const int64_t keep = std::max<int64_t>(0, last - (p0 + begin));
    out.insert(out.end(), lg.begin(), lg.begin() + keep * vocab);
  }
  return out;
}

// Forward calls x layers of one scored_logits run (the progress total).
int64_t attend_calls(int64_t n, bool decode, int64_t chunk, int n_layers) {
  const int64_t calls = decode ? (n + chunk - 1) / chunk : 1;
  return calls * n_layers;
}

struct RowStats {
  double nll = 0;
  int64_t argmax = 0;
};

RowStats row_stats(const float* logits, int64_t vocab, int32_t target, std::vector<double>& logp) {
  RowStats s;
  double m = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i)
    if (logits[i] > m) {
      m = logits[i];
      s.argmax = i;
    }
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - m);
  const double lse = m + std::log(sum);
  logp.resize(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i)
    logp[static_cast<size_t>(i)] = static_cast<double>(logits[i]) - lse;
  s.nll = -logp[static_cast<size_t>(target)];
  return s;
}

std::string default_cache_dir() {
  if (const char* c = std::getenv("TURBO_CACHE")) return std::string(c) + "/ppl_reference";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/turboattn/ppl_reference";
}

// The reference logits of one (model, tokens, phase, chunk, eval_from): cached as raw
// little-endian FP32 rows plus a JSON file holding the key, both written atomically.
class ReferenceCache {
 public:
  ReferenceCache(const std::string& dir, const data::LlamaModel& model,
                 const std::vector<int32_t>& tokens, const std::string& phase, int64_t chunk,
                 int64_t eval_from)
      : dir_(dir) {
    if (dir_ == "none") return;
    key_ = Json::object();
    key_.set("format", "turboattn-ppl-reference-1");
    key_.set("model_sha256", model.sha256());
    key_.set("tokens_sha256", data::sha256_hex(tokens.data(), tokens.size() * sizeof(int32_t)));
    key_.set("n_tokens", static_cast<int64_t>(tokens.size()));
    key_.set("phase", phase);
    key_.set("chunk", phase == "decode" ? chunk : int64_t{0});
    key_.set("eval_from", eval_from);
    key_.set("vocab", static_cast<int64_t>(model.config().vocab));
    const std::string k = key_.dump();
    stem_ = dir_ + "/" + data::sha256_hex(k.data(), k.size()).substr(0, 32);
  }
  bool enabled() const { return dir_ != "none"; }

  // The cached logits, or false when absent; a cache entry that does not match is an error.
  bool load(size_t expect_floats, std::vector<float>& out) const {
    if (!enabled() || ::access((stem_ + ".json").c_str(), F_OK) != 0) return false;
    const Json k = Json::parse(read_text_file(stem_ + ".json", "reference cache"), stem_ + ".json");
    TURBO_CHECK(k == key_, "reference cache " << stem_ << ".json holds another key; delete it");
    const std::vector<uint8_t> bytes = read_binary_file(stem_ + ".f32", "reference cache");
    TURBO_CHECK(bytes.size() == expect_floats * sizeof(float),
                "reference cache " << stem_ << ".f32 holds " << bytes.size() << " bytes, expected "
                                   << expect_floats * sizeof(float) << "; delete it");
    out.resize(expect_floats);
    std::memcpy(out.data(), bytes.data(), bytes.size());
    return true;
  }
  void store(const std::vector<float>& logits) const {
    if (!enabled()) return;
    if (::mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) {
      std::cerr << "warning: cannot create the reference cache " << dir_ << "; not caching\n";
      return;
    }
    try {
      write_file_atomic(stem_ + ".f32", std::string(reinterpret_cast<const char*>(logits.data()),
                                                    logits.size() * sizeof(float)));
      write_file_atomic(stem_ + ".json", key_.dump());  // last: marks the entry complete
    } catch (const Error& e) {
      std::cerr << "warning: reference cache not written: " << e.what() << "\n";
    }
  }
  const std::string& stem() const { return stem_; }

 private:
  std::string dir_, stem_;
  Json key_;
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

}  // namespace

Interval bootstrap_interval(int64_t n, int resamples, int64_t block, uint64_t seed,
                            const std::function<double(const std::vector<int64_t>&)>& stat) {
  Interval ci{NAN, NAN};
  if (resamples <= 0 || n <= 0) return ci;
  block = std::clamp<int64_t>(block, 1, n);
  SplitMix64 rng(seed ^ SplitMix64::kGolden);
  std::vector<double> stats;
  stats.reserve(static_cast<size_t>(resamples));
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int r = 0; r < resamples; ++r) {
    for (int64_t i = 0; i < n; i += block) {
      const int64_t start = static_cast<int64_t>(rng.below(static_cast<uint64_t>(n)));
      for (int64_t j = 0; j < block && i + j < n; ++j)
        idx[static_cast<size_t>(i + j)] = (start + j) % n;
    }
    stats.push_back(stat(idx));
  }
  ci.lo = percentile(stats, 0.025);
  ci.hi = percentile(stats, 0.975);
  return ci;
}

PplRun parse_ppl_run(const std::string& spec, const std::string& shared) {
  PplRun r;
  r.spec = spec;
  const size_t colon = spec.find(':');
  r.method = spec.substr(0, colon);
  const std::string knobs = colon == std::string::npos ? "" : spec.substr(colon + 1);
  TURBO_CHECK(!r.method.empty(), "run '" << spec << "' names no method (method[:name=value,...])");
  if (r.method == "reference") {
    TURBO_CHECK(colon == std::string::npos, "run '" << spec << "': reference takes no knobs");
    return r;
  }
  try {
    AttentionConfig named;
    set_knob(named, "method", r.method);  // checks the name
    auto names_other_method = [&](const std::string& knob_list) {
      std::stringstream ss(knob_list);
      for (std::string item; std::getline(ss, item, ',');)
        if (item.rfind("method=", 0) == 0 && parse_attention_config(item).method != named.method)
          return true;
      return false;
    };
    TURBO_CHECK(!names_other_method(shared), "the method in --config contradicts it");
    TURBO_CHECK(!names_other_method(knobs), "a method= knob contradicts the name before ':'");
    r.config = parse_attention_config(shared + "," + knobs);  // the run's knobs win
    set_knob(r.config, "method", r.method);
    const Status s = r.config.validate();
    TURBO_CHECK(s.ok, "invalid config: " << s.message);
  } catch (const Error& e) {
    throw Error("run '" + spec + "': " + e.what());
  }
  return r;
}

std::vector<PplResult> run_ppl(const PplOptions& options) {
  PplOptions o = options;
  o.model = data::resolve_model_path(o.model);
  TURBO_CHECK(o.phase == "prefill" || o.phase == "decode",
              "--phase must be prefill or decode, got '" << o.phase << "'");
  TURBO_CHECK(o.chunk >= 1 && o.chunk <= kMaxTileSize,
              "--chunk must be in [1, " << kMaxTileSize << "], got " << o.chunk);
  TURBO_CHECK(!o.methods.empty() || !o.runs.empty(), "--method names no method");
  TURBO_CHECK(o.bootstrap >= 0 && o.bootstrap <= 100000,
              "--bootstrap must be in [0, 100000], got " << o.bootstrap);
  const bool decode = o.phase == "decode";

  // Every run's config, validated before the model is read.
  std::vector<PplRun> runs;
  if (o.runs.empty()) {
    for (const std::string& m : o.methods) {
      TURBO_CHECK(m.find(':') == std::string::npos,
                  "--method takes method names; give per-method knobs as --run '" << m << "'");
      runs.push_back(parse_ppl_run(m, o.config));
    }
  } else {
    for (const std::string& spec : o.runs) runs.push_back(parse_ppl_run(spec, o.config));
  }
  for (size_t i = 0; i < runs.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      TURBO_CHECK(runs[i].method != runs[j].method ||
                      (runs[i].method != "reference" &&
                       runs[i].config.to_string() != runs[j].config.to_string()),
                  "run '" << runs[i].spec << "' repeats run '" << runs[j].spec << "'");

  const data::LlamaModel model(o.model);
  const data::LlamaConfig& mc = model.config();
  const data::TokenWindow w = data::token_window(model, o.text, o.max_tokens, o.skip_tokens, false);
  const int64_t n = static_cast<int64_t>(w.tokens.size());
  const int64_t eval_from = o.eval_from < 0 ? n / 2 : o.eval_from;
  TURBO_CHECK(n >= 3 && eval_from >= 1 && eval_from < n - 1,
              "the window has " << n << " tokens; --eval-from " << eval_from << " must be in [1, "
                                << n - 1 << ")");
  std::vector<std::vector<int>> head_bits;
  bool any_mixed = false;
  for (const PplRun& run : runs)
    any_mixed =
        any_mixed || (run.method != "reference" && run.config.quant.kv_bits == KvBits::kMixed);
  if (!o.bits_map.empty()) {
    TURBO_CHECK(any_mixed, "--bits-map needs a method with kv_bits=mixed");
    TURBO_CHECK(decode, "--bits-map applies to the compressed KV cache: use --phase decode");
    const BitMap map = load_bit_map(o.bits_map);
    for (const PplRun& run : runs)
      TURBO_CHECK(run.method == "reference" || run.config.quant.kv_bits != KvBits::kMixed ||
                      !method_traits(run.config.method).bit_map || map.matches(run.config),
                  "the bit map " << o.bits_map << " was made with " << map.knobs_text() << "; run '"
                                 << run.spec << "' asks for other mixed-precision knobs");
    head_bits = map.rows(mc.n_layers, mc.n_kv_heads);
  } else {
    TURBO_CHECK(!any_mixed || !decode,
                "kv_bits=mixed needs --bits-map (a calibration of the KV heads)");
  }

  const int64_t scored = n - 1 - eval_from;
  const int64_t vocab = mc.vocab;
  const int64_t calls = attend_calls(n, decode, o.chunk, mc.n_layers);

  // The reference: from the cache, or one forward with exact attention.
  const ReferenceCache cache(o.ref_cache.empty() ? default_cache_dir() : o.ref_cache, model,
                             w.tokens, o.phase, o.chunk, eval_from);
  std::vector<float> ref;
  auto t0 = Clock::now();
  const bool cached = cache.load(static_cast<size_t>(scored * vocab), ref);
  if (cached) {
    if (o.verbosity > 0) std::cerr << "ppl: reference logits from " << cache.stem() << ".f32\n";
  } else {
    Progress progress("ppl reference", calls, o.verbosity, 5.0);
    data::ExactAttentionHook exact(mc.n_layers);
    data::ProgressHook hook(exact, progress, "exact attention");
    ref = scored_logits(model, w.tokens, decode, o.chunk, eval_from, hook);
    cache.store(ref);
  }
  const double seconds_reference = seconds_since(t0);

  // Per-position reference statistics, shared by every method.
  std::vector<double> nll_ref(static_cast<size_t>(scored));
  std::vector<int64_t> arg_ref(static_cast<size_t>(scored));
  {
    std::vector<double> lp;
    for (int64_t i = 0; i < scored; ++i) {
      const int32_t target = w.tokens[static_cast<size_t>(eval_from + i + 1)];
      const RowStats a = row_stats(&ref[static_cast<size_t>(i * vocab)], vocab, target, lp);
      nll_ref[static_cast<size_t>(i)] = a.nll;
      arg_ref[static_cast<size_t>(i)] = a.argmax;
    }
  }

  ref::register_reference_backend();
  std::vector<PplResult> results;
  for (const PplRun& run : runs) {
    const bool reference_only = run.method == "reference";
    const AttentionConfig& cfg = run.config;
    PplResult r;
    r.run = run.spec;
    r.method_key = reference_only ? "reference" : cfg.to_string();
    r.phase = o.phase;
    r.window = n;
    r.scored = scored;
    r.seconds_reference = seconds_reference;
    r.reference_from_cache = cached;
    std::vector<float> method;
    if (!reference_only) {
      std::unique_ptr<Backend> backend = make_backend(o.backend);
      t0 = Clock::now();
      Progress progress("ppl " + run.spec, calls, o.verbosity, 5.0);
      std::vector<AttentionStats> stats;
      if (decode) {
        data::BackendDecodeHook inner(*backend, cfg, mc.n_layers, mc.n_heads, mc.n_kv_heads,
                                      mc.head_dim, head_bits);
        KvBytesProbe probe(inner, *backend, cfg, mc, head_bits, n);
        data::ProgressHook hook(probe, progress, run.spec);
        method = scored_logits(model, w.tokens, true, o.chunk, eval_from, hook);
        r.kv_bytes_mean_per_token_per_kv_head = probe.mean();
        r.kv_ratio_mean_vs_fp16 = 4.0 * mc.head_dim / r.kv_bytes_mean_per_token_per_kv_head;
        stats = inner.stats();
        const KvBytes b = inner.kv_bytes();
        const double fp16 =
            2.0 * 2.0 * static_cast<double>(mc.n_layers) * mc.n_kv_heads * mc.head_dim * n;
        r.kv_bytes_per_token = static_cast<double>(b.total()) / static_cast<double>(n);
        r.kv_bytes_per_token_per_kv_head =
            r.kv_bytes_per_token / (static_cast<double>(mc.n_layers) * mc.n_kv_heads);
        r.kv_ratio_vs_fp16 = b.total() > 0 ? fp16 / static_cast<double>(b.total()) : 0.0;
      } else {
        data::BackendPrefillHook inner(*backend, cfg, mc.n_layers, mc.n_heads);
        data::ProgressHook hook(inner, progress, run.spec);
        method = scored_logits(model, w.tokens, false, o.chunk, eval_from, hook);
        stats = inner.stats();
      }
      r.seconds_method = seconds_since(t0);
      AttentionStats all;
      for (const AttentionStats& s : stats) all.merge(s);
      r.sparsity = all.sparsity();
      r.dropped_mass = all.mean_dropped_mass();
    }
    const std::vector<float>& met = reference_only ? ref : method;

    std::vector<double> nll_met(static_cast<size_t>(scored)), kl(static_cast<size_t>(scored)),
        agree(static_cast<size_t>(scored));
    std::vector<double> lp_ref, lp_met;
    for (int64_t i = 0; i < scored; ++i) {
      const int32_t target = w.tokens[static_cast<size_t>(eval_from + i + 1)];
      row_stats(&ref[static_cast<size_t>(i * vocab)], vocab, target, lp_ref);
      const RowStats b = row_stats(&met[static_cast<size_t>(i * vocab)], vocab, target, lp_met);
      double k = 0;
      for (int64_t t = 0; t < vocab; ++t)
        k += std::exp(lp_ref[static_cast<size_t>(t)]) *
             (lp_ref[static_cast<size_t>(t)] - lp_met[static_cast<size_t>(t)]);
      const size_t si = static_cast<size_t>(i);
      kl[si] = std::max(k, 0.0);  // rounding can leave -1e-17 for identical rows
      nll_met[si] = b.nll;
      agree[si] = arg_ref[si] == b.argmax ? 1.0 : 0.0;
      TURBO_CHECK(std::isfinite(nll_met[si]) && std::isfinite(kl[si]),
                  r.method_key << ": non-finite log-probability at position " << eval_from + i
                               << " (the method's logits hold NaN or infinity)");
    }
    auto mean_of = [](const std::vector<double>& v, const std::vector<int64_t>* idx) {
      double s = 0;
      if (idx)
        for (int64_t i : *idx) s += v[static_cast<size_t>(i)];
      else
        for (double x : v) s += x;
      return s / static_cast<double>(idx ? idx->size() : v.size());
    };
    r.ppl_reference = std::exp(mean_of(nll_ref, nullptr));
    r.ppl_method = std::exp(mean_of(nll_met, nullptr));
    r.ppl_diff = r.ppl_method - r.ppl_reference;
    r.kl_mean = mean_of(kl, nullptr);
    r.kl_max = *std::max_element(kl.begin(), kl.end());
    r.top1_agreement = mean_of(agree, nullptr);
    // Block length ~ n^(1/3), the usual order for the circular block bootstrap.
    const int64_t block =
        std::max<int64_t>(1, std::llround(std::cbrt(static_cast<double>(scored))));
    r.ppl_diff_ci = bootstrap_interval(
        scored, o.bootstrap, block, o.seed, [&](const std::vector<int64_t>& idx) {
          return std::exp(mean_of(nll_met, &idx)) - std::exp(mean_of(nll_ref, &idx));
        });
    r.kl_ci =
        bootstrap_interval(scored, o.bootstrap, block, o.seed,
                           [&](const std::vector<int64_t>& idx) { return mean_of(kl, &idx); });
    r.top1_ci =
        bootstrap_interval(scored, o.bootstrap, block, o.seed,
                           [&](const std::vector<int64_t>& idx) { return mean_of(agree, &idx); });
    results.push_back(r);
  }
  return results;
}

std::string ppl_table(const PplResult& r) {
  std::ostringstream os;
  char buf[320];
  os << "run        " << r.run << "\n";
  os << "method     " << r.method_key << "\n";
  std::snprintf(
      buf, sizeof buf, "phase      %s, window %lld tokens, %lld next-token predictions scored\n",
      r.phase.c_str(), static_cast<long long>(r.window), static_cast<long long>(r.scored));
  os << buf;
  os << "metric                          reference      method   [95% bootstrap interval]\n";
  std::snprintf(buf, sizeof buf, "perplexity                   %12.4f  %10.4f\n", r.ppl_reference,
                r.ppl_method);
  os << buf;
  std::snprintf(buf, sizeof buf,
                "perplexity difference                    -  %+10.4f  [%+.4f, %+.4f]\n", r.ppl_diff,
                r.ppl_diff_ci.lo, r.ppl_diff_ci.hi);
  os << buf;
  std::snprintf(
      buf, sizeof buf,
      "mean KL(p_ref || p_method)               -  %10.3e  [%.3e, %.3e] nats (max %.3e)\n",
      r.kl_mean, r.kl_ci.lo, r.kl_ci.hi, r.kl_max);
  os << buf;
  std::snprintf(buf, sizeof buf,
                "top-1 agreement                          -  %9.2f %%  [%.2f, %.2f] %%\n",
                100.0 * r.top1_agreement, 100.0 * r.top1_ci.lo, 100.0 * r.top1_ci.hi);
  os << buf;
  std::snprintf(buf, sizeof buf, "SAS sparsity / dropped mass              -  %.4f / %.3e\n",
                r.sparsity, r.dropped_mass);
  os << buf;
  if (r.phase == "decode" && r.method_key != "reference") {  // the reference stores no cache
    std::snprintf(buf, sizeof buf,
                  "KV bytes per token per kv head, mean     -  %.1f (%.2fx less than FP16; "
                  "decode positions [n/8, n))\n",
                  r.kv_bytes_mean_per_token_per_kv_head, r.kv_ratio_mean_vs_fp16);
    os << buf;
    std::snprintf(buf, sizeof buf,
                  "KV bytes per token per kv head, end      -  %.1f (%.2fx less than FP16; %.0f "
                  "per token, all layers)\n",
                  r.kv_bytes_per_token_per_kv_head, r.kv_ratio_vs_fp16, r.kv_bytes_per_token);
    os << buf;
  }
  std::snprintf(buf, sizeof buf, "seconds                      %12.2f%s  %10.2f\n",
                r.seconds_reference, r.reference_from_cache ? " (cached)" : "", r.seconds_method);
  os << buf;
  return os.str();
}

std::string ppl_json(const std::vector<PplResult>& results, const PplOptions& o) {
  Json j = provenance_json("turboattn-ppl-2", o.command);
  j.set("model", o.model);
  j.set("text", o.text);
  j.set("backend", o.backend);
  j.set("config", o.config);
  j.set("skip_tokens", o.skip_tokens);
  j.set("bootstrap", o.bootstrap);
  j.set("seed", o.seed);
  Json runs = Json::array();
  for (const PplResult& r : results) {
    auto ci95 = [](const Interval& ci) {  // [lo, hi]
      Json a = Json::array();
      a.push(ci.lo);
      a.push(ci.hi);
      return a;
    };
    Json x = Json::object();
    x.set("run", r.run);
    x.set("method", r.method_key);
    x.set("phase", r.phase);
    x.set("window", r.window);
    x.set("scored", r.scored);
    x.set("ppl_reference", r.ppl_reference);
    x.set("ppl_method", r.ppl_method);
    x.set("ppl_diff", r.ppl_diff);
    x.set("ppl_diff_ci95", ci95(r.ppl_diff_ci));
    x.set("kl_mean", r.kl_mean);
    x.set("kl_mean_ci95", ci95(r.kl_ci));
    x.set("kl_max", r.kl_max);
    x.set("top1_agreement", r.top1_agreement);
    x.set("top1_agreement_ci95", ci95(r.top1_ci));
    x.set("sparsity", r.sparsity);
    x.set("dropped_mass", r.dropped_mass);
    x.set("kv_bytes_per_token", r.kv_bytes_per_token);
    x.set("kv_bytes_per_token_per_kv_head", r.kv_bytes_per_token_per_kv_head);
    x.set("kv_ratio_vs_fp16", r.kv_ratio_vs_fp16);
    x.set("kv_bytes_mean_per_token_per_kv_head", r.kv_bytes_mean_per_token_per_kv_head);
    x.set("kv_ratio_mean_vs_fp16", r.kv_ratio_mean_vs_fp16);
    x.set("seconds_reference", r.seconds_reference);
    x.set("reference_from_cache", r.reference_from_cache);
    x.set("seconds_method", r.seconds_method);
    runs.push(x);
  }
  j.set("runs", runs);
  return j.dump();
}

void add_ppl_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<PplOptions>();
  auto methods = std::make_shared<std::vector<std::string>>();
  CLI::App* sub = app.add_subcommand("ppl",
                                     "Perplexity, KL(p_ref || p_method) and top-1 agreement of "
                                     "methods against ground-truth attention");
  sub->add_option("--model", o->model,
                  "GGUF model file, or smollm2-135m / gemma3-270m for the fetch_models.sh cache "
                  "(default: smollm2-135m)");
  sub->add_option("--text", o->text, "UTF-8 text file")->required();
  CLI::Option* method_opt =
      sub->add_option("--method", *methods,
                      "flashq, fp16, kivi, int8kv, sage, fp8 or reference; a comma list or "
                      "repeated runs several, all with --config (default flashq)")
          ->delimiter(',');
  sub->add_option("--run", o->runs,
                  "one run with its own knobs, 'method[:name=value,...]' (over --config); "
                  "repeat for several, e.g. --run flashq:kv_bits=4 --run kivi:kv_bits=2")
      ->excludes(method_opt);
  sub->add_option("--config", o->config, "knobs name=value,... for every run (core/config.h)");
  sub->add_option("--phase", o->phase, "prefill or decode")->capture_default_str();
  sub->add_option("--bits-map", o->bits_map, "bit map of turboattn calibrate, for kv_bits=mixed");
  sub->add_option("--backend", o->backend, "backend running the methods")->capture_default_str();
  sub->add_option("--max-tokens", o->max_tokens, "tokens in the window")->capture_default_str();
  sub->add_option("--skip-tokens", o->skip_tokens, "tokens skipped before the window")
      ->capture_default_str();
  sub->add_option("--eval-from", o->eval_from, "first scored position (-1: half the window)")
      ->capture_default_str();
  sub->add_option("--chunk", o->chunk, "decode: tokens per teacher-forced chunk")
      ->capture_default_str();
  sub->add_option("--ref-cache", o->ref_cache,
                  "directory of cached reference logits (default "
                  "${TURBO_CACHE:-~/.cache/turboattn}/ppl_reference; 'none': no cache)");
  sub->add_option("--bootstrap", o->bootstrap, "bootstrap resamples for the 95% intervals")
      ->capture_default_str();
  sub->add_option("--json", o->json_out, "also write the results as JSON");
  sub->callback([o, methods, &common] {
    PplOptions opts = *o;
    if (!methods->empty()) opts.methods = *methods;
    opts.model = data::resolve_model_path(opts.model);
    opts.seed = common.seed;
    opts.verbosity = common.verbosity();
    opts.command = common.command;
    common.apply_threads();
    if (!opts.json_out.empty())
      check_output_is_not_input(
          opts.json_out, "--json",
          {{opts.model, "--model"}, {opts.text, "--text"}, {opts.bits_map, "--bits-map"}});
    const std::vector<PplResult> results = run_ppl(opts);
    for (size_t i = 0; i < results.size(); ++i)
      std::cout << (i ? "\n" : "") << ppl_table(results[i]);
    if (!opts.json_out.empty()) write_file_atomic(opts.json_out, ppl_json(results, opts));
  });
}

}  // namespace eval
}  // namespace turbo

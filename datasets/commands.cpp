#include "datasets/commands.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>

#include "core/config.h"
#include "core/error.h"
#include "datasets/activations.h"
#include "datasets/llama_model.h"
#include "datasets/model_path.h"
#include "datasets/sha256.h"
#include "reference/reference.h"

#ifndef TURBO_VERSION
#define TURBO_VERSION "unknown"
#endif

namespace turbo {
namespace data {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  TURBO_CHECK(f, "text file '" << path << "' does not exist or cannot be read");
  std::ostringstream os;
  os << f.rdbuf();
  TURBO_CHECK(!f.bad(), "read error on '" << path << "'");
  return os.str();
}

std::string basename_of(const std::string& p) {
  const size_t s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

// The token window [skip, skip + n) of the text, with the warnings the CLI promises.
struct Window {
  std::vector<int32_t> tokens;
  int64_t skip = 0, total = 0;
  std::string text_sha256;
};

Window token_window(const LlamaModel& model, const std::string& text_path, int64_t max_tokens,
                    int64_t skip_tokens) {
  TURBO_CHECK(max_tokens > 0, "--max-tokens must be positive, got " << max_tokens);
  TURBO_CHECK(skip_tokens >= 0, "--skip-tokens must be >= 0, got " << skip_tokens);
  const std::string text = read_text_file(text_path);
  TURBO_CHECK(!text.empty(), "text file '" << text_path << "' is empty");
  Window w;
  w.text_sha256 = sha256_hex(text.data(), text.size());
  const std::vector<int32_t> all = model.tokenizer().encode_for_model(text);
  w.total = static_cast<int64_t>(all.size());
  w.skip = skip_tokens;
  TURBO_CHECK(skip_tokens < w.total, "--skip-tokens " << skip_tokens << " leaves nothing of the "
                                                      << w.total << " tokens of '" << text_path
                                                      << "'");
  int64_t n = max_tokens;
  if (n > model.config().n_ctx) {
    std::cerr << "warning: --max-tokens " << n << " exceeds the model's context of "
              << model.config().n_ctx << " tokens; using " << model.config().n_ctx << "\n";
    n = model.config().n_ctx;
  }
  const int64_t avail = w.total - skip_tokens;
  if (avail > n)
    std::cerr << "warning: '" << text_path << "' has " << avail << " tokens after skipping "
              << skip_tokens << "; truncating to the first " << n << "\n";
  n = std::min(n, avail);
  w.tokens.assign(all.begin() + skip_tokens, all.begin() + skip_tokens + n);
  return w;
}

// Passes attention through to `inner` and writes the Q/K/V of the selected layers.
class RecordingHook : public AttentionHook {
 public:
  RecordingHook(AttentionHook& inner, ActivationWriter& writer, const std::vector<int>& layers)
      : inner_(inner), writer_(writer), layers_(layers) {}
  void attend(int layer, int64_t pos0, int64_t window, const HostTensor<Half>& q,
              const HostTensor<Half>& k, const HostTensor<Half>& v, float* o) override {
    if (std::find(layers_.begin(), layers_.end(), layer) != layers_.end())
      writer_.write_layer(layer, q, k, v);
    inner_.attend(layer, pos0, window, q, k, v, o);
  }

 private:
  AttentionHook& inner_;
  ActivationWriter& writer_;
  const std::vector<int>& layers_;
};

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '"':
        o += "\\\"";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\n':
        o += "\\n";
        break;
      case '\t':
        o += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += c;
        }
    }
  }
  return o;
}

std::string num(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

// ================================ capture ======================================================

std::vector<int> parse_layer_list(const std::string& spec, int n_layers) {
  std::vector<int> out;
  if (spec == "all") {
    for (int l = 0; l < n_layers; ++l) out.push_back(l);
    return out;
  }
  std::stringstream ss(spec);
  std::string item;
  auto to_int = [&](const std::string& s) {
    char* end = nullptr;
    const long v = std::strtol(s.c_str(), &end, 10);
    TURBO_CHECK(!s.empty() && *end == '\0',
                "--layers: '" << s << "' is not a layer index (use e.g. 0,3,10-12 or all)");
    TURBO_CHECK(v >= 0 && v < n_layers,
                "--layers: layer " << v << " is outside [0, " << n_layers << ")");
    return static_cast<int>(v);
  };
  while (std::getline(ss, item, ',')) {
    const size_t dash = item.find('-');
    if (dash == std::string::npos) {
      out.push_back(to_int(item));
    } else {
      const int a = to_int(item.substr(0, dash)), b = to_int(item.substr(dash + 1));
      TURBO_CHECK(a <= b, "--layers: range '" << item << "' is empty");
      for (int l = a; l <= b; ++l) out.push_back(l);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  TURBO_CHECK(!out.empty(), "--layers '" << spec << "' names no layer");
  return out;
}

std::string capture_command_line(const CaptureOptions& o) {
  std::ostringstream os;
  os << "turboattn capture";
  if (!o.model.empty()) os << " --model " << o.model;  // omitted: the fetch_models.sh default
  os << " --text " << o.text << " --max-tokens " << o.max_tokens << " --skip-tokens "
     << o.skip_tokens << " --layers " << o.layers << " --out " << o.out;
  return os.str();
}

CaptureReport run_capture(const CaptureOptions& options) {
  const auto t0 = Clock::now();
  CaptureOptions o = options;
  if (o.command.empty()) o.command = capture_command_line(o);
  o.model = resolve_model_path(o.model);
  TURBO_CHECK(!o.out.empty(), "capture needs --out");
  TURBO_CHECK(!o.text.empty(), "capture needs --text");
  if (!o.force) {
    std::ifstream exists(o.out);
    TURBO_CHECK(!exists, "output '" << o.out << "' exists; pass --force to overwrite it");
  }
  const LlamaModel model(o.model);
  const LlamaConfig& cfg = model.config();
  const std::vector<int> layers = parse_layer_list(o.layers, cfg.n_layers);
  const Window w = token_window(model, o.text, o.max_tokens, o.skip_tokens);
  const int64_t n = static_cast<int64_t>(w.tokens.size());
  for (int l : layers)
    if (cfg.layer_window[static_cast<size_t>(l)] > 0 &&
        n > cfg.layer_window[static_cast<size_t>(l)]) {
      std::cerr << "warning: " << n << " tokens exceed the "
                << cfg.layer_window[static_cast<size_t>(l)] << "-token sliding window of layer "
                << l
                << " (and others); the file records no window, so full causal attention over "
                   "its Q/K/V is not the model's attention in those layers\n";
      break;
    }

  ActivationMeta meta;
  meta.model = basename_of(o.model);
  meta.model_sha256 = model.sha256();
  std::ostringstream src;
  src << basename_of(o.text) << ": tokens [" << w.skip << ", " << w.skip + n << ") of " << w.total
      << " (text SHA-256 " << w.text_sha256 << ")";
  meta.text_source = src.str();
  meta.command = o.command;
  meta.version = TURBO_VERSION;
  meta.rope_theta = cfg.rope_theta;
  meta.n_layers = cfg.n_layers;
  meta.n_heads = cfg.n_heads;
  meta.n_kv_heads = cfg.n_kv_heads;
  meta.head_dim = cfg.head_dim;
  meta.n_tokens = n;
  meta.layers = layers;

  ActivationWriter writer(o.out, meta, o.force);
  writer.write_tokens(w.tokens);
  ExactAttentionHook exact(cfg.n_layers);
  RecordingHook rec(exact, writer, layers);
  const auto tf = Clock::now();
  model.forward(w.tokens.data(), n, 0, rec, nullptr, layers.back() + 1);
  CaptureReport r;
  r.forward_seconds = seconds_since(tf);
  writer.close();
  r.n_tokens = n;
  r.n_layers = static_cast<int>(layers.size());
  r.sha256 = sha256_file(o.out);
  r.total_seconds = seconds_since(t0);
  return r;
}

// ================================ ppl ==========================================================

std::vector<std::vector<int>> read_bits_map(const std::string& path, int n_layers, int n_kv_heads) {
  const std::string text = read_text_file(path);
  // A strict reader for the one shape this file has: {"head_bits": [[int, ...], ...]} (other
  // top-level keys are allowed and ignored as long as "head_bits" is present once).
  const size_t key = text.find("\"head_bits\"");
  TURBO_CHECK(key != std::string::npos, "bit map '" << path << "' has no \"head_bits\" key");
  TURBO_CHECK(text.find("\"head_bits\"", key + 1) == std::string::npos,
              "bit map '" << path << "' repeats \"head_bits\"");
  size_t i = key + 11;
  auto skip_ws = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  };
  auto expect = [&](char c) {
    skip_ws();
    TURBO_CHECK(i < text.size() && text[i] == c,
                "bit map '" << path << "': expected '" << c << "' at byte " << i);
    ++i;
  };
  expect(':');
  expect('[');
  std::vector<std::vector<int>> out;
  skip_ws();
  while (i < text.size() && text[i] != ']') {
    expect('[');
    std::vector<int> row;
    skip_ws();
    while (i < text.size() && text[i] != ']') {
      char* end = nullptr;
      const long v = std::strtol(text.c_str() + i, &end, 10);
      TURBO_CHECK(end != text.c_str() + i,
                  "bit map '" << path << "': expected an integer at byte " << i);
      TURBO_CHECK(v == 2 || v == 4 || v == 8,
                  "bit map '" << path << "': bits must be 2, 4 or 8, got " << v);
      row.push_back(static_cast<int>(v));
      i = static_cast<size_t>(end - text.c_str());
      skip_ws();
      if (i < text.size() && text[i] == ',') ++i;
      skip_ws();
    }
    expect(']');
    out.push_back(row);
    skip_ws();
    if (i < text.size() && text[i] == ',') ++i;
    skip_ws();
  }
  expect(']');
  TURBO_CHECK(static_cast<int>(out.size()) == n_layers,
              "bit map '" << path << "' has " << out.size() << " layers, the model " << n_layers);
  for (size_t l = 0; l < out.size(); ++l)
    TURBO_CHECK(static_cast<int>(out[l].size()) == n_kv_heads,
                "bit map '" << path << "' layer " << l << " has " << out[l].size()
                            << " heads, the model " << n_kv_heads);
  return out;
}

namespace {

// Logits rows of positions [eval_from, N - 1) (each predicts the next token).
std::vector<float> scored_logits(const LlamaModel& model, const std::vector<int32_t>& tokens,
                                 bool decode, int64_t chunk, int64_t eval_from,
                                 AttentionHook& hook) {
  const int64_t n = static_cast<int64_t>(tokens.size()), vocab = model.config().vocab;
  std::vector<float> out;
  out.reserve(static_cast<size_t>((n - 1 - eval_from) * vocab));
  std::vector<float> lg;
  const int64_t step = decode ? chunk : n;
  for (int64_t p0 = 0; p0 < n; p0 += step) {
    const int64_t len = std::min(step, n - p0);
    const int64_t begin = std::clamp<int64_t>(eval_from - p0, 0, len);
    model.forward(tokens.data() + p0, len, p0, hook, &lg, -1, begin);
    // Keep rows of positions < n - 1.
    const int64_t last = std::min(p0 + len, n - 1);
    const int64_t keep = std::max<int64_t>(0, last - (p0 + begin));
    out.insert(out.end(), lg.begin(), lg.begin() + keep * vocab);
  }
  return out;
}

struct RowStats {
  double nll = 0, lse = 0;
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
  s.lse = m + std::log(sum);
  logp.resize(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i)
    logp[static_cast<size_t>(i)] = static_cast<double>(logits[i]) - s.lse;
  s.nll = -logp[static_cast<size_t>(target)];
  return s;
}

}  // namespace

PplResult run_ppl(const PplOptions& options) {
  PplOptions o = options;
  o.model = resolve_model_path(o.model);
  TURBO_CHECK(o.phase == "prefill" || o.phase == "decode",
              "--phase must be prefill or decode, got '" << o.phase << "'");
  TURBO_CHECK(o.chunk >= 1, "--chunk must be >= 1");
  const bool decode = o.phase == "decode";
  const bool reference_only = o.method == "reference";

  AttentionConfig cfg = parse_attention_config(o.config);
  if (!reference_only) {
    const AttentionConfig from_config = cfg;
    set_knob(cfg, "method", o.method);
    TURBO_CHECK(o.config.find("method=") == std::string::npos || from_config.method == cfg.method,
                "--method " << o.method << " contradicts the method in --config");
    const Status s = cfg.validate();
    TURBO_CHECK(s.ok, "invalid config: " << s.message);
  }

  const LlamaModel model(o.model);
  const LlamaConfig& mc = model.config();
  const Window w = token_window(model, o.text, o.max_tokens, o.skip_tokens);
  const int64_t n = static_cast<int64_t>(w.tokens.size());
  const int64_t eval_from = o.eval_from < 0 ? n / 2 : o.eval_from;
  TURBO_CHECK(n >= 3 && eval_from >= 1 && eval_from < n - 1,
              "the window has " << n << " tokens; --eval-from " << eval_from << " must be in [1, "
                                << n - 1 << ")");

  std::vector<std::vector<int>> head_bits;
  if (!o.bits_map.empty()) {
    TURBO_CHECK(!reference_only && cfg.quant.kv_bits == KvBits::kMixed,
                "--bits-map needs a method with kv_bits=mixed");
    TURBO_CHECK(decode, "--bits-map applies to the compressed KV cache: use --phase decode");
    head_bits = read_bits_map(o.bits_map, mc.n_layers, mc.n_kv_heads);
  } else {
    TURBO_CHECK(reference_only || cfg.quant.kv_bits != KvBits::kMixed || !decode,
                "kv_bits=mixed needs --bits-map (a calibration of the KV heads)");
  }

  PplResult r;
  r.method_key = reference_only ? "reference" : cfg.to_string();
  r.phase = o.phase;
  r.window = n;
  r.scored = n - 1 - eval_from;

  auto t0 = Clock::now();
  ExactAttentionHook exact(mc.n_layers);
  const std::vector<float> ref = scored_logits(model, w.tokens, decode, o.chunk, eval_from, exact);
  r.seconds_reference = seconds_since(t0);

  std::vector<float> method;
  if (!reference_only) {
    ref::register_reference_backend();
    std::unique_ptr<Backend> backend = make_backend(o.backend);
    t0 = Clock::now();
    std::vector<AttentionStats> stats;
    if (decode) {
      BackendDecodeHook hook(*backend, cfg, mc.n_layers, mc.n_heads, mc.n_kv_heads, mc.head_dim,
                             head_bits);
      method = scored_logits(model, w.tokens, true, o.chunk, eval_from, hook);
      stats = hook.stats();
      const KvBytes b = hook.kv_bytes();
      const double fp16 =
          2.0 * 2.0 * static_cast<double>(mc.n_layers) * mc.n_kv_heads * mc.head_dim * n;
      r.kv_bytes_per_token = static_cast<double>(b.total()) / static_cast<double>(n);
      r.kv_ratio_vs_fp16 = b.total() > 0 ? fp16 / static_cast<double>(b.total()) : 0.0;
    } else {
      BackendPrefillHook hook(*backend, cfg, mc.n_layers, mc.n_heads);
      method = scored_logits(model, w.tokens, false, o.chunk, eval_from, hook);
      stats = hook.stats();
    }
    r.seconds_method = seconds_since(t0);
    AttentionStats all;
    for (const AttentionStats& s : stats) all.merge(s);
    r.sparsity = all.sparsity();
    r.dropped_mass = all.mean_dropped_mass();
  }
  const std::vector<float>& met = reference_only ? ref : method;

  const int64_t vocab = mc.vocab;
  double nll_ref = 0, nll_met = 0, kl_sum = 0;
  int64_t agree = 0;
  std::vector<double> lp_ref, lp_met;
  for (int64_t i = 0; i < r.scored; ++i) {
    const int32_t target = w.tokens[static_cast<size_t>(eval_from + i + 1)];
    const RowStats a = row_stats(&ref[static_cast<size_t>(i * vocab)], vocab, target, lp_ref);
    const RowStats b = row_stats(&met[static_cast<size_t>(i * vocab)], vocab, target, lp_met);
    double kl = 0;
    for (int64_t t = 0; t < vocab; ++t)
      kl += std::exp(lp_ref[static_cast<size_t>(t)]) *
            (lp_ref[static_cast<size_t>(t)] - lp_met[static_cast<size_t>(t)]);
    kl = std::max(kl, 0.0);  // rounding can leave -1e-17 for identical rows
    kl_sum += kl;
    r.kl_max = std::max(r.kl_max, kl);
    nll_ref += a.nll;
    nll_met += b.nll;
    agree += a.argmax == b.argmax;
  }
  r.ppl_reference = std::exp(nll_ref / static_cast<double>(r.scored));
  r.ppl_method = std::exp(nll_met / static_cast<double>(r.scored));
  r.kl_mean = kl_sum / static_cast<double>(r.scored);
  r.top1_agreement = static_cast<double>(agree) / static_cast<double>(r.scored);
  return r;
}

std::string ppl_table(const PplResult& r) {
  std::ostringstream os;
  char buf[256];
  os << "method     " << r.method_key << "\n";
  std::snprintf(
      buf, sizeof buf, "phase      %s, window %lld tokens, %lld next-token predictions scored\n",
      r.phase.c_str(), static_cast<long long>(r.window), static_cast<long long>(r.scored));
  os << buf;
  os << "metric                          reference      method\n";
  std::snprintf(buf, sizeof buf, "perplexity                   %12.4f  %10.4f\n", r.ppl_reference,
                r.ppl_method);
  os << buf;
  std::snprintf(buf, sizeof buf,
                "mean KL(p_ref || p_method)               -  %10.3e nats (max %.3e)\n", r.kl_mean,
                r.kl_max);
  os << buf;
  std::snprintf(buf, sizeof buf, "top-1 agreement                          -  %9.2f %%\n",
                100.0 * r.top1_agreement);
  os << buf;
  std::snprintf(buf, sizeof buf, "SAS sparsity / dropped mass              -  %.4f / %.3e\n",
                r.sparsity, r.dropped_mass);
  os << buf;
  if (r.phase == "decode") {
    std::snprintf(buf, sizeof buf, "KV bytes per token (ratio vs FP16)       -  %.1f (%.2fx)\n",
                  r.kv_bytes_per_token, r.kv_ratio_vs_fp16);
    os << buf;
  }
  std::snprintf(buf, sizeof buf, "seconds                      %12.2f  %10.2f\n",
                r.seconds_reference, r.seconds_method);
  os << buf;
  return os.str();
}

std::string ppl_json(const PplResult& r, const PplOptions& o) {
  std::ostringstream os;
  os << "{\n"
     << "  \"method\": \"" << json_escape(r.method_key) << "\",\n"
     << "  \"phase\": \"" << r.phase << "\",\n"
     << "  \"model\": \"" << json_escape(o.model) << "\",\n"
     << "  \"text\": \"" << json_escape(o.text) << "\",\n"
     << "  \"backend\": \"" << json_escape(o.backend) << "\",\n"
     << "  \"window\": " << r.window << ",\n"
     << "  \"skip_tokens\": " << o.skip_tokens << ",\n"
     << "  \"scored\": " << r.scored << ",\n"
     << "  \"ppl_reference\": " << num(r.ppl_reference) << ",\n"
     << "  \"ppl_method\": " << num(r.ppl_method) << ",\n"
     << "  \"kl_mean\": " << num(r.kl_mean) << ",\n"
     << "  \"kl_max\": " << num(r.kl_max) << ",\n"
     << "  \"top1_agreement\": " << num(r.top1_agreement) << ",\n"
     << "  \"sparsity\": " << num(r.sparsity) << ",\n"
     << "  \"dropped_mass\": " << num(r.dropped_mass) << ",\n"
     << "  \"kv_bytes_per_token\": " << num(r.kv_bytes_per_token) << ",\n"
     << "  \"kv_ratio_vs_fp16\": " << num(r.kv_ratio_vs_fp16) << ",\n"
     << "  \"seconds_reference\": " << num(r.seconds_reference) << ",\n"
     << "  \"seconds_method\": " << num(r.seconds_method) << "\n"
     << "}\n";
  return os.str();
}

// ================================ CLI ==========================================================

namespace {

// Runs `body`; a turbo::Error (or any exception) is printed once and ends the program with 1.
template <typename F>
void run_reporting(const char* name, F body) {
  try {
    body();
  } catch (const CLI::Error&) {
    throw;
  } catch (const std::exception& e) {
    std::cerr << "turboattn " << name << ": error: " << e.what() << "\n";
    throw CLI::RuntimeError(1);
  }
}

}  // namespace

void add_capture_command(CLI::App& app) {
  auto o = std::make_shared<CaptureOptions>();
  CLI::App* sub =
      app.add_subcommand("capture", "Capture post-RoPE Q, K, V of a real model to HDF5");
  sub->add_option("--model", o->model,
                  "GGUF model file, or smollm2-135m / gemma3-270m for the fetch_models.sh cache "
                  "(default: smollm2-135m)");
  sub->add_option("--text", o->text, "UTF-8 text file")->required();
  sub->add_option("--max-tokens", o->max_tokens, "tokens in the window")->capture_default_str();
  sub->add_option("--skip-tokens", o->skip_tokens, "tokens skipped before the window")
      ->capture_default_str();
  sub->add_option("--layers", o->layers, "layers to store: all, or e.g. 0,3,10-12")
      ->capture_default_str();
  sub->add_option("--out", o->out, "output .h5 file")->required();
  sub->add_flag("--force", o->force, "overwrite an existing output");
  sub->callback([o] {
    run_reporting("capture", [&] {
      const CaptureOptions& opts = *o;
      const CaptureReport r = run_capture(opts);
      std::printf(
          "captured %lld tokens x %d layers to %s in %.2f s (forward %.2f s, %.0f "
          "tokens/s)\nsha256 %s\n",
          static_cast<long long>(r.n_tokens), r.n_layers, opts.out.c_str(), r.total_seconds,
          r.forward_seconds, static_cast<double>(r.n_tokens) / r.forward_seconds, r.sha256.c_str());
    });
  });
}

void add_ppl_command(CLI::App& app) {
  auto o = std::make_shared<PplOptions>();
  CLI::App* sub = app.add_subcommand("ppl",
                                     "Perplexity, KL(p_ref || p_method) and top-1 agreement of a "
                                     "method against ground-truth attention");
  sub->add_option("--model", o->model,
                  "GGUF model file, or smollm2-135m / gemma3-270m for the fetch_models.sh cache "
                  "(default: smollm2-135m)");
  sub->add_option("--text", o->text, "UTF-8 text file")->required();
  sub->add_option("--method", o->method, "flashq, fp16, kivi, int8kv, sage, fp8, or reference")
      ->capture_default_str();
  sub->add_option("--config", o->config, "knobs name=value,... (see core/config.h)");
  sub->add_option("--phase", o->phase, "prefill or decode")->capture_default_str();
  sub->add_option("--bits-map", o->bits_map, "per-head KV bits, JSON {\"head_bits\": [[..], ..]}");
  sub->add_option("--backend", o->backend, "backend running the method")->capture_default_str();
  sub->add_option("--max-tokens", o->max_tokens, "tokens in the window")->capture_default_str();
  sub->add_option("--skip-tokens", o->skip_tokens, "tokens skipped before the window")
      ->capture_default_str();
  sub->add_option("--eval-from", o->eval_from, "first scored position (-1: half the window)")
      ->capture_default_str();
  sub->add_option("--chunk", o->chunk, "decode: tokens per teacher-forced chunk")
      ->capture_default_str();
  sub->add_option("--json", o->json_out, "also write the result as JSON");
  sub->callback([o] {
    run_reporting("ppl", [&] {
      PplOptions opts = *o;
      if (opts.model.empty()) opts.model = default_model_path();
      const PplResult r = run_ppl(opts);
      std::cout << ppl_table(r);
      if (!opts.json_out.empty()) {
        const std::string tmp = opts.json_out + ".tmp";
        {
          std::ofstream f(tmp);
          TURBO_CHECK(f, "cannot write '" << tmp << "'");
          f << ppl_json(r, opts);
          TURBO_CHECK(f.good(), "write error on '" << tmp << "'");
        }
        TURBO_CHECK(std::rename(tmp.c_str(), opts.json_out.c_str()) == 0,
                    "cannot rename '" << tmp << "'");
      }
    });
  });
}

}  // namespace data
}  // namespace turbo

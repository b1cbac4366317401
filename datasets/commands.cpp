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
#include "core/host/file_io.h"
#include "core/host/progress.h"
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

std::string basename_of(const std::string& p) {
  const size_t s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

// Writes the Q/K/V of the selected layers, then passes attention through to `inner`.
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

}  // namespace

// ================================ capture ======================================================

TokenWindow token_window(const LlamaModel& model, const std::string& text_path, int64_t max_tokens,
                         int64_t skip_tokens, bool count_all) {
  TURBO_CHECK(max_tokens > 0, "--max-tokens must be positive, got " << max_tokens);
  TURBO_CHECK(skip_tokens >= 0, "--skip-tokens must be >= 0, got " << skip_tokens);
  const std::string text = read_text_file(text_path, "--text");
  TURBO_CHECK(!text.empty(), "text file '" << text_path << "' is empty");
  TokenWindow w;
  w.text_sha256 = sha256_hex(text.data(), text.size());
  int64_t n = max_tokens;
  if (n > model.config().n_ctx) {
    std::cerr << "warning: --max-tokens " << n << " exceeds the model's context of "
              << model.config().n_ctx << " tokens; using " << model.config().n_ctx << "\n";
    n = model.config().n_ctx;
  }
  // Only the tokens up to the end of the window are needed: BPE stops there (the result has more
  // than `need` tokens exactly when the text does).
  TURBO_CHECK(skip_tokens <= std::numeric_limits<int64_t>::max() - n,
              "--skip-tokens " << skip_tokens << " is too large");
  const size_t need = count_all ? static_cast<size_t>(-1) : static_cast<size_t>(skip_tokens + n);
  const std::vector<int32_t> all = model.tokenizer().encode_for_model(text, need);
  w.complete = all.size() <= need;
  w.total = static_cast<int64_t>(all.size());
  w.skip = skip_tokens;
  TURBO_CHECK(skip_tokens < w.total, "--skip-tokens " << skip_tokens << " leaves nothing of the "
                                                      << w.total << " tokens of '" << text_path
                                                      << "'");
  const int64_t avail = w.total - skip_tokens;
  if (avail > n) {
    std::cerr << "warning: '" << text_path << "' has ";
    if (w.complete)
      std::cerr << avail;
    else
      std::cerr << "more than " << n;
    std::cerr << " tokens after skipping " << skip_tokens << "; truncating to the first " << n
              << "\n";
  }
  n = std::min(n, avail);
  w.tokens.assign(all.begin() + skip_tokens, all.begin() + skip_tokens + n);
  return w;
}

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
  check_output_is_not_input(o.out, "--out", {{o.text, "--text"}, {o.model, "--model"}});
  if (!o.force) {
    std::ifstream exists(o.out);
    TURBO_CHECK(!exists, "output '" << o.out << "' exists; pass --force to overwrite it");
  }
  const LlamaModel model(o.model);
  const LlamaConfig& cfg = model.config();
  const std::vector<int> layers = parse_layer_list(o.layers, cfg.n_layers);
  const TokenWindow w = token_window(model, o.text, o.max_tokens, o.skip_tokens, true);
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
  Progress progress("capture", layers.back() + 1, o.verbosity, 5.0);
  RecordingHook rec(exact, writer, layers);
  ProgressHook hook(rec, progress, "exact attention");
  const auto tf = Clock::now();
  model.forward(w.tokens.data(), n, 0, hook, nullptr, layers.back() + 1);
  CaptureReport r;
  r.forward_seconds = seconds_since(tf);
  writer.close();
  r.n_tokens = n;
  r.n_layers = static_cast<int>(layers.size());
  r.sha256 = sha256_file(o.out);
  r.total_seconds = seconds_since(t0);
  return r;
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

void add_capture_command(CLI::App& app, std::function<int()> verbosity) {
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
  sub->callback([o, verbosity] {
    run_reporting("capture", [&] {
      CaptureOptions opts = *o;
      if (verbosity) opts.verbosity = verbosity();
      const CaptureReport r = run_capture(opts);
      std::printf(
          "captured %lld tokens x %d layers to %s in %.2f s (forward %.2f s, %.0f "
          "tokens/s)\nsha256 %s\n",
          static_cast<long long>(r.n_tokens), r.n_layers, opts.out.c_str(), r.total_seconds,
          r.forward_seconds, static_cast<double>(r.n_tokens) / r.forward_seconds, r.sha256.c_str());
    });
  });
}

}  // namespace data
}  // namespace turbo

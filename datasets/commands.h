// The `capture` and `ppl` subcommands of the turboattn CLI (the eval/ main registers them), and
// the library functions behind them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/backend.h"

namespace CLI {
class App;
}

namespace turbo {
namespace data {

// ---- capture ----------------------------------------------------------------------------------

struct CaptureOptions {
  std::string model;           // GGUF path (default: datasets/fetch_models.sh's cache)
  std::string text;            // UTF-8 text file
  std::string out;             // .h5 output
  std::string layers = "all";  // "all" or a list such as "0,3,10-12"
  int64_t max_tokens = 512;    // window length (truncated to the model's context, with a warning)
  int64_t skip_tokens = 0;     // tokens of the text skipped before the window
  bool force = false;          // overwrite an existing output
  std::string command;         // recorded in the file; capture_command_line() when empty
};

struct CaptureReport {
  int64_t n_tokens = 0;
  int n_layers = 0;
  double forward_seconds = 0, total_seconds = 0;
  std::string sha256;  // of the written file
};

// Tokenizes the text, runs the model with ground-truth attention over the window, and writes the
// post-RoPE Q, K and V of the chosen layers (schema in datasets/README.md).
CaptureReport run_capture(const CaptureOptions& options);

// The command line that reproduces a capture ("turboattn capture [--model M] --text T
// --max-tokens N --skip-tokens S --layers L --out O"; --model only when one was given).
std::string capture_command_line(const CaptureOptions& options);

// "all" -> 0 .. n_layers-1; "0,3,10-12" -> {0, 3, 10, 11, 12}; errors name the bad item.
std::vector<int> parse_layer_list(const std::string& spec, int n_layers);

// ---- ppl --------------------------------------------------------------------------------------

struct PplOptions {
  std::string model;
  std::string text;
  std::string method = "flashq";  // a Method name (flashq, fp16, kivi, ...) or "reference"
  std::string config;             // knobs "name=value,..." (core/config.h)
  std::string phase = "prefill";  // prefill: one attention_prefill over the window;
                                  // decode: KV cache filled chunk by chunk, attention_decode
  std::string bits_map;           // JSON {"head_bits": [[b, ...] per layer]} for kv_bits=mixed
  std::string backend = "ref";
  std::string json_out;       // optional JSON report
  int64_t max_tokens = 1024;  // window length
  int64_t skip_tokens = 0;    // tokens of the text skipped before the window
  int64_t eval_from = -1;     // first scored position (predicting eval_from + 1); -1: half
  int64_t chunk = 16;         // decode: tokens per teacher-forced chunk (q_len)
};

struct PplResult {
  std::string method_key;  // AttentionConfig::to_string() or "reference"
  std::string phase;
  int64_t window = 0, scored = 0;  // tokens in the window; next-token predictions scored
  double ppl_reference = 0, ppl_method = 0;
  double kl_mean = 0;  // mean over scored positions of KL(p_ref || p_method), nats
  double kl_max = 0;
  double top1_agreement = 0;      // fraction of positions where the argmax tokens agree
  double sparsity = 0;            // SAS zeroed fraction, over every layer and head
  double dropped_mass = 0;        // mean dropped probability mass per row
  double kv_bytes_per_token = 0;  // decode: bytes the caches hold per token (all layers)
  double kv_ratio_vs_fp16 = 0;    // decode: FP16 bytes / stored bytes
  double seconds_reference = 0, seconds_method = 0;
};

PplResult run_ppl(const PplOptions& options);
std::string ppl_table(const PplResult& r);
std::string ppl_json(const PplResult& r, const PplOptions& options);

// Reads a per-layer, per-kv-head bit map: {"head_bits": [[4, 2, 4], ...]} (one row per layer,
// values 2, 4 or 8).
std::vector<std::vector<int>> read_bits_map(const std::string& path, int n_layers, int n_kv_heads);

// ---- CLI registration -------------------------------------------------------------------------

void add_capture_command(CLI::App& app);
void add_ppl_command(CLI::App& app);

}  // namespace data
}  // namespace turbo

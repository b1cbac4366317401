// `turboattn ppl`: perplexity, KL(p_ref || p_method) and top-1 agreement of one or more methods
// against ground-truth attention, with the model's own forward pass (datasets/llama_model.h).
//
// The reference forward (exact FP64 attention in every layer) depends only on the model, the
// tokens of the window and the phase/chunking; its logits are cached on disk, keyed by the model's
// SHA-256, the SHA-256 of the token ids, the phase, the chunk and the first scored position, so a
// study of many methods computes it once. Metrics come with 95% bootstrap intervals (circular
// block bootstrap over the scored positions, which are autocorrelated).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "eval/commands.h"

namespace turbo {
namespace eval {

struct PplOptions {
  std::string model;                              // GGUF path (default: fetch_models.sh's cache)
  std::string text;                               // UTF-8 text file
  std::vector<std::string> methods = {"flashq"};  // Method names, or "reference"
  std::string config;                             // knobs "name=value,..." for every method
  // Runs "method[:name=value,...]", each with its own knobs over `config`; when given, replace
  // `methods` (see parse_ppl_run).
  std::vector<std::string> runs;
  std::string phase = "prefill";  // prefill: one attention_prefill over the window;
                                  // decode: KV cache filled chunk by chunk
  std::string bits_map;           // calibrate's bit map, for kv_bits=mixed
  std::string backend = "ref";
  std::string json_out;       // optional JSON report
  int64_t max_tokens = 1024;  // window length
  int64_t skip_tokens = 0;    // tokens of the text skipped before the window
  int64_t eval_from = -1;     // first scored position; -1: half the window
  int64_t chunk = 16;         // decode: tokens per teacher-forced chunk (q_len)
  std::string ref_cache;      // cache directory; "" : the default; "none": off
  int bootstrap = 1000;       // resamples for the intervals (0: none)
  uint64_t seed = 0;          // of the bootstrap
  int verbosity = 1;
  std::string command;  // this command line, for the JSON
};

struct Interval {
  double lo = 0, hi = 0;  // 95% percentile interval; both NaN when not computed
};

struct PplResult {
  std::string run;         // the run as asked: "flashq", "kivi:kv_bits=2", "reference"
  std::string method_key;  // AttentionConfig::to_string() or "reference"
  std::string phase;
  int64_t window = 0, scored = 0;  // tokens in the window; next-token predictions scored
  double ppl_reference = 0, ppl_method = 0;
  double ppl_diff = 0;  // ppl_method - ppl_reference
  Interval ppl_diff_ci;
  double kl_mean = 0, kl_max = 0;  // KL(p_ref || p_method) per position, nats
  Interval kl_ci;
  double top1_agreement = 0;  // fraction of positions where the argmax tokens agree
  Interval top1_ci;
  double sparsity = 0, dropped_mass = 0;  // SAS, over every layer and head
  // Decode only (0 for prefill), counted as the sweep counts them (SPEC 8, eval/sweep.cpp):
  double kv_bytes_per_token = 0;              // bytes all caches hold per token, at the end
  double kv_bytes_per_token_per_kv_head = 0;  // the same per layer and kv head (sweep's kv_bytes)
  double kv_ratio_vs_fp16 = 0;                // FP16 bytes / stored bytes, at the end
  // Per token, layer and kv head, averaged over the decode positions p in [decode_start(n), n)
  // after appending token p, and over the layers (sweep's kv_bytes_mean); its FP16 ratio.
  double kv_bytes_mean_per_token_per_kv_head = 0;
  double kv_ratio_mean_vs_fp16 = 0;
  double seconds_reference = 0, seconds_method = 0;
  bool reference_from_cache = false;
};

// One run of ppl: "method" or "method:name=value,..." (knobs of core/config.h), the knobs applied
// over `shared` (--config); "reference" takes no knobs. Throws on an unknown method or knob, a
// `method=` knob naming another method, or an invalid config.
struct PplRun {
  std::string spec;  // as given
  std::string method;
  AttentionConfig config;  // unused for "reference"
};
PplRun parse_ppl_run(const std::string& spec, const std::string& shared);

// One result per run (options.runs, else options.methods), in that order; the reference forward
// is computed (or read from the cache) once for all of them.
std::vector<PplResult> run_ppl(const PplOptions& options);
std::string ppl_table(const PplResult& r);
// The JSON report: provenance (version, commit, build, command, model and text hashes) and one
// object per method.
std::string ppl_json(const std::vector<PplResult>& results, const PplOptions& options);

// Circular block bootstrap: the 2.5% and 97.5% percentiles of `stat` over `resamples` resamples
// of the n positions, drawn as blocks of `block` consecutive positions (wrapping around).
// `stat` maps the resampled index list to a number.
Interval bootstrap_interval(int64_t n, int resamples, int64_t block, uint64_t seed,
                            const std::function<double(const std::vector<int64_t>&)>& stat);

void add_ppl_command(CLI::App& app, CommonOptions& common);

}  // namespace eval
}  // namespace turbo

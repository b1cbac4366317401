// The `capture` subcommand of the turboattn CLI (the eval/ main registers it), the library
// functions behind it, and the token window that `capture` and `ppl` (eval/ppl.h) share.
#pragma once

#include <cstdint>
#include <functional>
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
  int verbosity = 1;           // 0: no progress display on stderr
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

// ---- the token window of a text (capture, and ppl in eval/) ------------------------------------

class LlamaModel;

struct TokenWindow {
  std::vector<int32_t> tokens;  // [skip, skip + n) of the text's ids (BOS/EOS as the model asks)
  int64_t skip = 0, total = 0;  // total: ids of the text, or of its prefix when !complete
  bool complete = true;         // false: the text goes on past the window (not tokenized)
  std::string text_sha256;      // of the text file's bytes
};
// Reads the UTF-8 text file (a regular file: a FIFO or directory is refused by name), tokenizes
// it and returns the window of at most `max_tokens` ids after `skip_tokens` (capped at the model's
// context, with a warning; a warning too when the text is longer than the window). With
// `count_all` the whole text is tokenized so that `total` is exact (capture records it);
// otherwise BPE stops at the end of the window.
TokenWindow token_window(const LlamaModel& model, const std::string& text_path, int64_t max_tokens,
                         int64_t skip_tokens, bool count_all);

// ---- CLI registration -------------------------------------------------------------------------

// `verbosity` (called when the command runs) gives the caller's -q/-v level; default 1.
void add_capture_command(CLI::App& app, std::function<int()> verbosity = {});

}  // namespace data
}  // namespace turbo

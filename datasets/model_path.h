// Where datasets/fetch_models.sh puts the models: the default (SmolLM2) and Gemma 3 270M.
#pragma once

#include <cstdlib>
#include <string>

namespace turbo {
namespace data {

constexpr const char* kDefaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf";
// SHA-256 of that file, pinned in datasets/fetch_models.sh.
constexpr const char* kDefaultModelSha256 =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

constexpr const char* kGemmaModelFile = "gemma-3-270m-q4_k_m.gguf";
constexpr const char* kGemmaModelSha256 =
    "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";

// ${TURBO_CACHE:-$HOME/.cache/turboattn}
inline std::string model_cache_dir() {
  if (const char* c = std::getenv("TURBO_CACHE")) return c;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/turboattn";
}

// $TURBO_MODEL if set, else ${TURBO_CACHE:-$HOME/.cache/turboattn}/SmolLM2-135M-Instruct.Q4_1.gguf.
inline std::string default_model_path() {
  if (const char* m = std::getenv("TURBO_MODEL")) return m;
  return model_cache_dir() + "/" + kDefaultModelFile;
}

// ${TURBO_CACHE:-$HOME/.cache/turboattn}/gemma-3-270m-q4_k_m.gguf.
inline std::string gemma_model_path() { return model_cache_dir() + "/" + kGemmaModelFile; }

// The --model argument of capture / ppl: the names of the models fetch_models.sh fetches
// ("smollm2-135m", "gemma3-270m") stand for their files in the cache folder (so a recorded
// command does not depend on the machine); anything else is a path; empty: the default model.
inline std::string resolve_model_path(const std::string& arg) {
  if (arg.empty()) return default_model_path();
  if (arg == "smollm2-135m") return model_cache_dir() + "/" + kDefaultModelFile;
  if (arg == "gemma3-270m") return gemma_model_path();
  return arg;
}

}  // namespace data
}  // namespace turbo

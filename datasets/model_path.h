// Where datasets/fetch_models.sh puts the default model.
#pragma once

#include <cstdlib>
#include <string>

namespace turbo {
namespace data {

constexpr const char* kDefaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf";
// SHA-256 of that file, pinned in datasets/fetch_models.sh.
constexpr const char* kDefaultModelSha256 =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

// $TURBO_MODEL if set, else ${TURBO_CACHE:-$HOME/.cache/turboattn}/SmolLM2-135M-Instruct.Q4_1.gguf.
inline std::string default_model_path() {
  if (const char* m = std::getenv("TURBO_MODEL")) return m;
  std::string cache;
  if (const char* c = std::getenv("TURBO_CACHE")) {
    cache = c;
  } else {
    const char* home = std::getenv("HOME");
    cache = std::string(home ? home : ".") + "/.cache/turboattn";
  }
  return cache + "/" + kDefaultModelFile;
}

}  // namespace data
}  // namespace turbo

// Fixtures shared by the eval/ tests (each *_test.cpp sits beside the file it tests): a
// temporary directory, synthetic activation files, and turboattn run in-process.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/host/file_io.h"
#include "datasets/activations.h"
#include "eval/commands.h"

namespace turbo {
namespace eval {
namespace test {

// ---- fixtures -----------------------------------------------------------------------------------

inline std::string temp_dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/turboattn_eval_test_XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    EXPECT_NE(d, nullptr);
    return std::string(d);
  }();
  return dir;
}

inline std::string path(const std::string& name) { return temp_dir() + "/" + name; }

// Removes the temporary directory after the last test.
class TempDirCleanup : public testing::Environment {
 public:
  void TearDown() override { std::filesystem::remove_all(temp_dir()); }
};
inline const testing::Environment* const kCleanup =
    testing::AddGlobalTestEnvironment(new TempDirCleanup);

inline bool exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }

inline std::string slurp(const std::string& p) { return read_text_file(p); }

inline void write_text(const std::string& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// Synthetic activations shaped like a small GQA model: K with outlier channels, a sink token.
inline std::string write_activations(const std::string& name, uint64_t seed, int64_t n = 96,
                                     std::vector<int> layers = {0, 1, 2}) {
  const std::string p = path(name);
  data::ActivationMeta m;
  m.model = "synthetic";
  m.model_sha256 = std::string(64, '0');
  m.text_source = "eval_test";
  m.command = "eval_test";
  m.version = "test";
  m.rope_theta = 10000;
  m.n_layers = 3;
  m.n_heads = 4;
  m.n_kv_heads = 2;
  m.head_dim = 64;
  m.n_tokens = n;
  m.layers = layers;
  data::ActivationWriter w(p, m, true);
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) tokens[static_cast<size_t>(i)] = static_cast<int32_t>(i % 50);
  w.write_tokens(tokens);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int l : layers) {
    HostTensor<Half> q(1, 4, n, 64), k(1, 2, n, 64), v(1, 2, n, 64);
    for (int64_t i = 0; i < q.numel(); ++i)
      q.storage[static_cast<size_t>(i)] = float_to_half(g(rng) * 2.0f);
    for (int64_t i = 0; i < k.numel(); ++i) {
      const int64_t c = i % 64, t = (i / 64) % n;
      const float outlier = c % 16 == 5 ? 8.0f + static_cast<float>(l) : 1.0f;
      k.storage[static_cast<size_t>(i)] = float_to_half(g(rng) * outlier + (t == 0 ? 3.0f : 0.0f));
      v.storage[static_cast<size_t>(i)] = float_to_half(g(rng));
    }
    w.write_layer(l, q, k, v);
  }
  w.close();
  return p;
}

inline const std::string& eval_file() {
  static const std::string p = write_activations("eval.h5", 1);
  return p;
}
inline const std::string& calib_file() {
  static const std::string p = write_activations("calib.h5", 2);
  return p;
}

// Runs turboattn in this process; returns its exit code.
inline int run(std::vector<std::string> args) {
  args.insert(args.begin(), "turboattn");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  return turboattn_main(static_cast<int>(argv.size()), argv.data());
}

// Runs turboattn in this process capturing stderr; returns {exit code, stderr}.
inline std::pair<int, std::string> run_capturing(std::vector<std::string> args) {
  testing::internal::CaptureStderr();
  const int rc = run(std::move(args));
  return {rc, testing::internal::GetCapturedStderr()};
}

inline const char* kGrid =
    "# test grid\n"
    "method = flashq\n"
    "kv_bits = 8, 4, 2\n"
    "n_r = 5..6\n"
    "method = kivi\n"
    "kv_bits = 4, 2\n"
    "method = int8kv, sage, fp8, fp16\n";

inline std::string grid_file() {
  const std::string p = path("grid.txt");
  write_text(p, kGrid);
  return p;
}

inline std::vector<std::string> sweep_args(const std::string& out) {
  return {"sweep",       "-q", "--data", eval_file(), "--grid", grid_file(),
          "--positions", "3",  "--seed", "7",         "-o",     out};
}

}  // namespace test
}  // namespace eval
}  // namespace turbo

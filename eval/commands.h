// The `turboattn` subcommands (CLI11). Each add_*_command registers one subcommand whose callback
// does the work; errors are thrown as turbo::Error and reported by main() with exit code 1.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

namespace turbo {
namespace eval {

// Most OpenMP threads --threads accepts.
constexpr int kMaxThreads = 1024;

// Flags every subcommand takes (given before or after the subcommand name).
struct CommonOptions {
  int threads = 0;  // 0: OpenMP's default
  uint64_t seed = 0;
  bool quiet = false;
  int verbose = 0;
  std::string command;  // this process's command line, for provenance
  int verbosity() const { return quiet ? 0 : 1 + verbose; }
  void apply_threads() const;  // omp_set_num_threads when threads > 0
};

void add_sweep_command(CLI::App& app, CommonOptions& common);
void add_merge_command(CLI::App& app, CommonOptions& common);
void add_calibrate_command(CLI::App& app, CommonOptions& common);
void add_report_command(CLI::App& app, CommonOptions& common);
void add_validate_command(CLI::App& app, CommonOptions& common);
void add_bench_command(CLI::App& app, CommonOptions& common);

// Entry point shared by the executable and the tests (which run it in-process or as a child).
int turboattn_main(int argc, const char* const* argv);

}  // namespace eval
}  // namespace turbo

#include "eval/commands.h"

#include <cstdio>
#include <limits>

#include "core/error.h"
#include "core/host/numbers.h"
#include "datasets/commands.h"
#include "eval/backends.h"
#include "eval/ppl.h"
#include "eval/provenance.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace turbo {
namespace eval {

void CommonOptions::apply_threads() const {
#ifdef _OPENMP
  if (threads > 0) omp_set_num_threads(threads);
#endif
}

int turboattn_main(int argc, const char* const* argv) {
  register_builtin_backends();
  CommonOptions common;
  common.command = command_line(argc, argv);
  CLI::App app{
      "turboattn: quantized-attention evaluation (TurboAttention FlashQ + SAS and baselines)"};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", tool_version());
  // Bounded: libgomp gives every thread a stack, and --threads 100000 exhausted memory.
  app.add_option("--threads", common.threads, "OpenMP threads (0: all cores)")
      ->check(CLI::Range(0, kMaxThreads))
      ->capture_default_str();
  // Parsed strictly: CLI11 (strtoull) read "-1" and 2^64 as 2^64 - 1.
  app.add_option_function<std::string>(
         "--seed",
         [&common](const std::string& v) {
           try {
             common.seed = parse_uint(v, std::numeric_limits<uint64_t>::max(), "--seed");
           } catch (const Error& e) {
             throw CLI::ValidationError("--seed", e.what());
           }
         },
         "seed for sampling (decode positions, random inputs), an integer in [0, 2^64)")
      ->default_str("0");
  app.add_flag("-q,--quiet", common.quiet, "no progress output");
  app.add_flag("-v,--verbose", common.verbose, "more output (repeatable)");
  add_sweep_command(app, common);
  add_report_command(app, common);
  add_merge_command(app, common);
  add_calibrate_command(app, common);
  add_validate_command(app, common);
  add_bench_command(app, common);
  data::add_capture_command(app, [&common] { return common.verbosity(); });
  add_ppl_command(app, common);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const Error& e) {
    std::fprintf(stderr, "turboattn: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "turboattn: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace eval
}  // namespace turbo

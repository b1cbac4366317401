#include "eval/commands.h"

#include <cstdio>

#include "core/error.h"
#include "eval/backends.h"
#include "eval/provenance.h"

#ifdef TURBO_HAVE_DATASET_COMMANDS
#include "datasets/commands.h"
#endif

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
  app.add_option("--threads", common.threads, "OpenMP threads (0: all cores)")
      ->capture_default_str();
  app.add_option("--seed", common.seed, "seed for sampling (decode positions, random inputs)")
      ->capture_default_str();
  app.add_flag("-q,--quiet", common.quiet, "no progress output");
  app.add_flag("-v,--verbose", common.verbose, "more output (repeatable)");
  add_sweep_command(app, common);
  add_report_command(app, common);
  add_merge_command(app, common);
  add_calibrate_command(app, common);
  add_validate_command(app, common);
  add_bench_command(app, common);
#ifdef TURBO_HAVE_DATASET_COMMANDS
  data::add_capture_command(app);
  data::add_ppl_command(app);
#endif
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

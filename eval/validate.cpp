#include "eval/validate.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>

#include "core/backend.h"
#include "core/error.h"
#include "core/host/progress.h"
#include "datasets/activations.h"
#include "eval/backends.h"
#include "eval/commands.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace turbo {
namespace eval {
namespace {

void set_threads(int n) {
#ifdef _OPENMP
  if (n > 0) omp_set_num_threads(n);
#else
  (void)n;
#endif
}

}  // namespace

std::vector<check::CaseResult> run_validation(const ValidateOptions& o) {
  register_builtin_backends();
  std::unique_ptr<Backend> test = make_backend(o.backend), ref = make_backend(o.against);
  check::Backends backends{*test, *ref, [&o] { set_threads(o.threads); },
                           [&o] { set_threads(o.against_threads); }};
  std::vector<std::shared_ptr<const check::LayerInputs>> data;
  if (!o.data.empty()) {
    // The first layer of the file, at most 256 tokens.
    data::ActivationReader r(o.data);
    const int layer = r.meta().layers.front();
    const int64_t n = std::min<int64_t>(r.meta().n_tokens, 256);
    data.push_back(std::make_shared<const check::LayerInputs>(
        check::LayerInputs{"data layer " + std::to_string(layer), r.read(layer, 'q', 0, n),
                           r.read(layer, 'k', 0, n), r.read(layer, 'v', 0, n)}));
  } else if (o.verbosity > 0) {
    std::fprintf(stderr,
                 "validate: no --data (and no datasets/data/smollm2_eval.h5 here): the real-data "
                 "cases are skipped\n");
  }
  const std::vector<check::Case> cases = check::all_cases(o.quick, o.seed, data);
  std::vector<check::CaseResult> results;
  Progress progress("validate", static_cast<int64_t>(cases.size()), o.verbosity, 5.0);
  for (const check::Case& c : cases) {
    results.push_back(check::run_case(c, backends));
    const check::CaseResult& r = results.back();
    if (o.verbosity >= 2 || (!r.pass && !r.unsupported && o.verbosity >= 1))
      std::fprintf(stderr, "%s %-18s %s  mismatches %lld/%lld%s\n",
                   r.unsupported ? "skip"
                   : r.pass      ? "ok  "
                                 : "FAIL",
                   r.op.c_str(), r.vars.c_str(), static_cast<long long>(r.mismatches),
                   static_cast<long long>(r.compared),
                   r.note.empty() ? "" : ("  (" + r.note + ")").c_str());
    progress.update(static_cast<int64_t>(results.size()), c.op);
  }
  set_threads(o.threads);
  return results;
}

void add_validate_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<ValidateOptions>();
  CLI::App* sub = app.add_subcommand(
      "validate", "Check every op of a backend against ref (exact ops bit for bit)");
  sub->add_option("--backend", o->backend, "backend under test")->capture_default_str();
  sub->add_option("--against", o->against, "reference backend")->capture_default_str();
  sub->add_option("--against-threads", o->against_threads, "threads of the reference run")
      ->capture_default_str();
  // Real-data cases run on the embedded evaluation activations when run from the repository root
  // (the binary holds no source path), or on --data.
  const std::string embedded = "datasets/data/smollm2_eval.h5";
  if (::access(embedded.c_str(), R_OK) == 0) o->data = embedded;
  sub->add_option("--data", o->data, "activation file for the real-data cases ('' for none)")
      ->capture_default_str();
  sub->add_flag("--quick", o->quick, "fewer shapes");
  sub->callback([o, &common]() {
    o->threads = common.threads;
#ifdef _OPENMP
    if (o->threads <= 0) o->threads = omp_get_max_threads();
#endif
    o->seed = common.seed;
    o->verbosity = common.verbosity();
    const std::vector<check::CaseResult> cases = run_validation(*o);
    std::printf("validate: backend '%s' (threads %d) against '%s' (threads %d)\n\n",
                o->backend.c_str(), o->threads, o->against.c_str(), o->against_threads);
    const check::Summary sum = check::summarize(cases, o->verbosity > 0);
    std::fputs(sum.text.c_str(), stdout);
    const int failed = sum.failed;
    if (failed) throw Error("validate: " + std::to_string(failed) + " case(s) failed");
  });
}

}  // namespace eval
}  // namespace turbo

// `turboattn validate --backend <name>`: every case of reference/backend_check.h (the one
// harness and case list for every backend: exact ops bit for bit, approximate ops within their
// stated bound, poisoned outputs, a nonzero guard) run on the backend under test against the
// `ref` backend, plus the real-data cases on an activation file; a per-op table and a verdict.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reference/backend_check.h"

namespace turbo {
namespace eval {

struct ValidateOptions {
  std::string backend = "ref";
  std::string against = "ref";
  int threads = 0;          // threads of the backend under test (0: default)
  int against_threads = 1;  // threads of the reference run
  std::string data;         // optional activation file: adds real-data cases
  uint64_t seed = 0;
  bool quick = false;  // fewer shapes
  int verbosity = 1;
};

// Every case's result, in the case list's order (check::all_cases).
std::vector<check::CaseResult> run_validation(const ValidateOptions& options);

}  // namespace eval
}  // namespace turbo

// `turboattn validate --backend <name>`: one harness drives every op of a backend against the
// `ref` backend (ggml test-backend-ops style). Each case names its parameters; exact ops (SPEC
// says "exactly": stage 1, stage 2, the direct quantizer, SAS, FlashQ prefill/decode/split-K with
// exp_mode=sas and a quantized P, the cache byte counts, the baselines' codes) must match bit for
// bit and the harness prints their mismatch counts; approximate ops (exp_mode=exact, p_quant=fp16,
// the FP16 floor and the baselines, which use expf) must satisfy
//   ||O - O_ref|| / ||O_ref||  <=  2 * e_floor + 2^-11,
// where e_floor is the relative L2 error of the FP16 floor against the FP64 truth on the same
// inputs (twice a naive same-precision implementation plus FP16 noise; STYLE 8). Outputs are
// poisoned before each run and every element is compared. A config the backend under test
// declines (Backend::supports) is listed as unsupported, with its reason, not run.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

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

struct ValidateCase {
  ValidateCase() = default;
  ValidateCase(std::string o, std::string v) : op(std::move(o)), vars(std::move(v)) {}
  std::string op, vars;
  bool exact = true;
  int64_t compared = 0, mismatches = 0;
  double max_diff = 0, error = 0, bound = 0;
  bool pass = true;
  bool unsupported = false;  // the backend under test declines the config (Backend::supports)
  std::string note;
};

std::vector<ValidateCase> run_validation(const ValidateOptions& options);

}  // namespace eval
}  // namespace turbo

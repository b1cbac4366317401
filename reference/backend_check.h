// One harness and one case list that check any backend against the reference backend, op by op
// (ggml test-backend-ops style; STYLE 5, 6, 8). `turboattn validate` (every backend), the cuda
// backend's gtest (cuda_backend_test) and the device report (cuda_validate) all run these cases.
//
// A case runs one op on the backend under test and on the reference with the same inputs, both
// outputs poisoned first (with different NaNs), and compares every element:
//  - exact ops, those SPEC defines "exactly" (stage 1, stage 2, the direct quantizer, SAS with
//    exp_mode = sas, FlashQ prefill and decode with exp_mode = sas and a quantized P, the cache's
//    byte counts, the SAS statistics), must match bit for bit;
//  - approximate ops (exp_mode = exact, p_quant = fp16, the FP16 floor and the other baselines,
//    which use expf) must satisfy, per call,
//        ||O - O_ref|| / ||O_ref||  <=  2 * e_floor + 2^-11,
//    where e_floor is the relative L2 error of the FP16 floor against the FP64 truth on the same
//    inputs (twice a naive same-precision implementation plus FP16 noise), and every element
//    |o - o_ref| <= 2e-2 * (|o_ref| + 1e-2); SAS with exp_mode = exact: every element within
//    4 ulp of FP32, relative;
//  - an element left unwritten (still poisoned), a reference output that is all zero (a vacuous
//    pass), or statistics or byte counts that differ fail the case.
// A configuration the backend under test declines (Backend::supports) is reported as
// unsupported, with the reason, and not run.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"

namespace turbo {
namespace check {

struct CaseResult {
  CaseResult() = default;
  CaseResult(std::string o, std::string v) : op(std::move(o)), vars(std::move(v)) {}
  std::string op;    // the Backend entry point: quantize_stage1, ..., attention_decode
  std::string vars;  // the case's parameters, "n=65,d=130,group_rows=64"
  bool exact = true;
  bool unsupported = false;     // declined by the backend under test (note: why)
  int64_t compared = 0;         // elements compared
  int64_t mismatches = 0;       // elements whose bits differ
  int64_t outside = 0;          // approximate ops: elements beyond the elementwise tolerance
  double max_diff = 0;          // largest |test - ref|
  double error = 0, bound = 0;  // approximate ops: the worst call's relative L2 error, its bound
  bool nonzero = false;         // the reference output holds a nonzero element
  std::string note;             // what failed (or why the config was declined)
  bool pass = false;            // set by run_case
};

// The two sides of a run. `before_test` / `before_ref` run before each side's calls (the CLI
// gives each side its own OpenMP thread count there).
struct Backends {
  Backend& test;
  Backend& ref;
  std::function<void()> before_test = [] {};
  std::function<void()> before_ref = [] {};
};

struct Case {
  std::string op;
  std::function<CaseResult(Backends&)> run;
};

// Real activations of one layer, Q [1, Hq, N, D] and K, V [1, Hkv, N, D], for the real-data
// cases; `name` goes into the cases' vars.
struct LayerInputs {
  std::string name;
  HostTensor<Half> q, k, v;
};

// The case list. `quick` keeps a subset (the gtest, `validate --quick`, `cuda_validate --small`);
// `seed` moves every case's random inputs (0: the inputs the documented counts were made with);
// each entry of `data` adds the real-data cases on it.
std::vector<Case> all_cases(bool quick, uint64_t seed = 0,
                            const std::vector<std::shared_ptr<const LayerInputs>>& data = {});

// Runs one case and decides `pass` (the rules above); an exception fails the case and its
// message becomes the note.
CaseResult run_case(const Case& c, Backends& backends);

// The report of a run: a Markdown table per op (exact or bounded: cases, failed, unsupported,
// elements, mismatches, worst error / bound), then "PASS|FAIL: <n> cases run, <f> failed, <d>
// declined by the backend (not run)", then (with `list_declined`) each distinct reason.
struct Summary {
  std::string text;
  int run = 0, failed = 0, declined = 0;
};
Summary summarize(const std::vector<CaseResult>& results, bool list_declined);

}  // namespace check
}  // namespace turbo

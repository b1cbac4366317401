// `turboattn report`: a Markdown report from sweep results (one or more CSVs with sidecars).
//
// Sections: per-method error against the ground truth ("FP16 attention", SPEC 9) per phase with
// mean / p95 / max of the relative L2 error over (layer, head) rows; pivots by kv_bits and by n_r
// (configs equal in every other knob side by side); the per-layer breakdown; the Pareto frontier of
// decode error vs KV bytes per token. Every table is preceded by the commands that made its data
// and the report. p95 is the nearest-rank percentile.
#pragma once

#include <string>
#include <vector>

namespace turbo {
namespace eval {

std::string make_report(const std::vector<std::string>& inputs, const std::string& command);

}  // namespace eval
}  // namespace turbo

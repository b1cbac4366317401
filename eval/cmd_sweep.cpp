// `turboattn sweep`, `merge` and `calibrate`.
#include <cstdio>
#include <memory>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/host/file_io.h"
#include "datasets/activations.h"
#include "eval/calibrate.h"
#include "eval/commands.h"
#include "eval/results.h"
#include "eval/sweep.h"

namespace turbo {
namespace eval {

void add_sweep_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<SweepOptions>();
  CLI::App* sub = app.add_subcommand(
      "sweep",
      "Run a grid of methods and knobs over an activation file; write a tidy CSV + JSON sidecar");
  std::string knob_names;
  for (const Knob& k : knobs())
    knob_names += (knob_names.empty() ? "" : ", ") + std::string(k.name);
  sub->add_option("--data", o->data, "activation file (HDF5, datasets/README.md)")->required();
  sub->add_option("-o,--out", o->out,
                  "results CSV (sidecar: <out>.json); an existing one is resumed")
      ->required();
  sub->add_option("--grid", o->grid_file, "grid file (format: eval/README.md)");
  sub->add_option(
      "--set", o->sets,
      "axis knob=v1,v2,... (replaces that knob's axis in every block); knobs: " + knob_names);
  sub->add_option("--layers", o->layers, "layers: all, 0,3,7, 0-29 or 0-29:4")
      ->capture_default_str();
  sub->add_option("--tokens", o->tokens, "window: the first N tokens (0: all)")
      ->capture_default_str();
  sub->add_option("--positions", o->positions, "decode positions sampled per layer (seeded)")
      ->capture_default_str();
  sub->add_option("--phases", o->phases, "prefill, decode or both")->capture_default_str();
  sub->add_option("--shard", o->shard, "run shard i of n (units i, i+n, ...): i/n")
      ->capture_default_str();
  sub->add_option("--backend", o->backend, "backend to evaluate")->capture_default_str();
  sub->add_option("--bits-map", o->bits_map, "bit map for kv_bits=mixed (turboattn calibrate)");
  sub->add_option("--calib", o->calib,
                  "calibration activations: compute bit maps for kv_bits=mixed");
  sub->add_option("--max-configs", o->max_configs, "refuse grids with more configs")
      ->capture_default_str();
  sub->add_flag("--overwrite", o->overwrite, "start over instead of resuming an existing --out");
  sub->add_flag("--dry-run", o->dry_run, "print this shard's units and exit");
  // One flag per knob, `--<knob> v1,v2,...`: the same as `--set <knob>=v1,v2,...`.
  auto knob_flags = std::make_shared<std::vector<std::pair<std::string, std::string>>>();
  for (const Knob& k : knobs()) knob_flags->emplace_back(k.name, "");
  for (auto& kf : *knob_flags) {
    const Knob& k = find_knob(kf.first);
    const std::string values =
        k.values.empty() ? std::string("number(s)") : join_names(k.values, "|");
    sub->add_option("--" + kf.first, kf.second,
                    std::string(k.help) + " [" + values + "]; comma list = an axis")
        ->group("Knob axes");
  }
  sub->callback([o, knob_flags, &common]() {
    for (const auto& kf : *knob_flags)
      if (!kf.second.empty()) o->sets.push_back(kf.first + "=" + kf.second);
    common.apply_threads();
    o->seed = common.seed;
    o->verbosity = common.verbosity();
    o->command = common.command;
    const SweepSummary s = run_sweep(*o);
    if (!o->dry_run && common.verbosity() > 0)
      std::fprintf(stderr,
                   "sweep: wrote %lld rows (%lld units run, %lld skipped as done) to %s in %.1fs\n",
                   static_cast<long long>(s.rows_written), static_cast<long long>(s.units_run),
                   static_cast<long long>(s.units_skipped), o->out.c_str(), s.seconds);
  });
}

void add_merge_command(CLI::App& app, CommonOptions& common) {
  auto inputs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand(
      "merge", "Merge the shard outputs of one sweep into the file the unsharded sweep writes");
  sub->add_option("inputs", *inputs, "shard CSVs (each with its .json sidecar)")->required();
  sub->add_option("-o,--out", *out, "merged CSV")->required();
  sub->callback([inputs, out, &common]() {
    const int64_t rows = merge_results(*inputs, *out, common.command);
    if (common.verbosity() > 0)
      std::fprintf(stderr, "merge: %lld rows from %zu files -> %s\n", static_cast<long long>(rows),
                   inputs->size(), out->c_str());
  });
}

void add_calibrate_command(CLI::App& app, CommonOptions& common) {
  struct Opts {
    std::string data, out, layers = "all", tensors = "k", metric = "gap_std";
    float f2 = 0.5f;
    int64_t tokens = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "calibrate", "Head priorities (SPEC 7) on a calibration split -> bit map for kv_bits=mixed");
  sub->add_option("--data", o->data, "calibration activations (never the evaluation file)")
      ->required();
  sub->add_option("-o,--out", o->out, "bit-map JSON to write")->required();
  sub->add_option("--f2", o->f2, "fraction of kv heads per layer at 2 bits")->capture_default_str();
  sub->add_option("--prio-tensors", o->tensors, "k or kv")->capture_default_str();
  sub->add_option("--prio-metric", o->metric, "gap_std, gap, std, kurtosis or random")
      ->capture_default_str();
  sub->add_option("--layers", o->layers, "layers: all, 0,3,7, 0-29 or 0-29:4")
      ->capture_default_str();
  sub->add_option("--tokens", o->tokens, "use the first N tokens (0: all)")->capture_default_str();
  sub->callback([o, &common]() {
    check_output_is_not_input(o->out, "-o", {{o->data, "--data"}});
    common.apply_threads();
    data::ActivationReader reader(o->data);
    const std::vector<int> layers = parse_layers(o->layers, reader.meta().layers);
    BitMap m = compute_bit_map(reader, layers, o->tokens, o->f2,
                               parse_enum<PrioTensors>(o->tensors, "prio_tensors"),
                               parse_enum<PrioMetric>(o->metric, "prio_metric"), common.seed);
    m.command = common.command;
    write_file_atomic(o->out, bit_map_to_json(m).dump());
    if (common.verbosity() > 0) {
      int two = 0, total = 0;
      for (const auto& kv : m.bits)
        for (int b : kv.second) {
          two += b == 2;
          ++total;
        }
      std::fprintf(stderr, "calibrate: %zu layers, %d of %d kv heads at 2 bits (%s) -> %s\n",
                   m.bits.size(), two, total, m.knobs_text().c_str(), o->out.c_str());
    }
  });
}

}  // namespace eval
}  // namespace turbo

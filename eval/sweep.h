// `turboattn sweep`: runs every unit (canonical config x phase) of a grid over the layers and
// heads of an activation file and writes one tidy row per (config, phase, layer, query head) with
// the SPEC 9 metrics against the FP64 ground truth (results.h documents the files).
//
// Phases, per selected layer, over the window of the first `tokens` tokens:
//   prefill  causal (config.causal) attention over the whole window, every query head;
//            ground truth ref::attention_fp64.
//   decode   at `positions` sampled positions p (seeded, distinct, from [N/8, N), sorted): a cache
//            is built by cache_append from tokens [0, p] (incrementally: a cache is a pure function
//            of its rows) and query row p attends over it (q_len = 1); ground truth
//            ref::attention_fp64_decode. After the last position the cache is filled to N tokens
//            and KvCache::bytes() gives the KV bytes per token and the ratio to FP16.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "eval/calibrate.h"
#include "eval/grid.h"
#include "eval/results.h"

namespace turbo {
namespace data {
class ActivationReader;
}
namespace eval {

struct LayerData {
  int layer = 0;
  HostTensor<Half> q, k, v;        // [1, H, N, D], the window
  std::vector<double> gt_prefill;  // [Hq, N, D]   (empty when prefill is not swept)
  std::vector<double> gt_decode;   // [P, Hq, D]   (empty when decode is not swept)
};

struct SweepData {
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int64_t tokens = 0;
  std::vector<int64_t> positions;  // decode positions, ascending
  std::vector<LayerData> layers;
};

// Distinct positions from [N/8, N) (all of them when count >= that range), ascending.
std::vector<int64_t> sample_positions(int64_t n_tokens, int count, uint64_t seed);
// First decode position of a window of n_tokens: the first eighth is the prompt.
inline int64_t decode_start(int64_t n_tokens) { return n_tokens / 8; }
// View of token rows [t0, t1) of a [1, H, N, D] tensor.
inline ConstHalfTensor token_slice(const HostTensor<Half>& x, int64_t t0, int64_t t1) {
  ConstHalfTensor v = x.view();
  v.data = x.storage.data() + t0 * x.d;
  v.shape[2] = t1 - t0;
  return v;
}

// Reads the window, rejects non-finite values (naming tensor, layer and head) and computes the
// ground truths of the requested phases.
SweepData load_sweep_data(const data::ActivationReader& reader, const std::vector<int>& layers,
                          int64_t tokens, int positions, uint64_t seed,
                          const std::vector<Phase>& phases);
// The same from tensors already in memory (tests, benchmarks): q [1, Hq, N, D], k/v [1, Hkv, N, D].
void add_layer(SweepData& data, int layer, HostTensor<Half> q, HostTensor<Half> k,
               HostTensor<Half> v, const std::vector<Phase>& phases);

// Bit maps for kv_bits = mixed, from a map file and/or computed from a calibration file.
class BitMaps {
 public:
  BitMaps(const std::string& map_file, const std::string& calib_file, uint64_t seed);
  ~BitMaps();
  // The map for c's (f2, prio_tensors, prio_metric); computed once per setting. Checks that it
  // covers `layers` with `n_kv_heads` heads and was not calibrated on `eval_sha256`.
  const BitMap& get(const AttentionConfig& c, const std::vector<int>& layers, int n_kv_heads,
                    const std::string& eval_sha256);
  Json describe() const;  // for the sidecar

 private:
  std::string map_file_, calib_file_;
  uint64_t seed_;
  std::unique_ptr<BitMap> loaded_;
  std::unique_ptr<data::ActivationReader> calib_;
  std::map<std::string, BitMap> computed_;
};

// The rows of one unit (all layers, all query heads). `maps` may be null if no unit is mixed.
std::vector<ResultRow> run_unit(Backend& backend, const Unit& unit, const SweepData& data,
                                BitMaps* maps, const std::string& eval_sha256);

struct SweepOptions {
  std::string data;
  std::string out;
  std::string grid_file;
  std::vector<std::string> sets;
  std::string layers = "all";
  int64_t tokens = 0;  // 0: the whole file
  int positions = 4;
  uint64_t seed = 0;
  std::string phases = "prefill,decode";
  std::string shard = "0/1";
  std::string backend = "ref";
  std::string bits_map, calib;
  bool overwrite = false;
  bool dry_run = false;  // print the units and exit
  uint64_t max_configs = 1000000;
  int verbosity = 1;    // 0 quiet, 1 normal, 2 verbose
  std::string command;  // the exact command line, for the sidecar
};

struct SweepSummary {
  int64_t units_total = 0, units_shard = 0, units_skipped = 0, units_run = 0, rows_written = 0;
  double seconds = 0;
};

SweepSummary run_sweep(const SweepOptions& options);

// Bytes a sweep will append (rows x a formatted row's length), and a check that the file system
// holding `path` has them; throws naming both numbers.
void check_disk_space(const std::string& path, uint64_t bytes_needed);

}  // namespace eval
}  // namespace turbo

// Head-wise mixed precision (SPEC 7): per-layer kv-head priorities on a calibration split and the
// bit map (4 or 2 bits per kv head) that `sweep` and `ppl` take for kv_bits = mixed.
//
// The bit-map file, written by `turboattn calibrate` and read by `sweep --bits-map` and
// `ppl --bits-map` through load_bit_map (the one reader):
//   { "format": "turboattn-bitmap-1", "command", "data": path, "data_sha256", "model",
//     "model_sha256", "tokens", "f2", "prio_tensors", "prio_metric", "seed", "n_kv_heads",
//     "layers": { "<layer>": { "bits": [b_0, ...], "priority": [p_0, ...] }, ... },
//     "head_bits": [[b_0, ...], ...] }
// `layers` is the map; each `bits` entry is 2 or 4 and each row has n_kv_heads entries.
// `head_bits` (one row per layer 0, 1, ...) repeats `layers` for readers outside the project (the
// Python session takes these rows); it is written when the map covers every layer from 0 without
// a gap, and the reader refuses a file whose `head_bits` disagree with `layers`. The map records
// the calibration file's SHA-256 so that a sweep can refuse to evaluate on the tokens it was
// calibrated on.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/host/file_io.h"
#include "core/host/json.h"

namespace turbo {
namespace data {
class ActivationReader;
}
namespace eval {

struct BitMap {
  std::string data, data_sha256, model, model_sha256, command;
  int64_t tokens = 0;
  float f2 = 0.5f;
  PrioTensors prio_tensors = PrioTensors::kK;
  PrioMetric prio_metric = PrioMetric::kGapStd;
  uint64_t seed = 0;
  int n_kv_heads = 0;
  std::map<int, std::vector<int>> bits;         // layer -> bits per kv head
  std::map<int, std::vector<double>> priority;  // layer -> priority per kv head
  std::string source;  // the file it was read from (empty when computed), named in errors

  // Whether the map was made with the mixed-precision knobs of `c`.
  bool matches(const AttentionConfig& c) const {
    return c.quant.f2 == f2 && c.quant.prio_tensors == prio_tensors &&
           c.quant.prio_metric == prio_metric;
  }
  std::string knobs_text() const;  // "f2=0.5,prio_tensors=k,prio_metric=gap_std"
  // Throws unless the map has n_kv_heads heads and an entry for each of `layers`.
  void check_covers(const std::vector<int>& layers, int n_kv_heads) const;
  // The bits of layers 0 .. n_layers - 1, one row per layer (checked as check_covers): the shape
  // a run over a whole model (`ppl`) takes.
  std::vector<std::vector<int>> rows(int n_layers, int n_kv_heads) const;
};

// Priorities and bits for `layers` (empty: every layer of the file) over tokens [0, tokens)
// (tokens <= 0: all).
BitMap compute_bit_map(const data::ActivationReader& reader, const std::vector<int>& layers,
                       int64_t tokens, float f2, PrioTensors tensors, PrioMetric metric,
                       uint64_t seed);

// The bit-map file's writer and reader (format above). The reader checks every field and names
// `what` (the file) in its errors.
Json bit_map_to_json(const BitMap& m);
BitMap bit_map_from_json(const Json& j, const std::string& what);
BitMap load_bit_map(const std::string& path);

// "all", "0,3,7", "0-5", "0-29:4" (every 4th) -> layer indices, checked against `present`.
std::vector<int> parse_layers(const std::string& spec, const std::vector<int>& present);

}  // namespace eval
}  // namespace turbo

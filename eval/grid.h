// The sweep grid: which configs a sweep runs, in which order, and which of them are redundant.
//
// Grid file format (one axis per line; `#` starts a comment; blank lines are ignored):
//
//   # axes before the first `method` line apply to every block below (a block may override them)
//   n_r = 6
//   method = flashq                 # starts a block: the cartesian product of its axes
//   kv_bits = 8, 4, 2, mixed
//   n_r = 4..8                      # integer ranges expand to 4, 5, 6, 7, 8
//   method = kivi                   # the next block
//   kv_bits = 4, 2
//   method = int8kv, sage, fp8, fp16
//
// Knob names and values are exactly those of turbo::knobs() (core/config.h); anything else is an
// error that names the file, the line and what is valid. The configs of a block are enumerated
// with the first axis slowest. Command-line `--set knob=v1,v2` axes replace that knob's axis in
// every block (or form the only block when there is no grid file).
//
// Redundancy: a knob that a method does not read in a phase (for example kv_bits in FlashQ
// prefill, which runs K/V at stage 1 as the paper does, or every quantizer knob of the FP16
// floor) is reset to its default in that phase's config key, and equal keys run once. Which knobs
// a method reads is its row of the method table (core/method.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/method.h"

namespace turbo {
namespace eval {

const char* phase_name(Phase p);
Phase parse_phase(const std::string& s);
std::vector<Phase> parse_phases(const std::string& list);  // "prefill,decode"

struct GridAxis {
  std::string knob;
  std::vector<std::string> values;
  std::string origin;  // "file:line" or "--set"
};

struct GridBlock {
  std::vector<GridAxis> axes;
};

struct Grid {
  std::vector<GridBlock> blocks;
  // Number of configs before de-duplication (saturates at UINT64_MAX).
  uint64_t size() const;
};

Grid parse_grid(const std::string& text, const std::string& name);
// `sets` are "knob=v1,v2,..." items. With no blocks yet they form one block.
void apply_sets(Grid& grid, const std::vector<std::string>& sets);

// Every config of the grid, block by block; throws when the grid is empty, when it holds more
// than `max_configs` configs, or when a config fails AttentionConfig::validate().
std::vector<AttentionConfig> expand_grid(const Grid& grid, uint64_t max_configs);

// The config with every knob that `phase` of its method does not read reset to its default.
AttentionConfig canonical_config(const AttentionConfig& c, Phase phase);
// Knobs that differ from the defaults, as "name=value,..." (the short label of reports).
std::string short_key(const AttentionConfig& c);

// One unit of sweep work: a canonical config in one phase. Its rows are written together.
struct Unit {
  Phase phase;
  AttentionConfig config;
  std::string key;  // config.to_string()
  std::string id() const { return std::string(phase_name(phase)) + "|" + key; }
};

// Units of `configs` x `phases` (config-major), canonicalized and de-duplicated, first kept.
std::vector<Unit> make_units(const std::vector<AttentionConfig>& configs,
                             const std::vector<Phase>& phases);

// Parses "i/n" (0 <= i < n).
struct Shard {
  int index = 0;
  int count = 1;
};
Shard parse_shard(const std::string& s);

}  // namespace eval
}  // namespace turbo

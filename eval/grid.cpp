#include "eval/grid.h"

#include <cstdlib>
#include <set>
#include <sstream>

#include "core/error.h"

namespace turbo {
namespace eval {

const char* phase_name(Phase p) { return p == Phase::kPrefill ? "prefill" : "decode"; }

Phase parse_phase(const std::string& s) {
  if (s == "prefill") return Phase::kPrefill;
  if (s == "decode") return Phase::kDecode;
  throw Error("unknown phase '" + s + "'; valid: prefill, decode");
}

namespace {

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return "";
  const size_t b = s.find_last_not_of(" \t\r");
  return s.substr(a, b - a + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(trim(cur));
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

bool is_int(const std::string& s) {
  if (s.empty()) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

// Parses the values of one axis, expanding integer ranges a..b, and checks each with the knob.
GridAxis make_axis(const std::string& knob, const std::string& values, const std::string& origin) {
  GridAxis axis;
  axis.origin = origin;
  try {
    axis.knob = find_knob(knob).name;
  } catch (const Error& e) {
    throw Error(origin + ": " + e.what());
  }
  for (const std::string& v : split(values, ',')) {
    TURBO_CHECK(!v.empty(), origin << ": empty value in the list for knob '" << knob << "'");
    const size_t dots = v.find("..");
    if (dots != std::string::npos && is_int(trim(v.substr(0, dots))) &&
        is_int(trim(v.substr(dots + 2)))) {
      const long a = std::strtol(trim(v.substr(0, dots)).c_str(), nullptr, 10);
      const long b = std::strtol(trim(v.substr(dots + 2)).c_str(), nullptr, 10);
      TURBO_CHECK(a <= b && b - a < 100000, origin << ": bad range '" << v << "'");
      for (long x = a; x <= b; ++x) axis.values.push_back(std::to_string(x));
    } else {
      axis.values.push_back(v);
    }
  }
  std::set<std::string> seen;
  for (const std::string& v : axis.values) {
    AttentionConfig probe;
    try {
      set_knob(probe, axis.knob, v);
    } catch (const Error& e) {
      throw Error(origin + ": " + e.what());
    }
    TURBO_CHECK(seen.insert(v).second,
                origin << ": value '" << v << "' repeated for knob '" << knob << "'");
  }
  return axis;
}

void put_axis(GridBlock& block, GridAxis axis) {
  for (GridAxis& a : block.axes)
    if (a.knob == axis.knob) {
      a = std::move(axis);
      return;
    }
  block.axes.push_back(std::move(axis));
}

}  // namespace

std::vector<Phase> parse_phases(const std::string& list) {
  std::vector<Phase> out;
  for (const std::string& s : split(list, ',')) {
    const Phase p = parse_phase(s);
    for (Phase q : out) TURBO_CHECK(q != p, "phase '" << s << "' given twice");
    out.push_back(p);
  }
  TURBO_CHECK(!out.empty(), "no phase given; valid: prefill, decode");
  return out;
}

uint64_t Grid::size() const {
  uint64_t total = 0;
  for (const GridBlock& b : blocks) {
    uint64_t n = 1;
    for (const GridAxis& a : b.axes) {
      const uint64_t k = a.values.size();
      if (k != 0 && n > UINT64_MAX / k) return UINT64_MAX;
      n *= k;
    }
    if (total > UINT64_MAX - n) return UINT64_MAX;
    total += n;
  }
  return total;
}

Grid parse_grid(const std::string& text, const std::string& name) {
  Grid grid;
  GridBlock common;
  bool in_block = false;
  std::set<std::string> block_knobs;  // knobs set since the block (or the file) started
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const size_t hash = line.find('#');
    if (hash != std::string::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    const std::string origin = name + ":" + std::to_string(lineno);
    const size_t eq = line.find('=');
    TURBO_CHECK(eq != std::string::npos,
                origin << ": expected 'knob = value, value, ...', got '" << line << "'");
    GridAxis axis = make_axis(trim(line.substr(0, eq)), trim(line.substr(eq + 1)), origin);
    if (axis.knob == "method") {
      grid.blocks.push_back(common);
      in_block = true;
      block_knobs.clear();
    }
    TURBO_CHECK(block_knobs.insert(axis.knob).second,
                origin << ": knob '" << axis.knob << "' given twice in one block");
    put_axis(in_block ? grid.blocks.back() : common, std::move(axis));
  }
  if (!in_block && !common.axes.empty()) grid.blocks.push_back(common);  // no method line: flashq
  TURBO_CHECK(!grid.blocks.empty(), name << ": the grid is empty (no 'knob = values' lines)");
  return grid;
}

void apply_sets(Grid& grid, const std::vector<std::string>& sets) {
  if (sets.empty()) return;
  if (grid.blocks.empty()) grid.blocks.emplace_back();
  for (const std::string& s : sets) {
    const size_t eq = s.find('=');
    TURBO_CHECK(eq != std::string::npos, "--set expects knob=v1,v2,..., got '" << s << "'");
    const GridAxis axis = make_axis(trim(s.substr(0, eq)), trim(s.substr(eq + 1)), "--set " + s);
    for (GridBlock& b : grid.blocks) put_axis(b, axis);
  }
}

std::vector<AttentionConfig> expand_grid(const Grid& grid, uint64_t max_configs) {
  const uint64_t n = grid.size();
  TURBO_CHECK(n > 0, "the grid is empty: an axis has no values");
  TURBO_CHECK(n <= max_configs, "the grid has " << (n == UINT64_MAX ? std::string("more than 2^64")
                                                                    : std::to_string(n))
                                                << " configs; a sweep takes at most " << max_configs
                                                << " (split it into several grids)");
  std::vector<AttentionConfig> out;
  for (const GridBlock& b : grid.blocks) {
    std::vector<size_t> idx(b.axes.size(), 0);
    while (true) {
      AttentionConfig c;
      for (size_t a = 0; a < b.axes.size(); ++a)
        set_knob(c, b.axes[a].knob, b.axes[a].values[idx[a]]);
      const Status st = c.validate();
      TURBO_CHECK(st.ok, "invalid config " << short_key(c) << ": " << st.message);
      out.push_back(c);
      size_t a = b.axes.size();
      while (a > 0) {
        --a;
        if (++idx[a] < b.axes[a].values.size()) break;
        idx[a] = 0;
        if (a == 0) {
          a = SIZE_MAX;
          break;
        }
      }
      if (b.axes.empty() || a == SIZE_MAX) break;
    }
  }
  return out;
}

AttentionConfig canonical_config(const AttentionConfig& c, Phase phase) {
  const AttentionConfig defaults;
  AttentionConfig out = c;
  for (const Knob& k : knobs())
    if (!method_reads(c, phase, k.name)) k.set(out, k.get(defaults));
  return out;
}

std::string short_key(const AttentionConfig& c) {
  const AttentionConfig defaults;
  std::string out = "method=" + enum_name(c.method);
  for (const Knob& k : knobs()) {
    if (std::string(k.name) == "method") continue;
    const std::string v = k.get(c);
    if (v != k.get(defaults)) out += std::string(",") + k.name + "=" + v;
  }
  return out;
}

std::vector<Unit> make_units(const std::vector<AttentionConfig>& configs,
                             const std::vector<Phase>& phases) {
  std::vector<Unit> units;
  std::set<std::string> seen;
  for (const AttentionConfig& c : configs)
    for (Phase p : phases) {
      Unit u{p, canonical_config(c, p), ""};
      u.key = u.config.to_string();
      if (seen.insert(u.id()).second) units.push_back(u);
    }
  return units;
}

Shard parse_shard(const std::string& s) {
  const size_t slash = s.find('/');
  Shard sh;
  TURBO_CHECK(
      slash != std::string::npos && is_int(s.substr(0, slash)) && is_int(s.substr(slash + 1)),
      "--shard expects i/n (for example 0/4), got '" << s << "'");
  sh.index = std::atoi(s.substr(0, slash).c_str());
  sh.count = std::atoi(s.substr(slash + 1).c_str());
  TURBO_CHECK(sh.count >= 1 && sh.index >= 0 && sh.index < sh.count,
              "--shard i/n needs 0 <= i < n, got '" << s << "'");
  return sh;
}

}  // namespace eval
}  // namespace turbo

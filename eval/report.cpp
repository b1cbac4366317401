#include "eval/report.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "core/host/file_io.h"
#include "core/host/json.h"
#include "core/host/numbers.h"
#include "eval/commands.h"
#include "eval/grid.h"
#include "eval/results.h"

namespace turbo {
namespace eval {
namespace {

struct Group {
  std::string phase, config, label, method;
  AttentionConfig cfg;
  std::vector<double> rel_l2, cosine, max_abs, sparsity, dropped, kv_bytes, fp16_bytes;
  std::vector<double> kv_bytes_mean;  // over decode positions; empty for older files
  std::map<int, std::vector<double>> by_layer;
};

double mean(const std::vector<double>& v) {
  if (v.empty()) return NAN;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}
double pct(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[rank == 0 ? 0 : rank - 1];
}
// Sort key: NaN (no finite value) orders last, keeping comparisons a strict weak order.
double key(double v) { return std::isnan(v) ? INFINITY : v; }
double vmax(const std::vector<double>& v) {
  return v.empty() ? NAN : *std::max_element(v.begin(), v.end());
}
// KV bytes per token a decode config holds: the mean over decode positions (SPEC 8), or the
// end-of-window value for files that predate the mean.
double held_bytes(const Group& g) {
  return g.kv_bytes_mean.empty() ? mean(g.kv_bytes) : mean(g.kv_bytes_mean);
}
std::string fmt(double v, const char* f = "%.3e") {
  if (std::isnan(v)) return "–";
  char buf[48];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
// A metric cell: empty (not applicable) or "nan" -> NaN; otherwise a finite number >= `lo`.
// Garbage ("abc" read as 0), infinities and negative errors are refused naming the cell.
double metric_cell(const std::string& s, const std::string& column, double lo,
                   const std::string& where) {
  if (s.empty() || s == "nan") return NAN;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  TURBO_CHECK(end != s.c_str() && *end == '\0',
              where << ": column " << column << " holds '" << s << "', not a number");
  TURBO_CHECK(std::isfinite(v) && v >= lo, where << ": column " << column << " holds " << s
                                                 << "; it must be finite and >= " << lo);
  return v;
}

// The short key without `method` (the method has its own column).
std::string label_of(const AttentionConfig& c) {
  const std::string k = short_key(c);
  const size_t comma = k.find(',');
  return comma == std::string::npos ? "(defaults)" : k.substr(comma + 1);
}
// The short key without one knob: configs equal in every other knob share it.
std::string key_without(const AttentionConfig& c, const std::string& knob) {
  AttentionConfig d = c;
  const AttentionConfig defaults;
  find_knob(knob).set(d, find_knob(knob).get(defaults));
  return short_key(d);
}

}  // namespace

std::string make_report(const std::vector<std::string>& inputs, const std::string& command) {
  TURBO_CHECK(!inputs.empty(), "report: no results files");
  std::map<std::string, std::unique_ptr<Group>> groups;  // phase|config
  std::vector<std::string> order;
  std::string sources, data_cmds;
  std::set<int> layers;
  std::map<std::string, std::string> datasets;  // data_sha256 -> model, over every row
  std::string warnings;
  for (const std::string& in : inputs) {
    const CsvTable t = read_csv(in);
    // The sidecar says how the rows were made: a missing one is noted, a broken one is an error
    // (it was silently ignored), and a sweep still "running" (or killed) is flagged as partial.
    Json side;
    if (::access(sidecar_path(in).c_str(), F_OK) == 0) {
      side = Json::parse(read_text_file(sidecar_path(in), "sidecar"), sidecar_path(in));
      TURBO_CHECK(side.is_object() && side.has("status") && side.at("status").is_string(),
                  sidecar_path(in) << " is not a sweep sidecar (no \"status\")");
      const std::string status = side.at("status").as_string();
      if (status != "complete")
        warnings += "- `" + in + "`: the sweep's status is \"" + status +
                    "\" (still running, or stopped before its last unit): partial results.\n";
    } else {
      warnings += "- `" + in + "`: no sidecar (" + sidecar_path(in) +
                  "): the command and commit are unknown.\n";
    }
    const std::string cmd = side.has("command") ? side.at("command").as_string() : "(no sidecar)";
    data_cmds += (data_cmds.empty() ? "" : "; ") + ("`" + cmd + "`");
    sources +=
        "| `" + in + "` | " + std::to_string(t.rows.size()) + " | `" + cmd + "` | " +
        (side.has("dataset") ? side.at("dataset").at("model").as_string() + " (`" +
                                   side.at("dataset").at("path").as_string() + "`, SHA-256 " +
                                   side.at("dataset").at("sha256").as_string().substr(0, 12) + "…)"
                             : std::string("?")) +
        " | " + (side.has("git_commit") ? side.at("git_commit").as_string().substr(0, 12) : "?") +
        " |\n";
    const int c_config = t.column("config"), c_phase = t.column("phase"),
              c_layer = t.column("layer"), c_rel = t.column("rel_l2"), c_cos = t.column("cosine"),
              c_max = t.column("max_abs"), c_sp = t.column("sparsity"),
              c_dm = t.column("dropped_mass"), c_kv = t.column("kv_bytes_per_token"),
              c_cr = t.column("compression");
    const int c_model = t.column("model"), c_data = t.column("data_sha256");
    int64_t row_no = 1;
    // Files written before the mean over decode positions existed lack these two columns.
    int c_kvm = -1, c_crm = -1;
    for (size_t i = 0; i < t.header.size(); ++i) {
      if (t.header[i] == "kv_bytes_mean") c_kvm = static_cast<int>(i);
      if (t.header[i] == "compression_mean") c_crm = static_cast<int>(i);
    }
    for (const auto& r : t.rows) {
      const std::string where = in + ":" + std::to_string(++row_no);
      const std::string& phase = r[static_cast<size_t>(c_phase)];
      TURBO_CHECK(phase == "prefill" || phase == "decode",
                  where << ": phase '" << phase << "' is neither prefill nor decode");
      TURBO_CHECK(!r[static_cast<size_t>(c_config)].empty(),
                  where << ": empty config (every row names its canonical config)");
      TURBO_CHECK(!r[static_cast<size_t>(c_data)].empty(),
                  where << ": empty data_sha256 (every row names its dataset)");
      datasets[r[static_cast<size_t>(c_data)]] = r[static_cast<size_t>(c_model)];
      const std::string id =
          r[static_cast<size_t>(c_phase)] + "|" + r[static_cast<size_t>(c_config)];
      auto& g = groups[id];
      if (!g) {
        g = std::make_unique<Group>();
        g->phase = r[static_cast<size_t>(c_phase)];
        g->config = r[static_cast<size_t>(c_config)];
        g->cfg = parse_attention_config(g->config);
        g->method = enum_name(g->cfg.method);
        g->label = label_of(g->cfg);
        order.push_back(id);
      }
      const int layer = static_cast<int>(
          parse_int(r[static_cast<size_t>(c_layer)], 0, 99999, where + ": column layer"));
      layers.insert(layer);
      auto cell = [&](int c, const char* name, double lo) {
        return metric_cell(r[static_cast<size_t>(c)], name, lo, where);
      };
      const double rel = cell(c_rel, "rel_l2", 0.0);
      g->rel_l2.push_back(rel);
      g->by_layer[layer].push_back(rel);
      g->cosine.push_back(cell(c_cos, "cosine", -1.0));
      g->max_abs.push_back(cell(c_max, "max_abs", 0.0));
      g->sparsity.push_back(cell(c_sp, "sparsity", 0.0));
      g->dropped.push_back(cell(c_dm, "dropped_mass", 0.0));
      const double kv = cell(c_kv, "kv_bytes_per_token", 0.0), cr = cell(c_cr, "compression", 0.0);
      if (!std::isnan(kv)) {
        g->kv_bytes.push_back(kv);
        g->fp16_bytes.push_back(kv * cr);
      }
      if (c_kvm >= 0 && c_crm >= 0) {
        const double m = cell(c_kvm, "kv_bytes_mean", 0.0);
        if (!std::isnan(m)) g->kv_bytes_mean.push_back(m);
      }
    }
  }
  TURBO_CHECK(!groups.empty(), "report: the results files hold no rows");
  // Rows of different datasets never share a mean (a D=128 file was averaged with SmolLM2).
  if (datasets.size() > 1) {
    std::string list;
    for (const auto& d : datasets)
      list += (list.empty() ? "" : "; ") + d.second + " (" + d.first.substr(0, 12) + "…)";
    throw Error("report: the inputs hold results of " + std::to_string(datasets.size()) +
                " datasets (" + list + "); report each dataset separately");
  }

  const std::string provenance = "\n_Data: " + data_cmds + ". Table: `" + command + "`._\n\n";
  std::string md = "# turboattn report\n\n";
  md +=
      "Error of each method against the ground truth — exact FP64 softmax attention of the FP16 "
      "inputs (the numerics contract in README.md) — per (config, phase, layer, query head) row, "
      "aggregated over rows. `rel L2` = ||O − O_ref|| / ||O_ref||; p95 is the nearest-rank "
      "percentile over (layer, head) rows. The FP16 noise floor (`fp16`) is a plain FP16-input, "
      "FP32-accumulate attention. KV bytes per token count K and V of one kv head as stored "
      "(SPEC 8), averaged over every decode position of the window (mean) and at its end; × is "
      "the ratio to FP16.\n\n";
  md += "| results | rows | command | dataset | commit |\n|---|---|---|---|---|\n" + sources + "\n";
  if (!warnings.empty()) md += "**Warnings**\n\n" + warnings + "\n";
  if (!warnings.empty()) std::fprintf(stderr, "report: warning:\n%s", warnings.c_str());
  md += "Report command: `" + command + "`\n\n";

  const std::vector<std::string> phases = {"prefill", "decode"};
  auto sorted_ids = [&](const std::string& phase) {
    std::vector<std::string> ids;
    for (const std::string& id : order)
      if (groups[id]->phase == phase) ids.push_back(id);
    std::stable_sort(ids.begin(), ids.end(), [&](const std::string& a, const std::string& b) {
      const Group &x = *groups[a], &y = *groups[b];
      if (x.cfg.method != y.cfg.method)
        return static_cast<int>(x.cfg.method) < static_cast<int>(y.cfg.method);
      return key(mean(x.rel_l2)) < key(mean(y.rel_l2));
    });
    return ids;
  };

  // 1. Per method.
  int section = 1;
  for (const std::string& phase : phases) {
    const std::vector<std::string> ids = sorted_ids(phase);
    if (ids.empty()) continue;
    md += "## " + std::to_string(section++) + ". Error vs exact FP64 attention per method — " +
          phase + "\n" + provenance;
    md +=
        "| method | config | rel L2 mean | p95 | max | cosine mean | max abs | sparsity | dropped "
        "mass |";
    md += phase == "decode" ? " KV B/token mean | × FP16 mean | KV B/token end | × FP16 end |\n"
                              "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
                            : "\n|---|---|---|---|---|---|---|---|---|\n";
    for (const std::string& id : ids) {
      const Group& g = *groups[id];
      md += "| " + g.method + " | `" + g.label + "` | " + fmt(mean(g.rel_l2)) + " | " +
            fmt(pct(g.rel_l2, 0.95)) + " | " + fmt(vmax(g.rel_l2)) + " | " +
            fmt(mean(g.cosine), "%.6f") + " | " + fmt(vmax(g.max_abs)) + " | " +
            fmt(mean(g.sparsity), "%.4f") + " | " + fmt(mean(g.dropped), "%.2e") + " |";
      if (phase == "decode") {
        const double fp16 = mean(g.fp16_bytes);
        const bool has_mean = !g.kv_bytes_mean.empty();
        md += " " + (has_mean ? fmt(mean(g.kv_bytes_mean), "%.1f") : std::string("—")) + " | " +
              (has_mean ? fmt(fp16 / mean(g.kv_bytes_mean), "%.2f") : std::string("—")) + " | " +
              fmt(mean(g.kv_bytes), "%.1f") + " | " + fmt(fp16 / mean(g.kv_bytes), "%.2f") + " |";
      }
      md += "\n";
    }
    md += "\n";
  }

  // 2, 3. Pivots by a knob: configs equal in every other knob on one line.
  auto pivot = [&](const std::string& knob, const std::string& title) {
    for (const std::string& phase : phases) {
      std::map<std::string, std::map<std::string, const Group*>>
          lines;  // rest key -> value -> group
      std::vector<std::string> line_order;
      std::vector<std::string> values;
      for (const std::string& id : sorted_ids(phase)) {
        const Group& g = *groups[id];
        const std::string rest = key_without(g.cfg, knob);
        const std::string v = find_knob(knob).get(g.cfg);
        if (!lines.count(rest)) line_order.push_back(rest);
        lines[rest][v] = &g;
        if (std::find(values.begin(), values.end(), v) == values.end()) values.push_back(v);
      }
      std::vector<std::string> keep;
      for (const std::string& rest : line_order)
        if (lines[rest].size() >= 2) keep.push_back(rest);
      if (keep.empty()) continue;
      // Column order: the knob's own value order (enum order, or numeric).
      const Knob& k = find_knob(knob);
      std::sort(values.begin(), values.end(), [&](const std::string& a, const std::string& b) {
        if (!k.values.empty())
          return std::find(k.values.begin(), k.values.end(), a) <
                 std::find(k.values.begin(), k.values.end(), b);
        return std::atof(a.c_str()) < std::atof(b.c_str());
      });
      md += "## " + std::to_string(section++) + ". " + title + " — " + phase + "\n" + provenance;
      md += "Mean rel L2 over (layer, head) rows";
      md += phase == "decode" ? " (KV bytes per token in parentheses).\n\n" : ".\n\n";
      md += "| config (other knobs) |";
      std::string sep = "|---|";
      for (const std::string& v : values) {
        md += " " + knob + "=" + v + " |";
        sep += "---|";
      }
      md += "\n" + sep + "\n";
      for (const std::string& rest : keep) {
        md += "| `" + rest + "` |";
        for (const std::string& v : values) {
          const auto it = lines[rest].find(v);
          if (it == lines[rest].end()) {
            md += " |";
            continue;
          }
          md += " " + fmt(mean(it->second->rel_l2));
          if (phase == "decode" && !it->second->kv_bytes.empty())
            md += " (" + fmt(held_bytes(*it->second), "%.1f") + ")";
          md += " |";
        }
        md += "\n";
      }
      md += "\n";
    }
  };
  pivot("kv_bits", "Error by KV bits");
  pivot("n_r", "Error by SAS threshold n_r");

  // 4. Per layer.
  for (const std::string& phase : phases) {
    const std::vector<std::string> ids = sorted_ids(phase);
    if (ids.empty()) continue;
    md +=
        "## " + std::to_string(section++) + ". Per-layer breakdown — " + phase + "\n" + provenance;
    md += "Mean rel L2 over the query heads of each layer.\n\n| method | config |";
    std::string sep = "|---|---|";
    for (int l : layers) {
      md += " L" + std::to_string(l) + " |";
      sep += "---|";
    }
    md += "\n" + sep + "\n";
    for (const std::string& id : ids) {
      const Group& g = *groups[id];
      md += "| " + g.method + " | `" + g.label + "` |";
      for (int l : layers) {
        const auto it = g.by_layer.find(l);
        md += " " + (it == g.by_layer.end() ? std::string() : fmt(mean(it->second))) + " |";
      }
      md += "\n";
    }
    md += "\n";
  }

  // 5. Pareto frontier of decode error vs KV bytes per token.
  {
    std::vector<const Group*> pts;
    for (const std::string& id : sorted_ids("decode"))
      if (!groups[id]->kv_bytes.empty()) pts.push_back(groups[id].get());
    if (!pts.empty()) {
      std::sort(pts.begin(), pts.end(), [](const Group* a, const Group* b) {
        const double ba = key(held_bytes(*a)), bb = key(held_bytes(*b));
        return ba != bb ? ba < bb : key(mean(a->rel_l2)) < key(mean(b->rel_l2));
      });
      md += "## " + std::to_string(section++) +
            ". Pareto frontier: decode error vs KV bytes per token (mean over decode "
            "positions)\n" +
            provenance;
      md += "Configs that no other config beats in both KV bytes per token and mean rel L2 (" +
            std::to_string(pts.size()) + " decode configs considered).\n\n";
      md +=
          "| KV B/token | × FP16 | rel L2 mean | p95 | method | config "
          "|\n|---|---|---|---|---|---|\n";
      double best = INFINITY;
      for (const Group* g : pts) {
        const double e = mean(g->rel_l2);
        if (!(e < best)) continue;
        best = e;
        md += "| " + fmt(held_bytes(*g), "%.1f") + " | " +
              fmt(mean(g->fp16_bytes) / held_bytes(*g), "%.2f") + " | " + fmt(e) + " | " +
              fmt(pct(g->rel_l2, 0.95)) + " | " + g->method + " | `" + g->label + "` |\n";
      }
      md += "\n";
    }
  }
  return md;
}

void add_report_command(CLI::App& app, CommonOptions& common) {
  auto inputs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  CLI::App* sub =
      app.add_subcommand("report", "Markdown report from sweep results (CSV + sidecar)");
  sub->add_option("results", *inputs, "results CSVs")->required();
  sub->add_option("-o,--out", *out, "Markdown file to write (default: stdout)");
  sub->callback([inputs, out, &common]() {
    if (!out->empty()) {
      std::vector<std::pair<std::string, std::string>> ins;
      for (const std::string& in : *inputs) {
        ins.emplace_back(in, "input");
        ins.emplace_back(sidecar_path(in), "the sidecar of input");
      }
      check_output_is_not_input(*out, "report -o", ins);
    }
    const std::string md = make_report(*inputs, common.command);
    if (out->empty()) {
      std::fwrite(md.data(), 1, md.size(), stdout);
    } else {
      write_file_atomic(*out, md);
      if (common.verbosity() > 0) std::fprintf(stderr, "report: %s\n", out->c_str());
    }
  });
}

}  // namespace eval
}  // namespace turbo

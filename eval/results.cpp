#include "eval/results.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "core/error.h"

namespace turbo {
namespace eval {

const std::vector<std::string>& result_columns() {
  static const std::vector<std::string> kColumns = [] {
    std::vector<std::string> c = {"config",      "phase",         "layer",
                                  "head",        "kv_head",       "head_bits",
                                  "tokens",      "rows",          "rel_l2",
                                  "nmse",        "max_abs",       "cosine",
                                  "sparsity",    "dropped_mass",  "kv_bytes_per_token",
                                  "compression", "kv_bytes_mean", "compression_mean",
                                  "model",       "data_sha256"};
    for (const Knob& k : knobs()) c.push_back(k.name);
    return c;
  }();
  return kColumns;
}

std::string csv_header() {
  std::string h;
  for (const std::string& c : result_columns()) h += (h.empty() ? "" : ",") + c;
  return h + "\n";
}

namespace {

std::string num(double v) {
  if (std::isnan(v)) return "nan";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

// A cell quoted when it holds a comma, quote or newline (RFC 4180).
std::string csv_cell(const std::string& v) {
  if (v.find_first_of(",\"\n\r") == std::string::npos) return v;
  std::string q = "\"";
  for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace

std::string format_row(const ResultRow& r, const AttentionConfig& config) {
  std::string s;
  s.reserve(512);
  s += '"' + r.config + '"';
  s += std::string(",") + phase_name(r.phase);
  s += "," + std::to_string(r.layer) + "," + std::to_string(r.head) + "," +
       std::to_string(r.kv_head);
  s += "," + (r.head_bits ? std::to_string(r.head_bits) : std::string());
  s += "," + std::to_string(r.tokens) + "," + std::to_string(r.rows);
  for (double v : {r.rel_l2, r.nmse, r.max_abs, r.cosine, r.sparsity, r.dropped_mass})
    s += "," + num(v);
  s += "," + (r.kv_bytes_per_token < 0 ? std::string() : num(r.kv_bytes_per_token));
  s += "," + (r.compression < 0 ? std::string() : num(r.compression));
  s += "," + (r.kv_bytes_mean < 0 ? std::string() : num(r.kv_bytes_mean));
  s += "," + (r.compression_mean < 0 ? std::string() : num(r.compression_mean));
  s += "," + csv_cell(r.model) + "," + csv_cell(r.data_sha256);
  for (const Knob& k : knobs())  // a knob the method does not read in this phase: empty
    s += "," + (method_reads(config, r.phase, k.name) ? k.get(config) : std::string());
  s += '\n';
  return s;
}

int CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  std::string cols;
  for (const std::string& h : header) cols += (cols.empty() ? "" : ", ") + h;
  throw Error(path + ": no column '" + name + "'; columns: " + cols);
}

std::vector<std::string> parse_csv_line(const std::string& line, const std::string& where) {
  std::vector<std::string> cells;
  std::string cur;
  bool quoted = false, was_quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          cur += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        cur += c;
      }
    } else if (c == '"' && cur.empty() && !was_quoted) {
      quoted = was_quoted = true;
    } else if (c == ',') {
      cells.push_back(cur);
      cur.clear();
      was_quoted = false;
    } else {
      cur += c;
    }
  }
  TURBO_CHECK(!quoted, where << ": unterminated quoted field");
  cells.push_back(cur);
  return cells;
}

CsvTable read_csv(const std::string& path) {
  const std::string text = read_text_file(path, "results file");
  CsvTable t;
  t.path = path;
  int64_t lineno = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;  // a last line without '\n' is a partial row: never read
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineno;
    const std::string where = path + ":" + std::to_string(lineno);
    if (lineno == 1) {
      t.header = parse_csv_line(line, where);
      continue;
    }
    std::vector<std::string> cells = parse_csv_line(line, where);
    TURBO_CHECK(cells.size() == t.header.size(),
                where << ": " << cells.size() << " cells, the header has " << t.header.size());
    t.rows.push_back(std::move(cells));
  }
  TURBO_CHECK(!t.header.empty(), path << ": empty file (no header)");
  return t;
}

ResumeScan scan_results(const std::string& path, int64_t rows_per_unit) {
  ResumeScan scan;
  const std::string text = read_text_file(path, "results file");
  scan.file_bytes = static_cast<int64_t>(text.size());
  const std::string header = csv_header();
  if (text.size() < header.size() && header.compare(0, text.size(), text) == 0) {
    scan.keep_bytes = 0;  // killed while writing the header: start the file again
    scan.dropped_partial_line = !text.empty();
    return scan;
  }
  TURBO_CHECK(text.compare(0, header.size(), header) == 0,
              path << ": the header differs from this version's columns; use another --out");
  size_t pos = header.size();
  scan.keep_bytes = static_cast<int64_t>(pos);
  std::string unit;
  int64_t unit_rows = 0;
  std::set<std::string> seen;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      scan.dropped_partial_line = true;
      break;
    }
    const std::vector<std::string> cells =
        parse_csv_line(text.substr(pos, nl - pos), path + " at byte " + std::to_string(pos));
    TURBO_CHECK(cells.size() == result_columns().size(),
                path << " at byte " << pos << ": malformed row (" << cells.size() << " cells)");
    const std::string id = cells[1] + "|" + cells[0];
    if (id != unit) {
      TURBO_CHECK(unit_rows == 0 || unit_rows == rows_per_unit,
                  path << ": unit " << unit << " has " << unit_rows << " rows, not "
                       << rows_per_unit << ", in the middle of the file");
      TURBO_CHECK(!seen.count(id), path << ": unit " << id << " appears twice");
      unit = id;
      unit_rows = 0;
    }
    ++unit_rows;
    pos = nl + 1;
    if (unit_rows == rows_per_unit) {
      scan.done.insert(unit);
      seen.insert(unit);
      scan.keep_bytes = static_cast<int64_t>(pos);
      unit_rows = 0;
      unit.clear();
    }
  }
  scan.dropped_rows = unit_rows;
  return scan;
}

ResultsWriter::ResultsWriter(const std::string& path, bool resume, int64_t keep_bytes)
    : path_(path) {
  if (resume) {
    TURBO_CHECK(::truncate(path.c_str(), keep_bytes) == 0, "cannot truncate '" << path << "'");
    fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND);
    TURBO_CHECK(fd_ >= 0, "cannot open '" << path << "' for appending");
    ::fsync(fd_);
  } else {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    TURBO_CHECK(fd_ >= 0, "cannot create '" << path << "'");
    append(csv_header());
  }
}

ResultsWriter::~ResultsWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void ResultsWriter::append(const std::string& text) {
  size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(fd_, text.data() + off, text.size() - off);
    TURBO_CHECK(n > 0, "write to '" << path_ << "' failed (disk full?)");
    off += static_cast<size_t>(n);
  }
  TURBO_CHECK(::fsync(fd_) == 0, "fsync of '" << path_ << "' failed");
}

int64_t merge_results(const std::vector<std::string>& inputs, const std::string& out,
                      const std::string& command) {
  TURBO_CHECK(!inputs.empty(), "merge: no input files");
  const OutputLock lock(out);
  std::vector<std::pair<std::string, std::string>> input_roles;
  for (const std::string& in : inputs) {
    input_roles.emplace_back(in, "input");
    input_roles.emplace_back(sidecar_path(in), "the sidecar of input");
  }
  check_output_is_not_input(out, "merge -o", input_roles);
  check_output_is_not_input(sidecar_path(out), "the sidecar of merge -o", input_roles);
  std::vector<Json> sides;
  for (const std::string& in : inputs)
    sides.push_back(Json::parse(read_text_file(sidecar_path(in), "sidecar"), sidecar_path(in)));
  // Every number taken from a sidecar is checked before it sizes or indexes anything.
  auto shard_numbers = [&](size_t i) {
    const Json& s = sides[i];
    const int64_t count = s.at("shard_count").as_int(), index = s.at("shard_index").as_int();
    const int64_t units = static_cast<int64_t>(s.at("units").size());
    TURBO_CHECK(count >= 1 && count <= std::max<int64_t>(units, 1) && index >= 0 && index < count,
                "merge: " << sidecar_path(inputs[i]) << " says shard " << index << "/" << count
                          << "; a sweep of " << units
                          << " units has shards i/n with 0 <= i < n <= the unit count");
    TURBO_CHECK(s.at("rows_per_unit").as_int() >= 1, "merge: " << sidecar_path(inputs[i])
                                                               << " has rows_per_unit "
                                                               << s.at("rows_per_unit").as_int());
    return std::make_pair(static_cast<int>(index), static_cast<int>(count));
  };
  const Json& first = sides[0];
  const std::string params = first.at("params").dump(), dataset = first.at("dataset").dump();
  const std::vector<Json> unit_list = first.at("units").items();
  const int n = shard_numbers(0).second;
  const int64_t rows_per_unit = first.at("rows_per_unit").as_int();
  std::vector<int> shard_of(static_cast<size_t>(n), -1);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Json& s = sides[i];
    shard_numbers(i);
    TURBO_CHECK(s.at("params").dump() == params && s.at("dataset").dump() == dataset,
                "merge: " << inputs[i] << " comes from a different sweep than " << inputs[0]
                          << " (dataset or parameters differ)");
    TURBO_CHECK(s.at("units").dump() == first.at("units").dump(),
                "merge: " << inputs[i] << " has a different grid than " << inputs[0]);
    TURBO_CHECK(s.at("shard_count").as_int() == n,
                "merge: " << inputs[i] << " is one of " << s.at("shard_count").as_int()
                          << " shards, " << inputs[0] << " one of " << n);
    const int idx = static_cast<int>(s.at("shard_index").as_int());
    TURBO_CHECK(shard_of[static_cast<size_t>(idx)] < 0,
                "merge: shard " << idx << "/" << n << " given twice ("
                                << inputs[static_cast<size_t>(shard_of[static_cast<size_t>(idx)])]
                                << ", " << inputs[i] << ")");
    shard_of[static_cast<size_t>(idx)] = static_cast<int>(i);
  }
  std::string missing;
  for (int s = 0; s < n; ++s)
    if (shard_of[static_cast<size_t>(s)] < 0)
      missing += (missing.empty() ? "" : ", ") + std::to_string(s) + "/" + std::to_string(n);
  TURBO_CHECK(missing.empty(), "merge: missing shard(s) " << missing);

  // Rows of every unit, by unit id; each unit must come from its own shard, complete.
  std::map<std::string, std::string> unit_rows;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string text = read_text_file(inputs[i], "merge input");
    const std::string header = csv_header();
    TURBO_CHECK(text.compare(0, header.size(), header) == 0,
                "merge: " << inputs[i] << ": unexpected header");
    size_t pos = header.size();
    while (pos < text.size()) {
      const size_t nl = text.find('\n', pos);
      TURBO_CHECK(nl != std::string::npos,
                  "merge: " << inputs[i] << " ends in a partial row; resume that shard first");
      const std::string line = text.substr(pos, nl + 1 - pos);
      const std::vector<std::string> cells =
          parse_csv_line(line.substr(0, line.size() - 1), inputs[i]);
      TURBO_CHECK(cells.size() == result_columns().size(),
                  "merge: " << inputs[i] << ": malformed row");
      unit_rows[cells[1] + "|" + cells[0]] += line;
      pos = nl + 1;
    }
  }
  std::string merged = csv_header();
  int64_t rows = 0;
  int64_t incomplete = 0;
  std::string first_incomplete;
  for (const Json& u : unit_list) {
    const std::string& id = u.as_string();
    const auto it = unit_rows.find(id);
    const int64_t have =
        it == unit_rows.end()
            ? 0
            : static_cast<int64_t>(std::count(it->second.begin(), it->second.end(), '\n'));
    if (have != rows_per_unit) {
      if (!incomplete++) first_incomplete = id;
      continue;
    }
    merged += it->second;
    rows += have;
    unit_rows.erase(it);
  }
  TURBO_CHECK(incomplete == 0, "merge: " << incomplete << " unit(s) missing or incomplete, first: "
                                         << first_incomplete << "; rerun the shard that owns it");
  TURBO_CHECK(unit_rows.empty(),
              "merge: rows of units not in the grid, e.g. " << unit_rows.begin()->first);
  write_file_atomic(out, merged);
  Json side = first;
  side.set("command", command);
  side.set("shard_index", 0);
  side.set("shard_count", 1);
  Json from = Json::array();
  for (const std::string& in : inputs) from.push(in);
  side.set("merged_from", from);
  side.set("status", "complete");
  write_file_atomic(sidecar_path(out), side.dump());
  return rows;
}

}  // namespace eval
}  // namespace turbo

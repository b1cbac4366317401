// Sweep result files: a tidy CSV (one row per config, phase, layer and query head) plus a JSON
// sidecar `<csv>.json`, written so that a kill at any instant loses nothing already written and
// leaves no half row, and so that shards merge into exactly the unsharded file.
//
// CSV columns (eval/README.md documents each): config, phase, layer, head, kv_head, head_bits,
// tokens, rows, rel_l2, nmse, max_abs, cosine, sparsity, dropped_mass, kv_bytes_per_token,
// compression (both at the end of the window), kv_bytes_mean, compression_mean (averaged over
// every decode position of the window, SPEC 8), model, data_sha256, then one column per knob of
// turbo::knobs() in table order. `config` is the canonical AttentionConfig::to_string() key
// (double-quoted: it contains commas). Numbers are printed with %.10g, so equal results give equal
// bytes. Empty cells mean "not applicable"; a knob column is empty where the row's method does not
// read that knob in the row's phase (the method table, core/method.h), while `config` keeps the
// full key.
//
// The rows of one unit (config x phase: all layers and heads) are appended with one write(),
// then fflush'ed and fsync'ed. On resume a file is scanned: a trailing partial line or a last
// unit with fewer rows than a unit has is cut off (truncate), the complete units are skipped.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/host/file_io.h"
#include "core/host/json.h"
#include "eval/grid.h"

namespace turbo {
namespace eval {

struct ResultRow {
  std::string config;
  Phase phase = Phase::kPrefill;
  int layer = 0, head = 0, kv_head = 0;
  int head_bits = 0;  // KV bits of this kv head (decode of flashq/kivi); 0 = not applicable
  int64_t tokens = 0, rows = 0;
  double rel_l2 = 0, nmse = 0, max_abs = 0, cosine = 0;
  double sparsity = 0, dropped_mass = 0;
  // KV bytes per token per kv head (SPEC 8) and the ratio to FP16, at the end of the window and
  // averaged over the decode positions [decode_start(tokens), tokens). < 0: not applicable.
  double kv_bytes_per_token = -1, compression = -1;
  double kv_bytes_mean = -1, compression_mean = -1;
  std::string model, data_sha256;  // the dataset the row was measured on (its model, file hash)
};

const std::vector<std::string>& result_columns();
std::string csv_header();
// One CSV line (with '\n') for `row`; knob columns from `config`.
std::string format_row(const ResultRow& row, const AttentionConfig& config);

// A parsed CSV: header and string cells, with column lookup.
struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  int column(const std::string& name) const;  // throws naming the file's columns
  std::string path;
};
std::vector<std::string> parse_csv_line(const std::string& line, const std::string& where);
CsvTable read_csv(const std::string& path);

// Result of scanning an existing results file for resume.
struct ResumeScan {
  std::set<std::string> done;  // unit ids (phase|key) with all their rows
  int64_t keep_bytes = 0;      // file offset after the last complete unit (0: no whole header)
  int64_t dropped_rows = 0;    // complete lines of an incomplete last unit
  bool dropped_partial_line = false;
  int64_t file_bytes = 0;
};
ResumeScan scan_results(const std::string& path, int64_t rows_per_unit);

// Appends whole units to a results file: every append is one write() + fsync().
class ResultsWriter {
 public:
  // Creates the file with the header, or (resume) truncates it to `keep_bytes`.
  ResultsWriter(const std::string& path, bool resume, int64_t keep_bytes);
  ~ResultsWriter();
  ResultsWriter(const ResultsWriter&) = delete;
  ResultsWriter& operator=(const ResultsWriter&) = delete;
  void append(const std::string& text);

 private:
  std::string path_;
  int fd_ = -1;
};

// Sidecar path of a results CSV.
inline std::string sidecar_path(const std::string& csv) { return csv + ".json"; }

// Merges shard outputs into `out` (+ sidecar): every shard i/n of one sweep must be present and
// complete; rows come out in the sweep's unit order, so the result is byte-equal to the CSV of
// the same sweep run unsharded. Returns the number of rows written.
int64_t merge_results(const std::vector<std::string>& inputs, const std::string& out,
                      const std::string& command);

}  // namespace eval
}  // namespace turbo

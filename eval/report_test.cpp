// Tests of `turboattn report`: every table, its command, its numbers; bad cells refused.
#include "eval/report.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/host/json.h"
#include "datasets/activations.h"
#include "datasets/commands.h"
#include "eval/results.h"
#include "eval/test_util.h"

namespace turbo {
namespace eval {
namespace {

using namespace test;  // NOLINT

TEST(Report, HasEveryTableAndItsCommand) {
  const std::string out = path("report_in.csv");
  ASSERT_EQ(run(sweep_args(out)), 0);
  const std::string md = make_report({out}, "turboattn report test");
  for (const char* s :
       {"Error vs exact FP64 attention per method — prefill",
        "Error vs exact FP64 attention per method — decode", "Error by KV bits — decode",
        "Error by SAS threshold n_r", "Per-layer breakdown", "Pareto frontier", "| kivi |",
        "| fp16 |", "| int8kv |", "| sage |", "| fp8 |"})
    EXPECT_NE(md.find(s), std::string::npos) << s;
  const Json side = Json::parse(slurp(sidecar_path(out)), "sidecar");
  size_t tables = 0, named = 0;
  for (size_t p = md.find("\n## "); p != std::string::npos; p = md.find("\n## ", p + 1)) {
    ++tables;
    const size_t next = md.find("\n## ", p + 1);
    const std::string body = md.substr(p, next == std::string::npos ? std::string::npos : next - p);
    if (body.find(side.at("command").as_string()) != std::string::npos &&
        body.find("turboattn report test") != std::string::npos)
      ++named;
  }
  EXPECT_GE(tables, 7u);
  EXPECT_EQ(named, tables);
  // The numbers: int8kv's decode mean and max rel L2, recomputed from the CSV.
  const CsvTable t = read_csv(out);
  double sum = 0, mx = 0;
  int n = 0;
  for (const auto& r : t.rows)
    if (r[static_cast<size_t>(t.column("phase"))] == "decode" &&
        r[static_cast<size_t>(t.column("method"))] == "int8kv") {
      const double e = std::stod(r[static_cast<size_t>(t.column("rel_l2"))]);
      sum += e;
      mx = std::max(mx, e);
      ++n;
    }
  ASSERT_EQ(n, 12);
  char expect[128];
  std::snprintf(expect, sizeof expect, "| int8kv | `(defaults)` | %.3e | ", sum / n);
  const size_t decode = md.find("Error vs exact FP64 attention per method — decode");
  const size_t line = md.find(expect, decode);
  ASSERT_NE(line, std::string::npos) << expect;
  char max_text[32];
  std::snprintf(max_text, sizeof max_text, " | %.3e | ", mx);
  EXPECT_NE(md.substr(line, md.find('\n', line) - line).find(max_text), std::string::npos);
}

// ---- issue 10 defect 12 and "outputs that say what they mean" -----------------------------------

// A small results file (fp16 prefill) and a copy of it with one cell of its first row replaced.
std::string small_results() {
  static const std::string p = [] {
    const std::string out = path("report_small.csv");
    EXPECT_EQ(run({"sweep", "-q", "--data", eval_file(), "--set", "method=fp16", "--phases",
                   "prefill", "-o", out}),
              0);
    return out;
  }();
  return p;
}

std::string with_cell(const std::string& name, const std::string& column,
                      const std::string& value) {
  const CsvTable t = read_csv(small_results());
  const std::string out = path(name);
  std::string text;
  for (size_t r = 0; r <= t.rows.size(); ++r) {
    const std::vector<std::string>& cells = r == 0 ? t.header : t.rows[r - 1];
    std::string line;
    for (size_t c = 0; c < cells.size(); ++c) {
      std::string v = cells[c];
      if (r == 1 && static_cast<int>(c) == t.column(column)) v = value;
      if (r > 0 && c == 0) v = "\"" + v + "\"";
      line += (c ? "," : "") + v;
    }
    text += line + "\n";
  }
  write_text(out, text);
  write_text(sidecar_path(out), slurp(sidecar_path(small_results())));
  return out;
}

std::string report_error(const std::vector<std::string>& inputs) {
  try {
    make_report(inputs, "test");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Report, BadCellsAreRefusedByName) {
  ASSERT_EQ(report_error({small_results()}), "");
  EXPECT_NE(report_error({with_cell("c1.csv", "rel_l2", "abc")})
                .find("column rel_l2 holds 'abc', not a number"),
            std::string::npos);
  EXPECT_NE(report_error({with_cell("c2.csv", "layer", "xyz")}).find("column layer"),
            std::string::npos);
  EXPECT_NE(report_error({with_cell("c3.csv", "phase", "train")})
                .find("phase 'train' is neither prefill nor decode"),
            std::string::npos);
  EXPECT_NE(report_error({with_cell("c4.csv", "config", "")}).find("empty config"),
            std::string::npos);
  for (const char* bad : {"-1", "inf", "-inf", "1e999"})
    EXPECT_NE(report_error({with_cell("c5.csv", "rel_l2", bad)}).find("must be finite and >= 0"),
              std::string::npos)
        << bad;
  EXPECT_NE(report_error({with_cell("c6.csv", "cosine", "-2")}).find("must be finite and >= -1"),
            std::string::npos);
}

TEST(Report, SidecarProblemsAreErrorsOrWarnings) {
  const std::string garbage = with_cell("s1.csv", "rel_l2", "0.5");
  write_text(sidecar_path(garbage), "{not json");
  EXPECT_NE(report_error({garbage}).find("invalid JSON"), std::string::npos);
  write_text(sidecar_path(garbage), "[1, 2]");
  EXPECT_NE(report_error({garbage}).find("is not a sweep sidecar"), std::string::npos);
  // A sweep still running (or killed) is reported, with a warning in the report and on stderr.
  const std::string running = with_cell("s2.csv", "rel_l2", "0.5");
  Json side = Json::parse(slurp(sidecar_path(running)), "sidecar");
  side.set("status", "running");
  write_text(sidecar_path(running), side.dump());
  testing::internal::CaptureStderr();
  const std::string md = make_report({running}, "test");
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(md.find("status is \"running\""), std::string::npos) << md.substr(0, 2000);
  EXPECT_NE(err.find("partial results"), std::string::npos) << err;
}

// Rows of two datasets never share a mean; each row names its dataset.
TEST(Report, RefusesToMixDatasets) {
  const std::string other_data = write_activations("report_other.h5", 77, 96);
  const std::string other = path("report_other.csv");
  ASSERT_EQ(run({"sweep", "-q", "--data", other_data, "--set", "method=fp16", "--phases", "prefill",
                 "-o", other}),
            0);
  const CsvTable t = read_csv(other);
  EXPECT_EQ(t.rows.at(0)[static_cast<size_t>(t.column("data_sha256"))],
            data::ActivationReader(other_data).sha256());
  EXPECT_EQ(t.rows.at(0)[static_cast<size_t>(t.column("model"))], "synthetic");
  EXPECT_NE(report_error({small_results(), other}).find("hold results of 2 datasets"),
            std::string::npos);
}

// Issue 10 defect 8: `report r.csv -o r.csv` destroyed the results.
TEST(Report, OutputEqualToAnInputIsRefused) {
  const std::string in = with_cell("self_report.csv", "rel_l2", "0.5");
  const std::string before = slurp(in);
  auto [rc, err] = run_capturing({"report", in, "-o", in});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("same file as input"), std::string::npos) << err;
  EXPECT_EQ(slurp(in), before);
}

}  // namespace
}  // namespace eval
}  // namespace turbo

// Tests of `turboattn sweep`: tidy rows and sidecar, resume after a real SIGKILL, bad input
// (clear errors, no rows), and error ordering on real model activations.
#include "eval/sweep.h"

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
#include "eval/grid.h"
#include "eval/results.h"
#include "eval/test_util.h"

namespace turbo {
namespace eval {
namespace {

using namespace test;  // NOLINT
// ---- sweep files --------------------------------------------------------------------------------

TEST(Sweep, WritesTidyRowsWithSidecar) {
  const std::string out = path("tidy.csv");
  ASSERT_EQ(run(sweep_args(out)), 0);
  const CsvTable t = read_csv(out);
  const Json side = Json::parse(slurp(sidecar_path(out)), "sidecar");
  const int64_t units = static_cast<int64_t>(side.at("units").items().size());
  // flashq: prefill n_r 5/6 (kv_bits collapses), decode 3 x 2; kivi: prefill 1 (the authors'
  // prefill attends unquantized K/V: kv_bits collapses), decode 2; int8kv, sage, fp8, fp16 2 each.
  EXPECT_EQ(units, 2 + 6 + 3 + 8);
  EXPECT_EQ(static_cast<int64_t>(t.rows.size()), units * 3 * 4);  // 3 layers x 4 heads
  EXPECT_EQ(side.at("status").as_string(), "complete");
  EXPECT_EQ(side.at("dataset").at("sha256").as_string(),
            data::ActivationReader(eval_file()).sha256());
  EXPECT_NE(side.at("command").as_string().find("sweep"), std::string::npos);
  EXPECT_FALSE(side.at("git_commit").as_string().empty());
  const int rel = t.column("rel_l2"), cos = t.column("cosine"), kv = t.column("kv_bytes_per_token"),
            phase = t.column("phase"), cr = t.column("compression"), rows = t.column("rows"),
            kvm = t.column("kv_bytes_mean"), crm = t.column("compression_mean");
  for (const auto& r : t.rows) {
    const double e = std::stod(r[static_cast<size_t>(rel)]);
    EXPECT_TRUE(e > 0 && e < 2) << e;
    EXPECT_GT(std::stod(r[static_cast<size_t>(cos)]), 0.0);
    if (r[static_cast<size_t>(phase)] == "decode") {
      EXPECT_GT(std::stod(r[static_cast<size_t>(kv)]), 0.0);
      EXPECT_GT(std::stod(r[static_cast<size_t>(cr)]), 0.0);
      // Bytes read at every decode position: FP16 holds 4 * D = 256 bytes at each of them.
      const double m = std::stod(r[static_cast<size_t>(kvm)]);
      EXPECT_GT(m, 0.0);
      EXPECT_NEAR(m * std::stod(r[static_cast<size_t>(crm)]), 256.0, 1e-6);
      if (r[0].find("method=fp16") != std::string::npos) EXPECT_EQ(m, 256.0);
      EXPECT_EQ(r[static_cast<size_t>(rows)], "3");
    } else {
      EXPECT_EQ(r[static_cast<size_t>(kv)], "");
      EXPECT_EQ(r[static_cast<size_t>(kvm)], "");
      EXPECT_EQ(r[static_cast<size_t>(rows)], "96");
    }
  }
  // Knob cells: the value where the row's method reads the knob in the row's phase (the method
  // table), empty where it does not; the config key keeps every knob.
  const int method = t.column("method"), config = t.column("config");
  int64_t empty = 0;
  for (const auto& r : t.rows) {
    const AttentionConfig c = parse_attention_config(r[static_cast<size_t>(config)]);
    const Phase p = parse_phase(r[static_cast<size_t>(phase)]);
    for (const Knob& k : knobs()) {
      const std::string& cell = r[static_cast<size_t>(t.column(k.name))];
      EXPECT_EQ(cell, method_reads(c, p, k.name) ? k.get(c) : "") << k.name;
      empty += cell.empty();
    }
    EXPECT_EQ(r[static_cast<size_t>(method)], enum_name(c.method));
  }
  EXPECT_GT(empty, 0);
  // A rerun finds everything done and leaves the file byte-identical.
  const std::string before = slurp(out);
  ASSERT_EQ(run(sweep_args(out)), 0);
  EXPECT_EQ(slurp(out), before);
}

// A longer sweep (52 units, 12 decode positions) so that a kill lands mid-run on a fast machine.
std::vector<std::string> kill_args(const std::string& out) {
  return {"sweep",     "-q",     "--data", eval_file(),   "--grid", grid_file(), "--set",
          "n_r=3..12", "--seed", "7",      "--positions", "12",     "-o",        out};
}

TEST(Sweep, KnobFlagsEqualSetAxes) {
  const std::string a = path("flags_a.csv"), b = path("flags_b.csv");
  ASSERT_EQ(run({"sweep", "-q", "--data", eval_file(), "--method", "flashq,kivi", "--kv_bits",
                 "4,2", "--phases", "decode", "-o", a}),
            0);
  ASSERT_EQ(run({"sweep", "-q", "--data", eval_file(), "--set", "method=flashq,kivi", "--set",
                 "kv_bits=4,2", "--phases", "decode", "-o", b}),
            0);
  EXPECT_EQ(slurp(a), slurp(b));
  EXPECT_EQ(read_csv(a).rows.size(), 4u * 3u * 4u);  // 4 configs x 3 layers x 4 heads
}

TEST(Sweep, ResumeAfterSigkillEqualsUninterruptedRun) {
  const std::string full = path("uninterrupted.csv");
  ASSERT_EQ(run(kill_args(full)), 0);
  const std::string expected = slurp(full);

  const std::string out = path("killed.csv");
  int killed_mid_run = 0;
  for (int attempt = 0; attempt < 5 && !killed_mid_run; ++attempt) {
    ::unlink(out.c_str());
    ::unlink(sidecar_path(out).c_str());
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::vector<std::string> args = kill_args(out);
      args.insert(args.begin(), TURBOATTN_EXE);
      args.push_back("--threads");
      args.push_back("1");
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(&a[0]);
      argv.push_back(nullptr);
      ::execv(TURBOATTN_EXE, argv.data());
      ::_exit(127);
    }
    // Kill once the first unit is on disk, while the sweep is still running.
    const size_t header = csv_header().size();
    const auto t0 = std::chrono::steady_clock::now();
    int status = 0;
    bool exited = false;
    while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
      struct stat st;
      if (::stat(out.c_str(), &st) == 0 && static_cast<size_t>(st.st_size) > header + 200) break;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200 + 500 * attempt));
    }
    if (!exited && ::waitpid(pid, &status, WNOHANG) == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) killed_mid_run = 1;
    }
  }
  ASSERT_TRUE(killed_mid_run) << "the sweep always finished before it could be killed";
  const std::string partial = slurp(out);
  ASSERT_LT(partial.size(), expected.size());
  std::fprintf(stderr, "killed with %zu of %zu bytes written\n", partial.size(), expected.size());
  EXPECT_EQ(expected.substr(0, partial.size()), partial)
      << "what a killed sweep left must be a prefix of the full result";
  // A half row at the end (a kill inside a write) must be dropped as well.
  {
    std::ofstream(out, std::ios::app | std::ios::binary)
        << "\"method=flashq,q_gran=tile\",decode,0,1,0,4,96";
  }
  std::vector<std::string> resume = kill_args(out);
  resume.erase(std::find(resume.begin(), resume.end(), "-q"));  // keep its resume message
  auto [rc, err] = run_capturing(resume);
  ASSERT_EQ(rc, 0) << err;
  EXPECT_EQ(slurp(out), expected);
  EXPECT_NE(err.find("partial line"), std::string::npos) << err;
  // Killed while the header itself was being written: the file starts again.
  ASSERT_EQ(::truncate(out.c_str(), 30), 0);
  ASSERT_EQ(run(kill_args(out)), 0);
  EXPECT_EQ(slurp(out), expected);
}

// ---- bad input ----------------------------------------------------------------------------------

// Runs a sweep that must fail: non-zero exit, the message holds `fragment`, no results file.
void expect_sweep_error(std::vector<std::string> args, const std::string& fragment) {
  const std::string out = path("bad.csv");
  ::unlink(out.c_str());
  ::unlink(sidecar_path(out).c_str());
  args.insert(args.begin(), "sweep");
  args.push_back("-o");
  args.push_back(out);
  auto [rc, err] = run_capturing(args);
  EXPECT_NE(rc, 0) << fragment;
  EXPECT_NE(err.find(fragment), std::string::npos) << "expected '" << fragment << "' in: " << err;
  EXPECT_FALSE(exists(out)) << "a failed sweep left " << out;
}

TEST(BadInput, IsRejectedWithoutRows) {
  const std::string data = eval_file();
  expect_sweep_error({"--data", data, "--set", "method=flashq", "--set", "nr=4"},
                     "unknown knob 'nr'; valid: method");
  expect_sweep_error({"--data", data, "--set", "method=flashq,warp"},
                     "valid: flashq, fp16, kivi, int8kv, sage, fp8");
  expect_sweep_error({"--data", data, "--set", "kv_bits=16"}, "valid: 8, 4, 2, mixed");
  expect_sweep_error({"--data", data, "--kv_bits", "4,16"}, "valid: 8, 4, 2, mixed");
  const std::string empty = path("empty_grid.txt");
  write_text(empty, "# only comments\n");
  expect_sweep_error({"--data", data, "--grid", empty}, "the grid is empty");
  expect_sweep_error(
      {"--data", data, "--set", "n_r=3..10", "--set", "br=1..200", "--max-configs", "1000"},
      "a sweep takes at most 1000");
  expect_sweep_error({"--data", data, "--set", "method=kivi", "--set", "kv_bits=8"},
                     "kivi takes kv_bits 4, 2, mixed, got 8");
  expect_sweep_error({"--data", data, "--set", "kv_bits=mixed"}, "--bits-map");
  expect_sweep_error({"--data", data, "--set", "kv_bits=mixed", "--calib", data},
                     "calibrated on the evaluation file");
  expect_sweep_error({"--data", data, "--set", "method=fp16", "--layers", "5"},
                     "layers present: 0,1,2");
  expect_sweep_error({"--data", data, "--set", "method=fp16", "--tokens", "1000"},
                     "exceeds the 96 tokens");
  expect_sweep_error({"--data", data, "--set", "method=fp16", "--phases", "train"},
                     "valid: prefill, decode");
  expect_sweep_error({"--data", path("nope.h5"), "--set", "method=fp16"}, "does not exist");
  const std::string not_h5 = path("not.h5");
  write_text(not_h5, "plain text, not HDF5");
  expect_sweep_error({"--data", not_h5, "--set", "method=fp16"}, "not an HDF5 file");
  // A file with a layer missing from /layers.
  {
    const std::string p = write_activations("missing_layer.h5", 3, 32, {0, 2});
    expect_sweep_error({"--data", p, "--set", "method=fp16", "--layers", "1"},
                       "layer 1 is not in the dataset");
  }
  // Schema violations written behind the writer's back: a newer schema_version, a listed layer
  // whose group is gone.
  {
    const std::string p = write_activations("schema.h5", 5, 32);
    const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t a = H5Aopen(f, "schema_version", H5P_DEFAULT);
    const int32_t version = 2;
    ASSERT_GE(H5Awrite(a, H5T_NATIVE_INT32, &version), 0);
    H5Aclose(a);
    H5Fclose(f);
    expect_sweep_error({"--data", p, "--set", "method=fp16"}, "has schema_version 2");
  }
  {
    const std::string p = write_activations("gone.h5", 6, 32);
    const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    ASSERT_GE(H5Ldelete(f, "/layers/2", H5P_DEFAULT), 0);
    H5Fclose(f);
    expect_sweep_error({"--data", p, "--set", "method=fp16"}, "layer 2 is listed but");
  }
  // A non-finite value written behind the writer's back (the writer refuses them).
  {
    const std::string p = write_activations("inf.h5", 4, 32);
    const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t d = H5Dopen2(f, "/layers/1/k", H5P_DEFAULT);
    ASSERT_GE(d, 0);
    const hid_t space = H5Dget_space(d);
    const hsize_t start[3] = {1, 7, 3}, count[3] = {1, 1, 1};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr);
    const hid_t mem = H5Screate_simple(3, count, nullptr);
    const float inf = INFINITY;
    ASSERT_GE(H5Dwrite(d, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, &inf), 0);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(f);
    expect_sweep_error({"--data", p, "--set", "method=fp16"}, "non-finite value in K");
  }
  // Too large for the disk.
  EXPECT_THROW(check_disk_space(path("x.csv"), uint64_t{1} << 62), Error);
  EXPECT_NO_THROW(check_disk_space(path("x.csv"), 1000));
  // An existing output from other parameters is not silently mixed with new rows.
  const std::string out = path("params.csv");
  ASSERT_EQ(
      run({"sweep", "-q", "--data", data, "--set", "method=fp16", "--positions", "2", "-o", out}),
      0);
  auto [rc, err] = run_capturing(
      {"sweep", "-q", "--data", data, "--set", "method=fp16", "--positions", "3", "-o", out});
  EXPECT_NE(rc, 0);
  EXPECT_NE(err.find("other data or parameters"), std::string::npos) << err;
}

// ---- real data ----------------------------------------------------------------------------------

// The embedded SmolLM2 activations, or (while they are not in the tree) a capture of the fetched
// SmolLM2 model over this repository's README.
std::string real_data() {
  if (exists(TURBO_EMBEDDED_EVAL)) return TURBO_EMBEDDED_EVAL;
  const std::string p = path("real.h5");
  if (exists(p)) return p;
  data::CaptureOptions c;
  c.text = TURBO_SOURCE_DIR "/README.md";
  c.out = p;
  c.layers = "0,10,20";
  c.max_tokens = 256;
  c.force = true;
  testing::internal::CaptureStderr();
  data::run_capture(c);
  testing::internal::GetCapturedStderr();
  return p;
}

TEST(RealData, ErrorOrdersByBits) {
  const std::string out = path("real.csv");
  const std::string data = real_data();
  const data::ActivationReader r(data);
  const int64_t tokens = std::min<int64_t>(r.meta().n_tokens, 256);
  const std::string grid = path("real_grid.txt");
  write_text(grid, "method = flashq\nkv_bits = 8, 4, 2\nmethod = kivi\nkv_bits = 4, 2\n");
  ASSERT_EQ(
      run({"sweep", "-q", "--data", data, "--layers",
           std::to_string(r.meta().layers.front()) + "," + std::to_string(r.meta().layers.back()),
           "--tokens", std::to_string(tokens), "--positions", "6", "--phases", "decode", "--grid",
           grid, "-o", out}),
      0);
  // Mean rel L2 per (method, bits).
  const CsvTable t = read_csv(out);
  std::map<std::string, std::pair<double, int>> acc;
  const int cfg = t.column("config"), rel = t.column("rel_l2");
  for (const auto& row : t.rows) {
    const AttentionConfig c = parse_attention_config(row[static_cast<size_t>(cfg)]);
    auto& a = acc[enum_name(c.method) + "/" + enum_name(c.quant.kv_bits)];
    a.first += std::stod(row[static_cast<size_t>(rel)]);
    a.second += 1;
  }
  auto mean = [&](const std::string& k) {
    EXPECT_TRUE(acc.count(k)) << k;
    return acc[k].first / acc[k].second;
  };
  EXPECT_LT(mean("flashq/8"), mean("flashq/4"));
  EXPECT_LT(mean("flashq/4"), mean("flashq/2"));
  EXPECT_LT(mean("kivi/4"), mean("kivi/2"));
}

// ---- issue 10: the bad-input campaign's findings ------------------------------------------------

// Defects 6, 7, 13: values that overflowed, wrapped or allocated without bound.
TEST(BadInput, NumbersAreBoundedAndNeverWrap) {
  const std::string data = eval_file();
  expect_sweep_error({"--data", data, "--set", "method=sage", "--bc", "2147483647"},
                     "br and bc must be in [1, 65536]");
  expect_sweep_error({"--data", data, "--set", "method=fp8", "--set", "bc=100000"},
                     "br and bc must be in [1, 65536]");
  expect_sweep_error({"--data", data, "--set", "method=fp16", "--threads", "100000"}, "--threads");
  expect_sweep_error({"--data", data, "--set", "method=fp16", "--shard", "0/4294967297"},
                     "--shard count n: 4294967297 is outside");
  expect_sweep_error({"--data", data, "--set", "method=fp16", "--seed", "-1"},
                     "not a non-negative integer");
  expect_sweep_error({"--data", data, "--set", "method=fp16", "--seed", "18446744073709551616"},
                     "is outside [0, 18446744073709551615]");
  expect_sweep_error({"--data", data, "--set", "method=fp16", "--tokens", "-1"},
                     "--tokens must be >= 0");
  expect_sweep_error({"--data", data, "--set", "method=fp16", "--layers", "0-99999999999"},
                     "--layers");
  // The largest seed is a seed, not an error.
  EXPECT_EQ(run({"sweep", "-q", "--data", data, "--set", "method=fp16", "--phases", "decode",
                 "--seed", "18446744073709551615", "-o", path("seed_max.csv")}),
            0);
}

// Defects 2 and 15: files that are not what they claim.
TEST(BadInput, DirectoriesFifosAndDeepJsonAreNamed) {
  const std::string data = eval_file();
  const std::string dir = path("a_dir");
  ::mkdir(dir.c_str(), 0700);
  expect_sweep_error({"--data", data, "--grid", dir}, "--grid '" + dir + "' is a directory");
  expect_sweep_error({"--data", dir, "--set", "method=fp16"}, "is a directory");
  expect_sweep_error({"--data", data, "--set", "kv_bits=mixed", "--bits-map", dir},
                     "is a directory");
  const std::string fifo = path("a_fifo");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_sweep_error({"--data", fifo, "--set", "method=fp16"}, "FIFO");
  expect_sweep_error({"--data", data, "--grid", fifo}, "FIFO");
  const std::string deep = path("deep.json");
  write_text(deep, std::string(30000, '['));
  expect_sweep_error({"--data", data, "--set", "kv_bits=mixed", "--bits-map", deep},
                     "nested deeper");
  // A deep sidecar on resume.
  const std::string out = path("deep_side.csv");
  ASSERT_EQ(run({"sweep", "-q", "--data", data, "--set", "method=fp16", "-o", out}), 0);
  write_text(sidecar_path(out), std::string(30000, '['));
  auto [rc, err] = run_capturing({"sweep", "--data", data, "--set", "method=fp16", "-o", out});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("nested deeper"), std::string::npos) << err;
}

// Defect 8: -o equal to an input destroyed it, with or without --overwrite.
TEST(BadInput, OutputEqualToAnInputIsRefused) {
  const std::string data = write_activations("self.h5", 11, 32);
  const std::string data_bytes = slurp(data);
  for (bool overwrite : {false, true}) {
    std::vector<std::string> args = {"sweep", "--data", data, "--set", "method=fp16", "-o", data};
    if (overwrite) args.push_back("--overwrite");
    auto [rc, err] = run_capturing(args);
    EXPECT_EQ(rc, 1);
    EXPECT_NE(err.find("same file as --data"), std::string::npos) << err;
    EXPECT_EQ(slurp(data), data_bytes);
  }
  const std::string grid = grid_file(), grid_bytes = slurp(grid);
  auto [rc, err] =
      run_capturing({"sweep", "--data", data, "--grid", grid, "-o", grid, "--overwrite"});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("same file as --grid"), std::string::npos) << err;
  EXPECT_EQ(slurp(grid), grid_bytes);
  // calibrate -o onto its --data.
  auto [rc2, err2] = run_capturing({"calibrate", "--data", data, "-o", data});
  EXPECT_EQ(rc2, 1);
  EXPECT_NE(err2.find("same file as --data"), std::string::npos) << err2;
  EXPECT_EQ(slurp(data), data_bytes);
}

// Defect 9: two sweeps on one -o both exited 0 with duplicate rows. The second is refused while
// the first holds the lock (held here by the test itself).
TEST(BadInput, SecondWriterOfOneOutputIsRefused) {
  const std::string out = path("locked.csv");
  {
    const OutputLock held(out);
    auto [rc, err] =
        run_capturing({"sweep", "--data", eval_file(), "--set", "method=fp16", "-o", out});
    EXPECT_EQ(rc, 1);
    EXPECT_NE(err.find("another turboattn process is writing"), std::string::npos) << err;
    EXPECT_FALSE(exists(out));
  }
  EXPECT_EQ(run({"sweep", "-q", "--data", eval_file(), "--set", "method=fp16", "-o", out}), 0);
}

// Defect 14: a file whose `layers` attribute is empty gave a header-only CSV marked complete.
TEST(BadInput, FileWithoutLayersIsRefused) {
  const std::string p = write_activations("no_layers.h5", 12, 32);
  const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  ASSERT_GE(H5Adelete(f, "layers"), 0);
  const hsize_t zero = 0;
  const hid_t sp = H5Screate_simple(1, &zero, nullptr);
  H5Aclose(H5Acreate2(f, "layers", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT));
  H5Sclose(sp);
  H5Fclose(f);
  expect_sweep_error({"--data", p, "--set", "method=fp16"}, "lists no layer");
}

// A resumed or grown sweep keeps every command and unit list in its sidecar (the last run's
// command alone hid how the first rows were made).
TEST(Sweep, GrownSweepKeepsEveryRunInItsSidecar) {
  const std::string out = path("grown.csv");
  ASSERT_EQ(run({"sweep", "-q", "--data", eval_file(), "--set", "method=fp16", "--phases",
                 "prefill", "-o", out}),
            0);
  ASSERT_EQ(run({"sweep", "-q", "--data", eval_file(), "--set", "method=fp16,int8kv", "--phases",
                 "prefill", "-o", out}),
            0);
  const Json side = Json::parse(slurp(sidecar_path(out)), "sidecar");
  const std::vector<Json> history = side.at("history").items();
  ASSERT_EQ(history.size(), 2u);
  EXPECT_NE(history[0].at("command").as_string().find("method=fp16 "), std::string::npos);
  EXPECT_NE(history[1].at("command").as_string().find("method=fp16,int8kv"), std::string::npos);
  EXPECT_EQ(history[0].at("units").size(), 1u);
  EXPECT_EQ(history[1].at("units").size(), 2u);
  EXPECT_EQ(read_csv(out).rows.size(), 2u * 3u * 4u);
  // Integers are integers in every sidecar.
  EXPECT_NE(slurp(sidecar_path(out)).find("\"n_layers\": 3,"), std::string::npos);
}

}  // namespace
}  // namespace eval
}  // namespace turbo

// Tests of the turboattn driver: grid parsing and redundancy rules, resume after a real SIGKILL,
// shard + merge equality, bad-input errors (no garbage rows), calibration maps, report and
// validate, and sane error ordering on real model activations.
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
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "datasets/activations.h"
#include "datasets/commands.h"
#include "eval/calibrate.h"
#include "eval/commands.h"
#include "eval/grid.h"
#include "eval/json.h"
#include "eval/report.h"
#include "eval/results.h"
#include "eval/sweep.h"
#include "eval/validate.h"

namespace turbo {
namespace eval {
namespace {

// ---- fixtures -----------------------------------------------------------------------------------

std::string temp_dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/turboattn_eval_test_XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    EXPECT_NE(d, nullptr);
    return std::string(d);
  }();
  return dir;
}

std::string path(const std::string& name) { return temp_dir() + "/" + name; }

// Removes the temporary directory after the last test.
class TempDirCleanup : public testing::Environment {
 public:
  void TearDown() override { std::filesystem::remove_all(temp_dir()); }
};
const testing::Environment* const kCleanup = testing::AddGlobalTestEnvironment(new TempDirCleanup);

bool exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }

std::string slurp(const std::string& p) { return read_text_file(p); }

void write_text(const std::string& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// Synthetic activations shaped like a small GQA model: K with outlier channels, a sink token.
std::string write_activations(const std::string& name, uint64_t seed, int64_t n = 96,
                              std::vector<int> layers = {0, 1, 2}) {
  const std::string p = path(name);
  data::ActivationMeta m;
  m.model = "synthetic";
  m.model_sha256 = std::string(64, '0');
  m.text_source = "eval_test";
  m.command = "eval_test";
  m.version = "test";
  m.rope_theta = 10000;
  m.n_layers = 3;
  m.n_heads = 4;
  m.n_kv_heads = 2;
  m.head_dim = 64;
  m.n_tokens = n;
  m.layers = layers;
  data::ActivationWriter w(p, m, true);
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) tokens[static_cast<size_t>(i)] = static_cast<int32_t>(i % 50);
  w.write_tokens(tokens);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int l : layers) {
    HostTensor<Half> q(1, 4, n, 64), k(1, 2, n, 64), v(1, 2, n, 64);
    for (int64_t i = 0; i < q.numel(); ++i)
      q.storage[static_cast<size_t>(i)] = float_to_half(g(rng) * 2.0f);
    for (int64_t i = 0; i < k.numel(); ++i) {
      const int64_t c = i % 64, t = (i / 64) % n;
      const float outlier = c % 16 == 5 ? 8.0f + static_cast<float>(l) : 1.0f;
      k.storage[static_cast<size_t>(i)] = float_to_half(g(rng) * outlier + (t == 0 ? 3.0f : 0.0f));
      v.storage[static_cast<size_t>(i)] = float_to_half(g(rng));
    }
    w.write_layer(l, q, k, v);
  }
  w.close();
  return p;
}

const std::string& eval_file() {
  static const std::string p = write_activations("eval.h5", 1);
  return p;
}
const std::string& calib_file() {
  static const std::string p = write_activations("calib.h5", 2);
  return p;
}

// Runs turboattn in this process; returns its exit code.
int run(std::vector<std::string> args) {
  args.insert(args.begin(), "turboattn");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  return turboattn_main(static_cast<int>(argv.size()), argv.data());
}

// Runs turboattn in this process capturing stderr; returns {exit code, stderr}.
std::pair<int, std::string> run_capturing(std::vector<std::string> args) {
  testing::internal::CaptureStderr();
  const int rc = run(std::move(args));
  return {rc, testing::internal::GetCapturedStderr()};
}

const char* kGrid =
    "# test grid\n"
    "method = flashq\n"
    "kv_bits = 8, 4, 2\n"
    "n_r = 5..6\n"
    "method = kivi\n"
    "kv_bits = 4, 2\n"
    "method = int8kv, sage, fp8, fp16\n";

std::string grid_file() {
  const std::string p = path("grid.txt");
  write_text(p, kGrid);
  return p;
}

std::vector<std::string> sweep_args(const std::string& out) {
  return {"sweep",       "-q", "--data", eval_file(), "--grid", grid_file(),
          "--positions", "3",  "--seed", "7",         "-o",     out};
}

// ---- grid ---------------------------------------------------------------------------------------

TEST(Grid, ParsesBlocksRangesAndCommonAxes) {
  const Grid g =
      parse_grid("p_quant = s8\nmethod = flashq\nn_r = 3..5\nkv_bits = 4, 2\nmethod = fp8\n", "g");
  ASSERT_EQ(g.blocks.size(), 2u);
  EXPECT_EQ(g.size(), 3u * 2u + 1u);
  const std::vector<AttentionConfig> c = expand_grid(g, 100);
  ASSERT_EQ(c.size(), 7u);
  EXPECT_EQ(c[0].sas.n_r, 3);
  EXPECT_EQ(c[0].quant.kv_bits, KvBits::k4);
  EXPECT_EQ(c[1].quant.kv_bits, KvBits::k2);  // last axis fastest
  EXPECT_EQ(c[6].method, Method::kFp8);
  for (const AttentionConfig& x : c) EXPECT_EQ(x.p_quant, PQuant::kS8);  // the common axis
}

TEST(Grid, ErrorsNameTheLineAndWhatIsValid) {
  auto message = [](const std::string& text) {
    try {
      expand_grid(parse_grid(text, "g.txt"), 1000);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("method = flashq\nnr = 4\n")
                .find("g.txt:2: unknown knob 'nr'; valid: method, q_gran"),
            std::string::npos);
  EXPECT_NE(message("method = flashq\nkv_bits = 3\n").find("valid: 8, 4, 2, mixed"),
            std::string::npos);
  EXPECT_NE(message("method = flashq, turbo\n").find("valid: flashq, fp16, kivi"),
            std::string::npos);
  EXPECT_NE(message("# nothing\n\n").find("the grid is empty"), std::string::npos);
  EXPECT_NE(message("method = fp8\nbc = 64\nbc = 32\n").find("given twice"), std::string::npos);
  EXPECT_NE(message("method = flashq\nn_r = 0\n").find("n_r must be in"), std::string::npos);
  EXPECT_NE(message("method = flashq\nbr = 1..1000\nbc = 1..1000\nblock = 1..1000\n")
                .find("at most 1000"),
            std::string::npos);
  EXPECT_NE(message("method flashq\n").find("expected 'knob = value"), std::string::npos);
}

TEST(Grid, RedundantKnobsCollapse) {
  // kv_bits does not change FlashQ prefill; no knob but causal/tau changes the floor.
  const std::vector<AttentionConfig> c = expand_grid(
      parse_grid("method = flashq\nkv_bits = 8, 4, 2\nmethod = fp16\nn_r = 3..9\n", "g"), 100);
  const std::vector<Unit> u = make_units(c, {Phase::kPrefill, Phase::kDecode});
  int prefill = 0, decode = 0;
  for (const Unit& x : u) (x.phase == Phase::kPrefill ? prefill : decode)++;
  EXPECT_EQ(prefill, 2);  // flashq, fp16
  EXPECT_EQ(decode, 4);   // flashq 8/4/2, fp16
  // Stage-2 axes do not change an 8-bit cache; group_size only matters on a token axis.
  const AttentionConfig a = canonical_config(
      parse_attention_config("kv_bits=8,k_axis=token,group_size=16"), Phase::kDecode);
  EXPECT_EQ(a.to_string(), parse_attention_config("kv_bits=8").to_string());
  const AttentionConfig b = canonical_config(
      parse_attention_config("kv_bits=2,k_axis=token,group_size=16"), Phase::kDecode);
  EXPECT_EQ(b.quant.group_size, 16);
  EXPECT_EQ(b.quant.k_axis, Stage2Axis::kToken);
  // Whatever the rules drop, the canonical config of a canonical config is itself.
  for (const Unit& x : u) EXPECT_EQ(canonical_config(x.config, x.phase).to_string(), x.key);
}

TEST(Grid, ShardSpec) {
  EXPECT_EQ(parse_shard("2/5").index, 2);
  EXPECT_EQ(parse_shard("2/5").count, 5);
  EXPECT_THROW(parse_shard("5/5"), Error);
  EXPECT_THROW(parse_shard("a/b"), Error);
  EXPECT_THROW(parse_shard("1"), Error);
}

// ---- JSON
// ------------------------------------------------------------------------------------------

TEST(Json, RoundTripsAndRejectsMalformedText) {
  Json j = Json::object();
  j.set("text", "quote \" backslash \\ newline \n tab \t");
  j.set("n", 0.1);
  j.set("big", int64_t{1} << 53);
  j.set("neg", -3);
  j.set("flag", true);
  j.set("none", Json());
  Json a = Json::array();
  a.push(1);
  a.push("x");
  Json inner = Json::object();
  inner.set("k", 2.5);
  a.push(inner);
  j.set("list", a);
  const Json back = Json::parse(j.dump(), "test");
  EXPECT_EQ(back.dump(), j.dump());
  EXPECT_EQ(back.at("text").as_string(), j.at("text").as_string());
  EXPECT_EQ(back.at("n").as_number(), 0.1);  // shortest round-trip digits
  EXPECT_EQ(back.at("big").as_int(), int64_t{1} << 53);
  EXPECT_TRUE(back.at("none").is_null());
  EXPECT_EQ(back.at("list").items()[2].at("k").as_number(), 2.5);
  EXPECT_EQ(Json::parse("{\"u\": \"\\u00e9\"}", "t").at("u").as_string(), "\xc3\xa9");
  for (const char* bad : {"{", "{\"a\" 1}", "[1,]", "\"open", "{} x", "tru"})
    EXPECT_THROW(Json::parse(bad, "bad"), Error) << bad;
  EXPECT_THROW(back.at("missing"), Error);
  EXPECT_THROW(back.at("n").as_string(), Error);
}

// ---- sweep files --------------------------------------------------------------------------------

TEST(Sweep, WritesTidyRowsWithSidecar) {
  const std::string out = path("tidy.csv");
  ASSERT_EQ(run(sweep_args(out)), 0);
  const CsvTable t = read_csv(out);
  const Json side = Json::parse(slurp(sidecar_path(out)), "sidecar");
  const int64_t units = static_cast<int64_t>(side.at("units").items().size());
  // flashq: prefill n_r 5/6 (kv_bits collapses), decode 3 x 2; kivi 2 x 2; int8kv, sage, fp8, fp16
  // 2 each.
  EXPECT_EQ(units, 2 + 6 + 4 + 8);
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

TEST(Sweep, ShardsMergeIntoTheUnshardedFile) {
  const std::string full = path("unsharded.csv");
  ASSERT_EQ(run(sweep_args(full)), 0);
  std::vector<std::string> shards;
  for (int i = 0; i < 3; ++i) {
    shards.push_back(path("shard" + std::to_string(i) + ".csv"));
    std::vector<std::string> a = sweep_args(shards.back());
    a.push_back("--shard");
    a.push_back(std::to_string(i) + "/3");
    ASSERT_EQ(run(a), 0);
  }
  const std::string merged = path("merged.csv");
  ASSERT_EQ(run({"merge", "-q", shards[2], shards[0], shards[1], "-o", merged}), 0);
  EXPECT_EQ(slurp(merged), slurp(full));
  // Merging the unsharded file alone reproduces it too.
  ASSERT_EQ(run({"merge", "-q", full, "-o", path("merged1.csv")}), 0);
  EXPECT_EQ(slurp(path("merged1.csv")), slurp(full));
  // A missing shard is an error, and no output appears.
  auto [rc, err] = run_capturing({"merge", shards[0], shards[2], "-o", path("bad_merge.csv")});
  EXPECT_NE(rc, 0);
  EXPECT_NE(err.find("missing shard(s) 1/3"), std::string::npos) << err;
  EXPECT_FALSE(exists(path("bad_merge.csv")));
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

// ---- calibrate, report, validate ----------------------------------------------------------------

TEST(Calibrate, BitMapRoundTripsAndDrivesMixedSweeps) {
  const std::string map = path("bits.json");
  ASSERT_EQ(run({"calibrate", "-q", "--data", calib_file(), "-o", map, "--f2", "0.5"}), 0);
  const BitMap m = load_bit_map(map);
  EXPECT_EQ(m.bits.size(), 3u);
  for (const auto& kv : m.bits) {
    int two = 0;
    for (int b : kv.second) two += b == 2;
    EXPECT_EQ(two, 1) << "f2 = 0.5 of 2 kv heads";
  }
  // The form `ppl` reads.
  EXPECT_EQ(data::read_bits_map(map, 3, 2).size(), 3u);
  // A mixed sweep with the map equals one that computes the map from the calibration file.
  const std::string a = path("mixed_a.csv"), b = path("mixed_b.csv");
  ASSERT_EQ(run({"sweep", "-q", "--data", eval_file(), "--set", "kv_bits=mixed", "--phases",
                 "decode", "--bits-map", map, "-o", a}),
            0);
  ASSERT_EQ(run({"sweep", "-q", "--data", eval_file(), "--set", "kv_bits=mixed", "--phases",
                 "decode", "--calib", calib_file(), "-o", b}),
            0);
  EXPECT_EQ(slurp(a), slurp(b));
  const CsvTable t = read_csv(a);
  const int hb = t.column("head_bits"), kvh = t.column("kv_head"), layer = t.column("layer");
  for (const auto& r : t.rows)
    EXPECT_EQ(std::stoi(r[static_cast<size_t>(hb)]),
              m.bits.at(std::stoi(r[static_cast<size_t>(layer)]))[static_cast<size_t>(
                  std::stoi(r[static_cast<size_t>(kvh)]))]);
  // A map for other mixed-precision knobs is refused without --calib.
  auto [rc, err] = run_capturing({"sweep", "--data", eval_file(), "--set", "kv_bits=mixed", "--set",
                                  "f2=0.25", "--bits-map", map, "-o", path("mixed_c.csv")});
  EXPECT_NE(rc, 0);
  EXPECT_NE(err.find("was made with f2=0.5"), std::string::npos) << err;
}

TEST(Report, HasEveryTableAndItsCommand) {
  const std::string out = path("report_in.csv");
  ASSERT_EQ(run(sweep_args(out)), 0);
  const std::string md = make_report({out}, "turboattn report test");
  for (const char* s :
       {"Error vs FP16 per method — prefill", "Error vs FP16 per method — decode",
        "Error by KV bits — decode", "Error by SAS threshold n_r", "Per-layer breakdown",
        "Pareto frontier", "| kivi |", "| fp16 |", "| int8kv |", "| sage |", "| fp8 |"})
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
  const size_t decode = md.find("Error vs FP16 per method — decode");
  const size_t line = md.find(expect, decode);
  ASSERT_NE(line, std::string::npos) << expect;
  char max_text[32];
  std::snprintf(max_text, sizeof max_text, " | %.3e | ", mx);
  EXPECT_NE(md.substr(line, md.find('\n', line) - line).find(max_text), std::string::npos);
}

TEST(Validate, RefAgainstRefPassesAndCountsEveryElement) {
  ValidateOptions o;
  o.quick = true;
  o.threads = 2;
  o.against_threads = 1;
  o.data = eval_file();
  o.verbosity = 0;
  const std::vector<ValidateCase> cases = run_validation(o);
  std::map<std::string, int> ops;
  for (const ValidateCase& c : cases) {
    EXPECT_TRUE(c.pass) << c.op << " " << c.vars << " " << c.note;
    EXPECT_GT(c.compared, 0);
    ++ops[c.op];
  }
  for (const char* op : {"quantize_stage1", "compress_block", "decompress_block", "quantize_asym",
                         "sas", "attention_prefill", "cache+decode", "decode split-K"})
    EXPECT_GT(ops[op], 0) << op;
}

TEST(Bench, TimesEveryOp) {
  testing::internal::CaptureStdout();
  const int rc = run(
      {"bench", "--shape", "2/1x64x64", "--config", "method=flashq,kv_bits=4", "--repeats", "2"});
  const std::string out = testing::internal::GetCapturedStdout();
  ASSERT_EQ(rc, 0) << out;
  for (const char* op : {"quantize_stage1", "compress_block", "decompress_block", "quantize_asym",
                         "sas", "prefill", "cache_append", "decode"})
    EXPECT_NE(out.find(std::string("| ") + op + " | 2/1x64x64 |"), std::string::npos) << op;
  auto [rc2, err] = run_capturing({"bench", "--shape", "3/2x64x64"});
  EXPECT_NE(rc2, 0);
  EXPECT_NE(err.find("Hq a multiple of Hkv"), std::string::npos) << err;
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

}  // namespace
}  // namespace eval
}  // namespace turbo

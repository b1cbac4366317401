#include "eval/ppl.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/host/file_io.h"
#include "core/host/json.h"
#include "datasets/activations.h"
#include "eval/calibrate.h"
#include "eval/sweep.h"
#include "reference/reference.h"

namespace turbo {
namespace eval {
namespace {

const std::string kGpl = "/usr/share/common-licenses/GPL-3";

std::string tmp(const std::string& name) { return ::testing::TempDir() + "/turbo_ppl_" + name; }

// A fresh reference cache per test run, so that "computed" and "cached" are both exercised.
std::string cache_dir() {
  static const std::string d = [] {
    char tmpl[] = "/tmp/turbo_ppl_cache_XXXXXX";
    return std::string(::mkdtemp(tmpl));
  }();
  return d;
}

PplOptions base(const std::string& method, int64_t tokens) {
  PplOptions o;
  o.text = kGpl;
  o.methods = {method};
  o.max_tokens = tokens;
  o.ref_cache = cache_dir();
  o.verbosity = 0;
  o.bootstrap = 200;
  return o;
}

TEST(Ppl, ReferenceAgainstItselfIsExact) {
  const PplResult r = run_ppl(base("reference", 48)).at(0);
  EXPECT_EQ(r.scored, 23);
  EXPECT_EQ(r.kl_mean, 0.0);
  EXPECT_EQ(r.top1_agreement, 1.0);
  EXPECT_EQ(r.ppl_reference, r.ppl_method);
  EXPECT_EQ(r.ppl_diff, 0.0);
  EXPECT_EQ(r.ppl_diff_ci.lo, 0.0);
  EXPECT_EQ(r.ppl_diff_ci.hi, 0.0);
  EXPECT_GT(r.ppl_reference, 1.0);
}

// The FP16 floor changes attention only by FP16/FP32 rounding: the model barely moves. The bounds
// are sanity bounds (a wiring bug, e.g. heads or positions swapped, gives KL in whole nats).
TEST(Ppl, Fp16FloorPrefillAndDecodeStayClose) {
  for (const char* phase : {"prefill", "decode"}) {
    SCOPED_TRACE(phase);
    PplOptions o = base("fp16", 64);
    o.phase = phase;
    o.chunk = 16;
    const std::vector<PplResult> rs = run_ppl(o);
    const PplResult& r = rs.at(0);
    EXPECT_EQ(r.scored, 31);
    EXPECT_LT(r.kl_mean, 1e-3);
    EXPECT_GE(r.top1_agreement, 0.9);
    EXPECT_LT(std::fabs(std::log(r.ppl_method / r.ppl_reference)), 0.05);
    // The intervals hold their estimate.
    EXPECT_LE(r.kl_ci.lo, r.kl_mean);
    EXPECT_GE(r.kl_ci.hi, r.kl_mean);
    EXPECT_LE(r.ppl_diff_ci.lo, r.ppl_diff);
    EXPECT_GE(r.ppl_diff_ci.hi, r.ppl_diff);
    const Json j = Json::parse(ppl_json(rs, o), "ppl json");
    EXPECT_EQ(j.at("runs").items().at(0).at("scored").as_int(), 31);
    EXPECT_TRUE(j.at("runs").items().at(0).at("scored").is_integer());
    EXPECT_TRUE(j.has("git_commit"));
    EXPECT_NE(ppl_table(r).find("perplexity"), std::string::npos);
  }
}

// `--model gemma3-270m` names the cached Gemma 3 270M (issue 11), whose ppl runs through the same
// path (BOS first, MQA, windowed layers: 32 tokens, so the 512-key window does not bind).
TEST(Ppl, Gemma3ByItsModelName) {
  PplOptions o = base("fp16", 32);
  o.model = "gemma3-270m";
  o.phase = "decode";
  o.chunk = 16;
  const PplResult r = run_ppl(o).at(0);
  EXPECT_EQ(r.scored, 15);
  EXPECT_LT(r.kl_mean, 1e-3);
  EXPECT_GE(r.top1_agreement, 0.9);
  EXPECT_GT(r.ppl_reference, 1.0);
  EXPECT_LT(std::fabs(std::log(r.ppl_method / r.ppl_reference)), 0.05);
}

// Several methods in one run share one reference; the second run reads it from the cache and
// gives the same numbers bit for bit.
TEST(Ppl, SeveralMethodsAndTheReferenceCache) {
  PplOptions o = base("flashq", 136);  // two compressed 64-token blocks per stream, then a buffer
  o.methods = {"flashq", "fp16"};
  o.phase = "decode";
  o.ref_cache = cache_dir() + "/several";  // fresh per test process: the first run computes
  const std::vector<PplResult> a = run_ppl(o);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_FALSE(a[0].reference_from_cache);
  EXPECT_NE(a[0].method_key, a[1].method_key);
  EXPECT_GT(a[0].kv_ratio_vs_fp16, 1.0);
  EXPECT_GT(a[0].kl_mean, a[1].kl_mean);  // 4-bit KV moves the model more than the FP16 floor
  EXPECT_GT(a[0].sparsity, 0.0);
  // Per kv head and layer: the sweep's unit (SmolLM2: 30 layers x 3 kv heads).
  EXPECT_DOUBLE_EQ(a[0].kv_bytes_per_token_per_kv_head, a[0].kv_bytes_per_token / 90.0);
  PplOptions again = o;  // the reference from the cache, one method rerun: the same numbers
  again.methods = {"fp16"};
  const std::vector<PplResult> b = run_ppl(again);
  EXPECT_TRUE(b[0].reference_from_cache);
  EXPECT_EQ(a[1].ppl_reference, b[0].ppl_reference);
  EXPECT_EQ(a[1].ppl_method, b[0].ppl_method);
  EXPECT_EQ(a[1].kl_mean, b[0].kl_mean);
  // A cache entry for other tokens is another file: a different window misses.
  PplOptions other = o;
  other.methods = {"reference"};
  other.skip_tokens = 1;
  EXPECT_FALSE(run_ppl(other)[0].reference_from_cache);
}

// Per-run knobs (--run method:knobs) in one invocation: one reference forward for every run, and
// each run gives exactly what it gives alone with the same knobs in --config.
TEST(Ppl, RunsWithTheirOwnKnobs) {
  PplOptions o = base("flashq", 80);
  o.methods = {};
  o.runs = {"flashq:kv_bits=4", "flashq:kv_bits=2,block=32", "kivi:kv_bits=2", "reference"};
  o.phase = "decode";
  o.ref_cache = cache_dir() + "/runs";
  const std::vector<PplResult> a = run_ppl(o);
  ASSERT_EQ(a.size(), 4u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].run, o.runs[i]);
    EXPECT_FALSE(a[i].reference_from_cache);  // computed once, by this invocation
    EXPECT_EQ(a[i].seconds_reference, a[0].seconds_reference);
    EXPECT_EQ(a[i].ppl_reference, a[0].ppl_reference);
  }
  EXPECT_EQ(a[0].method_key, parse_attention_config("method=flashq,kv_bits=4").to_string());
  EXPECT_EQ(a[1].method_key,
            parse_attention_config("method=flashq,kv_bits=2,block=32").to_string());
  EXPECT_EQ(a[2].method_key, parse_attention_config("method=kivi,kv_bits=2").to_string());
  EXPECT_EQ(a[3].method_key, "reference");
  EXPECT_LT(a[1].kv_bytes_per_token_per_kv_head, a[0].kv_bytes_per_token_per_kv_head);
  EXPECT_EQ(a[3].kl_mean, 0.0);
  // The 2-bit FlashQ run alone, its knobs in --config: the same numbers bit for bit.
  PplOptions alone = base("flashq", 80);
  alone.config = "kv_bits=2,block=32";
  alone.phase = "decode";
  alone.ref_cache = o.ref_cache;
  const PplResult b = run_ppl(alone).at(0);
  EXPECT_TRUE(b.reference_from_cache);
  EXPECT_EQ(b.method_key, a[1].method_key);
  EXPECT_EQ(b.ppl_method, a[1].ppl_method);
  EXPECT_EQ(b.kl_mean, a[1].kl_mean);
  EXPECT_EQ(b.kv_bytes_mean_per_token_per_kv_head, a[1].kv_bytes_mean_per_token_per_kv_head);
  // The run's knobs win over --config's.
  EXPECT_EQ(parse_ppl_run("flashq:kv_bits=2", "kv_bits=4,n_r=6").config.to_string(),
            parse_attention_config("method=flashq,kv_bits=2,n_r=6").to_string());
  const Json j = Json::parse(ppl_json(a, o), "ppl json");
  EXPECT_EQ(j.at("runs").items().at(2).at("run").as_string(), "kivi:kv_bits=2");
}

TEST(Ppl, BadRuns) {
  auto error_of = [](const std::string& spec, const std::string& shared) {
    try {
      parse_ppl_run(spec, shared);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of("", "").find("names no method"), std::string::npos);
  EXPECT_NE(error_of(":kv_bits=4", "").find("names no method"), std::string::npos);
  EXPECT_NE(error_of("reference:kv_bits=4", "").find("reference takes no knobs"),
            std::string::npos);
  EXPECT_NE(error_of("flashq:method=kivi", "").find("contradicts"), std::string::npos);
  EXPECT_NE(error_of("flashq", "method=kivi").find("contradicts"), std::string::npos);
  EXPECT_EQ(error_of("kivi:method=kivi", ""), "");
  EXPECT_NE(error_of("nonsense", "").find("run 'nonsense'"), std::string::npos);
  EXPECT_NE(error_of("flashq:nonsense=1", "").find("nonsense"), std::string::npos);
  EXPECT_NE(error_of("flashq:kv_bits=3", "").find("kv_bits"), std::string::npos);
  EXPECT_NE(error_of("flashq:kv_bits", "").find("name=value"), std::string::npos);
  EXPECT_NE(error_of("sage:bc=2147483647", "").find("bc"), std::string::npos);
  // Two runs with the same knobs (kv_bits=4 is FlashQ's default) are one run asked twice.
  PplOptions o = base("flashq", 32);
  o.runs = {"flashq", "flashq:kv_bits=4"};
  try {
    run_ppl(o);
    ADD_FAILURE() << "a repeated run was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("repeats run 'flashq'"), std::string::npos) << e.what();
  }
  o.runs = {};
  o.methods = {"flashq:kv_bits=2"};
  EXPECT_THROW(run_ppl(o), Error);  // --method takes names only
}

// KV bytes per token per kv head as the sweep counts them, at the end and averaged over the
// decode positions: ppl over tokens [0, 96) of Apache-2.0 against sweep units over the embedded
// file that holds that window (datasets/data/smollm2_calib.h5), for several methods and knobs.
TEST(Ppl, KvBytesMatchTheSweep) {
  const std::vector<std::string> runs = {"flashq", "flashq:kv_bits=2,block=32,buffer=int8",
                                         "kivi:kv_bits=2", "int8kv", "fp16"};
  PplOptions o = base("flashq", 96);
  o.text = "/usr/share/common-licenses/Apache-2.0";
  o.methods = {};
  o.runs = runs;
  o.phase = "decode";
  o.eval_from = 90;
  o.bootstrap = 0;
  const std::vector<PplResult> res = run_ppl(o);
  const data::ActivationReader reader(std::string(TURBO_SOURCE_DIR) +
                                      "/datasets/data/smollm2_calib.h5");
  ASSERT_EQ(reader.meta().n_tokens, 96);
  const SweepData d =
      load_sweep_data(reader, reader.meta().layers, 0, 4, 0, std::vector<Phase>{Phase::kDecode});
  ref::register_reference_backend();
  std::unique_ptr<Backend> backend = make_backend("ref");
  for (size_t i = 0; i < runs.size(); ++i) {
    SCOPED_TRACE(runs[i]);
    Unit u;
    u.phase = Phase::kDecode;
    u.config = parse_ppl_run(runs[i], "").config;
    u.key = u.config.to_string();
    double end = 0, mean = 0;
    int layers = 0;
    for (const ResultRow& r : run_unit(*backend, u, d, nullptr, reader.sha256())) {
      if (r.head != 0) continue;  // one row per layer carries the layer's bytes
      end += r.kv_bytes_per_token;
      mean += r.kv_bytes_mean;
      ++layers;
    }
    ASSERT_EQ(layers, 30);
    end /= layers;
    mean /= layers;
    EXPECT_GT(res[i].kv_bytes_mean_per_token_per_kv_head, 0.0);
    EXPECT_NEAR(res[i].kv_bytes_per_token_per_kv_head, end, 1e-12 * end);
    EXPECT_NEAR(res[i].kv_bytes_mean_per_token_per_kv_head, mean, 1e-12 * mean);
    EXPECT_NEAR(res[i].kv_ratio_mean_vs_fp16, 4.0 * 64 / mean, 1e-9);
  }
  EXPECT_NE(ppl_table(res[0]).find("KV bytes per token per kv head, mean"), std::string::npos);
}

// A bootstrap over constant data has a zero-width interval; over a known sample its interval
// covers the mean and is narrower than the data's range.
TEST(Ppl, BootstrapInterval) {
  std::vector<double> v(200);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i % 10);
  auto mean = [&](const std::vector<int64_t>& idx) {
    double s = 0;
    for (int64_t i : idx) s += v[static_cast<size_t>(i)];
    return s / static_cast<double>(idx.size());
  };
  const Interval ci = bootstrap_interval(200, 2000, 6, 1, mean);
  EXPECT_LT(ci.lo, 4.5);
  EXPECT_GT(ci.hi, 4.5);
  EXPECT_GT(ci.lo, 3.0);
  EXPECT_LT(ci.hi, 6.0);
  const Interval same = bootstrap_interval(200, 2000, 6, 1, mean);
  EXPECT_EQ(ci.lo, same.lo);  // seeded
  const Interval none = bootstrap_interval(200, 0, 6, 1, mean);
  EXPECT_TRUE(std::isnan(none.lo));
}

TEST(Ppl, BadOptions) {
  PplOptions o = base("flashq", 32);
  o.eval_from = 31;
  EXPECT_THROW(run_ppl(o), Error);  // nothing left to score
  o.eval_from = -1;
  o.config = "kv_bits=mixed";
  o.phase = "decode";
  EXPECT_THROW(run_ppl(o), Error);  // mixed needs a bit map
  o.config = "method=kivi";
  EXPECT_THROW(run_ppl(o), Error);  // contradiction
  o.config = "";
  o.methods = {};
  EXPECT_THROW(run_ppl(o), Error);
  o.methods = {"nonsense"};
  EXPECT_THROW(run_ppl(o), Error);
}

// `--bits-map` (read by load_bit_map, tested in calibrate_test.cpp) reaches every layer's cache:
// a map of 4 bits everywhere gives the kv_bits=4 run bit for bit, a map with a 2-bit head per
// layer stores fewer bytes, and a map made with other mixed-precision knobs is refused.
TEST(Ppl, BitMapDrivesMixedDecode) {
  auto write_map = [](const std::string& p, const std::vector<int>& bits) {
    BitMap m;  // SmolLM2: 30 layers x 3 kv heads
    m.n_kv_heads = 3;
    for (int l = 0; l < 30; ++l) {
      m.bits[l] = bits;
      m.priority[l] = {0.0, 0.0, 0.0};
    }
    std::ofstream(p) << bit_map_to_json(m).dump();
  };
  const std::string all4 = tmp("all4.json"), one2 = tmp("one2.json");
  write_map(all4, {4, 4, 4});
  write_map(one2, {2, 4, 4});
  PplOptions o = base("flashq", 48);
  o.phase = "decode";
  o.config = "kv_bits=4,block=16";  // 48 tokens: 3 compressed blocks per stream
  const PplResult fixed = run_ppl(o).at(0);
  o.config = "kv_bits=mixed,block=16";
  o.bits_map = all4;
  const PplResult mixed4 = run_ppl(o).at(0);
  EXPECT_EQ(mixed4.ppl_method, fixed.ppl_method);
  EXPECT_EQ(mixed4.kl_mean, fixed.kl_mean);
  EXPECT_EQ(mixed4.kv_bytes_per_token, fixed.kv_bytes_per_token);
  o.bits_map = one2;
  EXPECT_LT(run_ppl(o).at(0).kv_bytes_per_token, fixed.kv_bytes_per_token);
  o.config = "kv_bits=mixed,block=16,f2=0.25";
  try {
    run_ppl(o);
    FAIL() << "took a map made with f2=0.5 for f2=0.25";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("was made with f2=0.5"), std::string::npos) << e.what();
  }
}

// Runs the turboattn binary with a file-size limit (a full disk for every write past it);
// returns the exit status as waitpid reports it.
int run_exe_with_fsize_limit(std::vector<std::string> args, rlim_t limit) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    struct rlimit rl = {limit, limit};
    ::signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG, as on a full disk
    ::setrlimit(RLIMIT_FSIZE, &rl);
    args.insert(args.begin(), TURBOATTN_EXE);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(&a[0]);
    argv.push_back(nullptr);
    const int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::execv(TURBOATTN_EXE, argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

// Issue 10 defect 5: on a full file system `ppl --json` exited 0 and replaced the existing JSON
// with 0 bytes. Now it fails and the old file stays.
TEST(Ppl, FullDiskKeepsTheOldJson) {
  const std::string json = tmp("full.json");
  write_file_atomic(json, std::string(8192, 'x') + "\n");
  const std::string before = read_text_file(json);
  const int status =
      run_exe_with_fsize_limit({"-q", "ppl", "--text", kGpl, "--max-tokens", "12", "--method",
                                "fp16", "--ref-cache", "none", "--json", json},
                               512);  // the JSON of one run is about 1.8 KB: its write fails
  ASSERT_TRUE(WIFEXITED(status)) << "killed by a signal";
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_EQ(read_text_file(json), before);
}

// Issue 10 defect 4: `capture` on a nearly full file system printed its error, then crashed in
// the HDF5 close at exit. Now it exits 1 and leaves neither the output nor a temporary.
TEST(Capture, FullDiskFailsCleanly) {
  const std::string out = tmp("full.h5");
  ::unlink(out.c_str());
  const int status = run_exe_with_fsize_limit(
      {"capture", "--text", kGpl, "--max-tokens", "64", "--out", out}, 65536);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(::access(out.c_str(), F_OK), 0);
  EXPECT_NE(::access((out + ".tmp").c_str(), F_OK), 0);
}

}  // namespace
}  // namespace eval
}  // namespace turbo

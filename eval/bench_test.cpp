// Tests of `turboattn bench`.
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
#include "datasets/activations.h"
#include "datasets/commands.h"
#include "eval/commands.h"
#include "eval/test_util.h"

namespace turbo {
namespace eval {
namespace {

using namespace test;  // NOLINT

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
  EXPECT_NE(err.find("is not a multiple of Hkv"), std::string::npos) << err;
}

// Issue 10 defect 15: huge shapes said "std::bad_alloc"; numbers that overflow wrapped.
TEST(Bench, ShapesAreCheckedBeforeAllocating) {
  for (const auto& c : std::vector<std::pair<std::string, std::string>>{
           {"4096/1x16777216x4096", "needs about"},
           {"9/3x99999999999999999999x64", "--shape N"},
           {"9/3x64", "--shape expects Hq/HkvxNxD"},
           {"-9/3x64x64", "--shape Hq"},
           {"9/3x64x64x", "--shape D"}}) {
    auto [rc, err] = run_capturing({"bench", "--shape", c.first});
    EXPECT_EQ(rc, 1) << c.first;
    EXPECT_NE(err.find(c.second), std::string::npos) << c.first << ": " << err;
  }
}

}  // namespace
}  // namespace eval
}  // namespace turbo

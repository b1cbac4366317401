// Tests of result files: shards merge into the unsharded file; merge checks its inputs.
#include "eval/results.h"

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
#include "eval/test_util.h"

namespace turbo {
namespace eval {
namespace {

using namespace test;  // NOLINT
// ---- merge
// ---------------------------------------------------------------------------------------

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

// Issue 10 defect 1: merge trusted shard_index / shard_count of the sidecar (index 7 of 3 read
// out of bounds, 100000000 or count 0 crashed, count -3 said "vector larger than max_size()").
TEST(Merge, RefusesImpossibleShardNumbersInASidecar) {
  const std::string in = path("merge_src.csv");
  ASSERT_EQ(run({"sweep", "-q", "--data", eval_file(), "--set", "method=fp16", "--phases",
                 "prefill", "-o", in}),
            0);
  const std::string side = slurp(sidecar_path(in));
  struct Case {
    const char* index;
    const char* count;
  };
  for (const Case c : {Case{"7", "3"}, Case{"100000000", "1"}, Case{"0", "0"}, Case{"0", "-3"},
                       Case{"-1", "1"}, Case{"0", "100000000"}}) {
    SCOPED_TRACE(std::string(c.index) + "/" + c.count);
    const std::string bad = path("merge_bad.csv");
    write_text(bad, slurp(in));
    Json j = Json::parse(side, "sidecar");
    j.set("shard_index", std::stoll(c.index));
    j.set("shard_count", std::stoll(c.count));
    write_text(sidecar_path(bad), j.dump());
    const std::string out = path("merge_bad_out.csv");
    auto [rc, err] = run_capturing({"merge", bad, "-o", out});
    EXPECT_EQ(rc, 1);
    EXPECT_NE(err.find("shards i/n with 0 <= i < n"), std::string::npos) << err;
    EXPECT_FALSE(exists(out));
  }
  // Deeply nested JSON as a sidecar (defect 2) is a clear error, not a stack overflow.
  const std::string deep = path("merge_deep.csv");
  write_text(deep, slurp(in));
  write_text(sidecar_path(deep), std::string(30000, '['));
  auto [rc, err] = run_capturing({"merge", deep, "-o", path("merge_deep_out.csv")});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("nested deeper"), std::string::npos) << err;
}

// Issue 10 defect 8: an output equal to an input destroyed the input.
TEST(Merge, OutputEqualToAnInputIsRefused) {
  const std::string in = path("merge_self.csv");
  ASSERT_EQ(run({"sweep", "-q", "--data", eval_file(), "--set", "method=fp16", "--phases",
                 "prefill", "-o", in}),
            0);
  const std::string before = slurp(in);
  auto [rc, err] = run_capturing({"merge", in, "-o", in});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("same file as input"), std::string::npos) << err;
  EXPECT_EQ(slurp(in), before);
}

}  // namespace
}  // namespace eval
}  // namespace turbo

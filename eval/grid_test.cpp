// Tests of grid files: blocks, ranges, redundancy rules, shard specs.
#include "eval/grid.h"

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
#include "eval/test_util.h"

namespace turbo {
namespace eval {
namespace {

using namespace test;  // NOLINT
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

}  // namespace
}  // namespace eval
}  // namespace turbo

// Tests of `turboattn validate`.
#include "eval/validate.h"

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

TEST(Validate, RefAgainstRefPassesAndCountsEveryElement) {
  ValidateOptions o;
  o.quick = true;
  o.threads = 2;
  o.against_threads = 1;
  o.data = eval_file();
  o.verbosity = 0;
  const std::vector<check::CaseResult> cases = run_validation(o);
  std::map<std::string, int> ops;
  int real_data = 0;
  for (const check::CaseResult& c : cases) {
    EXPECT_FALSE(c.unsupported) << c.op << " " << c.vars << ": ref declined its own case";
    EXPECT_TRUE(c.pass) << c.op << " " << c.vars << " " << c.note;
    EXPECT_GT(c.compared, 0);
    ++ops[c.op];
    real_data += c.vars.rfind("data layer", 0) == 0;
  }
  for (const char* op : {"quantize_stage1", "compress_block", "decompress_block", "quantize_asym",
                         "sas", "attention_prefill", "attention_decode"})
    EXPECT_GT(ops[op], 0) << op;
  EXPECT_EQ(real_data, 9);  // 4 prefill and 5 decode cases (2 with decode-cache knobs) on the file
}

}  // namespace
}  // namespace eval
}  // namespace turbo

// Tests of `turboattn calibrate`: bit maps round-trip and drive mixed sweeps.
#include "eval/calibrate.h"

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
#include "eval/ppl.h"
#include "eval/results.h"
#include "eval/test_util.h"

namespace turbo {
namespace eval {
namespace {

using namespace test;  // NOLINT

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
  EXPECT_EQ(read_bits_map(map, 3, 2).size(), 3u);
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

// Issue 10 defect 13: calibrate --tokens -1 or 99999 used all tokens; a bit-map layer key "abc"
// was read as layer 0.
TEST(Calibrate, TokensAndLayerKeysAreChecked) {
  const std::string map = path("bits_checked.json");
  for (const char* tokens : {"-1", "99999"}) {
    auto [rc, err] =
        run_capturing({"calibrate", "--data", calib_file(), "-o", map, "--tokens", tokens});
    EXPECT_EQ(rc, 1) << tokens;
    EXPECT_NE(err.find("--tokens must be in [0, 96]"), std::string::npos) << err;
    EXPECT_FALSE(exists(map));
  }
  ASSERT_EQ(run({"calibrate", "-q", "--data", calib_file(), "-o", map}), 0);
  Json j = Json::parse(slurp(map), "map");
  Json layers = Json::object();
  for (const auto& kv : j.at("layers").members())
    layers.set(kv.first == "1" ? "abc" : kv.first, kv.second);
  j.set("layers", layers);
  write_text(map, j.dump());
  try {
    load_bit_map(map);
    FAIL() << "accepted a layer key 'abc'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer key: 'abc' is not an integer"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace eval
}  // namespace turbo

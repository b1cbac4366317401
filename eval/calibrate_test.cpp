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
#include <functional>
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
  // The rows `ppl` takes, and the same rows under "head_bits" for readers outside the project.
  const std::vector<std::vector<int>> rows = m.rows(3, 2);
  const Json head_bits = Json::parse(slurp(map), "map").at("head_bits");
  ASSERT_EQ(rows.size(), 3u);
  ASSERT_EQ(head_bits.size(), 3u);
  for (size_t l = 0; l < rows.size(); ++l) {
    EXPECT_EQ(rows[l], m.bits.at(static_cast<int>(l)));
    for (size_t h = 0; h < rows[l].size(); ++h)
      EXPECT_EQ(head_bits.items()[l].items().at(h).as_int(), rows[l][h]);
  }
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

// The one bit-map reader: every field checked, the rows checked against the run's shape, bad
// files refused with an error rather than read as something else.
TEST(BitMap, ReadsAndValidates) {
  BitMap m;
  m.n_kv_heads = 2;
  m.bits = {{0, {4, 2}}, {1, {2, 4}}};
  m.priority = {{0, {1.0, 0.5}}, {1, {0.25, 2.0}}};
  const Json good = bit_map_to_json(m);
  const std::string p = path("map_validates.json");
  auto load_text = [&](const std::string& text) {
    write_text(p, text);
    return load_bit_map(p);
  };
  auto load_edited = [&](const std::function<void(Json&)>& edit) {
    Json j = good;
    edit(j);
    return load_text(j.dump());
  };
  const BitMap back = load_text(good.dump());
  EXPECT_EQ(back.source, p);
  EXPECT_EQ(back.priority, m.priority);
  EXPECT_EQ(back.rows(2, 2), (std::vector<std::vector<int>>{{4, 2}, {2, 4}}));
  EXPECT_THROW(back.rows(3, 2), Error);  // the model has a layer the map lacks
  EXPECT_THROW(back.rows(2, 3), Error);  // and another kv-head count
  EXPECT_EQ(back.rows(1, 2).size(), 1u);
  auto set_bits = [](const std::string& bits) {
    return [bits](Json& j) {
      Json layers = j.at("layers"), l0 = layers.at("0");
      l0.set("bits", Json::parse(bits, "bits"));
      layers.set("0", l0);
      j.set("layers", layers);
    };
  };
  EXPECT_THROW(load_edited(set_bits("[4, 3]")), Error);      // 3 bits
  EXPECT_THROW(load_edited(set_bits("[4, \"4\"]")), Error);  // a string
  EXPECT_THROW(load_edited(set_bits("[4]")), Error);         // a head short
  EXPECT_THROW(load_edited([](Json& j) { j.set("format", "other"); }), Error);
  EXPECT_THROW(load_edited([](Json& j) { j.set("n_kv_heads", 0); }), Error);
  // head_bits that disagree with layers (which would a reader believe?) are refused.
  EXPECT_THROW(
      load_edited([](Json& j) { j.set("head_bits", Json::parse("[[2, 2], [2, 4]]", "rows")); }),
      Error);
  // The old `ppl` shape, head_bits alone, is not a bit map.
  EXPECT_THROW(load_text("{\"note\": 1, \"head_bits\": [[4, 2], [2, 4]]}"), Error);
  // Issue 10 defect 2: 30000 '[' overflowed the stack of the hand parser.
  EXPECT_THROW(load_text(std::string(30000, '[')), Error);
  EXPECT_THROW(load_bit_map(path("missing_map.json")), Error);
  EXPECT_THROW(load_bit_map(temp_dir()), Error);  // a directory
  // A map of some layers has no head_bits rows, and rows() names the layer it lacks.
  BitMap gap = m;
  gap.bits = {{0, {4, 2}}, {2, {2, 4}}};
  gap.priority = {{0, {1.0, 0.5}}, {2, {0.25, 2.0}}};
  const Json gj = bit_map_to_json(gap);
  EXPECT_FALSE(gj.has("head_bits"));
  write_text(p, gj.dump());
  try {
    load_bit_map(p).rows(3, 2);
    FAIL() << "rows() filled a gap";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no entry for layer 1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace eval
}  // namespace turbo

#include "core/host/numbers.h"

#include <gtest/gtest.h>

#include <limits>

#include "core/error.h"

namespace turbo {
namespace {

TEST(Numbers, ParsesOnlyWholeIntegersInRange) {
  EXPECT_EQ(parse_int("0", 0, 10, "x"), 0);
  EXPECT_EQ(parse_int("-3", -5, 10, "x"), -3);
  EXPECT_EQ(parse_int("+7", 0, 10, "x"), 7);
  for (const char* bad :
       {"", "-", "abc", "1x", " 1", "1.5", "11", "-6", "4294967297", "99999999999999999999999"})
    EXPECT_THROW(parse_int(bad, -5, 10, "--shard"), Error) << bad;
  try {
    parse_int("4294967297", 1, 1000000, "--shard count");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--shard count"), std::string::npos);
  }
}

// Issue 10 defect 13: "--seed -1" and 2^64 became 2^64 - 1.
TEST(Numbers, UnsignedRefusesSignsAndWrap) {
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(parse_uint("18446744073709551615", max, "--seed"), max);
  EXPECT_EQ(parse_uint("42", max, "--seed"), 42u);
  for (const char* bad : {"-1", "18446744073709551616", "", "1e3", "0x10"})
    EXPECT_THROW(parse_uint(bad, max, "--seed"), Error) << bad;
}

}  // namespace
}  // namespace turbo

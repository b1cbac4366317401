#include "core/host/json.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "core/error.h"

namespace turbo {
namespace {

TEST(Json, IntegersStayIntegers) {
  Json o = Json::object();
  o.set("n_layers", 30);
  o.set("tokens", static_cast<int64_t>(1) << 40);
  o.set("seed", static_cast<uint64_t>(18446744073709551615ull));
  o.set("ratio", 0.1);
  const std::string text = o.dump();
  EXPECT_NE(text.find("\"n_layers\": 30"), std::string::npos) << text;
  EXPECT_NE(text.find("\"tokens\": 1099511627776"), std::string::npos) << text;
  EXPECT_NE(text.find("\"seed\": 18446744073709551615"), std::string::npos) << text;
  EXPECT_NE(text.find("\"ratio\": 0.1"), std::string::npos) << text;
  const Json back = Json::parse(text, "t");
  EXPECT_EQ(back.at("n_layers").as_int(), 30);
  EXPECT_EQ(back.at("tokens").as_int(), int64_t{1} << 40);
  EXPECT_THROW(back.at("seed").as_int(), Error);  // above int64: refused, not wrapped
  EXPECT_EQ(back.at("seed").as_uint(), 18446744073709551615ull);
  EXPECT_THROW(Json::parse("-1", "t").as_uint(), Error);
  EXPECT_EQ(back.at("ratio").as_number(), 0.1);
  EXPECT_EQ(back, o);
}

TEST(Json, KeysKeepTheirOrderAndSetReplacesInPlace) {
  Json o = Json::object();
  o.set("b", 1);
  o.set("a", 2);
  o.set("b", 3);
  const auto m = o.members();
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].first, "b");
  EXPECT_EQ(m[0].second.as_int(), 3);
  EXPECT_EQ(m[1].first, "a");
}

TEST(Json, FloatWrittenIntegersOfEarlierFilesStillRead) {
  const Json j = Json::parse("{\"n\": 3e+01, \"x\": 2.5, \"big\": 1e300}", "old.json");
  EXPECT_EQ(j.at("n").as_int(), 30);
  EXPECT_THROW(j.at("x").as_int(), Error);
  EXPECT_THROW(j.at("big").as_int(), Error);
}

TEST(Json, DeepNestingIsRefusedNotRecursed) {
  const std::string deep(30000, '[');
  try {
    Json::parse(deep, "--bits-map m.json");
    FAIL() << "accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("--bits-map m.json"), std::string::npos) << what;
    EXPECT_NE(what.find("nested deeper"), std::string::npos) << what;
  }
  std::string ok;
  for (int i = 0; i < kMaxJsonDepth; ++i) ok += '[';
  for (int i = 0; i < kMaxJsonDepth; ++i) ok += ']';
  EXPECT_NO_THROW(Json::parse(ok, "t"));
}

TEST(Json, SyntaxErrorsNameTheFileAndPosition) {
  for (const char* bad : {"", "{", "{\"a\": }", "[1, 2", "nul", "{\"a\": 1} x", "\"\\uZZZZ\""}) {
    try {
      Json::parse(bad, "side.json");
      FAIL() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("side.json: invalid JSON"), std::string::npos)
          << e.what();
    }
  }
}

TEST(Json, AccessorsNameTheExpectedTypeAndKey) {
  const Json j = Json::parse("{\"a\": \"x\", \"b\": [1]}", "t");
  EXPECT_THROW(j.at("a").as_int(), Error);
  EXPECT_THROW(j.at("b").as_string(), Error);
  try {
    j.at("missing");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'missing'"), std::string::npos);
  }
  EXPECT_EQ(j.at("b").items().at(0).as_int(), 1);
}

TEST(Json, NonFiniteNumbersAreWrittenAsNull) {
  Json o = Json::object();
  o.set("x", std::numeric_limits<double>::quiet_NaN());
  EXPECT_NE(o.dump().find("\"x\": null"), std::string::npos);
}

TEST(Json, RoundTripsEscapesAndRejectsMalformedText) {
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

}  // namespace
}  // namespace turbo

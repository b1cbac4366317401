// JSON values for every reader and writer of the project (sweep sidecars, bit maps, ppl reports,
// the reference-logit cache index), on the nlohmann/json library (Debian nlohmann-json3-dev).
//
// A thin, checked face over nlohmann::ordered_json: objects keep insertion order, integers stay
// integers (written "30", never "3e+01"), accessors throw turbo::Error naming the expected type
// or the missing key, and parse() refuses nesting deeper than kMaxJsonDepth (so no input can
// exhaust the stack) and names the file and position of a syntax error. Accessors return values,
// not references into the tree.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace turbo {

// Deepest nesting parse() accepts (the project's files nest at most 4 levels).
constexpr int kMaxJsonDepth = 64;

class Json {
 public:
  Json() = default;
  Json(bool b) : v_(b) {}                                       // NOLINT
  Json(double v) : v_(v) {}                                     // NOLINT
  Json(int v) : v_(static_cast<int64_t>(v)) {}                  // NOLINT
  Json(long v) : v_(static_cast<int64_t>(v)) {}                 // NOLINT
  Json(long long v) : v_(static_cast<int64_t>(v)) {}            // NOLINT
  Json(unsigned long v) : v_(static_cast<uint64_t>(v)) {}       // NOLINT
  Json(unsigned long long v) : v_(static_cast<uint64_t>(v)) {}  // NOLINT
  Json(const char* s) : v_(std::string(s)) {}                   // NOLINT
  Json(std::string s) : v_(std::move(s)) {}                     // NOLINT
  static Json array() { return Json(nlohmann::ordered_json::array()); }
  static Json object() { return Json(nlohmann::ordered_json::object()); }

  bool is_null() const { return v_.is_null(); }
  bool is_object() const { return v_.is_object(); }
  bool is_array() const { return v_.is_array(); }
  bool is_string() const { return v_.is_string(); }
  bool is_number() const { return v_.is_number(); }
  bool is_integer() const { return v_.is_number_integer(); }

  // Accessors throw turbo::Error naming the expected type. as_int() also takes a number written
  // as a float when it is integral and in range (files of earlier versions wrote "3e+01").
  bool as_bool() const;
  double as_number() const;
  int64_t as_int() const;
  uint64_t as_uint() const;  // a non-negative integer up to 2^64 - 1 (seeds)
  std::string as_string() const;
  std::vector<Json> items() const;
  std::vector<std::pair<std::string, Json>> members() const;
  size_t size() const { return v_.size(); }

  // Object: set (replacing an existing key in place) and look up.
  void set(const std::string& key, Json value);
  bool has(const std::string& key) const;
  Json at(const std::string& key) const;  // throws naming the missing key
  // Array: append.
  void push(Json value);

  // Indented text (two spaces), keys in insertion order, then a newline; numbers shortest
  // round-trip; NaN and infinities as null.
  std::string dump(int indent = 2) const;
  // Parses `text`; errors name `what` (a file name or option) and the position.
  static Json parse(const std::string& text, const std::string& what);

  bool operator==(const Json& o) const { return v_ == o.v_; }
  bool operator!=(const Json& o) const { return v_ != o.v_; }

  const nlohmann::ordered_json& raw() const { return v_; }

 private:
  explicit Json(nlohmann::ordered_json v) : v_(std::move(v)) {}
  nlohmann::ordered_json v_;
};

}  // namespace turbo

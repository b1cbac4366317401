// A small JSON value with an ordered object, a writer and a strict parser: enough for the sweep's
// sidecar files and the calibration bit maps (no external dependency).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace turbo {
namespace eval {

class Json {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Json() = default;
  Json(bool b) : type_(Type::kBool), bool_(b) {}                           // NOLINT
  Json(double v) : type_(Type::kNumber), num_(v) {}                        // NOLINT
  Json(int v) : type_(Type::kNumber), num_(v) {}                           // NOLINT
  Json(int64_t v) : type_(Type::kNumber), num_(static_cast<double>(v)) {}  // NOLINT
  Json(const char* s) : type_(Type::kString), str_(s) {}                   // NOLINT
  Json(std::string s) : type_(Type::kString), str_(std::move(s)) {}        // NOLINT
  static Json array() {
    Json j;
    j.type_ = Type::kArray;
    return j;
  }
  static Json object() {
    Json j;
    j.type_ = Type::kObject;
    return j;
  }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_object() const { return type_ == Type::kObject; }
  bool is_array() const { return type_ == Type::kArray; }

  // Accessors throw turbo::Error naming the expected type.
  bool as_bool() const;
  double as_number() const;
  int64_t as_int() const;
  const std::string& as_string() const;
  const std::vector<Json>& items() const;
  const std::vector<std::pair<std::string, Json>>& members() const;

  // Object: set (replacing an existing key in place) and look up.
  Json& set(const std::string& key, Json value);
  bool has(const std::string& key) const;
  const Json& at(const std::string& key) const;  // throws naming the missing key
  // Array: append.
  Json& push(Json value);

  // Two-space indented text, keys in insertion order; numbers shortest-exact (%.17g trimmed).
  std::string dump(int indent = 2) const;
  static Json parse(const std::string& text, const std::string& what);

 private:
  void dump_to(std::string& out, int indent, int depth) const;
  Type type_ = Type::kNull;
  bool bool_ = false;
  double num_ = 0;
  std::string str_;
  std::vector<Json> items_;
  std::vector<std::pair<std::string, Json>> members_;
};

// Reads a whole file / writes it atomically (tmp + fsync + rename); throw on failure.
std::string read_text_file(const std::string& path);
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace eval
}  // namespace turbo

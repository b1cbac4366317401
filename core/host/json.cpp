#include "core/host/json.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace turbo {
namespace {

const char* type_text(const nlohmann::ordered_json& v) {
  return v.type_name();  // "null", "boolean", "number", "string", "array", "object"
}

}  // namespace

bool Json::as_bool() const {
  TURBO_CHECK(v_.is_boolean(), "JSON: expected a boolean, got " << type_text(v_));
  return v_.get<bool>();
}

double Json::as_number() const {
  TURBO_CHECK(v_.is_number(), "JSON: expected a number, got " << type_text(v_));
  return v_.get<double>();
}

int64_t Json::as_int() const {
  TURBO_CHECK(v_.is_number(), "JSON: expected an integer, got " << type_text(v_));
  if (v_.is_number_unsigned()) {
    const uint64_t u = v_.get<uint64_t>();
    TURBO_CHECK(u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                "JSON: integer " << u << " is out of range");
    return static_cast<int64_t>(u);
  }
  if (v_.is_number_integer()) return v_.get<int64_t>();
  const double d = v_.get<double>();
  // 2^63 is the first double above the int64 range.
  TURBO_CHECK(std::isfinite(d) && std::floor(d) == d && d >= -9223372036854775808.0 &&
                  d < 9223372036854775808.0,
              "JSON: expected an integer, got " << d);
  return static_cast<int64_t>(d);
}

uint64_t Json::as_uint() const {
  if (v_.is_number_unsigned()) return v_.get<uint64_t>();
  const int64_t i = as_int();
  TURBO_CHECK(i >= 0, "JSON: expected a non-negative integer, got " << i);
  return static_cast<uint64_t>(i);
}

std::string Json::as_string() const {
  TURBO_CHECK(v_.is_string(), "JSON: expected a string, got " << type_text(v_));
  return v_.get<std::string>();
}

std::vector<Json> Json::items() const {
  TURBO_CHECK(v_.is_array(), "JSON: expected an array, got " << type_text(v_));
  std::vector<Json> out;
  out.reserve(v_.size());
  for (const auto& e : v_) out.push_back(Json(e));
  return out;
}

std::vector<std::pair<std::string, Json>> Json::members() const {
  TURBO_CHECK(v_.is_object(), "JSON: expected an object, got " << type_text(v_));
  std::vector<std::pair<std::string, Json>> out;
  out.reserve(v_.size());
  for (const auto& kv : v_.items()) out.emplace_back(kv.key(), Json(kv.value()));
  return out;
}

void Json::set(const std::string& key, Json value) {
  TURBO_CHECK(v_.is_object(), "JSON: set on a " << type_text(v_) << ", not an object");
  v_[key] = std::move(value.v_);
}

bool Json::has(const std::string& key) const { return v_.is_object() && v_.contains(key); }

Json Json::at(const std::string& key) const {
  TURBO_CHECK(v_.is_object(),
              "JSON: expected an object holding '" << key << "', got " << type_text(v_));
  const auto it = v_.find(key);
  TURBO_CHECK(it != v_.end(), "JSON: missing key '" << key << "'");
  return Json(*it);
}

void Json::push(Json value) {
  TURBO_CHECK(v_.is_array(), "JSON: push on a " << type_text(v_) << ", not an array");
  v_.push_back(std::move(value.v_));
}

std::string Json::dump(int indent) const {
  // Invalid UTF-8 (a byte string from a command line) is written as U+FFFD, never a throw.
  return v_.dump(indent, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

Json Json::parse(const std::string& text, const std::string& what) {
  // The library's parser keeps its own stack (no recursion); the callback bounds the depth so
  // that neither the tree nor its destruction can grow without limit.
  auto depth_guard = [&what](int depth, nlohmann::ordered_json::parse_event_t,
                             nlohmann::ordered_json&) {
    TURBO_CHECK(depth <= kMaxJsonDepth,
                what << ": invalid JSON: nested deeper than " << kMaxJsonDepth << " levels");
    return true;
  };
  try {
    return Json(nlohmann::ordered_json::parse(text, depth_guard));
  } catch (const nlohmann::ordered_json::exception& e) {
    throw Error(what + ": invalid JSON: " + e.what());
  }
}

}  // namespace turbo

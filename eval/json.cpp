#include "eval/json.h"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace turbo {
namespace eval {

bool Json::as_bool() const {
  TURBO_CHECK(type_ == Type::kBool, "JSON: expected a boolean");
  return bool_;
}
double Json::as_number() const {
  TURBO_CHECK(type_ == Type::kNumber, "JSON: expected a number");
  return num_;
}
int64_t Json::as_int() const {
  const double v = as_number();
  TURBO_CHECK(std::floor(v) == v, "JSON: expected an integer, got " << v);
  return static_cast<int64_t>(v);
}
const std::string& Json::as_string() const {
  TURBO_CHECK(type_ == Type::kString, "JSON: expected a string");
  return str_;
}
const std::vector<Json>& Json::items() const {
  TURBO_CHECK(type_ == Type::kArray, "JSON: expected an array");
  return items_;
}
const std::vector<std::pair<std::string, Json>>& Json::members() const {
  TURBO_CHECK(type_ == Type::kObject, "JSON: expected an object");
  return members_;
}

Json& Json::set(const std::string& key, Json value) {
  TURBO_CHECK(type_ == Type::kObject, "JSON: set on a non-object");
  for (auto& m : members_)
    if (m.first == key) {
      m.second = std::move(value);
      return m.second;
    }
  members_.emplace_back(key, std::move(value));
  return members_.back().second;
}
bool Json::has(const std::string& key) const {
  if (type_ != Type::kObject) return false;
  for (const auto& m : members_)
    if (m.first == key) return true;
  return false;
}
const Json& Json::at(const std::string& key) const {
  TURBO_CHECK(type_ == Type::kObject, "JSON: expected an object holding '" << key << "'");
  for (const auto& m : members_)
    if (m.first == key) return m.second;
  throw Error("JSON: missing key '" + key + "'");
}
Json& Json::push(Json value) {
  TURBO_CHECK(type_ == Type::kArray, "JSON: push on a non-array");
  items_.push_back(std::move(value));
  return items_.back();
}

namespace {

void escape(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

std::string number_text(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

class Parser {
 public:
  Parser(const std::string& t, const std::string& what) : t_(t), what_(what) {}
  Json parse_all() {
    Json v = value();
    ws();
    if (i_ != t_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& m) {
    throw Error(what_ + ": invalid JSON at byte " + std::to_string(i_) + ": " + m);
  }
  void ws() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n' || t_[i_] == '\r' || t_[i_] == '\t'))
      ++i_;
  }
  bool eat(char c) {
    ws();
    if (i_ < t_.size() && t_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  std::string str() {
    expect('"');
    std::string s;
    while (true) {
      if (i_ >= t_.size()) fail("unterminated string");
      const char c = t_[i_++];
      if (c == '"') break;
      if (c != '\\') {
        s += c;
        continue;
      }
      if (i_ >= t_.size()) fail("bad escape");
      const char e = t_[i_++];
      switch (e) {
        case '"':
          s += '"';
          break;
        case '\\':
          s += '\\';
          break;
        case '/':
          s += '/';
          break;
        case 'n':
          s += '\n';
          break;
        case 'r':
          s += '\r';
          break;
        case 't':
          s += '\t';
          break;
        case 'b':
          s += '\b';
          break;
        case 'f':
          s += '\f';
          break;
        case 'u': {
          if (i_ + 4 > t_.size()) fail("bad \\u escape");
          const unsigned cp =
              static_cast<unsigned>(std::strtoul(t_.substr(i_, 4).c_str(), nullptr, 16));
          i_ += 4;
          if (cp < 0x80) {
            s += static_cast<char>(cp);
          } else if (cp < 0x800) {
            s += static_cast<char>(0xC0 | (cp >> 6));
            s += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            s += static_cast<char>(0xE0 | (cp >> 12));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            s += static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default:
          fail("bad escape");
      }
    }
    return s;
  }
  Json value() {
    ws();
    if (i_ >= t_.size()) fail("unexpected end");
    const char c = t_[i_];
    if (c == '{') {
      ++i_;
      Json o = Json::object();
      if (eat('}')) return o;
      do {
        ws();
        const std::string k = str();
        expect(':');
        o.set(k, value());
      } while (eat(','));
      expect('}');
      return o;
    }
    if (c == '[') {
      ++i_;
      Json a = Json::array();
      if (eat(']')) return a;
      do a.push(value());
      while (eat(','));
      expect(']');
      return a;
    }
    if (c == '"') return Json(str());
    if (t_.compare(i_, 4, "true") == 0) {
      i_ += 4;
      return Json(true);
    }
    if (t_.compare(i_, 5, "false") == 0) {
      i_ += 5;
      return Json(false);
    }
    if (t_.compare(i_, 4, "null") == 0) {
      i_ += 4;
      return Json();
    }
    const char* begin = t_.c_str() + i_;
    char* end = nullptr;
    const double v = std::strtod(begin, &end);
    if (end == begin) fail("unexpected character");
    i_ += static_cast<size_t>(end - begin);
    return Json(v);
  }
  const std::string& t_;
  std::string what_;
  size_t i_ = 0;
};

}  // namespace

void Json::dump_to(std::string& out, int indent, int depth) const {
  const std::string pad(static_cast<size_t>(indent * (depth + 1)), ' ');
  const std::string pad_end(static_cast<size_t>(indent * depth), ' ');
  const char* nl = indent ? "\n" : "";
  switch (type_) {
    case Type::kNull:
      out += "null";
      break;
    case Type::kBool:
      out += bool_ ? "true" : "false";
      break;
    case Type::kNumber:
      out += number_text(num_);
      break;
    case Type::kString:
      escape(out, str_);
      break;
    case Type::kArray: {
      // Arrays of scalars stay on one line.
      bool flat = true;
      for (const Json& j : items_)
        flat = flat && j.type_ != Type::kArray && j.type_ != Type::kObject;
      out += '[';
      for (size_t i = 0; i < items_.size(); ++i) {
        if (i) out += flat ? ", " : ",";
        if (!flat) out += nl + pad;
        items_[i].dump_to(out, indent, depth + 1);
      }
      if (!flat && !items_.empty()) out += nl + pad_end;
      out += ']';
      break;
    }
    case Type::kObject: {
      out += '{';
      for (size_t i = 0; i < members_.size(); ++i) {
        if (i) out += ',';
        out += nl + pad;
        escape(out, members_[i].first);
        out += ": ";
        members_[i].second.dump_to(out, indent, depth + 1);
      }
      if (!members_.empty()) out += nl + pad_end;
      out += '}';
      break;
    }
  }
}

std::string Json::dump(int indent) const {
  std::string out;
  dump_to(out, indent, 0);
  out += '\n';
  return out;
}

Json Json::parse(const std::string& text, const std::string& what) {
  return Parser(text, what).parse_all();
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TURBO_CHECK(in, "cannot open '" << path << "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  TURBO_CHECK(fd >= 0, "cannot write '" << tmp << "'");
  size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n <= 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error("write failed for '" + tmp + "'");
    }
    off += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  TURBO_CHECK(::rename(tmp.c_str(), path.c_str()) == 0,
              "cannot rename '" << tmp << "' to '" << path << "'");
}

}  // namespace eval
}  // namespace turbo

#include "core/host/numbers.h"

#include <cerrno>
#include <cstdlib>

#include "core/error.h"

namespace turbo {
namespace {

bool all_digits(const std::string& s, size_t from) {
  if (from >= s.size()) return false;
  for (size_t i = from; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

}  // namespace

int64_t parse_int(const std::string& text, int64_t lo, int64_t hi, const std::string& what) {
  const size_t from = !text.empty() && (text[0] == '-' || text[0] == '+') ? 1 : 0;
  TURBO_CHECK(all_digits(text, from), what << ": '" << text
                                           << "' is not an integer (expected one in [" << lo << ", "
                                           << hi << "])");
  errno = 0;
  const long long v = std::strtoll(text.c_str(), nullptr, 10);
  TURBO_CHECK(errno != ERANGE && v >= lo && v <= hi,
              what << ": " << text << " is outside [" << lo << ", " << hi << "]");
  return static_cast<int64_t>(v);
}

uint64_t parse_uint(const std::string& text, uint64_t hi, const std::string& what) {
  const size_t from = !text.empty() && text[0] == '+' ? 1 : 0;
  TURBO_CHECK(all_digits(text, from),
              what << ": '" << text << "' is not a non-negative integer (expected one in [0, " << hi
                   << "])");
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
  TURBO_CHECK(errno != ERANGE && v <= hi, what << ": " << text << " is outside [0, " << hi << "]");
  return static_cast<uint64_t>(v);
}

}  // namespace turbo

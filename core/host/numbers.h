// Strict integer parsing for command-line values, file keys and grid ranges: the whole text must
// be a base-10 integer inside [lo, hi]; anything else (empty, trailing characters, out of range,
// a value that would wrap) throws turbo::Error naming `what` and the accepted range.
#pragma once

#include <cstdint>
#include <string>

namespace turbo {

int64_t parse_int(const std::string& text, int64_t lo, int64_t hi, const std::string& what);
// Unsigned: no sign at all (strtoull would read "-1" as 2^64 - 1).
uint64_t parse_uint(const std::string& text, uint64_t hi, const std::string& what);

}  // namespace turbo

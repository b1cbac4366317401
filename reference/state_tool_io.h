// File I/O of the oracle state tools (kivi_state_tool, sage_state_tool): raw little-endian FP16
// rows in, raw arrays out, for the NumPy oracles beside them.
#pragma once

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/backend.h"

namespace turbo {
namespace ref {

// Reads a file of little-endian FP16 values.
inline std::vector<Half> read_fp16_rows(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  TURBO_CHECK(f, "cannot read " << path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  TURBO_CHECK(bytes.size() % 2 == 0, path << " is not a whole number of FP16 values");
  std::vector<Half> out(bytes.size() / 2);
  for (size_t i = 0; i < out.size(); ++i)
    out[i].bits = static_cast<uint16_t>(static_cast<uint8_t>(bytes[2 * i]) |
                                        (static_cast<uint8_t>(bytes[2 * i + 1]) << 8));
  return out;
}

// Appends the raw bytes of v to f.
template <typename T>
void put_raw(std::ofstream& f, const std::vector<T>& v) {
  f.write(reinterpret_cast<const char*>(v.data()),
          static_cast<std::streamsize>(v.size() * sizeof(T)));
}

}  // namespace ref
}  // namespace turbo

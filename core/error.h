// Error handling: host code throws turbo::Error with a message that names what was wrong
// (tensor, layer, head, knob) and, where there is a finite set, what is valid.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace turbo {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Result of a check that is allowed to fail without throwing (validation, parsing helpers).
struct Status {
  bool ok = true;
  std::string message;
  static Status Ok() { return {}; }
  static Status Fail(std::string m) { return {false, std::move(m)}; }
  explicit operator bool() const { return ok; }
};

}  // namespace turbo

#define TURBO_CHECK(cond, msg)                     \
  do {                                             \
    if (!(cond)) {                                 \
      std::ostringstream turbo_check_os_;          \
      turbo_check_os_ << msg;                      \
      throw ::turbo::Error(turbo_check_os_.str()); \
    }                                              \
  } while (0)

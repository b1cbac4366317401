// Test helper shared by the unit tests: the message of the turbo::Error a call throws.
#pragma once

#include <functional>
#include <string>

#include "core/error.h"

namespace turbo {

// The what() of the turbo::Error that f throws, or "" when it throws none (other exceptions
// propagate, so a test sees them as failures).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace turbo

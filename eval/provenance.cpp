#include "eval/provenance.h"

#include <hdf5.h>

#include <cstdio>
#include <string>

#include "turbo_provenance.h"

namespace turbo {
namespace eval {

#ifndef TURBO_VERSION
#define TURBO_VERSION "unknown"
#endif

std::string tool_version() { return TURBO_VERSION; }

std::string git_commit() { return TURBO_GIT_COMMIT; }

Json provenance_json(const std::string& format, const std::string& command) {
  Json j = Json::object();
  j.set("format", format);
  j.set("command", command);
  j.set("version", tool_version());
  j.set("git_commit", git_commit());
  j.set("build", build_versions());
  return j;
}

std::string build_versions() {
  std::string v;
#if defined(__clang__)
  v = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  v = std::string("gcc ") + __VERSION__;
#else
  v = "unknown compiler";
#endif
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  v += "; HDF5 " + std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(rel);
#ifdef _OPENMP
  v += "; OpenMP " + std::to_string(_OPENMP);
#else
  v += "; no OpenMP";
#endif
  return v + "; flags: " + TURBO_BUILD_FLAGS;
}

std::string command_line(int argc, const char* const* argv) {
  std::string out;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    bool plain = !a.empty();
    for (char c : a)
      if (!(isalnum(static_cast<unsigned char>(c)) ||
            std::string("-_./=:,+@%").find(c) != std::string::npos))
        plain = false;
    if (i) out += ' ';
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

}  // namespace eval
}  // namespace turbo

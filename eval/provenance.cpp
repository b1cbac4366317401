#include "eval/provenance.h"

#include <hdf5.h>

#include <cstdio>
#include <string>

namespace turbo {
namespace eval {

#ifndef TURBO_VERSION
#define TURBO_VERSION "unknown"
#endif
#ifndef TURBO_SOURCE_DIR
#define TURBO_SOURCE_DIR "."
#endif

std::string tool_version() { return TURBO_VERSION; }

namespace {

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  ::pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

}  // namespace

std::string git_commit() {
  const std::string dir = TURBO_SOURCE_DIR;
  const std::string head = run("git -C '" + dir + "' rev-parse HEAD 2>/dev/null");
  if (head.empty()) return "unknown";
  const std::string dirty =
      run("git -C '" + dir + "' status --porcelain --untracked-files=no 2>/dev/null");
  return dirty.empty() ? head : head + "+dirty";
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
  return v;
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

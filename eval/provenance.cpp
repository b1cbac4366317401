#include "eval/provenance.h"

#include <cstdio>

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

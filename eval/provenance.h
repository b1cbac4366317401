// Where a result came from: the tool version and the git commit of the source tree it was built
// from ("+dirty" when tracked files differed from the commit), stamped at build time by
// cmake/provenance.cmake: the binary reads no source tree at run time.
#pragma once

#include <string>

#include "core/host/json.h"

namespace turbo {
namespace eval {

std::string tool_version();
std::string git_commit();
// Compiler, HDF5 and OpenMP versions and the compile flags of this build, e.g.
// "gcc 12.2.0; HDF5 1.10.8; OpenMP 201511; flags: build=Release -O3 -DNDEBUG -ffp-contract=off
// ...".
std::string build_versions();
// The head of every result file's JSON: {"format", "command", "version", "git_commit", "build"}
// (in this order); the caller adds its own keys after them.
Json provenance_json(const std::string& format, const std::string& command);
// The argv of this process as one shell-quoted command line.
std::string command_line(int argc, const char* const* argv);

}  // namespace eval
}  // namespace turbo

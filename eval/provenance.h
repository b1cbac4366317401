// Where a result came from: the tool version and the git commit of the source tree it was built
// from (read at run time, "+dirty" when tracked files differ from the commit).
#pragma once

#include <string>

namespace turbo {
namespace eval {

std::string tool_version();
std::string git_commit();
// Compiler, HDF5 and OpenMP versions of this build, e.g. "gcc 12.2.0; HDF5 1.10.8; OpenMP 201511".
std::string build_versions();
// The argv of this process as one shell-quoted command line.
std::string command_line(int argc, const char* const* argv);

}  // namespace eval
}  // namespace turbo

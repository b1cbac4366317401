// Where a result came from: the tool version and the git commit of the source tree it was built
// from (read at run time, "+dirty" when tracked files differ from the commit).
#pragma once

#include <string>

namespace turbo {
namespace eval {

std::string tool_version();
std::string git_commit();
// The argv of this process as one shell-quoted command line.
std::string command_line(int argc, const char* const* argv);

}  // namespace eval
}  // namespace turbo

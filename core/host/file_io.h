// File I/O shared by datasets/ and eval/: inputs that must be regular files (a directory or a
// FIFO is refused by name instead of reading garbage or blocking), atomic replacement of an output
// (temporary file + fsync, every step checked before the rename), a check that an output is not
// one of the inputs, and an exclusive lock on an output.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace turbo {

// Throws turbo::Error naming `what` and `path` unless `path` is an existing regular file
// (after symlinks): "does not exist", "is a directory", "is not a regular file (FIFO, device or
// socket)". `what` is the role, e.g. "--data".
void check_input_file(const std::string& path, const std::string& what);

// The whole content of a regular file; the checks of check_input_file, then a checked read. The
// file is opened non-blocking, so a FIFO is refused instead of waited on.
std::string read_text_file(const std::string& path, const std::string& what = "input file");
std::vector<uint8_t> read_binary_file(const std::string& path,
                                      const std::string& what = "input file");

// Replaces `path` by `text` atomically: writes `<path>.tmp.<pid>` in the same directory, checks
// every write, fsync and close, then renames it over `path` and syncs the directory. On any
// failure the temporary file is removed, `path` is untouched, and turbo::Error names the step.
void write_file_atomic(const std::string& path, const std::string& text);

// Throws unless `path` can be an output file: it does not exist yet, or it is a regular file (a
// directory, FIFO or device is refused by name: writing to a FIFO would block forever).
void check_output_path(const std::string& path, const std::string& what);

// Whether `a` and `b` name the same existing file (same device and inode: also through links).
bool same_file(const std::string& a, const std::string& b);
// Throws unless output `out` differs from every input (a file that does not exist yet cannot be
// an input). `out_what` names the output option, each input its role.
void check_output_is_not_input(const std::string& out, const std::string& out_what,
                               const std::vector<std::pair<std::string, std::string>>& inputs);

// An exclusive advisory lock (flock) on `<path>.lock`, held while the object lives. A second
// holder (another process writing the same output) is refused at once with an error that names
// the output. The lock file itself stays behind (removing it would race with a new holder).
class OutputLock {
 public:
  explicit OutputLock(const std::string& path);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace turbo

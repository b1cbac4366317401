#include "core/host/file_io.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "core/error.h"

namespace turbo {
namespace {

std::string errno_text() { return std::strerror(errno); }

// Why `st` is not a regular file, or "" when it is.
std::string not_regular_reason(const struct stat& st) {
  if (S_ISREG(st.st_mode)) return "";
  if (S_ISDIR(st.st_mode)) return "is a directory, not a file";
  if (S_ISFIFO(st.st_mode)) return "is a FIFO (named pipe), not a regular file";
  return "is not a regular file (a device or socket)";
}

std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

// Opens a regular file for reading without blocking on a FIFO; returns the descriptor.
int open_regular(const std::string& path, const std::string& what, struct stat& st) {
  TURBO_CHECK(!path.empty(), what << ": empty path");
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    struct stat s;
    if (::stat(path.c_str(), &s) == 0 && !not_regular_reason(s).empty())
      throw Error(what + " '" + path + "' " + not_regular_reason(s));
    errno = e;
    throw Error(
        what + " '" + path + "' " +
        (e == ENOENT ? std::string("does not exist") : "cannot be opened: " + errno_text()));
  }
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const std::string why = not_regular_reason(st);
    ::close(fd);
    throw Error(what + " '" + path + "' " + (why.empty() ? "cannot be examined" : why));
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

template <typename Buffer>
Buffer read_all(const std::string& path, const std::string& what) {
  struct stat st;
  const int fd = open_regular(path, what, st);
  Buffer out;
  out.resize(static_cast<size_t>(st.st_size));
  size_t off = 0;
  while (true) {
    if (off == out.size()) out.resize(out.size() + 65536);  // grown while we read
    const ssize_t n = ::read(fd, &out[off], out.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string e = errno_text();
      ::close(fd);
      throw Error("read error on " + what + " '" + path + "': " + e);
    }
    if (n == 0) break;
    off += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(off);
  return out;
}

}  // namespace

void check_input_file(const std::string& path, const std::string& what) {
  TURBO_CHECK(!path.empty(), what << ": empty path");
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    throw Error(
        what + " '" + path + "' " +
        (errno == ENOENT ? std::string("does not exist") : "cannot be examined: " + errno_text()));
  const std::string why = not_regular_reason(st);
  TURBO_CHECK(why.empty(), what << " '" << path << "' " << why);
}

std::string read_text_file(const std::string& path, const std::string& what) {
  return read_all<std::string>(path, what);
}

std::vector<uint8_t> read_binary_file(const std::string& path, const std::string& what) {
  return read_all<std::vector<uint8_t>>(path, what);
}

void check_output_path(const std::string& path, const std::string& what) {
  TURBO_CHECK(!path.empty(), what << ": empty path");
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return;  // a new file
  const std::string why = not_regular_reason(st);
  TURBO_CHECK(why.empty(), what << " '" << path << "' " << why);
}

void write_file_atomic(const std::string& path, const std::string& text) {
  check_output_path(path, "output");
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  TURBO_CHECK(fd >= 0, "cannot create '" << tmp << "': " << errno_text());
  auto fail = [&](const std::string& step) {
    const std::string e = errno_text();
    ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(step + " '" + tmp + "' failed (" + e + "); '" + path + "' is unchanged");
  };
  size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("writing");
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) fail("fsync of");
  if (::close(fd) != 0) {
    const std::string e = errno_text();
    ::unlink(tmp.c_str());
    throw Error("closing '" + tmp + "' failed (" + e + "); '" + path + "' is unchanged");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string e = errno_text();
    ::unlink(tmp.c_str());
    throw Error("cannot rename '" + tmp + "' to '" + path + "': " + e);
  }
  const int dfd = ::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // the rename itself reaches the disk; best effort on file systems without it
    ::close(dfd);
  }
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

void check_output_is_not_input(const std::string& out, const std::string& out_what,
                               const std::vector<std::pair<std::string, std::string>>& inputs) {
  for (const auto& in : inputs)
    TURBO_CHECK(in.first.empty() || !same_file(out, in.first),
                out_what << " '" << out << "' is the same file as " << in.second << " '" << in.first
                         << "'; writing it would destroy the input");
}

OutputLock::OutputLock(const std::string& path) {
  const std::string lock = path + ".lock";
  fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  TURBO_CHECK(fd_ >= 0, "cannot create lock file '" << lock << "': " << errno_text());
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const bool busy = errno == EWOULDBLOCK;
    const std::string e = errno_text();
    ::close(fd_);
    fd_ = -1;
    TURBO_CHECK(!busy, "another turboattn process is writing '"
                           << path << "' (it holds " << lock
                           << "); wait for it or choose another output");
    throw Error("cannot lock '" + lock + "': " + e);
  }
}

OutputLock::~OutputLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace turbo

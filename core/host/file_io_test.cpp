#include "core/host/file_io.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <string>

#include "core/error.h"
#include "core/error_test_util.h"

namespace turbo {
namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/turbo_host_test_XXXXXX";
  const char* d = ::mkdtemp(tmpl);
  EXPECT_NE(d, nullptr);
  return d;
}

void write(const std::string& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

TEST(FileIo, ReadsRegularFilesAndNamesEveryOtherKind) {
  const std::string d = temp_dir();
  write(d + "/a.txt", "hello\n");
  EXPECT_EQ(read_text_file(d + "/a.txt", "--text"), "hello\n");
  EXPECT_EQ(read_binary_file(d + "/a.txt").size(), 6u);
  write(d + "/empty", "");
  EXPECT_EQ(read_text_file(d + "/empty"), "");

  const std::string missing = error_of([&] { read_text_file(d + "/nope", "--grid"); });
  EXPECT_NE(missing.find("--grid"), std::string::npos) << missing;
  EXPECT_NE(missing.find("does not exist"), std::string::npos) << missing;

  const std::string dir = error_of([&] { read_text_file(d, "--bits-map"); });
  EXPECT_NE(dir.find("is a directory"), std::string::npos) << dir;
  EXPECT_NE(error_of([&] { check_input_file(d, "--model"); }).find("is a directory"),
            std::string::npos);

  // A FIFO with no writer: refused at once, never waited on.
  ASSERT_EQ(::mkfifo((d + "/fifo").c_str(), 0600), 0);
  const std::string fifo = error_of([&] { read_text_file(d + "/fifo", "--text"); });
  EXPECT_NE(fifo.find("FIFO"), std::string::npos) << fifo;
  EXPECT_NE(error_of([&] { check_input_file(d + "/fifo", "--data"); }).find("FIFO"),
            std::string::npos);
}

TEST(FileIo, AtomicWriteReplacesOrLeavesTheFileUntouched) {
  const std::string d = temp_dir();
  const std::string p = d + "/out.json";
  write_file_atomic(p, "one\n");
  EXPECT_EQ(read_text_file(p), "one\n");
  write_file_atomic(p, "two\n");
  EXPECT_EQ(read_text_file(p), "two\n");
  // A directory as the output is refused by name; an unwritable directory leaves no file.
  EXPECT_NE(error_of([&] { write_file_atomic(d, "x"); }).find("is a directory"), std::string::npos);
  ASSERT_EQ(::mkfifo((d + "/fifo").c_str(), 0600), 0);
  EXPECT_NE(error_of([&] { write_file_atomic(d + "/fifo", "x"); }).find("FIFO"), std::string::npos);
  EXPECT_NE(error_of([&] { check_output_path(d, "-o"); }).find("-o '"), std::string::npos);
  check_output_path(d + "/new.csv", "-o");
  EXPECT_FALSE(error_of([&] { write_file_atomic(d + "/no/such/dir/f", "x"); }).empty());
}

TEST(FileIo, AtomicWriteOnAFullDeviceKeepsTheOldFile) {
  // /dev/full fails every write with ENOSPC; a temporary there cannot be made, so emulate the
  // full disk with a file system limit when one is available: RLIMIT_FSIZE makes write() fail.
  const std::string d = temp_dir();
  const std::string p = d + "/r.json";
  write_file_atomic(p, "old\n");
  const std::string big(1 << 20, 'x');
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    struct rlimit rl = {4096, 4096};
    ::signal(SIGXFSZ, SIG_IGN);
    ::setrlimit(RLIMIT_FSIZE, &rl);
    try {
      write_file_atomic(p, big);
    } catch (const Error&) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
  EXPECT_EQ(read_text_file(p), "old\n");
  // No temporary is left behind.
  EXPECT_NE(::access((p + ".tmp." + std::to_string(pid)).c_str(), F_OK), 0);
}

TEST(FileIo, OutputEqualToAnInputIsRefused) {
  const std::string d = temp_dir();
  write(d + "/v.h5", "data");
  EXPECT_TRUE(same_file(d + "/v.h5", d + "/./v.h5"));
  ASSERT_EQ(::symlink((d + "/v.h5").c_str(), (d + "/link.h5").c_str()), 0);
  EXPECT_TRUE(same_file(d + "/link.h5", d + "/v.h5"));
  EXPECT_FALSE(same_file(d + "/v.h5", d + "/new.csv"));
  const std::string e = error_of([&] {
    check_output_is_not_input(d + "/link.h5", "-o", {{d + "/v.h5", "--data"}});
  });
  EXPECT_NE(e.find("same file as --data"), std::string::npos) << e;
  check_output_is_not_input(d + "/new.csv", "-o", {{d + "/v.h5", "--data"}, {"", "--grid"}});
}

TEST(FileIo, OutputLockIsExclusiveAcrossProcesses) {
  const std::string d = temp_dir();
  const std::string p = d + "/r.csv";
  {
    OutputLock held(p);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      try {
        OutputLock second(p);
      } catch (const Error& e) {
        ::_exit(std::string(e.what()).find("another turboattn process") != std::string::npos ? 3
                                                                                             : 4);
      }
      ::_exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 3);
  }
  OutputLock again(p);  // released with its holder
}

}  // namespace
}  // namespace turbo

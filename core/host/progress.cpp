#include "core/host/progress.h"

#include <unistd.h>

#include <cstdio>
#include <utility>

namespace turbo {

std::string duration_text(double s) {
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600,
                  static_cast<int>(s) % 3600 / 60);
  return buf;
}

Progress::Progress(std::string what, int64_t total, int verbosity, double min_interval)
    : what_(std::move(what)),
      total_(total),
      verbosity_(verbosity),
      min_interval_(min_interval),
      tty_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()) {}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t n, const std::string& label) {
  if (verbosity_ == 0) return;
  const double el = elapsed();
  const bool last = n >= total_;
  // A terminal redraws at most 10 times a second; a log gets a line per min_interval.
  if (!last && el - last_print_ < (tty_ ? 0.1 : min_interval_)) return;
  last_print_ = el;
  const double eta = n > 0 ? el / static_cast<double>(n) * static_cast<double>(total_ - n) : 0;
  std::string lab = label;
  if (lab.size() > 60) lab = lab.substr(0, 57) + "...";
  if (tty_) {
    const int width = 30;
    const int fill = total_ > 0 ? static_cast<int>(width * n / total_) : width;
    std::string bar(static_cast<size_t>(fill), '#');
    bar += std::string(static_cast<size_t>(width - fill), '-');
    std::fprintf(stderr, "\r\033[K%s [%s] %lld/%lld  %s elapsed, ETA %s  %s", what_.c_str(),
                 bar.c_str(), static_cast<long long>(n), static_cast<long long>(total_),
                 duration_text(el).c_str(), duration_text(eta).c_str(), lab.c_str());
    if (last) std::fprintf(stderr, "\n");
  } else {
    std::fprintf(stderr, "%s [%lld/%lld] %s  %s elapsed (ETA %s)\n", what_.c_str(),
                 static_cast<long long>(n), static_cast<long long>(total_), lab.c_str(),
                 duration_text(el).c_str(), duration_text(eta).c_str());
  }
  std::fflush(stderr);
}

}  // namespace turbo

// The progress display of long commands (sweep, ppl, capture, validate), on stderr. On a terminal
// one line is redrawn: a bar, done/total, elapsed time, ETA and a label. Elsewhere (a log file,
// CI) whole lines are printed, at most one per `min_interval` seconds plus the last one, so that
// a log stays short. Verbosity 0 prints nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace turbo {

// Seconds on the steady clock from t0 to now.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// "12.3s", "4m05s", "2h03m".
std::string duration_text(double seconds);

class Progress {
 public:
  Progress(std::string what, int64_t total, int verbosity, double min_interval = 0.0);
  // `done` of `total` steps are complete; `label` names the last one.
  void update(int64_t done, const std::string& label = "");
  double elapsed() const;

 private:
  std::string what_;
  int64_t total_;
  int verbosity_;
  double min_interval_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  double last_print_ = -1e30;
};

}  // namespace turbo

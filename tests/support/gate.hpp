#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace troupe::test {

/// Holds the threads that call `pass` (task functions, callbacks) until the
/// test calls `open`, so that a test can fill a queue or a buffer
/// deterministically. Every wait is bounded by the gate's patience.
/// Thread-safe.
class gate {
public:
  explicit gate(std::chrono::milliseconds patience = std::chrono::seconds(20))
      : patience_(patience) {}

  /// Lets every waiting and future caller of `pass` through.
  void open() {
    std::lock_guard<std::mutex> guard{mtx_};
    open_ = true;
    cv_.notify_all();
  }

  /// Counts the arrival, then waits until the gate opens or the patience
  /// runs out.
  void pass() {
    std::unique_lock<std::mutex> guard{mtx_};
    ++waiting_;
    cv_.notify_all();
    cv_.wait_for(guard, patience_, [this] { return open_; });
  }

  /// Waits until `n` callers arrived; returns whether they came in time.
  bool wait_for_waiting(int n) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, patience_, [&] { return waiting_ >= n; });
  }

private:
  std::chrono::milliseconds patience_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
};

} // namespace troupe::test

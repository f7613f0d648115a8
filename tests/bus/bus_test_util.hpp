#pragma once

// What the bus tests share: a callback that records what it receives.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "troupe/bus/bus.hpp"

namespace troupe::bus::test {

/// Every wait of a recorder is bounded by this.
constexpr auto recorder_patience = std::chrono::seconds(20);

/// Waits until `pred()` holds or `recorder_patience` passed; returns
/// `pred()`. Polls: for conditions the bus offers no notification for (its
/// counters, a cluster's peers).
template <class Pred>
bool eventually(Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + recorder_patience;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
  return true;
}

// Records what a callback receives; the test thread waits for counts.
class recorder {
public:
  void add(const bus_message& m) {
    std::lock_guard<std::mutex> guard{mtx_};
    msgs_.push_back(m);
    cv_.notify_all();
  }

  // Returns whether at least `n` messages arrived in time.
  bool wait_for(size_t n) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, recorder_patience,
                        [&] { return msgs_.size() >= n; });
  }

  std::vector<bus_message> messages() {
    std::lock_guard<std::mutex> guard{mtx_};
    return msgs_;
  }

  std::vector<std::string> payloads() {
    std::lock_guard<std::mutex> guard{mtx_};
    std::vector<std::string> xs;
    for (auto& m : msgs_)
      xs.push_back(m.payload);
    return xs;
  }

  size_t size() {
    std::lock_guard<std::mutex> guard{mtx_};
    return msgs_.size();
  }

  bus_callback callback() {
    return [this](const bus_message& m) { add(m); };
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<bus_message> msgs_;
};

} // namespace troupe::bus::test

// tally: counts what the subscriptions of one benchmark process received,
// for bus_bench and nats_bench alike, so that both time the same way.

#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace troupe::bench {

using bench_clock = std::chrono::steady_clock;

/// Returns the seconds between `from` and `to`.
inline double seconds(bench_clock::time_point from,
                      bench_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

/// Counts the deliveries of `subs` subscriptions that each expect `count`
/// messages (at least 1), and remembers when the first message arrived (at any
/// of them) and when the last subscription got its last one.
///
/// Invariants: (1) slot `i` is written only by subscription `i`'s callback,
/// which never runs concurrently with itself; (2) `first_` is written once;
/// `last_` only grows, and each subscription stores its
/// finishing time there before it decrements `remaining_`.
///
/// Thread-safety: `hit(i)` from subscription `i`'s callback; everything else
/// from any thread.
class tally {
public:
  tally(size_t subs, uint64_t count)
      : slots_(subs), count_(count), remaining_(subs) {}

  tally(const tally&) = delete;
  tally& operator=(const tally&) = delete;

  /// Counts one message for subscription `i`.
  void hit(size_t i) {
    if (!started_.load(std::memory_order_relaxed)) {
      auto now = bench_clock::now().time_since_epoch().count();
      bool expected = false;
      if (started_.compare_exchange_strong(expected, true))
        first_.store(now);
    }
    auto& got = slots_[i].got;
    // Only this callback writes the slot: no read-modify-write needed.
    auto n = got.load(std::memory_order_relaxed) + 1;
    got.store(n, std::memory_order_relaxed);
    if (n == count_) {
      auto now = bench_clock::now().time_since_epoch().count();
      auto prev = last_.load();
      while (prev < now && !last_.compare_exchange_weak(prev, now)) {
        // `prev` now holds what another subscription stored; try again.
      }
      if (remaining_.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> guard{mtx_};
        cv_.notify_all();
      }
    }
  }

  /// Blocks until every subscription got `count` messages (true), or until
  /// no message arrived for `idle` (false).
  bool wait(bench_clock::duration idle) {
    uint64_t seen = total();
    auto progress = bench_clock::now();
    std::unique_lock<std::mutex> guard{mtx_};
    while (remaining_.load() > 0) {
      cv_.wait_for(guard, std::chrono::milliseconds(100));
      auto now = bench_clock::now();
      if (auto n = total(); n != seen) {
        seen = n;
        progress = now;
      } else if (now - progress > idle) {
        return remaining_.load() == 0;
      }
    }
    return true;
  }

  /// Returns the messages counted so far, over all subscriptions.
  uint64_t total() const {
    uint64_t sum = 0;
    for (auto& s : slots_)
      sum += s.got.load(std::memory_order_relaxed);
    return sum;
  }

  /// Returns whether any message arrived.
  bool started() const {
    return started_.load();
  }

  /// Returns when the first message arrived. @pre `started()`
  bench_clock::time_point first() const {
    return bench_clock::time_point{bench_clock::duration{first_.load()}};
  }

  /// Returns when the last subscription got its last message.
  /// @pre `wait` returned true.
  bench_clock::time_point last() const {
    return bench_clock::time_point{bench_clock::duration{last_.load()}};
  }

private:
  // One cache line per slot: the callbacks run on different threads.
  struct alignas(64) slot {
    std::atomic<uint64_t> got{0};
  };

  std::vector<slot> slots_;
  const uint64_t count_;
  std::atomic<size_t> remaining_;
  std::atomic<bool> started_{false};
  std::atomic<bench_clock::rep> first_{0};
  std::atomic<bench_clock::rep> last_{0};
  std::mutex mtx_;
  std::condition_variable cv_;
};

} // namespace troupe::bench

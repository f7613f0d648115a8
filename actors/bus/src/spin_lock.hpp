#pragma once

// Private: the spin lock that guards a subscription's buffer (see
// subscription.hpp).

#include <atomic>
#include <thread>

namespace troupe::bus::detail {

// A spin lock for a subscription's critical sections, which last tens of
// nanoseconds: taking it is one atomic exchange and releasing it a plain
// store, where a mutex costs two atomic operations, and a system call
// whenever publisher and drainer meet. A waiter spins briefly, then yields
// its thread, so a holder that lost its core gets it back. Waiting for room
// or for a callback happens on condition variables (`_any`), not here.
class spin_lock {
public:
  spin_lock() = default;
  spin_lock(const spin_lock&) = delete;
  spin_lock& operator=(const spin_lock&) = delete;

  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      for (int spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < 128)
          pause();
        else
          std::this_thread::yield();
      }
    }
  }

  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed)
           && !locked_.exchange(true, std::memory_order_acquire);
  }

  void unlock() noexcept {
    locked_.store(false, std::memory_order_release);
  }

private:
  static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  std::atomic<bool> locked_{false};
};

} // namespace troupe::bus::detail
